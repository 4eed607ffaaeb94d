"""Which array library an array belongs to: the one place that asks "is this CuPy?".

CuPy is imported only when an array is already a CuPy array, so CPU-only installs never need it.
"""
import numpy as np


def is_cupy_array(array):
    """True for a CuPy array (checked by its type's module: no CuPy import needed)."""
    return type(array).__module__.split(".")[0] == "cupy"


def array_module(array):
    """cupy for a CuPy array, numpy for anything else."""
    if is_cupy_array(array):
        import cupy

        return cupy
    return np
