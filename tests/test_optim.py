"""Specifications of kanarray.training.adam and kanarray.training.lbfgs: Adam and L-BFGS over
flat vectors."""

import numpy as np
import pytest
import scipy.optimize

from kanarray.core.arrays import array_module
from kanarray.training.adam import AdamState, adam_init, adam_update
from kanarray.training.lbfgs import lbfgs_init, lbfgs_minimize, lbfgs_step

C1, C2 = 1e-4, 0.9  # strong-Wolfe constants the line search promises


def rosenbrock(x):
    """Extended Rosenbrock function sum 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2 and its gradient."""
    a, b = x[:-1], x[1:]
    r = b - a * a
    grad = np.zeros_like(x)
    grad[:-1] = -400.0 * a * r - 2.0 * (1.0 - a)
    grad[1:] += 200.0 * r
    return float(np.sum(100.0 * r * r + (1.0 - a) ** 2)), grad


def rosenbrock_start(n):
    return np.tile([-1.2, 1.0], n // 2)


def quadratic(dtype, n=20, xp=np):
    """Convex f(x) = x.A x / 2 - b.x with condition number 100, on arrays of module ``xp``.

    Returns (fun, minimiser), the minimiser as a float64 NumPy array.
    """
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    a = (q * np.geomspace(1.0, 100.0, n)) @ q.T
    b = rng.standard_normal(n)
    x_star = np.linalg.solve(a, b)
    a, b = xp.asarray(a, dtype), xp.asarray(b, dtype)

    def fun(x):
        ax = a @ x
        return float(x @ ax / 2 - b @ x), ax - b

    return fun, x_star


# ---------------------------------------------------------------- L-BFGS


def test_lbfgs_rosenbrock_100d_matches_scipy_iteration_count():
    x0 = rosenbrock_start(100)
    x, loss, n_iter, n_evals = lbfgs_minimize(rosenbrock, x0, max_iter=2000)
    ref = scipy.optimize.minimize(
        rosenbrock, x0, jac=True, method="L-BFGS-B",
        options={"maxcor": 10, "maxiter": 2000, "gtol": 1e-12, "ftol": 1e-16},
    )
    print(f"ours: {n_iter} iterations, {n_evals} evaluations; "
          f"scipy L-BFGS-B: {ref.nit} iterations, {ref.nfev} evaluations")
    np.testing.assert_allclose(x, 1.0, atol=1e-6)
    assert loss < 1e-10
    # Measured: ours 532 iterations / 630 evaluations, scipy 534 / 640.
    assert n_iter <= 1.5 * ref.nit + 10
    assert n_evals <= 1.5 * ref.nfev + 10


def test_lbfgs_accepted_steps_satisfy_strong_wolfe():
    calls = []

    def recorded(x):
        loss, grad = rosenbrock(x)
        calls.append((x.copy(), loss, grad.copy()))
        return loss, grad

    x = rosenbrock_start(10)
    loss, grad = rosenbrock(x)
    state = lbfgs_init()
    for _ in range(40):
        calls.clear()
        x_new, loss_new, grad_new, state, info = lbfgs_step(recorded, x, loss, grad, state)
        assert not info["failed"]
        assert info["n_evals"] == len(calls)
        # The accepted point is the one fun was evaluated at, with fun's values.
        x_eval, loss_eval, grad_eval = next(c for c in calls if np.array_equal(c[0], x_new))
        assert loss_new == loss_eval
        np.testing.assert_array_equal(grad_new, grad_eval)
        s = x_new - x
        slope = grad @ s
        assert slope < 0.0
        assert loss_new <= loss + C1 * slope  # sufficient decrease
        assert abs(grad_new @ s) <= C2 * abs(slope)  # strong curvature condition
        x, loss, grad = x_new, loss_new, grad_new


def random_smooth_function(rng):
    """A random smooth function of a few variables with its gradient, from one of three families."""
    n = int(rng.integers(1, 6))
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    a = (q * np.geomspace(1.0, 10.0 ** rng.uniform(0, 3), n)) @ q.T
    c = rng.standard_normal(n)
    family = rng.integers(3)
    if family == 0:  # quadratic (x - c) A (x - c) / 2
        def fun(x):
            r = x - c
            return float(r @ a @ r / 2), a @ r
    elif family == 1:  # quartic sum (x - c)^4 plus a quadratic
        def fun(x):
            r = x - c
            return float(np.sum(r**4) + r @ a @ r / 2), 4 * r**3 + a @ r
    else:  # log-cosh of a linear map: flat far away, quadratic near the minimum
        def fun(x):
            z = a @ x - c
            return float(np.sum(np.logaddexp(z, -z))), a.T @ np.tanh(z)
    return fun, n


def test_lbfgs_accepted_steps_satisfy_the_line_search_promises():
    """Over random functions, starts, trial steps and budgets, every accepted step s = x_new - x
    has sufficient decrease f_new <= f + C1 g.s, and, when the line search stopped before its
    budget max_ls (tolerance_change=0: no bracket-width stop), strong curvature |g_new.s| <= C2 |g.s|."""
    checked_curvature = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        fun, n = random_smooth_function(rng)
        x = 3.0 * rng.standard_normal(n)
        loss, grad = fun(x)
        state = lbfgs_init()
        max_ls = int(rng.choice([1, 2, 3, 25]))
        lr = 10.0 ** rng.uniform(-4, 4)
        for _ in range(5):
            x_new, loss_new, grad_new, state, info = lbfgs_step(
                fun, x, loss, grad, state, lr=lr, max_ls=max_ls, tolerance_change=0.0)
            if info["failed"] or info["converged"]:
                break
            s = x_new - x
            slope = grad @ s
            assert slope < 0.0
            assert loss_new <= loss + C1 * slope, f"seed {seed}: no sufficient decrease"
            if info["n_evals"] < max_ls:
                assert abs(grad_new @ s) <= C2 * abs(slope), f"seed {seed}: curvature fails"
                checked_curvature += 1
            x, loss, grad = x_new, loss_new, grad_new
    print(f"curvature checked on {checked_curvature} steps")
    assert checked_curvature > 150  # the curvature promise is exercised (312 steps when written)


@pytest.mark.parametrize("seed", range(20))
def test_lbfgs_never_accepts_an_uphill_step(seed):
    """f = a (x - c)^2 and a first trial step that overshoots the minimum by a factor 2.0001: the
    loss rises by a hair (less than C1 t |g.d|). With max_ls=1 no other point is tried, so the
    step must fail and return the start unchanged."""
    rng = np.random.default_rng(seed)
    a, c, x0 = 10.0 ** rng.uniform(-2, 2), rng.standard_normal(), rng.standard_normal(1)
    fun = lambda x: (float(a * (x[0] - c) ** 2), 2 * a * (x - c))  # noqa: E731
    loss, grad = fun(x0)
    first_step = 2.0001 / (2 * a)  # x0 - first_step * grad lands 1.0001 |x0 - c| past c
    lr = first_step / min(1.0, 1.0 / abs(grad[0]))
    x_new, loss_new, _, _, info = lbfgs_step(fun, x0, loss, grad, lbfgs_init(), lr=lr, max_ls=1)
    assert fun(x0 - first_step * grad)[0] > loss  # the trial point is uphill
    assert info["failed"] and info["n_evals"] == 1
    assert loss_new == loss
    np.testing.assert_array_equal(x_new, x0)


# The loss only resolves the minimiser to about sqrt(rounding / curvature):
# sqrt(tolerance_change) ~ 1e-7 in float64, sqrt(eps) ~ 3e-4 in float32.
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-6), (np.float32, 2e-3)])
def test_lbfgs_quadratic_keeps_dtype_and_converges(dtype, tol):
    fun, x_star = quadratic(dtype)
    x0 = np.zeros(x_star.shape, dtype)
    x, loss, n_iter, _ = lbfgs_minimize(fun, x0, max_iter=200, lr=np.float64(1.0))
    assert x.dtype == dtype
    assert fun(x)[1].dtype == dtype
    assert n_iter < 100
    np.testing.assert_allclose(x, x_star, rtol=0, atol=tol * np.abs(x_star).max())


