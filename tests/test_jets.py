"""Input derivatives through the network (jets) and the backward through them.

The CPU kernels equal their float64 reference twins; the reference's derivatives equal central
finite differences of the plain forward; the network's u, grad u and second derivatives equal
finite differences of KAN.__call__ (and of the exact grad), through several layers,
multiplication nodes and both scalings; the gradient of a loss of (u, grad u, second) equals
finite differences of that loss in every parameter group and in x.
"""
import numba
import numpy as np
import pytest

from kanarray import KAN
from kanarray.core.jet import backward_jet, check_pairs, forward_jet
from kanarray.kernels import cpu, reference
from kanarray.kernels.common import base_derivatives

PAIRS = np.array([[0, 0], [0, 1], [1, 1]])


def _layer(rng, I=3, O=4, G=6, k=3, dtype=np.float64):
    knots = np.sort(rng.uniform(-1.5, 1.5, (I, G + 2 * k + 1)), axis=1)
    arrays = dict(knots=knots, coef=rng.normal(size=(I, G + k, O)), w_base=rng.normal(size=(I, O)),
                  w_spline=rng.normal(size=(I, O)), bias=rng.normal(size=O),
                  mask=(rng.random((I, O)) > 0.2).astype(np.float64))
    return {name: a.astype(dtype) for name, a in arrays.items()}


def _inputs(rng, B=9, I=3, D=2, P=3, dtype=np.float64):
    return (rng.uniform(-1.8, 1.8, (B, I)).astype(dtype), rng.normal(size=(B, I, D)).astype(dtype),
            rng.normal(size=(B, I, P)).astype(dtype))


def test_base_derivatives_match_finite_differences():
    x = np.linspace(-4, 4, 41)
    h = 1e-5
    for base in (0, 1, 2):
        d = base_derivatives(x, base)
        for order in range(3):
            fd = (base_derivatives(x + h, base)[order] - base_derivatives(x - h, base)[order]) / (2 * h)
            np.testing.assert_allclose(d[order + 1], fd, atol=1e-8)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_dense_basis_derivatives_match_finite_differences(k):
    rng = np.random.default_rng(k)
    knots = np.sort(rng.uniform(-1, 1, (2, 5 + 2 * k + 1)), axis=1)
    x = rng.uniform(knots[:, 0] + 0.01, knots[:, -1] - 0.01, (50, 2))
    h = 1e-6
    d = reference.dense_basis_derivatives(x, knots, k, 3)
    np.testing.assert_allclose(d[0], reference.dense_basis(x, knots, k)[0], atol=1e-14)
    for order in range(min(k, 3)):
        fd = (reference.dense_basis_derivatives(x + h, knots, k, 3)[order]
              - reference.dense_basis_derivatives(x - h, knots, k, 3)[order]) / (2 * h)
        # a sample within h of a knot sees a kink of the (k-1-order)-th derivative: skip those
        near = (np.abs(x[:, :, None] - knots[None, :, :]) < 2 * h).any(axis=2)
        np.testing.assert_allclose(d[order + 1][~near], fd[~near], atol=1e-6 * max(1, np.abs(fd).max()))


@pytest.mark.parametrize("base", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3])
def test_layer_jet_kernels_equal_the_reference(base, k):
    rng = np.random.default_rng(10 * base + k)
    p = _layer(rng, k=k)
    x, dx, d2x = _inputs(rng)
    B, O, D, P = x.shape[0], p["coef"].shape[2], dx.shape[2], d2x.shape[2]
    args = (p["knots"], p["coef"], p["w_base"], p["w_spline"])
    y, dy, d2y = np.empty((B, O)), np.empty((B, O, D)), np.empty((B, O, P))
    cpu.layer_jet_forward(x, dx, d2x, PAIRS, *args, p["bias"], p["mask"], k, base, y, dy, d2y)
    for got, want in zip((y, dy, d2y), reference.layer_jet_forward(x, dx, d2x, PAIRS, *args, p["bias"],
                                                                     p["mask"], k, base)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    gy, gdy, gd2y = rng.normal(size=(B, O)), rng.normal(size=(B, O, D)), rng.normal(size=(B, O, P))
    out = [np.empty_like(x), np.empty_like(dx), np.empty_like(d2x), np.empty_like(p["coef"]),
           np.empty_like(p["w_base"]), np.empty_like(p["w_base"]), np.empty(O)]
    cpu.layer_jet_backward(x, dx, d2x, PAIRS, gy, gdy, gd2y, *args, p["mask"], k, base, *out)
    want = reference.layer_jet_backward(x, dx, d2x, PAIRS, gy, gdy, gd2y, *args, p["mask"], k, base)
    for got, expected in zip(out, want):
        np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-11)


def test_layer_jet_kernels_in_float32_follow_the_reference():
    rng = np.random.default_rng(7)
    p = _layer(rng, dtype=np.float32)
    x, dx, d2x = _inputs(rng, dtype=np.float32)
    B, O = x.shape[0], p["coef"].shape[2]
    y, dy, d2y = (np.empty(s, np.float32) for s in ((B, O), (B, O, 2), (B, O, 3)))
    cpu.layer_jet_forward(x, dx, d2x, PAIRS, p["knots"], p["coef"], p["w_base"], p["w_spline"], p["bias"],
                          p["mask"], 3, 0, y, dy, d2y)
    want = reference.layer_jet_forward(x, dx, d2x, PAIRS, p["knots"], p["coef"], p["w_base"], p["w_spline"],
                                       p["bias"], p["mask"], 3, 0)
    assert y.dtype == dy.dtype == d2y.dtype == np.float32
    for got, expected in zip((y, dy, d2y), want):
        np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-4 * np.abs(expected).max())


