"""Symbolic function library and the affine fitter for symbolic KAN edges.

A trained KAN edge is a 1-D curve ``y = phi(x)``.  Symbolic regression replaces it by
``c * f(a*x + b) + d`` with ``f`` taken from a library.  This module holds

* :class:`SymbolicFunction` and the registry :data:`LIBRARY` (name -> function), with
  :func:`add_symbolic` to register user functions;
* :func:`fit_affine`, which fits ``(a, b, c, d)`` for one library function;
* :func:`suggest`, which fits every library function and ranks them by :func:`score`: fit
  quality within a tolerance weighed against complexity, with a penalty for fits whose
  coefficients blow up (:func:`amplification`);
* small helpers to evaluate a fitted edge and to write it as a sympy expression or a
  plain string (:func:`evaluate_affine`, :func:`affine_sympy`, :func:`affine_text`,
  :func:`affine_formula`).

Everything is array level (NumPy); sympy and scipy are imported lazily, so the registry
imports and evaluates without either.

Safe forms, and formulas that say what the network computes
------------------------------------------------------------
Every ``f`` and ``df`` in the library is *safe*: it returns finite values for every finite
input (no NaN, no inf, no floating-point warnings), so a symbolic edge can sit inside a
training loop whatever its input.  The safe form agrees with the mathematical function on
its natural domain away from the clamps below; ``df`` is the exact derivative of the safe
form (zero where a clamp is active).

``sympy`` and ``text`` write the *safe* form, guards included (``log(Max(|z|, 1e-4))``,
``sqrt(Max(z, 0))``, ...), so a formula evaluates to what the network computes on every
input, not only on the function's natural domain.  Two guards only prevent overflow and are
not written: powers clip ``|z|`` at X_BIG = 1e30 and exp clips ``z`` at EXP_MAX = 80; the
formula equals the network for ``|z| <= 1e30`` and ``z <= 80`` (the stated domains).

==============  ===========================================  ==================================
name            safe ``f`` (= its sympy form)                notes
==============  ===========================================  ==================================
x^n (n=1..5)    ``z**n``                                     network clips |z| at X_BIG
1/x^n           ``sign(z)**n / max(|z|, X_EPS)**n``          odd n: 0 at z = 0
sqrt            ``sqrt(max(z, 0))``                          df = 0 for z <= 0
x^1.5           ``max(z, 0)**1.5``                           network clips z at X_BIG
1/sqrt(x)       ``1/sqrt(max(z, X_EPS))``
exp             ``exp(z)``                                   network: exp(min(z, EXP_MAX))
log             ``log(max(|z|, X_EPS))``                     log|z| (even); = log z on z>0
abs, sgn        ``|z|``, ``sign(z)`` (sign(0) = 0)           df(0) = 0
sin, cos        plain
tan             ``clip(tan(z), -1/X_EPS, 1/X_EPS)``          poles cut at |tan| = 1e4
tanh            plain
arcsin, arccos  ``arcsin(clip(z, -1, 1))``, same for arccos  df = 0 for |z| >= 1
arctan          plain (derivative argument clipped)
arctanh         ``arctanh(clip(z, -1+X_EPS, 1-X_EPS))``
gaussian        ``exp(-z**2)``                               network clips |z| at 1e3 (same value)
0               ``0``
==============  ===========================================  ==================================

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
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "SymbolicFunction",
    "LIBRARY",
    "add_symbolic",
    "get_symbolic",
    "fit_affine",
    "suggest",
    "evaluate_affine",
    "affine_sympy",
    "affine_text",
    "affine_formula",
    "X_EPS",
    "X_BIG",
    "EXP_MAX",
    "FIT_TOL",
    "AMP_FREE",
    "amplification",
    "score",
]

#: distance kept from singularities (1/x^n, 1/sqrt, log, arctanh; tan is cut at 1/X_EPS)
X_EPS = 1e-4
#: inputs of polynomial-type functions are clipped to [-X_BIG, X_BIG] (overflow guard only)
X_BIG = 1e30
#: exp argument is clipped above at EXP_MAX (exp(80) ~ 5.5e34)
EXP_MAX = 80.0
#: fit tolerance of the ranking score of :func:`suggest`: unexplained variance fractions
#: (1 - R^2) well below FIT_TOL count as equally good fits
FIT_TOL = 1e-5
#: amplification (see :func:`amplification`) up to AMP_FREE costs nothing in the score
AMP_FREE = 10.0

_GAUSS_CLIP = 1e3
_ATAN_CLIP = 1e150


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


# --------------------------------------------------------------------------------------
# safe implementations
# --------------------------------------------------------------------------------------


def _asf(x):
    # CuPy arrays stay on the device: the np.* calls of the safe forms below dispatch to CuPy
    # (NEP 18 __array_function__ / __array_ufunc__), so every f and df also runs on the GPU.
    if type(x).__module__.split(".")[0] == "cupy":
        return x.astype("float64", copy=False)
    return np.asarray(x, dtype=np.float64)


def _power(n):
    def f(x):
        t = np.clip(_asf(x), -X_BIG, X_BIG)
        r = t
        for _ in range(n - 1):
            r = r * t
        return r

    def df(x):
        x = _asf(x)
        t = np.clip(x, -X_BIG, X_BIG)
        if n == 1:
            return np.ones_like(t)
        r = t
        for _ in range(n - 2):
            r = r * t
        return np.where(np.abs(x) <= X_BIG, n * r, 0.0)

    return f, df


def _clamped_abs(x):
    """(x, max(|x|, X_EPS), mask where |x| > X_EPS, i.e. where the clamp is inactive)."""
    x = _asf(x)
    ax = np.abs(x)
    return x, np.maximum(ax, X_EPS), ax > X_EPS


def _inverse_power(n):
    """1/z^n as sign(z)^n / max(|z|, X_EPS)^n: exact outside |z| <= X_EPS, odd n give 0 at 0."""

    def f(x):
        x, m, _ = _clamped_abs(x)
        r = 1.0 / m
        out = r
        for _ in range(n - 1):
            out = out * r
        return np.sign(x) * out if n % 2 else out

    def df(x):
        # d/dz z^-n = -n z^-(n+1) = -n sign(z)^(n+1) / |z|^(n+1)
        x, m, active = _clamped_abs(x)
        r = 1.0 / m
        out = r * r
        for _ in range(n - 1):
            out = out * r
        out = out if n % 2 else np.sign(x) * out
        return np.where(active, -n * out, 0.0)

    return f, df


def _sqrt_f(x):
    return np.sqrt(np.maximum(_asf(x), 0.0))


def _sqrt_df(x):
    x = _asf(x)
    s = np.sqrt(np.maximum(x, 0.0))
    return np.where(x > 0.0, 0.5 / np.where(s > 0.0, s, 1.0), 0.0)


def _pow15_f(x):
    t = np.clip(_asf(x), 0.0, X_BIG)
    return t * np.sqrt(t)


def _pow15_df(x):
    x = _asf(x)
    t = np.clip(x, 0.0, X_BIG)
    return np.where(x <= X_BIG, 1.5 * np.sqrt(t), 0.0)


def _invsqrt_f(x):
    return 1.0 / np.sqrt(np.maximum(_asf(x), X_EPS))


def _invsqrt_df(x):
    x = _asf(x)
    r = 1.0 / np.sqrt(np.maximum(x, X_EPS))
    return np.where(x > X_EPS, -0.5 * (r * r * r), 0.0)


def _exp_f(x):
    return np.exp(np.minimum(_asf(x), EXP_MAX))


def _exp_df(x):
    x = _asf(x)
    return np.where(x < EXP_MAX, np.exp(np.minimum(x, EXP_MAX)), 0.0)


def _log_f(x):
    return np.log(np.maximum(np.abs(_asf(x)), X_EPS))


def _log_df(x):
    x, m, active = _clamped_abs(x)
    return np.where(active, np.sign(x) / m, 0.0)


def _abs_f(x):
    return np.abs(_asf(x))


def _sign_f(x):
    return np.sign(_asf(x))


def _zero_f(x):
    return np.zeros_like(_asf(x))


def _tan_f(x):
    return np.clip(np.tan(_asf(x)), -1.0 / X_EPS, 1.0 / X_EPS)


def _tan_df(x):
    t = np.tan(_asf(x))
    return np.where(np.abs(t) < 1.0 / X_EPS, 1.0 + t * t, 0.0)


def _tanh_df(x):
    t = np.tanh(_asf(x))
    return 1.0 - t * t


def _arcsin_f(x):
    return np.arcsin(np.clip(_asf(x), -1.0, 1.0))


def _arcsin_df(x):
    x = _asf(x)
    inside = np.abs(x) < 1.0
    t = np.where(inside, x, 0.0)
    return np.where(inside, 1.0 / np.sqrt((1.0 - t) * (1.0 + t)), 0.0)


def _arccos_f(x):
    return np.arccos(np.clip(_asf(x), -1.0, 1.0))


def _arccos_df(x):
    return -_arcsin_df(x)


def _arctan_df(x):
    t = np.clip(_asf(x), -_ATAN_CLIP, _ATAN_CLIP)
    return 1.0 / (1.0 + t * t)


def _arctanh_f(x):
    return np.arctanh(np.clip(_asf(x), -1.0 + X_EPS, 1.0 - X_EPS))


def _arctanh_df(x):
    x = _asf(x)
    inside = np.abs(x) < 1.0 - X_EPS
    t = np.where(inside, x, 0.0)
    return np.where(inside, 1.0 / ((1.0 - t) * (1.0 + t)), 0.0)


def _gauss_f(x):
    t = np.clip(_asf(x), -_GAUSS_CLIP, _GAUSS_CLIP)
    return np.exp(-t * t)


def _gauss_df(x):
    t = np.clip(_asf(x), -_GAUSS_CLIP, _GAUSS_CLIP)
    return -2.0 * t * np.exp(-t * t)


# --------------------------------------------------------------------------------------
# canonical parameter maps
# --------------------------------------------------------------------------------------


def _canon(symmetry=None, homogeneous=None, log_homogeneous=False, exp_shift=False,
           linear=False, period=None, zero=False):
    """Build a ``params -> params`` canonicaliser from the invariances of ``f``.

    symmetry=(alpha, beta): f(-z) = alpha f(z) + beta  -> a >= 0
    homogeneous=k:          f(s z) = s^k f(z), s > 0     -> |a| = 1
    log_homogeneous:        f(s z) = f(z) + log s        -> |a| = 1
    exp_shift:              f(z + t) = e^t f(z)          -> b = 0
    linear:                 f(z) = z                     -> a = 1, b = 0
    period=(P, sigma):      f(z + P) = sigma f(z)        -> b in [-P/2, P/2]
    zero:                   f = 0                        -> a = b = c = 0
    """

    def canonical(params):
        a, b, c, d = (float(v) for v in np.asarray(params, dtype=np.float64))
        if zero:
            return np.array([0.0, 0.0, 0.0, d])
        if linear:
            return np.array([1.0, 0.0, c * a, c * b + d])
        if a != 0.0 and (homogeneous is not None or log_homogeneous):
            s = abs(a)
            if log_homogeneous:
                d = d + c * math.log(s)
            else:
                c = c * s ** homogeneous
            a, b = a / s, b / s
        if exp_shift and b != 0.0:
            scale = math.exp(b) if b < 700.0 else math.inf
            if math.isfinite(c * scale):
                c, b = c * scale, 0.0
        if symmetry is not None and (a < 0.0 or (a == 0.0 and b < 0.0)):
            alpha, beta = symmetry
            a, b = -a, -b
            c, d = c * alpha, d + c * beta
        if period is not None:
            p, sigma = period
            k = math.floor(b / p + 0.5)
            if k != 0:
                b = b - k * p
                if sigma < 0 and k % 2:
                    c = -c
        return np.array([a, b, c, d])

    return canonical


# --------------------------------------------------------------------------------------
# the registry
# --------------------------------------------------------------------------------------


def _sympy():
    import sympy  # lazily: the library works without sympy

    return sympy


def optional_sympy():
    """The sympy module, or None when it is not installed (the `symbolic` extra)."""
    try:
        import sympy
    except ImportError:
        return None
    return sympy


def _sp_func(fname):
    return lambda z: getattr(_sympy(), fname)(z)


LIBRARY: "dict[str, SymbolicFunction]" = {}

_EVEN = (1.0, 0.0)
_ODD = (-1.0, 0.0)


def _sp_max(*args):
    return _sympy().Max(*args)


def _sp_clip(z, lo, hi):
    sp = _sympy()
    return sp.Max(sp.Min(z, sp.Float(hi)), sp.Float(lo))


def _sp_abs_floor(z):
    """max(|z|, X_EPS): the clamped magnitude of the reciprocals and log."""
    sp = _sympy()
    return sp.Max(sp.Abs(z), sp.Float(X_EPS))


def _txt_abs_floor(z):
    return f"maximum(abs({z}), {X_EPS!r})"


def _txt_clip(z, lo, hi):
    return f"maximum(minimum({z}, {hi!r}), {lo!r})"


def _register_builtins():
    def reg(name, f, df, complexity, sympy, text, domain, canonical):
        LIBRARY[name] = SymbolicFunction(name, f, df, complexity, sympy, text, domain, canonical)

    f, df = _power(1)
    reg("x", f, df, 1, lambda z: z, lambda z: f"{z}", (-5.0, 5.0), _canon(linear=True))
    for n, comp in ((2, 2), (3, 3), (4, 3), (5, 3)):
        f, df = _power(n)
        reg(f"x^{n}", f, df, comp, (lambda n: lambda z: z ** n)(n),
            (lambda n: lambda z: f"({z})**{n}")(n), (-3.0, 3.0),
            _canon(homogeneous=n, symmetry=_EVEN if n % 2 == 0 else _ODD))
    for n, comp in ((1, 2), (2, 2), (3, 3), (4, 4), (5, 5)):
        f, df = _inverse_power(n)
        name = "1/x" if n == 1 else f"1/x^{n}"
        if n % 2:  # odd: sign(z) / max(|z|, eps)^n
            sym = (lambda n: lambda z: _sympy().sign(z) / _sp_abs_floor(z) ** n)(n)
            txt = (lambda n: lambda z: f"sign({z})/{_txt_abs_floor(z)}"
                   + ("" if n == 1 else f"**{n}"))(n)
        else:      # even: 1 / max(|z|, eps)^n
            sym = (lambda n: lambda z: 1 / _sp_abs_floor(z) ** n)(n)
            txt = (lambda n: lambda z: f"1/{_txt_abs_floor(z)}**{n}")(n)
        reg(name, f, df, comp, sym, txt, (0.2, 5.0),
            _canon(homogeneous=-n, symmetry=_EVEN if n % 2 == 0 else _ODD))
    reg("sqrt", _sqrt_f, _sqrt_df, 2, lambda z: _sympy().sqrt(_sp_max(z, 0)),
        lambda z: f"sqrt(maximum({z}, 0))", (0.01, 5.0), _canon(homogeneous=0.5))
    reg("x^1.5", _pow15_f, _pow15_df, 4, lambda z: _sympy().sqrt(_sp_max(z, 0)) ** 3,
        lambda z: f"maximum({z}, 0)**1.5", (0.01, 5.0), _canon(homogeneous=1.5))
    reg("1/sqrt(x)", _invsqrt_f, _invsqrt_df, 2,
        lambda z: 1 / _sympy().sqrt(_sp_max(z, _sympy().Float(X_EPS))),
        lambda z: f"1/sqrt(maximum({z}, {X_EPS!r}))", (0.01, 5.0), None)
    reg("exp", _exp_f, _exp_df, 2, _sp_func("exp"), lambda z: f"exp({z})", (-5.0, 5.0),
        _canon(exp_shift=True))
    reg("log", _log_f, _log_df, 2, lambda z: _sympy().log(_sp_abs_floor(z)),
        lambda z: f"log({_txt_abs_floor(z)})", (0.01, 5.0),
        _canon(log_homogeneous=True, symmetry=_EVEN))
    reg("abs", _abs_f, _sign_f, 3, _sp_func("Abs"), lambda z: f"abs({z})", (0.1, 5.0),
        _canon(homogeneous=1, symmetry=_EVEN))
    reg("sin", np.sin, np.cos, 2, _sp_func("sin"), lambda z: f"sin({z})", (-6.0, 6.0),
        _canon(symmetry=_ODD, period=(math.pi, -1.0)))
    reg("cos", np.cos, lambda x: -np.sin(x), 2, _sp_func("cos"), lambda z: f"cos({z})",
        (-6.0, 6.0), _canon(symmetry=_EVEN, period=(math.pi, -1.0)))
    reg("tan", _tan_f, _tan_df, 3, lambda z: _sp_clip(_sympy().tan(z), -1 / X_EPS, 1 / X_EPS),
        lambda z: _txt_clip(f"tan({z})", -1 / X_EPS, 1 / X_EPS), (-1.4, 1.4),
        _canon(symmetry=_ODD, period=(math.pi, 1.0)))
    reg("tanh", np.tanh, _tanh_df, 3, _sp_func("tanh"), lambda z: f"tanh({z})", (-5.0, 5.0),
        _canon(symmetry=_ODD))
    reg("sgn", _sign_f, _zero_f, 3, _sp_func("sign"), lambda z: f"sign({z})", (0.1, 5.0),
        _canon(homogeneous=0, symmetry=_ODD))
    reg("arcsin", _arcsin_f, _arcsin_df, 4, lambda z: _sympy().asin(_sp_clip(z, -1.0, 1.0)),
        lambda z: f"arcsin({_txt_clip(z, -1.0, 1.0)})", (-0.95, 0.95), _canon(symmetry=_ODD))
    reg("arccos", _arccos_f, _arccos_df, 4, lambda z: _sympy().acos(_sp_clip(z, -1.0, 1.0)),
        lambda z: f"arccos({_txt_clip(z, -1.0, 1.0)})", (-0.95, 0.95),
        _canon(symmetry=(-1.0, math.pi)))
    reg("arctan", np.arctan, _arctan_df, 4, _sp_func("atan"), lambda z: f"arctan({z})",
        (-10.0, 10.0), _canon(symmetry=_ODD))
    reg("arctanh", _arctanh_f, _arctanh_df, 4,
        lambda z: _sympy().atanh(_sp_clip(z, -1.0 + X_EPS, 1.0 - X_EPS)),
        lambda z: f"arctanh({_txt_clip(z, -1.0 + X_EPS, 1.0 - X_EPS)})", (-0.95, 0.95),
        _canon(symmetry=_ODD))
    reg("0", _zero_f, _zero_f, 0, lambda z: _sympy().Integer(0), lambda z: "0", (-5.0, 5.0),
        _canon(zero=True))
    reg("gaussian", _gauss_f, _gauss_df, 3, lambda z: _sympy().exp(-(z ** 2)),
        lambda z: f"exp(-({z})**2)", (-4.0, 4.0), _canon(symmetry=_EVEN))


_register_builtins()
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
            return _sympy().Function(_name)(z)
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
    z = a * _asf(x) + b
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
    sp = _sympy()
    fn = get_symbolic(name_or_fn)
    if fn.sympy is None:
        raise ValueError(f"{fn.name!r} has no sympy form")
    a, b, c, d = (sp.Float(float(v)) for v in np.asarray(params, dtype=np.float64))
    z = sp.Symbol(var) if isinstance(var, str) else var
    return c * fn.sympy(a * z + b) + d


def affine_formula(name_or_fn, params, var="x"):
    """sympy expression if sympy is installed, else the plain string of :func:`affine_text`."""
    try:
        _sympy()
    except ImportError:
        return affine_text(name_or_fn, params, var if isinstance(var, str) else str(var))
    return affine_sympy(name_or_fn, params, var)


# --------------------------------------------------------------------------------------
# the fitter
# --------------------------------------------------------------------------------------

_GRID_ELEMS = 1 << 16  # elements per chunk of the (pairs x samples) grid evaluation
_REL_VAR_TOL = 1e-14   # f(a x + b) with relative variance below this counts as constant
_TIE_TOL = 1e-12       # grid R^2 values this close to the best count as ties


def _check_xy(x, y):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or y.ndim != 1:
        raise ValueError(f"x and y must be 1-D, got shapes {x.shape} and {y.shape}")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    if x.size == 0:
        raise ValueError("x and y must not be empty")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite")
    return x, y


def _check_range(r, label):
    try:
        lo, hi = (float(v) for v in r)
    except (TypeError, ValueError):
        raise TypeError(f"{label} must be a pair (lo, hi)") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"{label} must satisfy finite lo <= hi, got {r!r}")
    return lo, hi


def _grid_r2(f, xs, yc, syy, A, B, inplace=False):
    """R^2 of the best line ``y ~ c u + d`` with ``u = f(A x + B)`` for every pair (A, B).

    Vectorised over pairs, chunked so that at most ~_GRID_ELEMS samples live at once.
    Constant or non-finite ``u`` gives R^2 = -1 (never selected over a valid pair).
    ``inplace`` lets the centring overwrite ``f``'s output (only for built-ins, which are
    known to return fresh arrays).
    """
    m = xs.size
    out = np.empty(A.size)
    step = max(1, _GRID_ELEMS // m)
    with np.errstate(all="ignore"):
        for s in range(0, A.size, step):
            a = A[s:s + step, None]
            b = B[s:s + step, None]
            u = np.asarray(f(a * xs[None, :] + b), dtype=np.float64)
            if u.shape != (a.shape[0], m):
                u = np.broadcast_to(u, (a.shape[0], m))
            mu = u.mean(axis=1)
            # centre explicitly: the uncentred sum(u^2) - m mu^2 cancels catastrophically
            # for nearly constant u (e.g. tanh far in its tail) and fakes correlations.
            uc = np.subtract(u, mu[:, None], out=u if inplace and u.flags.writeable else None)
            suu = np.einsum("ij,ij->i", uc, uc)
            suy = uc @ yc
            r2 = suy * suy / (suu * syy)
            ok = (suu > _REL_VAR_TOL * m * mu * mu) & (suu > 1e-280) & np.isfinite(r2)
            out[s:s + step] = np.where(ok, np.minimum(r2, 1.0), -1.0)
    return out


def _pick(r2, A, B, center=None):
    """Best grid pair; ties (within _TIE_TOL) -> smallest |a|, then a > 0, then smallest |b|.

    In zoom rounds (``center`` = previous pick) ties go first to the pair nearest the
    centre, so exact ties (underdetermined data, f = x) do not drift towards a = 0.
    """
    best = r2.max()
    cand = np.flatnonzero(r2 >= best - _TIE_TOL)
    if center is not None and cand.size > 1:
        dist = np.abs(A[cand] - center[0]) + np.abs(B[cand] - center[1])
        cand = cand[dist <= dist.min() * (1 + 1e-9)]
    # |a| rounded: linspace grids are not exactly symmetric (1.6 vs -1.5999999999999996)
    order = np.lexsort((np.abs(B[cand]), A[cand] < 0, np.round(np.abs(A[cand]), 12)))
    i = cand[order[0]]
    return A[i], B[i], r2[i]


def _linear_cd(u, y):
    """Least squares ``y ~ c u + d``; (c, d) with c = 0 when u is (numerically) constant."""
    mu = u.mean()
    uc = u - mu
    ym = y.mean()
    suu = float(uc @ uc)
    if not np.isfinite(suu) or suu <= _REL_VAR_TOL * u.size * mu * mu or suu <= 1e-280:
        return 0.0, ym
    c = float(uc @ (y - ym)) / suu
    return c, ym - c * mu


def _sse(fn, params, x, y):
    a, b, c, d = params
    with np.errstate(all="ignore"):
        r = c * fn.f(a * x + b) + d - y
        v = float(r @ r)
    return v if np.isfinite(v) else math.inf


def _r2_from_sse(sse, sst, y):
    """R^2 = 1 - SSE/SST; for constant y (SST ~ 0) it is 1 if SSE ~ 0, else 0."""
    tol = y.size * (16 * np.finfo(float).eps * max(1.0, float(np.max(np.abs(y))))) ** 2
    if sst <= tol:
        return (1.0, 0.0) if sse <= tol else (0.0, 1.0)
    fvu = sse / sst
    return min(1.0, 1.0 - fvu), fvu


def _cd_refit(fn, ab, x, y):
    a, b = ab
    with np.errstate(all="ignore"):
        u = np.asarray(fn.f(a * x + b), dtype=np.float64)
    if not np.all(np.isfinite(u)):
        return None
    c, d = _linear_cd(u, y)
    return np.array([a, b, c, d])


def _polish(fn, p0, x, y):
    """Levenberg-Marquardt over (a, b, c, d) with the analytic Jacobian from df."""
    from scipy.optimize import least_squares  # lazily: only the fitter needs scipy

    def resid(p):
        a, b, c, d = p
        return c * fn.f(a * x + b) + d - y

    def jac(p):
        a, b, c, d = p
        z = a * x + b
        g = c * fn.df(z)
        return np.column_stack([g * x, g, fn.f(z), np.ones_like(x)])

    method = "lm" if x.size >= 4 else "trf"
    kw = dict(ftol=1e-15, xtol=1e-15, gtol=1e-15) if method == "lm" else {}
    with np.errstate(all="ignore"):
        res = least_squares(resid, p0, jac=jac if fn.df is not None else "2-point",
                            method=method, x_scale="jac", max_nfev=200, **kw)
    return res.x if np.all(np.isfinite(res.x)) else None


def _subsample(x, y, max_samples):
    if x.size <= max_samples:
        return x, y
    idx = np.argsort(x, kind="stable")[np.linspace(0, x.size - 1, max_samples).round().astype(int)]
    return x[idx], y[idx]


def _fit(fn, x, y, a_range, b_range, grid_number, iteration, max_samples):
    """Returns (params, r2, fraction of variance unexplained)."""
    ym = y.mean()
    yc_full = y - ym
    sst = float(yc_full @ yc_full)
    if fn.name == "0" and fn is LIBRARY.get("0"):
        sse = sst
        r2, fvu = _r2_from_sse(sse, sst, y)
        return np.array([0.0, 0.0, 0.0, ym]), r2, fvu

    xs, ys = _subsample(x, y, max_samples)
    yc = ys - ys.mean()
    syy = float(yc @ yc)
    (a_lo, a_hi), (b_lo, b_hi) = a_range, b_range
    best = None
    if syy > 0.0:
        for _ in range(iteration + 1):
            ag = np.linspace(a_lo, a_hi, grid_number)
            bg = np.linspace(b_lo, b_hi, grid_number)
            A, B = (g.ravel() for g in np.meshgrid(ag, bg, indexing="ij"))
            r2g = _grid_r2(fn.f, xs, yc, syy, A, B,
                           inplace=LIBRARY.get(fn.name) is fn and fn.name in BUILTIN_NAMES)
            a0, b0, r0 = _pick(r2g, A, B, center=best)
            if r0 < 0.0:  # every pair degenerate: f constant on the data
                break
            best = (a0, b0)
            da = (a_hi - a_lo) / max(grid_number - 1, 1)
            db = (b_hi - b_lo) / max(grid_number - 1, 1)
            a_lo, a_hi, b_lo, b_hi = a0 - da, a0 + da, b0 - db, b0 + db
    if best is None:  # constant y, or f constant on the data for every (a, b)
        p = np.array([0.0, 0.0, 0.0, ym])
        r2, fvu = _r2_from_sse(_sse(fn, p, x, y), sst, y)
        return p, r2, fvu

    p = _cd_refit(fn, best, x, y)
    if p is None:
        p = np.array([best[0], best[1], 0.0, ym])
    sse = _sse(fn, p, x, y)
    if sse > 0.0:
        q = _polish(fn, p, x, y)
        if q is not None:
            q = _cd_refit(fn, q[:2], x, y)
            if q is not None:
                sq = _sse(fn, q, x, y)
                if sq <= sse:
                    p, sse = q, sq
    if fn.canonical is not None:
        q = _cd_refit(fn, np.asarray(fn.canonical(p), dtype=np.float64)[:2], x, y)
        if q is not None:
            sq = _sse(fn, q, x, y)
            if sq <= sse + 1e-10 * max(sst, sse) + 1e-300:
                p, sse = q, sq
    r2, fvu = _r2_from_sse(sse, sst, y)
    return p, r2, fvu


def fit_affine(x, y, name_or_fn, a_range=(-10, 10), b_range=(-10, 10), grid_number=101,
               iteration=3, *, max_samples=128):
    """Fit ``y ~ c * f(a*x + b) + d`` and return ``(params, r2)``.

    Parameters
    ----------
    x, y : 1-D arrays of equal length (finite)
    name_or_fn : library name, :class:`SymbolicFunction`, or a plain callable ``f``
    a_range, b_range : initial search box for ``(a, b)``
    grid_number : grid points per axis (the grid has ``grid_number**2`` pairs)
    iteration : number of zoom rounds after the first grid
    max_samples : the grid stage uses at most this many samples (evenly spread over the
        sorted x); the polish and the returned R^2 use all of them

    Algorithm
    ---------
    1. For every grid pair ``(a, b)`` the R^2 of the best line ``y ~ c*u + d`` with
       ``u = f(a x + b)`` is ``cov(u, y)^2 / (var u var y)``, computed for all pairs at
       once by broadcasting (chunked).  Pairs where ``u`` is constant count as R^2 = -1.
       The best pair wins; ties go to the smallest ``|a|``, then ``a > 0``, then the
       smallest ``|b|``.
    2. ``iteration`` times, the grid is rebuilt on ``best +- one grid step`` and searched again.
    3. Polish: Levenberg-Marquardt (``scipy.optimize.least_squares``, analytic Jacobian
       from ``df``) over ``(a, b, c, d)``; kept only if it lowers the SSE.
    4. ``(c, d)`` by linear least squares at the final ``(a, b)``.
    5. The function's canonical map (module docstring) is applied, ``(c, d)`` refitted,
       and the result kept when the SSE is unchanged (to 1e-10 of SST).

    R^2 = 1 - SSE/SST; if ``y`` is constant, R^2 is 1 when the fit is exact and 0 otherwise.
    If ``f`` is constant on the data for every ``(a, b)`` (e.g. the ``"0"`` function) the
    result is ``(0, 0, 0, mean(y))``.  Never returns NaN.

    Returns
    -------
    params : float64 array ``[a, b, c, d]``
    r2 : float
    """
    fn = get_symbolic(name_or_fn)
    x, y = _check_xy(x, y)
    a_range = _check_range(a_range, "a_range")
    b_range = _check_range(b_range, "b_range")
    if isinstance(grid_number, bool) or not isinstance(grid_number, numbers.Integral) \
            or grid_number < 2:
        raise ValueError(f"grid_number must be an int >= 2, got {grid_number!r}")
    if isinstance(iteration, bool) or not isinstance(iteration, numbers.Integral) \
            or iteration < 0:
        raise ValueError(f"iteration must be an int >= 0, got {iteration!r}")
    if isinstance(max_samples, bool) or not isinstance(max_samples, numbers.Integral) \
            or max_samples < 2:
        raise ValueError(f"max_samples must be an int >= 2, got {max_samples!r}")
    params, r2, _ = _fit(fn, x, y, a_range, b_range, int(grid_number), int(iteration),
                         int(max_samples))
    return params, float(r2)


def _resolve_lib(lib) -> Sequence[SymbolicFunction]:
    if lib is None:
        return list(LIBRARY.values())
    if isinstance(lib, (str, SymbolicFunction)):
        lib = [lib]
    if isinstance(lib, Mapping):
        lib = list(lib.values())
    if not isinstance(lib, (list, tuple)):
        raise TypeError(f"lib must be None, a library function name or a list of them, got "
                        f"{type(lib).__name__}")
    out = [get_symbolic(item) for item in lib]
    if not out:
        raise ValueError("lib must not be empty")
    return out


def amplification(name_or_fn, params, x, y):
    """How much the fitted edge ``c f(a x + b) + d`` cancels against its constant ``d``.

    ``A = |c| rms(f(a x + b)) / std(y)`` over the samples: the size of the ``c f`` term
    against the variation it has to explain.  A good fit has ``|c| std(f) ~ std(y)``, so
    ``A ~ rms(f) / std(f)`` is large exactly when ``f`` barely varies around a large value on
    the data: it is used in a small window where it is nearly a line or a parabola (cos or
    a gaussian of a tiny argument standing for x^2, exp of a tiny argument or log/sqrt far
    from 0 standing for x), and ``c`` and ``d`` blow up and cancel.  1 for constant ``y``.
    """
    fn = get_symbolic(name_or_fn)
    x, y = _check_xy(x, y)
    params = np.asarray(params, dtype=np.float64)
    if params.shape != (4,):
        raise ValueError(f"params must be (a, b, c, d), got shape {params.shape}")
    a, b, c, d = params
    sy = float(np.std(y))
    with np.errstate(all="ignore"):
        u = np.asarray(fn.f(a * x + b), dtype=np.float64)
        amp = abs(c) * float(np.sqrt(np.mean(u * u))) / sy if sy > 0.0 else 1.0
    return amp if np.isfinite(amp) else math.inf


def score(r2, complexity, amp=1.0, weight_simple=0.8):
    """Ranking score of :func:`suggest` (lower is better)::

        score = w * complexity + (1 - w) * ( log2(1 - r2 + FIT_TOL) + log2(max(1, amp / AMP_FREE)) )

    ``w = weight_simple``; ``1 - r2`` is clipped to [0, 1]; ``amp`` is :func:`amplification`.
    """
    r2, complexity, amp, weight_simple = (float(v) for v in (r2, complexity, amp, weight_simple))
    if math.isnan(r2) or math.isnan(amp) or amp < 0.0:
        raise ValueError(f"r2 must be a number and amp a number >= 0, got {r2}, {amp}")
    if not (math.isfinite(complexity) and complexity >= 0.0):
        raise ValueError(f"complexity must be a finite number >= 0, got {complexity}")
    if not 0.0 <= weight_simple <= 1.0:
        raise ValueError(f"weight_simple must be in [0, 1], got {weight_simple}")
    fvu = min(max(1.0 - r2, 0.0), 1.0)
    fit_term = math.log2(fvu + FIT_TOL)
    amp_term = math.log2(max(1.0, amp / AMP_FREE)) if math.isfinite(amp) else math.inf
    return weight_simple * complexity + (1.0 - weight_simple) * (fit_term + amp_term)


def suggest(x, y, lib=None, topk=5, weight_simple=0.8, r2_threshold=0.0, **fit_kwargs):
    """Fit every function of ``lib`` and rank them; returns the ``topk`` best (None: all).

    ``lib`` is None (the whole :data:`LIBRARY`), a list of names/SymbolicFunctions, or a
    dict of them.  ``fit_kwargs`` go to :func:`fit_affine`.

    Score (lower is better; :func:`score`)::

        score = w * complexity + (1 - w) * ( log2(1 - R^2 + FIT_TOL) + log2(max(1, A / AMP_FREE)) )

    with ``w = weight_simple`` (default 0.8), FIT_TOL = 1e-5, AMP_FREE = 10 and ``A`` the
    :func:`amplification` of the fit.  What it means:

    * Fits whose unexplained variance ``1 - R^2`` differ by well under FIT_TOL are equally
      good: R^2 = 1 - 1e-7 and R^2 = 1 score within 0.002 of each other, so a function one
      unit of complexity simpler wins even against an exact fit.
    * One unit of complexity is worth a factor ``2**(w / (1 - w))`` (16 at w = 0.8) in
      ``1 - R^2 + FIT_TOL``: a function one unit more complex must fit 16 times better to win.
    * A fit whose ``c`` blows up (``A`` > AMP_FREE: ``f`` is used in its near-linear or
      near-quadratic regime, e.g. ``-92 cos(0.15 x) + 92`` for ``x^2``) pays ``log2(A / 10)``
      as if its ``1 - R^2`` were that many times worse, so it loses to the simple function
      it imitates (same complexity, no amplification).

    Ties in score are broken by the smaller ``1 - R^2``, then the lower complexity, then
    library order.  Functions with ``r2 < r2_threshold`` are dropped, as are fits with a
    non-finite parameter.

    Returns a list of ``(name, r2, complexity, score, params)`` tuples, best first.
    """
    if topk is not None and (isinstance(topk, bool) or not isinstance(topk, numbers.Integral)
                             or topk < 1):
        raise ValueError(f"topk must be None or an int >= 1, got {topk!r}")
    if isinstance(weight_simple, bool) or not isinstance(weight_simple, numbers.Real) \
            or not 0.0 <= weight_simple <= 1.0:
        raise ValueError(f"weight_simple must be a number in [0, 1], got {weight_simple!r}")
    weight_simple = float(weight_simple)
    fns = _resolve_lib(lib)
    x, y = _check_xy(x, y)
    a_range = _check_range(fit_kwargs.pop("a_range", (-10, 10)), "a_range")
    b_range = _check_range(fit_kwargs.pop("b_range", (-10, 10)), "b_range")
    grid_number = int(fit_kwargs.pop("grid_number", 101))
    iteration = int(fit_kwargs.pop("iteration", 3))
    max_samples = int(fit_kwargs.pop("max_samples", 128))
    if fit_kwargs:
        raise TypeError(f"unexpected keyword arguments: {sorted(fit_kwargs)}")
    if grid_number < 2 or iteration < 0 or max_samples < 2:
        raise ValueError("grid_number >= 2, iteration >= 0 and max_samples >= 2 required")

    rows = []
    for order, fn in enumerate(fns):
        params, r2, fvu = _fit(fn, x, y, a_range, b_range, grid_number, iteration, max_samples)
        if r2 < r2_threshold or not np.all(np.isfinite(params)):
            continue
        s = score(r2, fn.complexity, amplification(fn, params, x, y), weight_simple)
        rows.append(((s, fvu, fn.complexity, order),
                     (fn.name, float(r2), int(fn.complexity), float(s), params)))
    rows.sort(key=lambda t: t[0])
    return [row for _, row in rows[:topk]]
