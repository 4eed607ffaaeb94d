"""Where a model's arrays live and which kernels run on them.

A Backend pairs an array module (`xp`: numpy or cupy) with a kernel module (kanarray.kernels.cpu
or kanarray.kernels.cuda); both kernel modules expose the same functions with the same
signatures. The CPU kernels are imported here; the CUDA kernels only when a "cuda" backend is
asked for, since they need the `cuda` extra. Importing a kernel module compiles nothing: Numba
compiles each kernel on its first call and caches it on disk.

Under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, set before numba is imported), the "cuda"
backend runs the CUDA kernels on NumPy arrays: that is how CI exercises the GPU code path.
"""
import os
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from .arrays import is_cupy_array
from ..kernels import cpu as cpu_kernels

DEVICES = ("cpu", "cuda")


def cuda_simulated():
    """True when numba's CUDA simulator is on (cuda.is_available() lies there, the env does not)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


@dataclass(frozen=True)
class Backend:
    device: str
    xp: ModuleType
    kernels: ModuleType

    def asarray(self, array, dtype):
        """Move `array` to this backend with `dtype` (no copy when already there)."""
        if self.xp is np:
            if is_cupy_array(array):
                raise TypeError("got a CuPy array for a model on device='cpu'; pass a NumPy array "
                                "or create the model with device='cuda'")
            return np.ascontiguousarray(array, dtype=dtype)
        return self.xp.ascontiguousarray(self.xp.asarray(array, dtype=dtype))

    def to_numpy(self, array):
        return array if self.xp is np else self.xp.asnumpy(array)


def _cuda_kernels():
    try:
        from ..kernels import cuda
    except ImportError as exc:
        raise ImportError(f"device='cuda' needs the cuda extra: pip install 'kanarray[cuda]' ({exc})") from None
    return cuda


def get_backend(device):
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cpu":
        return Backend(device, np, cpu_kernels)
    if cuda_simulated():
        return Backend(device, np, _cuda_kernels())
    try:
        import cupy
    except ImportError as exc:
        raise ImportError(f"device='cuda' needs the cuda extra: pip install 'kanarray[cuda]' ({exc})") from None
    kernels = _cuda_kernels()
    try:
        n_gpus = cupy.cuda.runtime.getDeviceCount()
    except Exception:  # noqa: BLE001 - no driver, no device: the same answer for the user
        n_gpus = 0
    if n_gpus == 0:
        raise RuntimeError("device='cuda' was asked for, but no NVIDIA GPU is visible to CuPy")
    return Backend(device, cupy, kernels)


def return_like(result, given, backend):
    """Give results back on the kind of array the caller passed in."""
    if backend.xp is np or is_cupy_array(given):
        return result
    return backend.to_numpy(result)
