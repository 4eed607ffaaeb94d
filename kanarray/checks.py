"""Argument checks shared by the public API: every failure names the argument and what was expected."""
import numbers

import numpy as np

from .arrays import array_module


class UserError(ValueError):
    """A mistake the user can fix (a file, a column, an option): the command line prints it as
    one line and exits with status 2."""


def check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_real_array(array, name):
    """Reject non-arrays, masked arrays, complex, bool, object and string dtypes; return the
    array unchanged."""
    if isinstance(array, np.ma.MaskedArray):
        raise TypeError(f"{name} is a masked array; pass array.filled(value) or drop the masked rows")
    dtype = getattr(array, "dtype", None)
    if dtype is None:
        try:
            array = np.asarray(array)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be a numeric array, could not convert: {exc}") from None
        dtype = array.dtype
    if dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers (float or int), got dtype {dtype}")
    return array


def check_batch(array, name, width):
    """A (B, width) real, finite, non-empty batch; returns it (NumPy or CuPy, as given)."""
    array = check_real_array(array, name)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (batch, {width}), got shape {tuple(array.shape)}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch: expected at least one row")
    if array.shape[1] != width:
        raise ValueError(f"{name} must have {width} columns, got shape {tuple(array.shape)}")
    if array.dtype.kind == "f" and not bool(array_module(array).isfinite(array).all()):
        raise ValueError(f"{name} contains NaN or Inf")
    return array
