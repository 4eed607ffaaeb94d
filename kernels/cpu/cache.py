"""Whether Numba can cache the CPU kernels on disk (CACHE, the `cache=` of every njit here)."""
import warnings

from numba import njit


def _cache_available():
    """True when Numba has a writable place for the kernel cache of this folder.

    Numba looks, in order, in NUMBA_CACHE_DIR, in __pycache__ next to the module, and in the
    user's cache folder (~/.cache/numba, XDG_CACHE_HOME), so an installed read-only
    site-packages caches in the user's folder. Where none is writable, decorating with cache=True
    would fail at import; the kernels then compile in every process instead.
    """
    try:
        njit(cache=True)(_cache_available)
    except RuntimeError as error:
        warnings.warn(f"kanarray CPU kernels: no writable Numba cache folder ({error}); kernels will "
                      "compile in every process. Set NUMBA_CACHE_DIR to a writable folder.", RuntimeWarning)
        return False
    return True


CACHE = _cache_available()