def test_lbfgs_history_is_capped_and_newest_last():
    x = rosenbrock_start(10)
    loss, grad = rosenbrock(x)
    state = lbfgs_init()
    for _ in range(6):
        x_new, loss, grad_new, state, _ = lbfgs_step(rosenbrock, x, loss, grad, state, history_size=3)
        last_s, last_y = x_new - x, grad_new - grad
        x, grad = x_new, grad_new
    assert state.n_iter == 6
    assert len(state.s_hist) == len(state.y_hist) == len(state.rho) == 3
    np.testing.assert_allclose(state.s_hist[-1], last_s, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(state.y_hist[-1], last_y, rtol=1e-12, atol=1e-12)
    assert state.rho[-1] == pytest.approx(1.0 / (last_s @ last_y))
    assert state.gamma == pytest.approx((last_s @ last_y) / (last_y @ last_y))


def test_lbfgs_is_deterministic():
    x0 = rosenbrock_start(20)
    first = lbfgs_minimize(rosenbrock, x0, max_iter=50)
    second = lbfgs_minimize(rosenbrock, x0, max_iter=50)
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1:] == second[1:]


def test_lbfgs_non_finite_loss_shrinks_the_step():
    """Beyond radius 1 the loss is NaN; the minimiser of the finite part lies outside."""
    target = np.full(4, 2.0)

    def fun(x):
        if np.linalg.norm(x) > 1.0:
            return float("nan"), np.full_like(x, np.nan)
        return float(np.sum((x - target) ** 2)), 2.0 * (x - target)

    x = np.zeros(4)
    loss, grad = fun(x)
    x_new, loss_new, grad_new, _, info = lbfgs_step(fun, x, loss, grad, lbfgs_init(), lr=100.0)
    assert not info["failed"]
    assert np.all(np.isfinite(x_new)) and np.isfinite(loss_new)
    assert np.linalg.norm(x_new) <= 1.0
    assert loss_new < loss


