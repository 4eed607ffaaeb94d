"""Specifications of kanarray.training.regularize: the regulariser's value and its hand-derived gradient."""
import numpy as np
import pytest

import kanarray
from kanarray import KAN
from kanarray.kernels import reference
from kanarray.training.objective import evaluate
from kanarray.training.regularize import RegState, Regularization
from finite_differences import central_differences

TERMS = {
    "l1": Regularization(lamb=1.0, lamb_l1=1.0, lamb_entropy=0.0),
    "entropy": Regularization(lamb=1.0, lamb_l1=0.0, lamb_entropy=1.0),
    "coef": Regularization(lamb=1.0, lamb_l1=0.0, lamb_entropy=0.0, lamb_coef=1.0),
    "coefdiff": Regularization(lamb=1.0, lamb_l1=0.0, lamb_entropy=0.0, lamb_coefdiff=1.0),
}
BASE = {"silu": 0, "identity": 1, "zero": 2}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Finite differences run thousands of tiny kernel calls: one thread avoids the parallel
    launch cost (large on a loaded machine); results do not depend on the thread count."""
    numba = pytest.importorskip("numba")
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


def zero_loss(pred, y):
    """No data term: the objective is lamb * reg alone."""
    return 0.0, np.zeros_like(pred)


def random_model(width, seed, base_fun="silu"):
    """A model with clearly non-zero splines, a masked edge and non-uniform knots."""
    rng = np.random.default_rng(seed)
    model = KAN(width, grid=5, k=3, seed=seed, noise_scale=3.0, base_fun=base_fun)
    for layer in model.layers:  # by name: the draw does not depend on other parameter groups
        for name in ("coef", "w_base", "w_spline", "bias"):
            layer.params[name][...] += 0.2 * rng.normal(size=layer.params[name].shape)
    model.update_grid(rng.uniform(-1, 1, (64, width[0])))
    model.layers[0].mask[0, 0] = 0.0
    x = rng.uniform(-0.9, 0.9, (12, width[0]))
    return model, x


def oracle(model, x, reg):
    """The regulariser from the module docstring, written out with loops over the reference."""
    total = 0.0
    h = x.astype(np.float64)
    for layer in model.layers:
        p = {name: np.asarray(v, dtype=np.float64) for name, v in layer.params.items()}
        phi = reference.spline_activations(h, layer.knots, p["coef"], p["w_base"], p["w_spline"],
                                         layer.mask, layer.k, BASE[layer.base_fun])
        m = np.abs(phi).mean(axis=0)  # (I, O)
        I, O = m.shape
        ent_in = 0.0
        for o in range(O):
            s = m[:, o].sum() + 1.0
            ent_in -= sum(m[i, o] / s * np.log2(m[i, o] / s + 1e-4) for i in range(I))
        ent_out = 0.0
        for i in range(I):
            s = m[i, :].sum() + 1.0
            ent_out -= sum(m[i, o] / s * np.log2(m[i, o] / s + 1e-4) for o in range(O))
        coef = p["coef"]
        nb = coef.shape[1]
        coef_l1 = sum(np.abs(coef[i, :, o]).mean() for i in range(I) for o in range(O))
        coef_diff = sum(np.abs(np.diff(coef[i, :, o])).mean() for i in range(I) for o in range(O))
        assert nb > 1
        total += (reg.lamb_l1 * m.sum() + reg.lamb_entropy * (ent_in / O + ent_out / I)
                  + reg.lamb_coef * coef_l1 + reg.lamb_coefdiff * coef_diff)
        h = reference.layer_forward(h, layer.knots, p["coef"], p["w_base"], p["w_spline"],
                                    p["bias"], layer.mask, layer.k, BASE[layer.base_fun])
    return total


def min_abs_phi(model, x):
    """Smallest |phi| over unmasked edges and samples: finite differences need it away from 0."""
    smallest = np.inf
    h = x
    for layer in model.layers:
        phi = reference.spline_activations(h, layer.knots, layer.params["coef"], layer.params["w_base"],
                                         layer.params["w_spline"], layer.mask, layer.k,
                                         BASE[layer.base_fun])
        smallest = min(smallest, np.abs(phi)[:, layer.mask > 0].min())
        h = layer.forward(h)
    return smallest


@pytest.mark.parametrize("width", [[3, 4, 2], [2, 3, 3, 1]], ids=["2-layer", "3-layer"])
@pytest.mark.parametrize("term", sorted(TERMS))
def test_each_term_gradient_matches_finite_differences(width, term):
    model, x = random_model(width, seed={3: 4, 4: 2}[len(width)])  # seeds with |phi| > 1e-3
    reg = TERMS[term]
    y = np.zeros((x.shape[0], width[-1]))
    assert min_abs_phi(model, x) > 1e-3  # |.| is smooth at this point
    ev = evaluate(model, x, y, zero_loss, reg, need_dx=True)
    value, dx, grad = ev.loss, ev.dx, ev.grad
    assert value == pytest.approx(oracle(model, x, reg), rel=1e-12)
    assert np.abs(grad).max() > 0

    start = model.params.copy()

    def at_params(params):
        model.params = params
        return evaluate(model, x, y, zero_loss, reg).loss

    numeric = central_differences(at_params, start, eps=1e-5)
    model.params = start
    scale = np.abs(numeric).max()
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8 * scale)

    numeric_dx = central_differences(lambda xx: evaluate(model, xx, y, zero_loss, reg).loss, x, eps=1e-5)
    if term.startswith("coef"):
        assert np.all(dx == 0) and np.all(numeric_dx == 0)  # coefficient terms ignore the data
    else:
        assert np.abs(numeric_dx).max() > 0
        np.testing.assert_allclose(dx, numeric_dx, rtol=1e-6, atol=1e-8 * np.abs(numeric_dx).max())


def test_total_objective_gradient_with_every_term_and_mse():
    """All terms at once, added to the mse, through loss_and_grad (params and input gradient)."""
    model, x = random_model([3, 4, 2], seed=10, base_fun="identity")
    y = np.random.default_rng(8).normal(size=(x.shape[0], 2))
    reg = Regularization(lamb=0.3, lamb_l1=1.0, lamb_entropy=2.0, lamb_coef=0.5, lamb_coefdiff=0.7)
    assert min_abs_phi(model, x) > 1e-3
    mse = model.loss_and_grad(x, y)[0]
    loss, grad, dx = model.loss_and_grad(x, y, need_dx=True, reg=reg)
    assert loss == pytest.approx(mse + 0.3 * oracle(model, x, reg), rel=1e-12)
    assert evaluate(model, x, y, reg=reg).reg == pytest.approx(oracle(model, x, reg), rel=1e-12)
    start = model.params.copy()

    def at_params(params):
        model.params = params
        return model.loss_and_grad(x, y, reg=reg)[0]

    numeric = central_differences(at_params, start, eps=1e-5)
    model.params = start
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8 * np.abs(numeric).max())
    numeric_dx = central_differences(lambda xx: model.loss_and_grad(xx, y, reg=reg)[0], x, eps=1e-5)
    np.testing.assert_allclose(dx, numeric_dx, rtol=1e-6, atol=1e-8 * np.abs(numeric_dx).max())


def test_reference_spline_activations_sum_to_the_layer_output():
    model, x = random_model([3, 4, 2], seed=1)
    layer = model.layers[0]
    p = layer.params
    phi = reference.spline_activations(x, layer.knots, p["coef"], p["w_base"], p["w_spline"],
                                     layer.mask, layer.k, 0)
    np.testing.assert_allclose(phi.sum(axis=1) + p["bias"], layer.forward(x), rtol=1e-12, atol=1e-12)
    assert np.all(phi[:, 0, 0] == 0)  # the masked edge


def test_no_regularisation_changes_nothing():
    model, x = random_model([3, 4, 2], seed=2)
    y = np.ones((x.shape[0], 2))
    plain = model.loss_and_grad(x, y, need_dx=True)
    for reg in (None, Regularization(), Regularization(lamb=0.0, lamb_coef=1.0),
                Regularization(lamb=1.0, lamb_l1=0.0, lamb_entropy=0.0)):
        again = model.loss_and_grad(x, y, need_dx=True, reg=reg)
        assert again[0] == plain[0]
        np.testing.assert_array_equal(again[1], plain[1])
        np.testing.assert_array_equal(again[2], plain[2])


def test_float32_value_close_to_float64():
    model, x = random_model([3, 4, 2], seed=3)
    reg = Regularization(lamb=1.0, lamb_coef=0.5, lamb_coefdiff=0.5)
    single = KAN(**{**model.config(), "dtype": "float32"})
    single.params = model.params
    for src, dst in zip(model.layers, single.layers):
        dst.knots[...] = src.knots
        dst.mask[...] = src.mask
    y = np.zeros((x.shape[0], 2), np.float32)
    ev32 = evaluate(single, x.astype(np.float32), y, zero_loss, reg, need_dx=True)
    value32, dx32 = ev32.loss, ev32.dx
    assert dx32.dtype == np.float32 and ev32.grad.dtype == np.float32
    assert value32 == pytest.approx(oracle(model, x, reg), rel=1e-5)


@pytest.mark.parametrize("bad", [{"lamb": -1.0}, {"lamb_l1": float("nan")}, {"lamb_entropy": "2"},
                                 {"lamb_coef": True}])
def test_bad_weights_are_rejected(bad):
    with pytest.raises((TypeError, ValueError)):
        Regularization(**bad)


def test_fit_records_reg_and_regularisation_sparsifies():
    f = lambda x: np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2)
    data = kanarray.create_dataset(f, n_var=2, train_num=200, test_num=50, seed=0)
    plain = KAN([2, 3, 1], seed=0)
    sparse = KAN([2, 3, 1], seed=0)
    r_plain = plain.fit(data, steps=6)
    r_sparse = sparse.fit(data, steps=6, lamb=1e-2)
    assert r_plain["reg"] == [0.0] * 6
    assert len(r_sparse["reg"]) == 6 and all(np.isfinite(r_sparse["reg"]))
    reg = Regularization(lamb=1e-2)
    x = sparse.as_batch(data["train_input"])
    assert r_sparse["reg"][-1] == pytest.approx(RegState(sparse, sparse.forward_all(x), reg).value, rel=1e-12)
    # the data part of the objective is what train_loss reports
    mse = sparse.loss_and_grad(data["train_input"], data["train_label"])[0]
    assert r_sparse["train_loss"][-1] == pytest.approx(np.sqrt(mse), rel=1e-6)
    assert r_sparse["reg"][-1] < RegState(plain, plain.forward_all(x), reg).value
