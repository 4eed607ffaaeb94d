"""`kanarray info` (what this machine has) and `kanarray bench` (a short timing table on it)."""
import os
import pkgutil
import platform
import time

import numba
import numpy as np

from .. import __version__
from ..kernels import cpu as cpu_kernels
from ..model import KAN

# Numba names a cache file after the module of its kernel: the modules of kanarray.kernels.cpu
KERNEL_MODULES = {module.name for module in pkgutil.iter_modules(cpu_kernels.__path__)}


def kernel_cache_folder():
    """Where Numba caches the compiled CPU kernels: NUMBA_CACHE_DIR, else beside the source."""
    custom = os.environ.get("NUMBA_CACHE_DIR")
    source = os.path.dirname(os.path.abspath(cpu_kernels.__file__))
    return custom if custom else os.path.join(source, "__pycache__")


def kernel_cache_is_warm(folder):
    """True when compiled CPU kernels are cached there (Numba's .nbi index files)."""
    found = []
    for root, _, files in os.walk(folder) if os.path.isdir(folder) else ():
        found += [f for f in files if f.split(".")[0] in KERNEL_MODULES and f.endswith(".nbi")]
    return bool(found)


def set_threads(n):
    """Cap the threads of the CPU kernels at n for the rest of the process (at most
    NUMBA_NUM_THREADS; kanarray.kernels.cpu.thread_limit is the scoped form)."""
    if n < 1:
        raise ValueError(f"--threads must be >= 1, got {n}")
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def _cuda_status():
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return "Numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
    try:
        import cupy
    except ImportError:
        return "not available (pip install 'kanarray[cuda]')"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - no driver or no device: report it
        return f"CuPy {cupy.__version__}, no usable GPU ({exc})"
    names = [cupy.cuda.runtime.getDeviceProperties(i)["name"].decode() for i in range(count)]
    return f"CuPy {cupy.__version__}, {count} GPU(s): {', '.join(names) or 'none'}"


def _mpi_status():
    try:
        import mpi4py
    except ImportError:
        return "not available (pip install 'kanarray[mpi]')"
    return f"mpi4py {mpi4py.__version__}"


def info():
    """Lines describing kanarray's installation and this machine."""
    folder = kernel_cache_folder()
    return [
        f"kanarray {__version__} (Python {platform.python_version()}, NumPy {np.__version__}, "
        f"Numba {numba.__version__})",
        f"cpu:      {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"kernels use up to {numba.config.NUMBA_NUM_THREADS} threads "
        f"(threading layer {numba.config.THREADING_LAYER})",
        f"cuda:     {_cuda_status()}",
        f"mpi:      {_mpi_status()}",
        f"kernel cache: {folder} ({'warm' if kernel_cache_is_warm(folder) else 'empty: the first run compiles'})",
    ]


def median_seconds(fn, repeats, warmup=1):
    """Median wall time of fn() over `repeats` calls, after `warmup` calls (compiling, caches)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _model_flops(width, rows, k=3):
    """Useful FLOPs of one loss + gradient evaluation: 6 B I O (k + 2) per layer (per sample and
    edge, forward 2 and backward 4 FLOPs for each of the k + 1 basis terms and the base branch)."""
    return sum(6 * rows * i * o * (k + 2) for i, o in zip(width[:-1], width[1:]))


def bench(repeats=20):
    """Rows (what, milliseconds, useful GFLOP/s) timed on this machine: small models (loss and
    full gradient) and one big layer (forward + backward) beside the NumPy MLP layer."""
    rows = []
    rng = np.random.default_rng(0)
    for width, n in (([2, 5, 1], 1000), ([4, 9, 1], 1000), ([8, 32, 32, 1], 10000)):
        model = KAN(width, grid=10, seed=0)
        x = rng.uniform(-1, 1, (n, width[0]))
        y = rng.uniform(-1, 1, (n, width[-1]))
        seconds = median_seconds(lambda: model.loss_and_grad(x, y), repeats)
        rows.append((f"KAN {width}, {n} rows, G=10, loss+grad", seconds * 1e3,
                     _model_flops(width, n) / seconds / 1e9))
    batch, width = 4096, 128
    layer_model = KAN([width, width], grid=10, seed=0, dtype="float32")
    x = rng.uniform(-1, 1, (batch, width)).astype(np.float32)
    g = rng.normal(size=(batch, width)).astype(np.float32)
    layer = layer_model.layers[0]
    grads, _ = layer.views(np.empty_like(layer_model.params), 0)

    def kan_layer():
        layer.backward(x, g, grads)
        layer.forward(x)

    seconds = median_seconds(kan_layer, max(3, repeats // 4))
    rows.append((f"KAN layer {width}->{width}, B={batch}, G=10, float32, fwd+bwd", seconds * 1e3,
                 _model_flops([width, width], batch) / seconds / 1e9))
    w = rng.normal(size=(width, width)).astype(np.float32)

    def mlp_layer():
        (x @ w, g @ w.T, x.T @ g)

    seconds = median_seconds(mlp_layer, max(3, repeats // 4))
    rows.append(("MLP layer (3 GEMMs, NumPy BLAS), same shape", seconds * 1e3,
                 6 * batch * width * width / seconds / 1e9))
    return rows
