"""kanarray kernels: reference (NumPy oracle), cpu (Numba), cuda (numba-cuda)."""
