"""Every CUDA kernel per (dtype, k), built on first use and cached: the float type is closed over
(float32 PTX has no .f64 instruction) and the spline order k is a compile-time constant, so
every loop over the k+1 bases unrolls and every local array lives in registers.
"""
import numpy as np
from numba import config as _numba_config
from numba import cuda, types

from .backward import build_backward_dx, build_backward_finalize, build_backward_params
from .device import device_functions
from .forward import build_dense_basis, build_forward, build_span_basis
from .tiles import LAUNCH_BOUNDS, _check_k, _dtype

_PYFUNCS = {}
_KERNELS = {}


def _build(nbtype, K):
    """Every kernel for one float type and one spline order K (a compile-time constant):
    {name: Python function}, in the order kernel_signatures lists them."""
    dev = device_functions(nbtype, K)
    return {
        "span_basis": build_span_basis(nbtype, K, dev),
        "forward": build_forward(nbtype, K, dev),
        "backward_dx": build_backward_dx(nbtype, K, dev),
        "backward_params": build_backward_params(nbtype, K),
        "backward_finalize": build_backward_finalize(nbtype, K),
        "dense_basis": build_dense_basis(nbtype, K, dev),
    }


def _pyfuncs(dtype, k):
    key = (_dtype(dtype), _check_k(k))
    if key not in _PYFUNCS:
        _PYFUNCS[key] = _build(types.float32 if key[0] == np.float32 else types.float64, key[1])
    return _PYFUNCS[key]


def launch_bounds(name, dtype):
    """(threads per block, blocks per SM) promised to ptxas for kernel `name`, or None.

    float32 forward and dx: 4 blocks of 256 threads, which caps them at 64 registers (50%
    occupancy); they fit without spilling (bench/gpu_static.py checks).
    """
    return LAUNCH_BOUNDS[_dtype(dtype).itemsize].get(name)


def _kernel(name, dtype, k):
    """The jitted kernel `name` for (dtype, k), built on first use and cached."""
    key = (name, _dtype(dtype), _check_k(k))
    if key not in _KERNELS:
        bounds = launch_bounds(name, dtype)
        opts = {"launch_bounds": bounds} if bounds and not _numba_config.ENABLE_CUDASIM else {}
        _KERNELS[key] = cuda.jit(**opts)(_pyfuncs(dtype, k)[name])
    return _KERNELS[key]


def kernel_signatures(dtype, k):
    """(name, python function, Numba signature) of every CUDA kernel for (dtype, k).

    For ahead-of-time checks: `numba.cuda.compile_ptx(fn, sig, cc=(9, 0))`.
    """
    T = types.float32 if _dtype(dtype) == np.float32 else types.float64
    a1, a2, a3 = (types.Array(T, n, "C") for n in (1, 2, 3))
    i64, u4 = types.int64, types.Array(types.int32, 1, "C")
    l2 = types.Array(types.int64, 2, "C")
    sigs = {
        "span_basis": (a1, a1, i64, i64, i64, l2, a3, a3),
        "forward": (a1, a1, i64, i64, i64, a1, a1, i64, i64, a1, i64, a1, i64),
        "backward_dx": (a1, a1, i64, i64, i64, a1, a1, a1, i64, i64, i64, a1, u4, a1, a1),
        "backward_params": (u4, a1, i64, i64, a1, i64, i64, i64, a1),
        "backward_finalize": (a1, i64, i64, i64, i64, i64, i64, a3, a2, a2, a3, a2),
        "dense_basis": (a1, a1, i64, i64, i64, i64, a2),
    }
    funcs = _pyfuncs(dtype, k)
    return [(name, funcs[name], sigs[name]) for name in funcs]
