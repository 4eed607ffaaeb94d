"""What the oracle and the production code share: the base-function codes and the base
function in NumPy.

The fast kernels take the base function as an integer code (BASE_CODES); the layer and the
network name it by string. base_function is the plain NumPy form, used by the layer's
activation views and by the oracle (reference.py); base_derivatives adds the second and third
derivatives that input-derivative (physics-informed) evaluation needs.
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


def base_derivatives(x, base):
    """(value, first, second, third derivative) of the base branch, elementwise, in float64.

    With s = sigmoid(x) and s' = s (1 - s), silu(x) = x s has
        silu'   = s (1 + x (1 - s))
        silu''  = s' (2 + x (1 - 2 s))
        silu''' = s' ((1 - 2 s) (3 + x (1 - 2 s)) - 2 x s')
    """
    x = np.asarray(x, dtype=np.float64)
    if base == 0:
        sig = 1.0 / (1.0 + np.exp(-x))
        ds = sig * (1.0 - sig)
        c = 1.0 - 2.0 * sig
        return (x * sig, sig * (1.0 + x * (1.0 - sig)), ds * (2.0 + x * c),
                ds * (c * (3.0 + x * c) - 2.0 * x * ds))
    if base == 1:
        return x.copy(), np.ones_like(x), np.zeros_like(x), np.zeros_like(x)
    if base == 2:
        return tuple(np.zeros_like(x) for _ in range(4))
    raise ValueError(f"base must be one of {sorted(BASE_CODES.values())}, got {base}")