def test_lbfgs_returns_input_when_no_finite_point_is_found():
    def fun(x):
        if np.any(x != 0.0):
            return float("inf"), np.full_like(x, np.nan)
        return 1.0, np.ones_like(x)

    x = np.zeros(3)
    x_new, loss_new, grad_new, state, info = lbfgs_step(fun, x, 1.0, np.ones(3), lbfgs_init(), max_ls=10)
    assert info["failed"] and not info["converged"]
    assert info["n_evals"] <= 10
    np.testing.assert_array_equal(x_new, x)
    assert loss_new == 1.0
    assert state.s_hist == ()


def test_lbfgs_minimize_stops_at_once_at_a_stationary_point():
    fun, x_star = quadratic(np.float64)
    _, _, n_iter, n_evals = lbfgs_minimize(fun, x_star, tolerance_grad=1e-8)
    assert (n_iter, n_evals) == (0, 1)


def calls_recorded(fun):
    calls = []

    def recorded(x):
        calls.append(x.copy())
        return fun(x)

    return recorded, calls


@pytest.mark.parametrize("tolerances", [{}, {"tolerance_grad": 0.0, "tolerance_change": 0.0}])
def test_lbfgs_zero_gradient_is_convergence(tolerances):
    """A flat loss: the point is stationary, so the step converges where it stands, calling
    nothing and keeping the curvature history (1 / |grad|_1 is never formed)."""
    fun, calls = calls_recorded(lambda x: (3.0, np.zeros_like(x)))
    x = np.array([0.5, -2.0, 7.0])
    _, _, _, state, _ = lbfgs_step(*quadratic_step_args())
    x_new, loss_new, grad_new, state_new, info = lbfgs_step(fun, x, 3.0, np.zeros(3), state,
                                                            **tolerances)
    assert info == {"n_evals": 0, "converged": True, "step": 0.0, "failed": False}
    assert calls == [] and state_new == state and loss_new == 3.0
    np.testing.assert_array_equal(x_new, x)
    np.testing.assert_array_equal(grad_new, 0.0)


def quadratic_step_args():
    fun, x_star = quadratic(np.float64, n=3)
    x = np.zeros(3)
    return (fun, x, *fun(x), lbfgs_init())


