"""Every CPU kernel equals its float64 NumPy twin in kernels/reference.py on fresh random inputs."""
import numpy as np
import pytest

from kanarray.kernels import cpu, reference

TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}


def random_layer(rng, B, I, O, G, k):
    """Non-uniform knots, inputs beyond both ends and exactly on knots, a partial mask."""
    interior = np.sort(rng.uniform(-1, 1, (I, G + 1)), axis=1)
    interior[:, 0], interior[:, -1] = -1.0, 1.0
    step = rng.uniform(0.05, 0.3, (I, 1))
    knots = np.concatenate([interior[:, :1] - step * np.arange(k, 0, -1), interior,
                            interior[:, -1:] + step * np.arange(1, k + 1)], axis=1)
    x = rng.uniform(-1.8, 1.8, (B, I))
    on_knot = rng.random((B, I)) < 0.2
    x[on_knot] = knots[np.nonzero(on_knot)[1], rng.integers(0, knots.shape[1], on_knot.sum())]
    return {
        "x": x, "knots": knots,
        "coef": rng.normal(size=(I, G + k, O)), "w_base": rng.normal(size=(I, O)),
        "w_spline": rng.normal(size=(I, O)), "bias": rng.normal(size=O),
        "mask": (rng.random((I, O)) > 0.2).astype(np.float64), "g": rng.normal(size=(B, O)),
    }


def cast(layer, dtype):
    """The layer in `dtype` for the kernel, and the same values in float64 for the reference."""
    low = {name: np.ascontiguousarray(a, dtype) for name, a in layer.items()}
    return low, {name: a.astype(np.float64) for name, a in low.items()}


def rel_err(got, want):
    return np.abs(np.asarray(got, np.float64) - want).max() / max(np.abs(want).max(), 1e-300)


CASES = [  # (B, I, O, G, k): I = 1 and O = 1 included, k from 1 to 5
    (23, 1, 1, 1, 1), (40, 3, 5, 7, 2), (17, 4, 1, 5, 3), (33, 1, 6, 12, 4), (29, 2, 3, 9, 5), (64, 5, 8, 20, 3),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("B,I,O,G,k", CASES)
def test_span_basis_matches_reference(B, I, O, G, k, dtype):
    low, ref = cast(random_layer(np.random.default_rng(B * 7 + k), B, I, O, G, k), dtype)
    spans = np.empty((B, I), np.int64)
    values = np.empty((B, I, k + 1), dtype)
    derivs = np.empty((B, I, k + 1), dtype)
    cpu.span_basis(low["x"], low["knots"], k, spans, values, derivs)
    want_spans, want_values, want_derivs = reference.span_basis(ref["knots"], ref["x"], k)
    np.testing.assert_array_equal(spans, want_spans)
    assert (spans == -1).any() and (spans >= 0).any()
    assert rel_err(values, want_values) < TOLERANCE[dtype]
    assert rel_err(derivs, want_derivs) < TOLERANCE[dtype]


@pytest.mark.parametrize("base", [0, 1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("B,I,O,G,k", CASES)
def test_forward_matches_reference(B, I, O, G, k, dtype, base):
    low, ref = cast(random_layer(np.random.default_rng(B + I + k), B, I, O, G, k), dtype)
    y = np.full((B, O), np.nan, dtype)
    cpu.layer_forward(low["x"], low["knots"], low["coef"], low["w_base"], low["w_spline"],
                      low["bias"], low["mask"], k, base, y)
    want = reference.layer_forward(ref["x"], ref["knots"], ref["coef"], ref["w_base"], ref["w_spline"],
                                   ref["bias"], ref["mask"], k, base)
    assert y.dtype == dtype
    assert rel_err(y, want) < TOLERANCE[dtype]


def run_backward(low, k, base):
    B, I = low["x"].shape
    O = low["bias"].shape[0]
    dtype = low["x"].dtype
    out = [np.full(shape, np.nan, dtype) for shape in ((B, I), low["coef"].shape, (I, O), (I, O), (O,))]
    cpu.layer_backward(low["x"], low["g"], low["knots"], low["coef"], low["w_base"], low["w_spline"],
                       low["mask"], k, base, *out)
    return out


@pytest.mark.parametrize("base", [0, 1])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("B,I,O,G,k", CASES)
def test_backward_matches_reference(B, I, O, G, k, dtype, base):
    low, ref = cast(random_layer(np.random.default_rng(3 * B + O + k), B, I, O, G, k), dtype)
    got = run_backward(low, k, base)
    want = reference.layer_backward(ref["x"], ref["g"], ref["knots"], ref["coef"], ref["w_base"],
                                    ref["w_spline"], ref["mask"], k, base)
    for name, g, w in zip(("dx", "dcoef", "dw_base", "dw_spline", "dbias"), got, want):
        assert g.dtype == dtype, name
        assert rel_err(g, w) < TOLERANCE[dtype], name


def test_cost_does_not_depend_on_dense_basis():
    """A grid far too large for a dense (B, I, G+k) basis still runs: the kernel never builds one."""
    rng = np.random.default_rng(0)
    B, I, O, G, k = 4096, 64, 8, 100_000, 3
    knots = np.tile(np.linspace(-1.1, 1.1, G + 2 * k + 1), (I, 1))
    coef = rng.normal(size=(I, G + k, O))
    x = rng.uniform(-1, 1, (B, I))
    y = np.empty((B, O))
    cpu.layer_forward(x, knots, coef, np.ones((I, O)), np.ones((I, O)), np.zeros(O), np.ones((I, O)), k, 0, y)
    rows = rng.choice(B, 5, replace=False)
    want = reference.layer_forward(x[rows][:, :2], knots[:2], coef[:2], np.ones((2, O)), np.ones((2, O)),
                                   np.zeros(O), np.ones((2, O)), k, 0)
    y_two = np.empty((B, O))
    cpu.layer_forward(x[:, :2].copy(), knots[:2].copy(), coef[:2].copy(), np.ones((2, O)), np.ones((2, O)),
                      np.zeros(O), np.ones((2, O)), k, 0, y_two)
    assert rel_err(y_two[rows], want) < 1e-12
    assert np.isfinite(y).all()
