"""Every CPU kernel equals its float64 NumPy twin in kernels/reference.py on fresh random inputs."""
import hashlib
import os
import subprocess
import sys

import numba
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
    want_spans, want_values, want_derivs = reference.span_basis(ref["x"], ref["knots"], k)
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


def filled_tape(low, k, base):
    B, I = low["x"].shape
    tape = cpu.new_basis_tape(B, I, low["knots"].shape[1], k, low["x"].dtype)
    for a in tape:
        a.fill(-7 if a.dtype == np.int64 else np.nan)
    cpu.basis_tape(low["x"], low["knots"], k, base, tape)
    return tape


@pytest.mark.parametrize("base", [0, 1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("B,I,O,G,k", CASES)
def test_basis_tape_matches_reference(B, I, O, G, k, dtype, base):
    low, ref = cast(random_layer(np.random.default_rng(5 * B + I + k), B, I, O, G, k), dtype)
    tape = filled_tape(low, k, base)
    want = reference.basis_tape(ref["x"], ref["knots"], k, base, cpu.n_terms(k))
    np.testing.assert_array_equal(tape.window, want[0])
    for name, got, w in zip(("values", "derivs", "base_val", "base_slope"), tape[1:5], want[1:]):
        assert got.dtype == dtype, name
        assert rel_err(got, w) < TOLERANCE[dtype], name
    n_basis = G + k
    assert (tape.window >= 0).all() and (tape.window + k < n_basis).all()


@pytest.mark.parametrize("form", ["basis_tape_serial", "basis_tape_parallel"])
@pytest.mark.parametrize("k", [2, 3])
def test_a_tape_of_more_samples_than_one_block_holds_every_sample_at_its_column(k, form):
    """basis_tape copies TAPE_BLOCK samples at a time into contiguous columns: over several
    blocks each sample's entries are those of the same sample in a tape of its own, bit for bit
    (the block seams included), and the reference's."""
    B = 2 * cpu.TAPE_BLOCK + 37
    low, ref = cast(random_layer(np.random.default_rng(k), B, 3, 1, 7, k), np.float64)
    tape = cpu.new_basis_tape(B, 3, low["knots"].shape[1], k, np.float64)
    getattr(cpu, form)(low["x"], low["knots"], k, 0, tape)
    want = reference.basis_tape(ref["x"], ref["knots"], k, 0, cpu.n_terms(k))
    np.testing.assert_array_equal(tape.window, want[0])
    for got, w in zip(tape[1:5], want[1:]):
        assert rel_err(got, w) < TOLERANCE[np.float64]
    for rows in (slice(0, 3), slice(cpu.TAPE_BLOCK - 2, cpu.TAPE_BLOCK + 2), slice(B - 3, B)):
        alone = filled_tape({"x": np.ascontiguousarray(low["x"][rows]), "knots": low["knots"]}, k, 0)
        for got, w in zip(tape[:5], alone[:5]):
            np.testing.assert_array_equal(got[..., rows], w)


@pytest.mark.parametrize("B,I,O,G,k", CASES)
def test_a_tapes_previous_windows_do_not_change_its_next_fill(B, I, O, G, k):
    """basis_tape tries each sample's previous span first (window + k): whatever the tape held
    before (nonsense, spans of other inputs, the right ones, huge values), the fill is the same."""
    low, _ = cast(random_layer(np.random.default_rng(B + I + G), B, I, O, G, k), np.float64)
    want = filled_tape(low, k, 0)
    rng = np.random.default_rng(k)
    for previous in (rng.integers(-k, G + 2 * k + 1, (I, B)), want.window[::-1].copy(), want.window.copy(),
                     np.full((I, B), np.iinfo(np.int64).max)):
        tape = cpu.new_basis_tape(B, I, low["knots"].shape[1], k, np.float64)
        tape.window[...] = previous
        cpu.basis_tape(low["x"], low["knots"], k, 0, tape)
        for got, w in zip(tape, want):
            np.testing.assert_array_equal(got, w)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("B,I,O,G,k", CASES)
def test_kernels_on_a_tape_give_the_fused_kernels_bits(B, I, O, G, k, dtype):
    """layer_forward_tape / layer_backward_tape on basis_tape(x) equal layer_forward /
    layer_backward on x bit for bit (and so the reference, by the tests above)."""
    low, _ = cast(random_layer(np.random.default_rng(B + 2 * O + k), B, I, O, G, k), dtype)
    tape = filled_tape(low, k, 0)
    args = [low[name] for name in ("coef", "w_base", "w_spline")]
    fused_y, tape_y = np.full((B, O), np.nan, dtype), np.full((B, O), np.nan, dtype)
    cpu.layer_forward(low["x"], low["knots"], *args, low["bias"], low["mask"], k, 0, fused_y)
    cpu.layer_forward_tape(tape, *args, low["bias"], low["mask"], k, tape_y)
    np.testing.assert_array_equal(tape_y, fused_y)
    out = [np.full(shape, np.nan, dtype) for shape in ((B, I), low["coef"].shape, (I, O), (I, O), (O,))]
    cpu.layer_backward_tape(tape, low["g"], *args, low["mask"], k, *out)
    for got, want in zip(out, run_backward(low, k, 0)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("O", [1, 4])
def test_backward_over_several_sample_blocks_matches_reference_in_every_form(O):
    """The backward sweeps BACKWARD_BLOCK samples at a time over a group of inputs: with several
    blocks (and a partial last one) every gradient is the reference's, and the same bits in the
    serial form and in the parallel form with any number of input groups (threads)."""
    B, I, G, k = 2 * cpu.BACKWARD_BLOCK + 37, 5, 6, 3
    low, ref = cast(random_layer(np.random.default_rng(O), B, I, O, G, k), np.float64)
    want = reference.layer_backward(ref["x"], ref["g"], ref["knots"], ref["coef"], ref["w_base"],
                                    ref["w_spline"], ref["mask"], k, 0)
    serial = run_form(cpu.layer_backward_tape_serial, "layer_backward_tape", low, k, 0)
    for name, got, w in zip(("dx", "dcoef", "dw_base", "dw_spline", "dbias"), serial, want):
        assert rel_err(got, w) < TOLERANCE[np.float64], name
    previous = numba.get_num_threads()
    try:
        for n in thread_counts():
            numba.set_num_threads(n)
            for got, w in zip(run_form(cpu.layer_backward_tape_parallel, "layer_backward_tape", low, k, 0), serial):
                np.testing.assert_array_equal(got, w, err_msg=f"threads={n}")
    finally:
        numba.set_num_threads(previous)


@pytest.mark.parametrize("form", ["layer_backward_tape_serial", "layer_backward_tape_parallel"])
@pytest.mark.parametrize("B,I,O,G,k", CASES)
def test_backward_without_the_input_gradient_gives_the_same_parameter_gradients(B, I, O, G, k, form):
    """dx=None (a network's first layer in training) skips dx and leaves every parameter
    gradient bit for bit as with dx, in the general and the one-output sweeps."""
    low, _ = cast(random_layer(np.random.default_rng(3 * B + O), B, I, O, G, k), np.float64)
    tape = filled_tape(low, k, 0)
    args = [low[name] for name in ("coef", "w_base", "w_spline")]
    with_dx = [np.full(shape, np.nan) for shape in ((B, I), low["coef"].shape, (I, O), (I, O), (O,))]
    getattr(cpu, form)(tape, low["g"], *args, low["mask"], k, *with_dx)
    without = [np.full(a.shape, np.nan) for a in with_dx[1:]]
    getattr(cpu, form)(tape, low["g"], *args, low["mask"], k, None, *without)
    for got, want in zip(without, with_dx[1:]):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_one_output_sweeps_give_the_general_sweeps_bits(k, dtype):
    """A layer with O = 1 (its own scalar sweeps) gives the bits of output 0 of the same layer
    with a second output whose edges and upstream gradient are zero (the general sweeps)."""
    B, I, G = 37, 3, 6
    low, _ = cast(random_layer(np.random.default_rng(k), B, I, 1, G, k), dtype)
    wide = dict(low)
    for name in ("coef", "w_base", "w_spline", "mask", "g", "bias"):
        wide[name] = np.concatenate([low[name], np.zeros_like(low[name])], axis=-1)
    tape = filled_tape(low, k, 0)
    results = []
    for layer in (low, wide):
        O = layer["bias"].shape[0]
        args = [layer[name] for name in ("coef", "w_base", "w_spline")]
        y = np.full((B, O), np.nan, dtype)
        cpu.layer_forward_tape(tape, *args, layer["bias"], layer["mask"], k, y)
        out = [np.full(shape, np.nan, dtype) for shape in ((B, I), layer["coef"].shape, (I, O), (I, O), (O,))]
        cpu.layer_backward_tape(tape, layer["g"], *args, layer["mask"], k, *out)
        results.append([y] + out)
    one, general = results
    np.testing.assert_array_equal(one[1], general[1])  # dx: the second output adds only zeros
    for got, want in zip(one[:1] + one[2:], general[:1] + general[2:]):
        np.testing.assert_array_equal(got, want[..., :1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("B,I,O,G,k", CASES)
def test_edge_magnitudes_and_their_gradient_match_reference(B, I, O, G, k, dtype):
    layer = random_layer(np.random.default_rng(B + 5 * I + k), B, I, O, G, k)
    layer["scale"] = layer["mask"] * np.random.default_rng(k).uniform(0.5, 2, (I, O))
    low, ref = cast(layer, dtype)
    tape = filled_tape(low, k, 0)
    args = [low[name] for name in ("coef", "w_base", "w_spline", "mask")]
    ref_args = [ref[name] for name in ("x", "knots", "coef", "w_base", "w_spline", "mask")]
    sums = np.full((I, O), np.nan, dtype)
    cpu.edge_magnitude_sums(tape, *args, k, sums)
    assert rel_err(sums, reference.edge_magnitude_sums(*ref_args, k, 0)) < TOLERANCE[dtype]
    start = [np.random.default_rng(1).normal(size=shape).astype(dtype)
             for shape in ((B, I), low["coef"].shape, (I, O), (I, O))]
    got = [a.copy() for a in start]
    cpu.edge_magnitude_backward(tape, *args, k, low["scale"], *got)
    want = reference.edge_magnitude_backward(*ref_args, k, 0, ref["scale"])
    for name, g, s0, w in zip(("dx", "dcoef", "dw_base", "dw_spline"), got, start, want):
        assert g.dtype == dtype, name
        assert rel_err(g - s0, w) < 10 * TOLERANCE[dtype], name  # added into the given gradients


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


# ------------------------------------------------------------------ serial / parallel / threads

FORMS = {  # kernel -> (serial form, parallel form, the arrays it reads from a random layer)
    "span_basis": (cpu.span_basis_serial, cpu.span_basis_parallel, ("x", "knots")),
    "layer_forward": (cpu.layer_forward_serial, cpu.layer_forward_parallel,
                      ("x", "knots", "coef", "w_base", "w_spline", "bias", "mask")),
    "layer_backward": (cpu.layer_backward_serial, cpu.layer_backward_parallel,
                       ("x", "g", "knots", "coef", "w_base", "w_spline", "mask")),
    "basis_tape": (cpu.basis_tape_serial, cpu.basis_tape_parallel, ("x", "knots")),
    "layer_forward_tape": (cpu.layer_forward_tape_serial, cpu.layer_forward_tape_parallel,
                           ("tape", "coef", "w_base", "w_spline", "bias", "mask")),
    "layer_backward_tape": (cpu.layer_backward_tape_serial, cpu.layer_backward_tape_parallel,
                            ("tape", "g", "coef", "w_base", "w_spline", "mask")),
}


def run_form(form, kernel, low, k, base):
    """Outputs of one form of a kernel on a random layer, starting from NaN-filled buffers."""
    B, I = low["x"].shape
    O, dtype = low["bias"].shape[0], low["x"].dtype
    _, _, names = FORMS[kernel]
    args = [filled_tape(low, k, base) if name == "tape" else low[name] for name in names]
    if kernel == "span_basis":
        out = [np.full((B, I), -7, np.int64), np.full((B, I, k + 1), np.nan, dtype), np.full((B, I, k + 1), np.nan, dtype)]
        form(*args, k, *out)
    elif kernel == "basis_tape":
        out = list(cpu.new_basis_tape(B, I, low["knots"].shape[1], k, dtype))
        form(*args, k, base, cpu.BasisTape(*out))
    elif kernel == "layer_forward":
        out = [np.full((B, O), np.nan, dtype)]
        form(*args, k, base, *out)
    elif kernel == "layer_forward_tape":
        out = [np.full((B, O), np.nan, dtype)]
        form(*args, k, *out)
    elif kernel == "layer_backward_tape":
        out = [np.full(shape, np.nan, dtype) for shape in ((B, I), low["coef"].shape, (I, O), (I, O), (O,))]
        form(*args, k, *out)
    else:
        out = [np.full(shape, np.nan, dtype) for shape in ((B, I), low["coef"].shape, (I, O), (I, O), (O,))]
        form(*args, k, base, *out)
    return out


def thread_counts():
    return range(1, numba.config.NUMBA_NUM_THREADS + 1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kernel", list(FORMS))
def test_serial_and_parallel_forms_are_bit_identical_for_any_thread_count(kernel, dtype):
    """Several tasks (B spans 5 sample blocks, I 6 inputs): every form and thread count, same bits."""
    low, _ = cast(random_layer(np.random.default_rng(11), 300, 6, 9, 8, 3), dtype)
    serial, parallel, _ = FORMS[kernel]
    want = run_form(serial, kernel, low, 3, 0)
    previous = numba.get_num_threads()
    try:
        for n in thread_counts():
            numba.set_num_threads(n)
            for form in (parallel, getattr(cpu, kernel)):
                for got, w in zip(run_form(form, kernel, low, 3, 0), want):
                    np.testing.assert_array_equal(got, w, err_msg=f"{kernel} {form.__name__} threads={n}")
    finally:
        numba.set_num_threads(previous)


def test_launch_goes_parallel_only_above_the_work_threshold(monkeypatch):
    """The public kernels pick the parallel form from their PARALLEL_WORK on, and only with threads to use."""
    low, _ = cast(random_layer(np.random.default_rng(2), 40, 3, 5, 6, 3), np.float64)
    calls = []
    monkeypatch.setattr(cpu.layer_forward, "parallel", lambda *a: calls.append("parallel"))
    monkeypatch.setattr(cpu.layer_forward, "serial", lambda *a: calls.append("serial"))
    work = 40 * 3 * 5 * (3 + 2)
    for threshold, threads in ((work + 1, 2), (work, 2), (work, 1)):
        monkeypatch.setitem(cpu.PARALLEL_WORK, "forward", threshold)
        monkeypatch.setattr(numba, "get_num_threads", lambda: threads)
        run_form(cpu.layer_forward, "layer_forward", low, 3, 0)
    assert calls == ["serial", "parallel", "serial"]


THREADS_SCRIPT = """
import hashlib, sys
import numpy as np
sys.path.insert(0, {tests!r})
from test_kernels_cpu import FORMS, cast, random_layer, run_form
from kanarray.kernels import cpu
import numba
digest = hashlib.sha256()
for n in range(1, numba.config.NUMBA_NUM_THREADS + 1):
    numba.set_num_threads(n)
    for kernel, (_, parallel, _) in FORMS.items():
        low, _ = cast(random_layer(np.random.default_rng(11), 300, 6, 9, 8, 3), np.float64)
        for a in run_form(parallel, kernel, low, 3, 0):
            digest.update(a.tobytes())
    print(n, digest.hexdigest())
    digest = hashlib.sha256()
"""


def test_parallel_forms_match_serial_with_more_threads_than_cores():
    """In a process started with 4 Numba threads, every thread count 1..4 gives the serial bits."""
    digest = hashlib.sha256()
    for kernel, (serial, _, _) in FORMS.items():
        low, _ = cast(random_layer(np.random.default_rng(11), 300, 6, 9, 8, 3), np.float64)
        for a in run_form(serial, kernel, low, 3, 0):
            digest.update(a.tobytes())
    script = THREADS_SCRIPT.format(tests=os.path.dirname(__file__))
    run = subprocess.run([sys.executable, "-c", script], env={**os.environ, "NUMBA_NUM_THREADS": "4"},
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [word for n in range(1, 5) for word in (str(n), digest.hexdigest())]


def test_thread_limit_caps_and_restores():
    before = cpu.max_threads()
    with cpu.thread_limit(1):
        assert cpu.max_threads() == 1
    assert cpu.max_threads() == before
    with cpu.thread_limit(None):
        assert cpu.max_threads() == before
    with cpu.thread_limit(10_000):  # more than started: no cap
        assert cpu.max_threads() == numba.config.NUMBA_NUM_THREADS
    with pytest.raises(KeyError):
        with cpu.thread_limit(1):
            raise KeyError("inside")
    assert cpu.max_threads() == before
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="thread_limit"):
            with cpu.thread_limit(bad):
                pass


# ------------------------------------------------------------------ kernel cache

CACHE_SCRIPT = """
import numpy as np
from kanarray.kernels import cpu
x = np.linspace(-1.2, 1.2, 30).reshape(15, 2)
knots = np.tile(np.linspace(-1.5, 1.5, 12), (2, 1))
values = np.empty((15, 2, 4))
cpu.span_basis(x, knots, 3, np.empty((15, 2), np.int64), values, np.empty((15, 2, 4)))
print(sum(cpu.basis._span_basis_rows.stats.cache_hits.values()), values.sum().hex())
"""


def run_cache_script(env):
    return subprocess.Popen([sys.executable, "-c", CACHE_SCRIPT], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kernel_cache_honours_numba_cache_dir_and_survives_concurrent_first_runs(tmp_path):
    """Two processes (say two MPI ranks) compile into one empty cache folder at once; a third loads it."""
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    first = [run_cache_script(env) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in first]
    assert [p.returncode for p in first] == [0, 0], [err for _, err in outputs]
    assert any(tmp_path.rglob("*.nbi")), "nothing was cached in NUMBA_CACHE_DIR"
    third = run_cache_script(env)
    out, err = third.communicate(timeout=600)
    assert third.returncode == 0, err
    hits, total = out.split()
    assert int(hits) >= 1
    assert {o.split()[1] for o, _ in outputs} == {total}