def test_lbfgs_minimize_one_row_least_squares_fitted_exactly():
    """(a.w - b)^2 for one row (a, b) at an exact fit: gradient exactly zero, nothing to do."""
    a, b = np.array([1.0, 2.0, 3.0]), 6.0
    fun = lambda w: ((a @ w - b) ** 2, 2 * (a @ w - b) * a)  # noqa: E731
    w0 = np.ones(3)
    x, loss, n_iter, n_evals = lbfgs_minimize(fun, w0, tolerance_grad=0.0, tolerance_change=0.0)
    assert (loss, n_iter, n_evals) == (0.0, 0, 1)
    np.testing.assert_array_equal(x, w0)


def test_lbfgs_gradient_too_small_to_square_is_convergence():
    """grad . grad underflows to 0 (1e-170^2 < the smallest double): no descent direction
    exists in floating point, so the point is stationary to working precision."""
    fun, calls = calls_recorded(lambda x: (1.0, np.full_like(x, 1e-170)))
    x = np.zeros(3)
    x_new, _, _, _, info = lbfgs_step(fun, x, 1.0, np.full(3, 1e-170), lbfgs_init(),
                                      tolerance_grad=0.0)
    assert info["converged"] and not info["failed"] and calls == []
    np.testing.assert_array_equal(x_new, x)


@pytest.mark.parametrize("loss, grad", [
    (float("nan"), np.ones(3)),
    (float("inf"), np.ones(3)),
    (1.0, np.array([1.0, np.inf, 0.0])),
    (1.0, np.array([1.0, np.nan, 0.0])),
    (1.0, np.full(3, 1e200)),  # finite, but the slope grad . d overflows
])
def test_lbfgs_non_finite_start_fails_without_evaluating(loss, grad):
    fun, calls = calls_recorded(lambda x: (1.0, np.ones_like(x)))
    _, _, _, state, _ = lbfgs_step(*quadratic_step_args())
    x = np.zeros(3)
    with np.errstate(over="ignore"):  # grad . grad overflows, as intended
        x_new, loss_new, _, state_new, info = lbfgs_step(fun, x, loss, grad, state)
    assert info["failed"] and not info["converged"] and info["n_evals"] == 0 and calls == []
    assert state_new.s_hist == () and state_new.n_iter == state.n_iter
    np.testing.assert_array_equal(x_new, x)


def test_lbfgs_zero_gradient_change_is_not_stored_as_curvature():
    """On a linear loss the gradient never changes (y = 0, y.s = 0): the step still goes
    downhill, and the pair is skipped instead of forming rho = 1 / (y.s)."""
    fun = lambda x: (float(-x.sum()), -np.ones_like(x))  # noqa: E731
    x = np.zeros(3)
    x_new, loss_new, _, state, info = lbfgs_step(fun, x, *fun(x), lbfgs_init(), max_ls=5)
    assert not info["failed"] and info["step"] > 0 and loss_new < 0.0
    assert state.s_hist == state.y_hist == state.rho == () and state.gamma == 1.0
    assert state.n_iter == 1


def test_lbfgs_trial_step_that_underflows_to_zero_ends_without_error():
    """lr = 5e-324 times 1/|grad|_1 rounds to a zero step: the line search keeps trying t = 0
    (interpolating between two equal steps must not divide by zero) and reports no progress."""
    fun = lambda x: (float((x[0] - 10.0) ** 2), 2 * (x - 10.0))  # noqa: E731
    x = np.zeros(1)
    loss, grad = fun(x)  # |grad|_1 = 20: the first trial step 5e-324 / 20 rounds to 0
    x_new, loss_new, _, _, info = lbfgs_step(fun, x, loss, grad, lbfgs_init(), lr=5e-324)
    assert info["step"] == 0.0 and not info["failed"]
    assert loss_new == loss
    np.testing.assert_array_equal(x_new, x)


# ---------------------------------------------------------------- Adam


def test_adam_steps_match_hand_computed_values():
    """b1 = b2 = 1/2 and gradients 1, 3, -2 (numbers chosen to stay exact):
    m = 1/2, 7/4, -1/8 and v = 1/2, 19/4, 35/8; bias-corrected m^ = 1, 7/3, -1/7 and
    v^ = 1, 19/3, 5, so the steps are -lr m^ / (sqrt(v^) + eps)."""
    lr, eps = 0.1, 1e-8
    expected = [-lr * 1 / (1 + eps), -lr * (7 / 3) / (np.sqrt(19 / 3) + eps),
                lr * (1 / 7) / (np.sqrt(5) + eps)]
    state = adam_init(np.zeros(1))
    for g, want in zip([1.0, 3.0, -2.0], expected):
        delta, state = adam_update(np.array([g]), state, lr=lr, b1=0.5, b2=0.5, eps=eps)
        assert delta[0] == pytest.approx(want, rel=1e-14)
    np.testing.assert_allclose([state.m[0], state.v[0]], [-1 / 8, 35 / 8], rtol=1e-15)


