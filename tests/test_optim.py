"""Specifications of kanarray.optim: Adam and L-BFGS over flat vectors."""

import numpy as np
import pytest
import scipy.optimize

from kanarray.optim import (
    AdamState,
    adam_init,
    adam_update,
    array_module,
    lbfgs_init,
    lbfgs_minimize,
    lbfgs_step,
)

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


# ---------------------------------------------------------------- Adam


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
