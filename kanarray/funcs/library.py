"""The library of functions for symbolic KAN edges.

A trained KAN edge is a 1-D curve ``y = phi(x)``.  Symbolic regression replaces it by
``c * f(a*x + b) + d`` with ``f`` taken from a library.  This module holds

* :class:`SymbolicFunction` and the registry :data:`LIBRARY` (name -> function), with
  :func:`add_symbolic` to register user functions;
* small helpers to evaluate a fitted edge and to write it as a sympy expression or a
  plain string (:func:`evaluate_affine`, :func:`affine_sympy`, :func:`affine_text`,
  :func:`affine_formula`).

Everything is array level (NumPy); sympy and scipy are imported lazily, so the registry
imports and evaluates without either.

Canonical parameters
--------------------
Many functions make ``(a, b, c, d)`` non-identifiable (``x^2``: ``(a, b)`` and ``(-a, -b)``;
``exp``: ``c*exp(a x + b) = (c e^b) exp(a x)``; powers: ``(s a, s b, c / s^k)``; ``sin``:
``b`` modulo ``pi`` with a sign flip of ``c``).  Each built-in function carries a
``canonical`` map that sends parameters to one representative of their equivalence class:

* symmetry ``f(-z) = alpha f(z) + beta`` (even: alpha=1; odd: alpha=-1; arccos: alpha=-1,
  beta=pi): ``a >= 0``;
* homogeneity ``f(s z) = s^k f(z)`` for s > 0 (powers, 1/x^n, sqrt, x^1.5, abs, sgn with
  k=0) or ``f(s z) = f(z) + log s`` (log): ``|a| = 1``;
* translation ``f(z + t) = e^t f(z)`` (exp): ``b = 0``;
* ``x``: ``a = 1, b = 0``;
* (anti)periodicity ``f(z + P) = sigma f(z)`` (sin, cos: P=pi, sigma=-1; tan: P=pi,
  sigma=1): ``b`` in ``[-P/2, P/2]``.

Every map is an exact identity of the safe form, except that rescaling ``z`` moves the
X_EPS clamps of 1/x^n and log: there the two forms differ for ``|z| < X_EPS max(1, |a|)``
only.  1/sqrt(x) has no canonical map, because its clamp covers all of ``z < X_EPS``, where
rescaling would change the value.

So ``2 sin(3x + 0.5) - 1`` comes back as exactly ``(3, 0.5, 2, -1)`` and
``1.5 (0.8x + 0.3)^2 + 0.1`` as ``(1, 0.375, 0.96, 0.1)``.  :func:`fit_affine` applies the
map after the fit and keeps it only if the fit quality is unchanged (clamps make some of
these identities inexact near the singularities).  Functions without a canonical map
(user functions registered without one) get the grid's tie-break: among equally good grid
points the smallest ``|a|``, then ``a > 0``, then the smallest ``|b|``.

The functions' safe numeric forms, their guarded sympy and text forms and their canonical
parameter maps are in kanarray.funcs.forms; fitting an edge to them and ranking them in
kanarray.symbolic.fit.
"""
import math
import numbers
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

from .forms import (EXP_MAX, X_BIG, X_EPS, as_float64, builtins, optional_sympy,
                             require_sympy)

__all__ = ["SymbolicFunction", "LIBRARY", "BUILTIN_NAMES", "add_symbolic", "get_symbolic",
           "evaluate_affine", "affine_sympy", "affine_text", "affine_formula", "optional_sympy",
           "X_EPS", "X_BIG", "EXP_MAX"]