def test_serial_and_parallel_jet_kernels_give_the_same_bits():
    rng = np.random.default_rng(3)
    p = _layer(rng, I=5, O=6)
    x, dx, d2x = _inputs(rng, B=101, I=5)
    args = (p["knots"], p["coef"], p["w_base"], p["w_spline"])
    B, O = x.shape[0], 6
    outs = {}
    for form in ("serial", "parallel"):
        for threads in (1, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(threads)
            try:
                fwd = [np.empty((B, O)), np.empty((B, O, 2)), np.empty((B, O, 3))]
                getattr(cpu.layer_jet_forward, form)(x, dx, d2x, PAIRS, *args, p["bias"], p["mask"], 3, 0, *fwd)
                g = [rng_g.copy() for rng_g in fwd]
                bwd = [np.empty_like(x), np.empty_like(dx), np.empty_like(d2x), np.empty_like(p["coef"]),
                       np.empty((5, O)), np.empty((5, O)), np.empty(O)]
                getattr(cpu.layer_jet_backward, form)(x, dx, d2x, PAIRS, *g, *args, p["mask"], 3, 0, *bwd)
            finally:
                numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
            outs[form, threads] = fwd + bwd
    first = next(iter(outs.values()))
    for result in outs.values():
        assert all(np.array_equal(a, b) for a, b in zip(first, result))


def _model(width, mult_arity=2):
    model = KAN(width, grid=5, seed=1, mult_arity=mult_arity)
    model.input_scaling = (np.array([0.1, -0.2]), np.array([0.7, 1.3]))
    model.output_scaling = (np.full(model.width[-1], 0.5), np.full(model.width[-1], 2.0))
    return model


NETWORKS = [([2, 4, 1], 2), ([2, [3, 2], [2, 1], 2], 2), ([2, [1, 1], 1], 3)]


@pytest.mark.parametrize("width, arity", NETWORKS)
def test_network_derivatives_match_finite_differences(width, arity):
    model = _model(width, arity)
    x = np.random.default_rng(0).uniform(-0.8, 0.8, (12, 2))
    jet = model.derivatives(x, second=PAIRS)
    h = 1e-5
    for a in range(2):
        e = np.zeros(2)
        e[a] = h
        fd = (model(x + e) - model(x - e)) / (2 * h)
        np.testing.assert_allclose(jet.grad[:, :, a], fd, atol=1e-8 * max(1, np.abs(fd).max()))
    for p, (a, b) in enumerate(PAIRS):
        e = np.zeros(2)
        e[b] = h
        fd = (model.derivatives(x + e).grad[:, :, a] - model.derivatives(x - e).grad[:, :, a]) / (2 * h)
        np.testing.assert_allclose(jet.second[:, :, p], fd, atol=1e-7 * max(1, np.abs(fd).max()))
    np.testing.assert_allclose(jet.value, model(x), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("width, arity", NETWORKS)
def test_loss_gradient_through_the_derivatives_matches_finite_differences(width, arity):
    model = _model(width, arity)
    rng = np.random.default_rng(5)
    x = rng.uniform(-0.8, 0.8, (7, 2))
    pairs = check_pairs(PAIRS, 2)
    jet, trace = forward_jet(model, x, pairs)
    weights = [rng.normal(size=a.shape) for a in jet]

    def loss(point=None, xx=x):
        out, _ = forward_jet(model, xx, pairs, None if point is None else model.views(point))
        return sum((w * a).sum() for w, a in zip(weights, out))

    grad = np.empty(model.num_params)
    dx = backward_jet(model, trace, *weights, model.views(grad))
    start, h = model.params.copy(), 1e-6
    for layer, name, where in model.group_slices():
        if name == "symbolic":
            continue
        for j in rng.choice(np.arange(where.start, where.stop), size=min(6, where.stop - where.start),
                            replace=False):
            e = np.zeros_like(start)
            e[j] = h
            fd = (loss(start + e) - loss(start - e)) / (2 * h)
            assert abs(fd - grad[j]) <= 1e-7 * max(1.0, abs(fd)), (layer, name, j, fd, grad[j])
    for a in range(2):
        e = np.zeros(2)
        e[a] = h
        fd = (loss(None, x + e) - loss(None, x - e)) / (2 * h)
        assert abs(fd - dx[:, a].sum()) <= 1e-7 * max(1.0, abs(fd))


def test_derivatives_refuse_what_they_cannot_do():
    model = KAN([2, 3, 1], grid=5)
    with pytest.raises(ValueError, match="input indices"):
        model.derivatives(np.zeros((2, 2)), second=[(0, 2)])
    with pytest.raises(ValueError, match="pairs"):
        model.derivatives(np.zeros((2, 2)), second=[0, 1])
    model.fix_symbolic(0, 0, 0, "x^2", fit_params=False)
    with pytest.raises(ValueError, match="symbolic edges"):
        model.derivatives(np.zeros((2, 2)))
