"""kanarray: Kolmogorov–Arnold Networks at the array level.

Fused Numba kernels for the forward and hand-derived backward pass (CPU over NumPy, CUDA over
CuPy), its own Adam and L-BFGS, grid update and grid extension. Importing kanarray compiles
nothing; kernels compile (and are cached) on first use.
"""
from .data import create_dataset
from .io import load
from .model import KAN

__version__ = "0.1.0"
__all__ = ["KAN", "create_dataset", "load", "__version__"]