# --------------------------------------------------------------------------------------
# the function record
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SymbolicFunction:
    """One library function ``f`` for symbolic edges ``c * f(a*x + b) + d``.

    Attributes
    ----------
    name : str
        Registry key (pykan spelling: ``"x^2"``, ``"1/sqrt(x)"``, ``"sgn"``, ...).
    f : callable
        Array -> array of the same shape, safe (finite for every finite input).
    df : callable
        Derivative of ``f`` (of its safe form), same conventions.
    complexity : int
        Complexity used in the ranking of :func:`suggest` (pykan's values).
    sympy : callable or None
        ``expr -> expr`` building the sympy form (sympy is imported only when called).
    text : callable
        ``str -> str`` giving a plain-string form, e.g. ``lambda z: f"sin({z})"``.
    domain : (lo, hi) or None
        Interval on which ``f`` is smooth and ``df`` is checked by finite differences.
    canonical : callable or None
        ``params -> params`` mapping ``(a, b, c, d)`` to a canonical equivalent one
        (see the module docstring); None means no canonical form is known.
    """

    name: str
    f: Callable[[np.ndarray], np.ndarray]
    df: Callable[[np.ndarray], np.ndarray]
    complexity: int
    sympy: Optional[Callable] = None
    text: Optional[Callable[[str], str]] = None
    domain: Optional[Tuple[float, float]] = None
    canonical: Optional[Callable[[np.ndarray], np.ndarray]] = None

    def __call__(self, x):
        return self.f(x)

    def __repr__(self):  # callables make the default repr unreadable
        return f"SymbolicFunction({self.name!r}, complexity={self.complexity})"


LIBRARY: "dict[str, SymbolicFunction]" = {
    entry[0]: SymbolicFunction(*entry) for entry in builtins()}
BUILTIN_NAMES = tuple(LIBRARY)

_PROBE = np.array([-1e6, -3.0, -1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 3.0, 1e6])


def add_symbolic(name, f, df, complexity, sympy=None, text=None, domain=None, *,
                 canonical=None, overwrite=False) -> SymbolicFunction:
    """Register a user function ``f`` (with derivative ``df``) in :data:`LIBRARY`.

    ``f`` and ``df`` must be array -> same-shape array callables, finite on finite input
    (checked on a few probe points, 0 and +-1e6 included).  ``sympy`` (expr -> expr) and
    ``text`` (str -> str) default to an undefined sympy function / ``"name(z)"``.
    ``domain`` is ``(lo, hi)`` with finite ``lo < hi``.  ``canonical`` is an optional
    ``params -> params`` map (see the module docstring).  Re-registering an existing name
    raises ``ValueError`` unless ``overwrite=True``; built-ins cannot be overwritten.

    Returns the registered :class:`SymbolicFunction`.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if not name.strip():
        raise ValueError("name must be a non-empty string")
    if name in LIBRARY:
        if name in BUILTIN_NAMES:
            raise ValueError(f"{name!r} is a built-in symbolic function and cannot be replaced")
        if not overwrite:
            raise ValueError(f"{name!r} is already registered (pass overwrite=True)")
    for label, fn in (("f", f), ("df", df)):
        if not callable(fn):
            raise TypeError(f"{label} must be callable, got {type(fn).__name__}")
    if isinstance(complexity, bool) or not isinstance(complexity, numbers.Integral):
        raise TypeError(f"complexity must be an int, got {type(complexity).__name__}")
    if complexity < 0:
        raise ValueError(f"complexity must be >= 0, got {complexity}")
    for label, fn in (("sympy", sympy), ("text", text), ("canonical", canonical)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{label} must be callable or None, got {type(fn).__name__}")
    if domain is not None:
        try:
            lo, hi = (float(v) for v in domain)
        except (TypeError, ValueError):
            raise TypeError("domain must be None or a pair (lo, hi) of numbers") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"domain must satisfy finite lo < hi, got {domain!r}")
        domain = (lo, hi)
    for label, fn in (("f", f), ("df", df)):
        try:
            out = np.asarray(fn(_PROBE.copy()), dtype=np.float64)
        except Exception as exc:  # noqa: BLE001 - report any failure as a bad argument
            raise ValueError(f"{label} failed on a probe array: {exc!r}") from exc
        if out.shape != _PROBE.shape:
            raise ValueError(f"{label} must map an array to an array of the same shape "
                             f"(got shape {out.shape} for input shape {_PROBE.shape})")
        if not np.all(np.isfinite(out)):
            raise ValueError(f"{label} must be finite for finite input (use a safe form); "
                             f"got {out} on {_PROBE}")
    if sympy is None:
        def sympy(z, _name=name):
            return require_sympy().Function(_name)(z)
    if text is None:
        def text(z, _name=name):
            return f"{_name}({z})"
    fn_rec = SymbolicFunction(name, f, df, int(complexity), sympy, text, domain, canonical)
    LIBRARY[name] = fn_rec
    return fn_rec


def get_symbolic(name_or_fn) -> SymbolicFunction:
    """Resolve a library name, a :class:`SymbolicFunction`, or a plain callable ``f``.

    A plain callable gets a wrapper record (name from ``__name__``, complexity 0, no
    ``df``: :func:`fit_affine` then polishes with finite-difference Jacobians).
    """
    if isinstance(name_or_fn, SymbolicFunction):
        return name_or_fn
    if isinstance(name_or_fn, str):
        try:
            return LIBRARY[name_or_fn]
        except KeyError:
            raise ValueError(f"unknown symbolic function {name_or_fn!r}; known: "
                             f"{sorted(LIBRARY)}") from None
    if callable(name_or_fn):
        nm = getattr(name_or_fn, "__name__", "f")
        return SymbolicFunction(nm, name_or_fn, None, 0, None, lambda z: f"{nm}({z})")
    raise TypeError("expected a library name, a SymbolicFunction or a callable, got "
                    f"{type(name_or_fn).__name__}")


# --------------------------------------------------------------------------------------
# evaluation and formulas
# --------------------------------------------------------------------------------------


def evaluate_affine(name_or_fn, params, x, derivative=False):
    """``c * f(a*x + b) + d``; with ``derivative=True`` also ``d/dx = c * a * f'(a*x + b)``."""
    fn = get_symbolic(name_or_fn)
    a, b, c, d = np.asarray(params, dtype=np.float64)
    z = a * as_float64(x) + b
    y = c * fn.f(z) + d
    if not derivative:
        return y
    if fn.df is None:
        raise ValueError(f"{fn.name!r} has no derivative")
    return y, c * a * fn.df(z)


