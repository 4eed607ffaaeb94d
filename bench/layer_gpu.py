"""GPU benchmark of one KAN layer: fused sparse path and dense path vs the equal-width MLP layer.

    python bench/layer_gpu.py            # B=16384, I=O=256, k=3, G = 5..200, float32 and float64
    python bench/layer_gpu.py --quick    # a smaller, faster run

Needs a CUDA GPU with CuPy and numba-cuda (the `cuda` extra); exits with a message without one.

For every (dtype, G) it times, with CUDA events after warm-up (median of --repeats):
    fused       kernels/cuda/ layer_forward / layer_backward (sparse, FP32/FP64 FMA units)
    dense       kernels/cuda/ layer_forward_dense / layer_backward_dense (basis matrix x cuBLAS),
                in strict FP32 and, for float32, again with TF32 tensor cores
    mlp         the equal-width MLP layer y = silu(x W + b) and its backward through cupy.matmul,
                strict FP32 and TF32 (float32), FP64 (float64)
Useful TFLOP/s count only the k+2 non-zero terms per edge for the KAN (forward 2BIO(k+2),
forward+backward 6BIO(k+2)) and 2BIO / 6BIO for the MLP. Beside every measured time it prints
the time the cost model predicts (kernels.cuda.predict_times / mlp_seconds, the model
choose_path uses, built from bench/gpu_static.py's reading of the compiled kernels; no model
for the dense path with TF32), so a first GPU run shows at once where the model is wrong. Peak memory is the CuPy memory pool's
high-water mark for one forward+backward (the pool is emptied before each path, so the bytes it
holds afterwards are the most it needed at once), inputs and parameters included.
Writes bench/results/layer_gpu[-quick].json and .md, naming the GPU, driver and library versions.
"""
import argparse
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _need_gpu():
    try:
        import cupy
    except Exception as exc:
        sys.exit(f"layer_gpu.py needs CuPy and a CUDA GPU (pip install 'kanarray[cuda]'): {exc}")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no CUDA device")
        from numba import cuda
        if not cuda.is_available():
            raise RuntimeError("numba-cuda sees no GPU")
    except Exception as exc:
        sys.exit(f"layer_gpu.py needs a CUDA GPU; none usable here: {exc}")
    return cupy


def _version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


class MathMode:
    """Strict FP32 or TF32 for CuPy's float32 matmul (cupy._core._routines_linalg compute type;
    the CUPY_TF32=1 environment variable sets the same default at first use)."""

    def __init__(self, cp):
        try:
            from cupy._core import _routines_linalg as rl
            self._rl = rl
            self.available = all(hasattr(rl, n) for n in
                                 ("set_compute_type", "COMPUTE_TYPE_TF32", "COMPUTE_TYPE_DEFAULT"))
        except Exception:
            self._rl, self.available = None, False

    def set(self, tf32):
        if not self.available:
            if tf32:
                raise RuntimeError("this CuPy has no set_compute_type; run with CUPY_TF32=1")
            return
        ct = self._rl.COMPUTE_TYPE_TF32 if tf32 else self._rl.COMPUTE_TYPE_DEFAULT
        self._rl.set_compute_type(np.float32, ct)


def _time(cp, fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    cp.cuda.Device().synchronize()
    times = []
    for _ in range(repeats):
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop))  # ms
    return float(np.median(times))


def _peak_bytes(cp, make_and_run):
    """High-water of the memory pool over one call of make_and_run (which allocates its own
    inputs): the pool is emptied first, and keeps every block it had to hold at once."""
    pool = cp.get_default_memory_pool()
    cp.cuda.Device().synchronize()
    pool.free_all_blocks()
    keep = make_and_run()
    cp.cuda.Device().synchronize()
    peak = pool.total_bytes()
    del keep
    pool.free_all_blocks()
    return int(peak)


def _kan_arrays(cp, B, I, O, G, k, dtype, seed=0):
    rng = np.random.default_rng(seed)
    knots = np.empty((I, G + 2 * k + 1))
    for i in range(I):
        interior = np.linspace(-1.0, 1.0, G + 1)
        h = interior[1] - interior[0]
        knots[i] = np.concatenate([interior[0] - h * np.arange(k, 0, -1), interior,
                                   interior[-1] + h * np.arange(1, k + 1)])
    host = dict(
        x=rng.uniform(-1.0, 1.0, (B, I)), knots=knots,
        coef=rng.normal(size=(I, G + k, O)) / np.sqrt(I),
        w_base=rng.uniform(0.5, 1.5, (I, O)) / np.sqrt(I),
        w_spline=rng.uniform(0.5, 1.5, (I, O)), bias=rng.uniform(0.1, 1.0, O),
        mask=np.ones((I, O)), g=rng.uniform(0.1, 1.0, (B, O)) * rng.choice([-1, 1], (B, O)))
    d = {n: cp.asarray(a.astype(dtype)) for n, a in host.items()}
    d["y"] = cp.empty((B, O), dtype)
    d["grads"] = [cp.empty((B, I), dtype), cp.empty((I, G + k, O), dtype),
                  cp.empty((I, O), dtype), cp.empty((I, O), dtype), cp.empty(O, dtype)]
    return d