def test_adam_constant_gradient_steps_stay_lr_for_many_steps():
    """With a constant gradient g the bias-corrected moments are exactly g and g^2 at every
    step, so every step is -lr g / (|g| + eps) (default b1, b2)."""
    g = np.array([0.3, -4.0, 1e-3])
    state = adam_init(np.zeros(3))
    for _ in range(50):
        delta, state = adam_update(g, state, lr=0.01)
        np.testing.assert_allclose(delta, -0.01 * g / (np.abs(g) + 1e-8), rtol=1e-9)
    assert state.step == 50


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_first_step_is_minus_lr_sign_of_gradient(dtype):
    g = np.array([3.0, -1e-3, 250.0, -7.5, 1e-2], dtype)
    delta, state = adam_update(g, adam_init(np.zeros(5, dtype)), lr=np.float64(0.01))
    assert delta.dtype == dtype
    np.testing.assert_allclose(delta, -0.01 * np.sign(g), rtol=1e-4)
    assert state.step == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_converges_on_a_quadratic(dtype):
    fun, x_star = quadratic(dtype, n=5)
    x = np.zeros(5, dtype)
    state = adam_init(x)
    for step in range(3000):
        lr = 0.05 if step < 2000 else 0.005
        delta, state = adam_update(fun(x)[1], state, lr=lr)
        x = x + delta
    assert x.dtype == dtype
    np.testing.assert_allclose(x, x_star, atol=1e-2 * np.abs(x_star).max())


def test_adam_update_is_pure():
    g = np.array([1.0, -2.0, 3.0])
    state = AdamState(step=4, m=np.array([0.1, 0.2, 0.3]), v=np.array([1.0, 2.0, 3.0]))
    copies = (g.copy(), state.m.copy(), state.v.copy())
    adam_update(g, state)
    assert state.step == 4
    for before, after in zip(copies, (g, state.m, state.v)):
        np.testing.assert_array_equal(before, after)


# ---------------------------------------------------------------- arguments


def _adam_call(**kw):
    args = {"grad": np.ones(3), "state": adam_init(np.zeros(3)), **kw}
    return adam_update(**args)


@pytest.mark.parametrize("kw, error, words", [
    ({"lr": np.array([0.1])}, TypeError, "lr must be a real number"),
    ({"lr": "0.1"}, TypeError, "lr must be a real number"),
    ({"lr": 0.1 + 0j}, TypeError, "lr must be a real number"),
    ({"lr": float("nan")}, ValueError, "lr must be a finite number"),
    ({"lr": 0.0}, ValueError, "lr must be > 0"),
    ({"b1": 1.0}, ValueError, "b1 must be < 1"),
    ({"b2": -0.1}, ValueError, "b2 must be >= 0"),
    ({"eps": 0.0}, ValueError, "eps must be > 0"),
    ({"grad": [1.0, 2.0, 3.0]}, TypeError, "grad must be a 1-D float array"),
    ({"grad": np.ones(4)}, ValueError, "grad has shape"),
    ({"grad": np.ones((3, 1))}, ValueError, "grad must be a non-empty 1-D array"),
    ({"state": (0, np.zeros(3), np.zeros(3))}, TypeError, "state must be an AdamState"),
])
def test_adam_rejects_bad_arguments_by_name(kw, error, words):
    with pytest.raises(error, match=words):
        _adam_call(**kw)


def _lbfgs_call(**kw):
    fun, _ = quadratic(np.float64, n=3)
    x = np.zeros(3)
    loss, grad = fun(x)
    args = {"fun": fun, "x": x, "loss": loss, "grad": grad, "state": lbfgs_init(), **kw}
    return lbfgs_step(**args)


