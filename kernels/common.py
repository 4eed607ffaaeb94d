"""What the oracle and the production code share: the base-function codes and the base
function in NumPy.

The fast kernels take the base function as an integer code (BASE_CODES); the layer and the
network name it by string. base_function is the plain NumPy form, used by the layer's
activation views and by the oracle (reference.py).
"""
import numpy as np

BASE_CODES = {"silu": 0, "identity": 1, "zero": 2}


def base_function(x, base):
    """(value, derivative) of the base branch, elementwise, in float64."""
    x = np.asarray(x, dtype=np.float64)
    if base == 0:
        sig = 1.0 / (1.0 + np.exp(-x))
        return x * sig, sig * (1.0 + x * (1.0 - sig))
    if base == 1:
        return x.copy(), np.ones_like(x)
    if base == 2:
        return np.zeros_like(x), np.zeros_like(x)
    raise ValueError(f"base must be one of {sorted(BASE_CODES.values())}, got {base}")