def _kan_fns(kc, path, d, k, base=0):
    fwd, bwd = kc.FORWARD[path], kc.BACKWARD[path]

    def forward():
        fwd(d["x"], d["knots"], d["coef"], d["w_base"], d["w_spline"], d["bias"], d["mask"],
            k, base, d["y"])

    def fwd_bwd():
        forward()
        bwd(d["x"], d["g"], d["knots"], d["coef"], d["w_base"], d["w_spline"], d["mask"],
            k, base, *d["grads"])

    return forward, fwd_bwd


def _mlp_arrays(cp, B, I, O, dtype, seed=0):
    rng = np.random.default_rng(seed)
    d = dict(x=rng.uniform(-1, 1, (B, I)), W=rng.normal(size=(I, O)) / np.sqrt(I),
             b=rng.uniform(0.1, 1.0, O), g=rng.uniform(0.1, 1.0, (B, O)))
    return {n: cp.asarray(a.astype(dtype)) for n, a in d.items()}


def _mlp_fns(cp, d):
    silu = cp.ElementwiseKernel("T z", "T y", "y = z / (T(1) + exp(-z))", "kan_bench_silu")
    silu_grad = cp.ElementwiseKernel(
        "T z, T g", "T dz",
        "T s = T(1) / (T(1) + exp(-z)); dz = g * s * (T(1) + z * (T(1) - s))",
        "kan_bench_silu_grad")
    state = {}

    def forward():
        z = cp.matmul(d["x"], d["W"])
        z += d["b"]
        state["z"] = z
        state["y"] = silu(z)

    def fwd_bwd():
        forward()
        dz = silu_grad(state["z"], d["g"])
        state["dW"] = cp.matmul(d["x"].T, dz)
        state["db"] = dz.sum(axis=0)
        state["dx"] = cp.matmul(dz, d["W"].T)

    return forward, fwd_bwd


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="B=4096, G in {5, 50}, 3 repeats")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--grids", type=str, default=None, help="comma-separated G values")
    ap.add_argument("--dtypes", type=str, default="float32,float64")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--out", type=str, default=None, help="output stem (default by mode)")
    args = ap.parse_args(argv)

    cp = _need_gpu()
    from kanarray.kernels import cuda as kc

    B = args.batch or (4096 if args.quick else 16384)
    I = O = args.width
    k = 3
    grids = ([int(v) for v in args.grids.split(",")] if args.grids
             else ([5, 50] if args.quick else [5, 10, 20, 50, 100, 200]))
    repeats = args.repeats or (3 if args.quick else 10)
    warmup = 1 if args.quick else 3
    mode = MathMode(cp)

    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"]
    name = name.decode() if isinstance(name, bytes) else str(name)
    env = {
        "gpu": name,
        "compute_capability": f"{props['major']}.{props['minor']}",
        "driver": cp.cuda.runtime.driverGetVersion(),
        "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(),
        "cupy": cp.__version__,
        "numba": _version("numba"),
        "numba_cuda": _version("numba-cuda"),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "tf32_switch": mode.available,
    }
    rows = []

    def predicted(dtype, G, path, tf32):
        """Model (forward ms, forward+backward ms), or (None, None) where it has none."""
        if path == "mlp":  # FP64 DGEMM is modelled at the SGEMM rate (GEMM_FLOPS)
            fb = kc.mlp_seconds(I, O, B, tf32=tf32) * 1e3
            return fb / 3, fb
        if tf32:
            return None, None
        t = kc.predict_times(G, k, dtype, I, O, B)[path]
        return t["forward"] * 1e3, (t["forward"] + t["backward"]) * 1e3

    def record(dtype, G, path, tf32, fwd_ms, fb_ms, peak, note=""):
        terms = 1 if path.startswith("mlp") else (k + 2)
        flops_f = 2.0 * B * I * O * terms
        model_f, model_fb = predicted(dtype, G, path, tf32)
        rows.append(dict(
            dtype=np.dtype(dtype).name, G=G, path=path, tf32=tf32, B=B, I=I, O=O, k=k,
            fwd_ms=fwd_ms, fwd_bwd_ms=fb_ms, model_fwd_ms=model_f, model_fwd_bwd_ms=model_fb,
            fwd_tflops=None if fwd_ms is None else flops_f / (fwd_ms * 1e-3) / 1e12,
            fwd_bwd_tflops=None if fb_ms is None else 3 * flops_f / (fb_ms * 1e-3) / 1e12,
            peak_bytes=peak, note=note))
        r = rows[-1]
        show = lambda v: v if v is None else round(v, 3)  # noqa: E731
        print(f"{r['dtype']:8s} G={G:<4d} {path:10s} tf32={str(tf32):5s} "
              f"fwd {show(fwd_ms)} ms (model {show(model_f)}), "
              f"fwd+bwd {show(fb_ms)} ms (model {show(model_fb)}), "
              f"peak {peak / 2**20 if peak else 0:.0f} MiB {note}", flush=True)

    for dtname in args.dtypes.split(","):
        dtype = np.dtype(dtname)
        tf32_modes = [False, True] if dtype == np.float32 and mode.available else [False]
        # the MLP comparator (independent of G)
        for tf32 in tf32_modes:
            mode.set(tf32)
            d = _mlp_arrays(cp, B, I, O, dtype)
            f, fb = _mlp_fns(cp, d)
            t_f, t_fb = _time(cp, f, warmup, repeats), _time(cp, fb, warmup, repeats)
            del d, f, fb
            peak = _peak_bytes(cp, lambda: (lambda dd: (_mlp_fns(cp, dd)[1](), dd))(
                _mlp_arrays(cp, B, I, O, dtype)))
            record(dtype, 0, "mlp", tf32, t_f, t_fb, peak)
        mode.set(False)
        for G in grids:
            for path in ("fused", "dense"):
                for tf32 in (tf32_modes if path == "dense" else [False]):
                    mode.set(tf32)
                    try:
                        d = _kan_arrays(cp, B, I, O, G, k, dtype)
                        f, fb = _kan_fns(kc, path, d, k)
                        t_f, t_fb = _time(cp, f, warmup, repeats), _time(cp, fb, warmup, repeats)
                        del d, f, fb

                        def run_once():
                            dd = _kan_arrays(cp, B, I, O, G, k, dtype)
                            _kan_fns(kc, path, dd, k)[1]()
                            return dd

                        peak = _peak_bytes(cp, run_once)
                        record(dtype, G, path, tf32, t_f, t_fb, peak)
                    except cp.cuda.memory.OutOfMemoryError as exc:
                        cp.get_default_memory_pool().free_all_blocks()
                        record(dtype, G, path, tf32, None, None, None, f"out of memory: {exc}")
                    mode.set(False)
                    cp.get_default_memory_pool().free_all_blocks()
            rows.append(dict(dtype=dtype.name, G=G, path="choose_path", tf32=None,
                             note=f"picks {kc.choose_path(G, k, dtype, I, O, B)}"))

    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = args.out or ("layer_gpu-quick" if args.quick else "layer_gpu")
    (RESULTS / f"{stem}.json").write_text(json.dumps({"env": env, "rows": rows}, indent=1))
    lines = [f"# KAN layer on {env['gpu']} (B={B}, I=O={I}, k={k})", "",
             f"driver {env['driver']}, CUDA runtime {env['cuda_runtime']}, CuPy {env['cupy']}, "
             f"numba {env['numba']}, numba-cuda {env['numba_cuda']}, {env['date']}", "",
             "Useful TFLOP/s count the k+2 non-zero terms per edge (MLP: 1). Times: median of "
             f"{repeats} after {warmup} warm-up, CUDA events. Peak: CuPy pool high-water.", "",
             "| dtype | G | path | TF32 | fwd ms | model fwd ms | fwd+bwd ms | model fwd+bwd ms "
             "| fwd TFLOP/s | fwd+bwd TFLOP/s | peak MiB | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def fmt(v, spec):
        return "" if v is None else format(v, spec)

    for r in rows:
        lines.append(
            f"| {r['dtype']} | {r['G'] or '-'} | {r['path']} | {'' if r['tf32'] is None else r['tf32']} "
            f"| {fmt(r.get('fwd_ms'), '.3f')} | {fmt(r.get('model_fwd_ms'), '.3f')} "
            f"| {fmt(r.get('fwd_bwd_ms'), '.3f')} | {fmt(r.get('model_fwd_bwd_ms'), '.3f')} "
            f"| {fmt(r.get('fwd_tflops'), '.2f')} | {fmt(r.get('fwd_bwd_tflops'), '.2f')} "
            f"| {fmt(None if r.get('peak_bytes') is None else r['peak_bytes'] / 2**20, '.0f')} "
            f"| {r.get('note', '')} |")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / (stem + '.json')} and .md")


if __name__ == "__main__":
    os.environ.setdefault("CUPY_TF32", "0")  # strict FP32 unless a row asks for TF32
    # the kernels launch on CuPy's current stream, so Numba need not synchronise on every
    # imported array (documented numba-cuda setting; keeps launches asynchronous)
    os.environ.setdefault("NUMBA_CUDA_ARRAY_INTERFACE_SYNC", "0")
    main()
