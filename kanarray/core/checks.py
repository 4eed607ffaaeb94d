"""Argument checks shared by the public API: every failure names the argument and what was expected.

Each check returns the value in a plain form (int, float, array) so that a caller can write
`lr = check_real(lr, "lr", above=0)` at the top of a function and use the result from then on.
Type errors (a string where a number belongs) raise TypeError; values of the right type outside
the allowed set (NaN, a negative seed) raise ValueError.
"""
import math
import numbers

import numpy as np

from .arrays import array_module


class UserError(ValueError):
    """A mistake the user can fix (a file, a column, an option): the command line prints it as
    one line and exits with status 2."""


def check_int(value, name, minimum, maximum=None):
    """An integer (Python or NumPy, not bool) in [minimum, maximum]; returns it as int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return int(value)


def check_real(value, name, minimum=None, maximum=None, above=None, below=None):
    """A finite real number (int or float, Python or NumPy, not bool) within the given bounds.

    minimum/maximum are inclusive bounds, above/below strict ones; None means unbounded. Returns
    a Python float, which never upcasts a float32 array it multiplies. Arrays (even 0-d),
    strings, complex numbers and NaN/Inf are rejected.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond float range
        value = math.inf
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if minimum is not None and not value >= minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and not value <= maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    if above is not None and not value > above:
        raise ValueError(f"{name} must be > {above}, got {value}")
    if below is not None and not value < below:
        raise ValueError(f"{name} must be < {below}, got {value}")
    return value


def check_seed(value, name="seed"):
    """A seed for numpy.random.default_rng: an integer >= 0 (None, meaning "fresh entropy",
    is refused: results must be reproducible). Returns it as int."""
    if value is None:
        raise TypeError(f"{name} must be an integer >= 0, got None (results must be reproducible)")
    return check_int(value, name, 0)


def check_bool(value, name):
    """True or False (Python or NumPy bool; not 0/1, not a string); returns a Python bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_callable(value, name):
    """Any callable; returns it unchanged."""
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__} {value!r}")
    return value


def check_choice(value, name, choices):
    """One of `choices`, of the same type as the match (so True is not taken for 1); returned."""
    if not any(type(value) is type(choice) and value == choice for choice in choices):
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


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
