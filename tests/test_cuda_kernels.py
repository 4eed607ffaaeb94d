"""Tests of kernels/cuda/ that run without a GPU, and GPU tests that run with one.

* Simulator: every CUDA kernel is run under Numba's CUDA simulator at tiny shapes and compared
  with its float64 twin in kernels/reference.py (1e-12 float64, 1e-5 float32), and the backward
  is checked to be bit-identical across runs. NUMBA_ENABLE_CUDASIM must be set before numba is
  imported and other test files import numba normally, so each case runs tests/cudasim_check.py
  in its own subprocess; all of them start together (module fixture) and run side by side.
* PTX: every kernel compiles for compute capability 9.0 in float32 and float64, and the float32
  PTX holds no float64 arithmetic. Needs numba-cuda with its NVVM (pip: numba-cuda[cu12]);
  skipped, with the reason, where that compiler is missing.
* GPU (@pytest.mark.gpu): parity at realistic sizes for both paths and bit-identical
  gradients; skipped without CuPy and a CUDA device.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
CHECK = HERE / "cudasim_check.py"
TIMEOUT = 900

# Few cases, each covering several awkward spots (the simulator runs every CUDA thread as a
# Python thread). Tiles: forward and dx 32 samples x 8 inputs per block, 128 outputs per warp;
# parameter gradients 4 (float32) / 2 (float64) inputs x 128 outputs per block, row windows of
# PG_SMEM-sized slabs, batch chunks of at least PG_MIN_CHUNK samples, 256-sample filter groups.
# pg_smem / pg_min_chunk shrink those so that tiny shapes use several windows and chunks.
SIM_CASES = {
    # B > one sample tile (32) and not a multiple; I > one input chunk (8); non-uniform knots;
    # inputs exactly on every knot, outside, in both end cells; 3 row windows x 3 batch chunks
    "f64-k3-tiles": dict(dtype="float64", B=40, I=9, O=9, G=5, k=3, base=0,
                         pg_smem=14336, pg_min_chunk=16),
    "f32-k3-tiles": dict(dtype="float32", B=40, I=9, O=9, G=5, k=3, base=0, seed=1),
    # k = 1, uniform knots, identity base, B smaller than every tile
    "f64-k1-small": dict(dtype="float64", B=7, I=3, O=5, G=3, k=1, base=1, nonuniform=False),
    # k = 5 with G < k (most spans touch a dropped basis index), zero base, 1-row windows
    "f64-k5-dropped": dict(dtype="float64", B=10, I=5, O=9, G=4, k=5, base=2, seed=2,
                           pg_smem=12288, pg_min_chunk=4),
    # k = 2, O = 130: two output tiles, the second padded
    "f32-k2-wide": dict(dtype="float32", B=9, I=3, O=130, G=7, k=2, base=0, seed=3),
    # k = 4, non-uniform, G = 9
    "f64-k4": dict(dtype="float64", B=12, I=4, O=6, G=9, k=4, base=0, seed=4),
    # B = 300: more than one 256-sample filter group per chunk, 3 chunks, last partial
    "f32-k3-groups": dict(dtype="float32", B=300, I=2, O=3, G=6, k=3, base=0, seed=5,
                          pg_min_chunk=100),
}


def _env(simulator):
    env = dict(os.environ)
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    else:
        env.pop("NUMBA_ENABLE_CUDASIM", None)
    return env


@pytest.fixture(scope="module")
def subprocess_results():
    """Start every simulator case and the PTX check at once; collect results on demand."""
    procs = {}
    for name, case in SIM_CASES.items():
        procs[name] = subprocess.Popen(
            [sys.executable, str(CHECK), json.dumps(case)], env=_env(True),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs["ptx"] = subprocess.Popen(
        [sys.executable, str(CHECK), "--ptx"], env=_env(False),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = {}

    def result(name):
        if name not in done:
            try:
                out, err = procs[name].communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                procs[name].kill()
                out, err = procs[name].communicate()
                pytest.fail(f"{name}: timed out after {TIMEOUT} s\n{err[-3000:]}")
            lines = [ln for ln in out.splitlines() if ln.startswith("{")]
            parsed = json.loads(lines[-1]) if lines else None
            done[name] = (procs[name].returncode, parsed, out, err)
        return done[name]

    yield result
    for p in procs.values():
        if p.poll() is None:
            p.kill()
            p.communicate()


@pytest.mark.parametrize("name", list(SIM_CASES))
def test_kernels_match_reference_under_simulator(subprocess_results, name):
    rc, res, out, err = subprocess_results(name)
    assert res is not None, f"no result from the simulator run:\n{out[-2000:]}\n{err[-4000:]}"
    assert rc == 0 and res["ok"], "\n".join(res["failures"]) + f"\nerrors: {res['errors']}"
    tol = 1e-12 if SIM_CASES[name]["dtype"] == "float64" else 1e-5
    assert res["max_error"] <= tol
    # the cases are meant to put inputs outside the grid as well as inside it
    assert 0.0 < res["outside_share"] < 0.6


def test_ptx_for_sm90_and_no_float64_in_float32(subprocess_results):
    rc, res, out, err = subprocess_results("ptx")
    assert res is not None, f"no result from the PTX check:\n{out[-2000:]}\n{err[-4000:]}"
    if "skip" in res:
        pytest.skip(res["skip"])
    assert rc == 0 and res["ok"], "\n".join(res["failures"])
    assert len(res["kernels"]) == 12  # 6 kernels x 2 dtypes


SHARED_RACE = """
import sys, time
from numba import cuda, types
from numba.cuda.simulator import kernelapi
import numpy as np
import cudasim_shared
if sys.argv[1] == "locked":
    cudasim_shared.install()