def _num(v, digits):
    return f"{float(v):.{digits}g}"


def affine_text(name_or_fn, params, var="x", digits=6) -> str:
    """Plain-string form ``c*f(a*x + b) + d`` (no sympy needed)."""
    fn = get_symbolic(name_or_fn)
    a, b, c, d = np.asarray(params, dtype=np.float64)
    inner = f"{_num(a, digits)}*{var}"
    if b != 0.0:
        inner += f" {'-' if b < 0 else '+'} {_num(abs(b), digits)}"
    body = f"{_num(c, digits)}*{fn.text(inner)}"
    if d != 0.0:
        body += f" {'-' if d < 0 else '+'} {_num(abs(d), digits)}"
    return body


def affine_sympy(name_or_fn, params, var="x"):
    """sympy expression ``c*f(a*var + b) + d`` (``var``: a sympy expression or a name)."""
    sp = require_sympy()
    fn = get_symbolic(name_or_fn)
    if fn.sympy is None:
        raise ValueError(f"{fn.name!r} has no sympy form")
    a, b, c, d = (sp.Float(float(v)) for v in np.asarray(params, dtype=np.float64))
    z = sp.Symbol(var) if isinstance(var, str) else var
    return c * fn.sympy(a * z + b) + d


def affine_formula(name_or_fn, params, var="x"):
    """sympy expression if sympy is installed, else the plain string of :func:`affine_text`."""
    try:
        require_sympy()
    except ImportError:
        return affine_text(name_or_fn, params, var if isinstance(var, str) else str(var))
    return affine_sympy(name_or_fn, params, var)