@pytest.mark.parametrize("kw, error, words", [
    ({"fun": 5}, TypeError, "fun must be callable"),
    ({"x": np.zeros(3, int)}, TypeError, "x must be a 1-D float array"),
    ({"x": np.zeros(0)}, ValueError, "x must be a non-empty 1-D array"),
    ({"grad": np.ones(2)}, ValueError, "grad must have the shape of x"),
    ({"loss": "1.0"}, TypeError, "loss must be a real scalar"),
    ({"loss": np.ones(3)}, TypeError, "loss must be a real scalar"),
    ({"state": None}, TypeError, "state must be an LBFGSState"),
    ({"lr": np.array(1.0)}, TypeError, "lr must be a real number"),
    ({"lr": -1.0}, ValueError, "lr must be > 0"),
    ({"history_size": 0}, ValueError, "history_size must be >= 1"),
    ({"max_ls": 2.5}, TypeError, "max_ls must be an integer"),
    ({"tolerance_grad": -1e-9}, ValueError, "tolerance_grad must be >= 0"),
    ({"tolerance_change": float("inf")}, ValueError, "tolerance_change must be a finite number"),
    ({"fun": lambda x: 1.0}, TypeError, "fun must return a pair"),
    ({"fun": lambda x: (np.ones(3), np.ones(3))}, TypeError, "loss returned by fun must be a real scalar"),
    ({"fun": lambda x: (1.0, np.ones(2))}, ValueError, "fun must return a gradient of the point's shape"),
])
def test_lbfgs_step_rejects_bad_arguments_by_name(kw, error, words):
    with pytest.raises(error, match=words):
        _lbfgs_call(**kw)


def test_lbfgs_minimize_rejects_bad_arguments_by_name():
    fun, _ = quadratic(np.float64, n=3)
    with pytest.raises(TypeError, match="x0 must be a 1-D float array"):
        lbfgs_minimize(fun, [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="max_iter must be >= 0"):
        lbfgs_minimize(fun, np.zeros(3), max_iter=-1)
    with pytest.raises(ValueError, match="fun must return a gradient"):
        lbfgs_minimize(lambda x: (0.0, np.zeros(5)), np.zeros(3))


# ---------------------------------------------------------------- devices


def test_array_module_of_numpy_is_numpy():
    assert array_module(np.zeros(2)) is np


def test_cupy_runs_the_same_code():
    cupy = pytest.importorskip("cupy")
    fun, x_star = quadratic(np.float64, xp=cupy)
    x, _, _, _ = lbfgs_minimize(fun, cupy.zeros(x_star.shape), max_iter=200)
    assert array_module(x) is cupy
    np.testing.assert_allclose(cupy.asnumpy(x), x_star, atol=1e-8 * np.abs(x_star).max())
    delta, state = adam_update(cupy.ones(3), adam_init(cupy.zeros(3)))
    assert array_module(delta) is cupy and array_module(state.m) is cupy


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m", [1, 4, 10])
def test_two_loop_kernel_and_array_form_match_the_reference(m, dtype):
    """The CPU kernel (NumPy's path) and the array-operation form (CuPy's path) of the search
    direction equal kernels/reference.py's two-loop recursion on fresh random pairs."""
    from kanarray.kernels import cpu, reference
    from kanarray.training.lbfgs import LBFGSState, _two_loop_arrays

    rng = np.random.default_rng(m)
    n = 37
    s = rng.normal(size=(m, n)).astype(dtype)
    y = (s * rng.uniform(0.5, 2.0, (m, n))).astype(dtype)
    rho = 1.0 / np.einsum("ij,ij->i", s.astype(np.float64), y.astype(np.float64))
    gamma, grad = 0.7, rng.normal(size=n).astype(dtype)
    want = reference.lbfgs_direction(s, y, rho, gamma, grad)
    state = LBFGSState(s_hist=s, y_hist=y, rho=rho, n_iter=m, gamma=gamma)
    tolerance = 1e-12 if dtype == np.float64 else 1e-4
    for got in (cpu.lbfgs_direction(s, y, rho, gamma, grad), _two_loop_arrays(grad, state)):
        assert got.dtype == dtype and got.shape == (n,)
        assert np.abs(got - want).max() <= tolerance * np.abs(want).max()