real_np = kernelapi.np


class SlowNumpy:  # np.empty yields the GIL: the other threads run between lookup and store
    def __getattr__(self, name):
        return getattr(real_np, name)

    @staticmethod
    def empty(*args, **kwargs):
        time.sleep(0.02)
        return real_np.empty(*args, **kwargs)


kernelapi.np = SlowNumpy()


@cuda.jit
def neighbour(out):
    sh = cuda.shared.array(32, types.int32)
    t = cuda.threadIdx.x
    sh[t] = t
    cuda.syncthreads()
    out[t] = sh[(t + 1) % 32]


out = np.full(32, -1, np.int32)
neighbour[1, 32](out)
print(int((out != (np.arange(32) + 1) % 32).sum()))
"""


def test_simulated_threads_of_a_block_share_one_array_however_the_gil_switches():
    """The simulator's unlocked shared-array lookup hands threads private arrays when the GIL
    switches inside it (tests/cudasim_shared.py); with the lock every thread reads the value
    its neighbour wrote."""
    wrong = {}
    for mode in ("locked", "unlocked"):
        out = subprocess.run([sys.executable, "-c", SHARED_RACE, mode], env=_env(True), cwd=HERE,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        wrong[mode] = int(out.stdout.split()[-1])
    assert wrong["locked"] == 0
    assert wrong["unlocked"] > 0  # the race is real: without the lock some threads read garbage


# ---------------------------------------------------------------------- path choice (pure host)
@pytest.fixture(scope="module")
def kc():
    from kanarray.kernels import cuda as kc
    return kc


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [0, 1, 3, 5])
def test_knot_tables_are_the_cpu_kernels_tables(kc, dtype, k):
    """The CUDA kernels' [extended knots | reciprocal denominators] are kernels/cpu/basis.py's, bit for
    bit, on non-uniform knots."""
    from kanarray.kernels import cpu

    rng = np.random.default_rng(k)
    knots = np.sort(rng.uniform(-1, 1, (3, 4 + 2 * k + 1)), axis=1).astype(dtype)
    ext, inv = cpu.basis._tables(knots, k)
    np.testing.assert_array_equal(kc.knot_tables(np, knots, k),
                                  np.concatenate([ext.reshape(-1), inv.reshape(-1)]))


def test_the_output_gradient_reaches_the_kernels_aligned_for_vector_loads(kc):
    """load4 reads 4 elements with one aligned vector load: a gradient whose data is not
    aligned to 4 elements (a view into a larger buffer) is copied, an aligned one is not."""
    buf = np.arange(3 * 128 + 1, dtype=np.float64)
    start = (-buf.ctypes.data % 16) // 8         # 0 or 1: the first 16-byte aligned element
    aligned = buf[start:start + 3 * 128].reshape(3, 128)
    shifted = buf[1 - start:1 - start + 3 * 128].reshape(3, 128)   # 8 bytes off
    assert kc.vector_alignment(4, 8) == 16 and shifted.ctypes.data % 16 == 8
    flat = kc._padded_outputs(np, shifted, 128)
    assert kc._data_pointer(flat) % 16 == 0 and np.array_equal(flat, shifted.reshape(-1))
    assert np.shares_memory(kc._padded_outputs(np, aligned, 128), aligned)


def test_choose_path_forced_and_env(kc, monkeypatch):
    monkeypatch.delenv("KANARRAY_CUDA_PATH", raising=False)
    for forced in ("fused", "dense"):
        assert kc.choose_path(5, 3, np.float32, 256, 256, 16384, path=forced) == forced
    monkeypatch.setenv("KANARRAY_CUDA_PATH", "dense")
    assert kc.choose_path(200, 3, np.float32, 256, 256, 16384) == "dense"
    assert kc.choose_path(200, 3, np.float32, 256, 256, 16384, path="fused") == "fused"
    with pytest.raises(ValueError):
        kc.choose_path(5, 3, np.float32, 256, 256, 16384, path="gemm")


def _model_pick(kc, *shape):
    t = kc.predict_times(*shape)
    fused = t["fused"]["forward"] + t["fused"]["backward"]
    dense = t["dense"]["forward"] + t["dense"]["backward"]
    return "dense" if dense < fused else "fused"


def test_choose_path_picks_the_faster_forward_backward_pair_of_the_model(kc, monkeypatch):
    monkeypatch.delenv("KANARRAY_CUDA_PATH", raising=False)
    picks = []
    for dtype in (np.float32, np.float64):
        for G, k in ((1, 1), (3, 1), (5, 3), (20, 3), (200, 3), (10, 5)):
            for B, I, O in ((64, 2, 1), (4096, 64, 64), (16384, 256, 256)):
                shape = (G, k, dtype, I, O, B)
                assert kc.choose_path(*shape) == _model_pick(kc, *shape), shape
                picks.append(kc.choose_path(*shape))
    assert {"fused", "dense"} <= set(picks)  # the model does tell the paths apart
    # at the benchmark shape: dense only for the coarsest grids in float64 (whose fused kernels
    # issue more per triple; in float32 the fused path wins even at G = 1), fused from G = 5 up
    assert kc.choose_path(1, 1, np.float64, 256, 256, 16384) == "dense"
    for dtype in (np.float32, np.float64):
        bench = (3, dtype, 256, 256, 16384)
        assert [kc.choose_path(G, *bench) for G in (5, 10, 20, 50, 100, 200)] == ["fused"] * 6


def test_choose_path_runs_the_model_once_per_layer_shape(kc, monkeypatch):
    monkeypatch.delenv("KANARRAY_CUDA_PATH", raising=False)
    shape = (7, 3, np.float32, 48, 40, 1000)
    first = kc.choose_path(*shape)
    hits = kc.cost._model_path.cache_info().hits
    assert kc.choose_path(*shape) == first
    assert kc.cost._model_path.cache_info().hits == hits + 1


def test_cost_model_covers_forward_and_backward(kc):
    t = kc.predict_times(20, 3, np.float32, 256, 256, 16384)
    for path in ("fused", "dense"):
        assert 0 < t[path]["forward"] < t[path]["backward"]
    # the fused backward is its dx and parameter kernels; the dense one reuses fused dx
    assert t["fused"]["backward"] > t["fused"]["backward_dx"] + t["fused"]["backward_params"]
    assert t["dense"]["backward"] > t["fused"]["backward_dx"]
    # the dense basis matrix grows with G; the fused forward is issue-bound, flat in G, up to
    # G = 10 (from about G = 20 the L2 traffic on coefficient rows binds)
    small, large = (kc.predict_times(G, 3, np.float32, 256, 256, 16384) for G in (5, 10))
    assert large["dense"]["forward"] > 1.2 * small["dense"]["forward"]
    assert large["fused"]["forward"] == pytest.approx(small["fused"]["forward"], rel=0.05)


def test_choose_path_falls_back_to_fused_when_the_basis_matrix_does_not_fit(kc, monkeypatch):
    monkeypatch.delenv("KANARRAY_CUDA_PATH", raising=False)
    assert _model_pick(kc, 1, 1, np.float32, 256, 256, 1 << 22) == "dense"
    assert kc.choose_path(1, 1, np.float32, 256, 256, 1 << 22) == "fused"


def test_param_split_covers_every_row_and_sample(kc):
    for B, I, O, G, k, dtype in [(65536, 256, 256, 200, 3, np.float32),
                                 (16384, 256, 256, 5, 3, np.float64),
                                 (10, 3, 3, 5, 1, np.float32), (1000, 8, 300, 50, 5, np.float64)]:
        rw, n_win, chunk_len, n_chunks = kc.param_split(B, I, O, G + 3 * k, k, dtype)
        # the windows own every span start 0..G+2k-1 exactly once, and no window is empty
        assert rw >= 1 and n_win * rw >= G + 2 * k > (n_win - 1) * rw
        # the chunks cover the batch, none empty, within the workspace cap
        assert n_chunks * chunk_len >= B > (n_chunks - 1) * chunk_len
        assert 1 <= n_chunks <= kc.PG_MAX_CHUNKS
    # a large problem is already split over many blocks by its windows: one chunk
    assert kc.param_split(16384, 256, 256, 209, 3, np.float32)[3] == 1
    # a small batch is not cut below PG_MIN_CHUNK samples per chunk
    assert kc.param_split(300, 4, 4, 8, 3, np.float32)[3] == 2


# ---------------------------------------------------------------------- real GPU
def _gpu_ready():
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return False
        from numba import cuda
        return cuda.is_available()
    except Exception:
        return False


gpu = pytest.mark.skipif(not _gpu_ready(), reason="needs CuPy, numba-cuda and a CUDA GPU")


def _gpu_layer(cp, B, I, O, G, k, dtype, seed):
    rng = np.random.default_rng(seed)
    knots = np.empty((I, G + 2 * k + 1))
    for i in range(I):
        interior = np.sort(np.concatenate([[-1.0, 1.0], rng.uniform(-1, 1, G - 1)]))
        interior = 0.5 * interior + 0.5 * np.linspace(-1, 1, G + 1)
        h0, h1 = interior[1] - interior[0], interior[-1] - interior[-2]
        knots[i] = np.concatenate([interior[0] - h0 * np.arange(k, 0, -1), interior,
                                   interior[-1] + h1 * np.arange(1, k + 1)])
    host = dict(
        x=rng.uniform(-1.3, 1.3, (B, I)), knots=knots,
        coef=rng.normal(size=(I, G + k, O)) / np.sqrt(I), w_base=rng.normal(size=(I, O)) / np.sqrt(I),
        w_spline=rng.normal(size=(I, O)), bias=rng.normal(size=O),
        mask=(rng.uniform(size=(I, O)) > 0.1).astype(np.float64), g=rng.normal(size=(B, O)))
    host = {n: a.astype(dtype) for n, a in host.items()}
    dev = {n: cp.asarray(a) for n, a in host.items()}
    return host, dev


def _rel(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / max(1.0, np.max(np.abs(want))))


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("path", ["fused", "dense"])
@pytest.mark.parametrize("G", [5, 100])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_parity_and_determinism(path, G, dtype):
    import cupy as cp
    from kanarray.kernels import cuda as kc
    from kanarray.kernels import reference as ref
    B, I, O, k, base = 65536, 256, 256, 3, 0
    itemsize = np.dtype(dtype).itemsize
    if path == "dense":
        need = 4 * B * I * (G + k + 1) * itemsize
        if cp.cuda.runtime.memGetInfo()[0] < need:
            pytest.skip(f"dense path needs about {need / 2**30:.1f} GiB of free GPU memory")
    cp.get_default_memory_pool().free_all_blocks()
    host, d = _gpu_layer(cp, B, I, O, G, k, dtype, seed=G)
    tol = 1e-10 if dtype == np.float64 else 2e-4
    rows = np.random.default_rng(7).choice(B, 512, replace=False)
    rows.sort()
    fwd, bwd = kc.FORWARD[path], kc.BACKWARD[path]

    # forward on a subsample of rows against the float64 reference
    y = cp.empty((B, O), dtype)
    fwd(d["x"], d["knots"], d["coef"], d["w_base"], d["w_spline"], d["bias"], d["mask"], k, base, y)
    y_ref = ref.layer_forward(host["x"][rows], host["knots"], host["coef"], host["w_base"],
                              host["w_spline"], host["bias"], host["mask"], k, base)
    assert _rel(cp.asnumpy(y)[rows], y_ref) <= tol

    def grads(g):
        out = [cp.empty((B, I), dtype), cp.empty((I, G + k, O), dtype), cp.empty((I, O), dtype),
               cp.empty((I, O), dtype), cp.empty(O, dtype)]
        bwd(d["x"], g, d["knots"], d["coef"], d["w_base"], d["w_spline"], d["mask"], k, base, *out)
        cp.cuda.Device().synchronize()
        return out

    # parameter gradients are sums over all rows: make g zero outside the subsample so the
    # reference needs only those rows; dx is row-wise
    g_sub = cp.zeros((B, O), dtype)
    g_sub[cp.asarray(rows)] = d["g"][cp.asarray(rows)]
    out = grads(g_sub)
    r = ref.layer_backward(host["x"][rows], host["g"][rows], host["knots"], host["coef"],
                           host["w_base"], host["w_spline"], host["mask"], k, base)
    assert _rel(cp.asnumpy(out[0])[rows], r[0]) <= tol
    for got, want in zip(out[1:], r[1:]):
        assert _rel(cp.asnumpy(got), want) <= tol

    # full batch: the reduction over 65536 rows, twice, bit for bit
    first = [cp.asnumpy(a) for a in grads(d["g"])]
    second = [cp.asnumpy(a) for a in grads(d["g"])]
    for a, b in zip(first, second):
        assert np.array_equal(a.view(np.uint8), b.view(np.uint8))
    # and its dx rows agree with the reference (dx is row-wise)
    r_dx = ref.layer_backward(host["x"][rows[:64]], host["g"][rows[:64]], host["knots"],
                              host["coef"], host["w_base"], host["w_spline"], host["mask"],
                              k, base)[0]
    assert _rel(first[0][rows[:64]], r_dx) <= tol
