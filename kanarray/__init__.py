"""kanarray: Kolmogorov–Arnold Networks at the array level.

Fused Numba kernels for the forward and hand-derived backward pass (CPU over NumPy, CUDA over
CuPy), its own Adam and L-BFGS, grid update and grid extension, pruning and symbolic formulas.

`import kanarray` is instant and loads neither numba nor scipy: the public names below are
resolved on first use (PEP 562), and kernels compile (and are cached) on their first call.
"""
import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
EXPORTS = {
    "KAN": "kanarray.model",
    "load": "kanarray.model",
    "create_dataset": "kanarray.io.data",
    "from_arrays": "kanarray.io.data",
    "KANRegressor": "kanarray.estimators",
    "KANClassifier": "kanarray.estimators",
    "discover": "kanarray.pipelines.discover",
    "grid_extension": "kanarray.pipelines.stages",
    "LBFGS": "kanarray.training.lbfgs",
    "Adam": "kanarray.training.adam",
    "GridSchedule": "kanarray.training.options",
    "Regularization": "kanarray.training.regularize",
    "PDE": "kanarray.training.pde",
    "Dirichlet": "kanarray.training.pde",
    "Neumann": "kanarray.training.pde",
    "Periodic": "kanarray.training.pde",
    "fit_pde": "kanarray.training.pde",
}
__all__ = [*EXPORTS, "__version__"]


def __getattr__(name):
    if name in EXPORTS:
        value = getattr(importlib.import_module(EXPORTS[name]), name)
        globals()[name] = value  # later lookups find it directly
        return value
    raise AttributeError(f"module 'kanarray' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
