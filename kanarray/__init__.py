"""kanarray: Kolmogorov–Arnold Networks at the array level.

Fused Numba kernels for the forward and hand-derived backward pass (CPU over NumPy, CUDA over
CuPy), its own Adam and L-BFGS, grid update and grid extension. Importing kanarray compiles
nothing; kernels compile (and are cached) on first use.
"""
import importlib.util as _importlib_util
import os as _os
import sys as _sys


def _load_kernels_from_checkout():
    """Make `kanarray.kernels` importable when kanarray is imported from a source checkout.

    The kernels live in the top-level folder kernels/ and are installed as kanarray.kernels
    (pyproject.toml maps the folder). A script run from the repository root imports this source
    folder instead of the installed package; there the folder is not inside kanarray/, so it is
    registered here under the same name. Installed copies have kanarray/kernels and skip this.
    """
    package = _os.path.dirname(__file__)
    checkout_kernels = _os.path.join(_os.path.dirname(package), "kernels")
    if _os.path.isdir(_os.path.join(package, "kernels")) or not _os.path.isfile(
            _os.path.join(checkout_kernels, "reference.py")):
        return
    spec = _importlib_util.spec_from_file_location(
        "kanarray.kernels", _os.path.join(checkout_kernels, "__init__.py"),
        submodule_search_locations=[checkout_kernels])
    module = _importlib_util.module_from_spec(spec)
    _sys.modules["kanarray.kernels"] = module
    spec.loader.exec_module(module)


if "kanarray.kernels" not in _sys.modules:
    _load_kernels_from_checkout()

from .data import create_dataset, from_arrays  # noqa: E402
from .io import load  # noqa: E402
from .model import KAN  # noqa: E402

__version__ = "0.1.0"
__all__ = ["KAN", "create_dataset", "load", "__version__"]
