"""The safe numeric forms of the library functions, their sympy and text forms, and their
canonical parameter maps (kanarray.funcs.library registers them).

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

Canonical parameter maps: see kanarray.funcs.library.
"""
import math

import numpy as np

#: distance kept from singularities (1/x^n, 1/sqrt, log, arctanh; tan is cut at 1/X_EPS)
X_EPS = 1e-4
#: inputs of polynomial-type functions are clipped to [-X_BIG, X_BIG] (overflow guard only)
X_BIG = 1e30
#: exp argument is clipped above at EXP_MAX (exp(80) ~ 5.5e34)
EXP_MAX = 80.0

_GAUSS_CLIP = 1e3
_ATAN_CLIP = 1e150


# --------------------------------------------------------------------------------------
# safe implementations
# --------------------------------------------------------------------------------------


def as_float64(x):
    # CuPy arrays stay on the device: the np.* calls of the safe forms below dispatch to CuPy
    # (NEP 18 __array_function__ / __array_ufunc__), so every f and df also runs on the GPU.
    if type(x).__module__.split(".")[0] == "cupy":
        return x.astype("float64", copy=False)
    return np.asarray(x, dtype=np.float64)


def _power(n):
    def f(x):
        t = np.clip(as_float64(x), -X_BIG, X_BIG)
        r = t
        for _ in range(n - 1):
            r = r * t
        return r

    def df(x):
        x = as_float64(x)
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
    x = as_float64(x)
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
    return np.sqrt(np.maximum(as_float64(x), 0.0))


def _sqrt_df(x):
    x = as_float64(x)
    s = np.sqrt(np.maximum(x, 0.0))
    return np.where(x > 0.0, 0.5 / np.where(s > 0.0, s, 1.0), 0.0)


def _pow15_f(x):
    t = np.clip(as_float64(x), 0.0, X_BIG)
    return t * np.sqrt(t)


def _pow15_df(x):
    x = as_float64(x)
    t = np.clip(x, 0.0, X_BIG)
    return np.where(x <= X_BIG, 1.5 * np.sqrt(t), 0.0)


def _invsqrt_f(x):
    return 1.0 / np.sqrt(np.maximum(as_float64(x), X_EPS))


def _invsqrt_df(x):
    x = as_float64(x)
    r = 1.0 / np.sqrt(np.maximum(x, X_EPS))
    return np.where(x > X_EPS, -0.5 * (r * r * r), 0.0)


def _exp_f(x):
    return np.exp(np.minimum(as_float64(x), EXP_MAX))


def _exp_df(x):
    x = as_float64(x)
    return np.where(x < EXP_MAX, np.exp(np.minimum(x, EXP_MAX)), 0.0)


def _log_f(x):
    return np.log(np.maximum(np.abs(as_float64(x)), X_EPS))


def _log_df(x):
    x, m, active = _clamped_abs(x)
    return np.where(active, np.sign(x) / m, 0.0)


def _abs_f(x):
    return np.abs(as_float64(x))


def _sign_f(x):
    return np.sign(as_float64(x))


def _zero_f(x):
    return np.zeros_like(as_float64(x))


def _tan_f(x):
    return np.clip(np.tan(as_float64(x)), -1.0 / X_EPS, 1.0 / X_EPS)


def _tan_df(x):
    t = np.tan(as_float64(x))
    return np.where(np.abs(t) < 1.0 / X_EPS, 1.0 + t * t, 0.0)


def _tanh_df(x):
    t = np.tanh(as_float64(x))
    return 1.0 - t * t


def _arcsin_f(x):
    return np.arcsin(np.clip(as_float64(x), -1.0, 1.0))


def _arcsin_df(x):
    x = as_float64(x)
    inside = np.abs(x) < 1.0
    t = np.where(inside, x, 0.0)
    return np.where(inside, 1.0 / np.sqrt((1.0 - t) * (1.0 + t)), 0.0)


def _arccos_f(x):
    return np.arccos(np.clip(as_float64(x), -1.0, 1.0))


def _arccos_df(x):
    return -_arcsin_df(x)


def _arctan_df(x):
    t = np.clip(as_float64(x), -_ATAN_CLIP, _ATAN_CLIP)
    return 1.0 / (1.0 + t * t)


def _arctanh_f(x):
    return np.arctanh(np.clip(as_float64(x), -1.0 + X_EPS, 1.0 - X_EPS))


def _arctanh_df(x):
    x = as_float64(x)
    inside = np.abs(x) < 1.0 - X_EPS
    t = np.where(inside, x, 0.0)
    return np.where(inside, 1.0 / ((1.0 - t) * (1.0 + t)), 0.0)


def _gauss_f(x):
    t = np.clip(as_float64(x), -_GAUSS_CLIP, _GAUSS_CLIP)
    return np.exp(-t * t)


def _gauss_df(x):
    t = np.clip(as_float64(x), -_GAUSS_CLIP, _GAUSS_CLIP)
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
# sympy and text writers of the guarded forms
# --------------------------------------------------------------------------------------


def require_sympy():
    """The sympy module (imported on first use: the library works without it)."""
    import sympy

    return sympy


def optional_sympy():
    """The sympy module, or None when it is not installed (the `symbolic` extra)."""
    try:
        import sympy
    except ImportError:
        return None
    return sympy


def _sp_func(fname):
    return lambda z: getattr(require_sympy(), fname)(z)


_EVEN = (1.0, 0.0)
_ODD = (-1.0, 0.0)


def _sp_max(*args):
    return require_sympy().Max(*args)


def _sp_clip(z, lo, hi):
    sp = require_sympy()
    return sp.Max(sp.Min(z, sp.Float(hi)), sp.Float(lo))


def _sp_abs_floor(z):
    """max(|z|, X_EPS): the clamped magnitude of the reciprocals and log."""
    sp = require_sympy()
    return sp.Max(sp.Abs(z), sp.Float(X_EPS))


def _txt_abs_floor(z):
    return f"maximum(abs({z}), {X_EPS!r})"


def _txt_clip(z, lo, hi):
    return f"maximum(minimum({z}, {hi!r}), {lo!r})"


def builtins():
    """The built-in functions: [(name, f, df, complexity, sympy, text, domain, canonical)], the
    fields of kanarray.funcs.library.SymbolicFunction, in pykan's order."""
    entries = []

    def reg(name, f, df, complexity, sympy, text, domain, canonical):
        entries.append((name, f, df, complexity, sympy, text, domain, canonical))

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
            sym = (lambda n: lambda z: require_sympy().sign(z) / _sp_abs_floor(z) ** n)(n)
            txt = (lambda n: lambda z: f"sign({z})/{_txt_abs_floor(z)}"
                   + ("" if n == 1 else f"**{n}"))(n)
        else:      # even: 1 / max(|z|, eps)^n
            sym = (lambda n: lambda z: 1 / _sp_abs_floor(z) ** n)(n)
            txt = (lambda n: lambda z: f"1/{_txt_abs_floor(z)}**{n}")(n)
        reg(name, f, df, comp, sym, txt, (0.2, 5.0),
            _canon(homogeneous=-n, symmetry=_EVEN if n % 2 == 0 else _ODD))
    reg("sqrt", _sqrt_f, _sqrt_df, 2, lambda z: require_sympy().sqrt(_sp_max(z, 0)),
        lambda z: f"sqrt(maximum({z}, 0))", (0.01, 5.0), _canon(homogeneous=0.5))
    reg("x^1.5", _pow15_f, _pow15_df, 4, lambda z: require_sympy().sqrt(_sp_max(z, 0)) ** 3,
        lambda z: f"maximum({z}, 0)**1.5", (0.01, 5.0), _canon(homogeneous=1.5))
    reg("1/sqrt(x)", _invsqrt_f, _invsqrt_df, 2,
        lambda z: 1 / require_sympy().sqrt(_sp_max(z, require_sympy().Float(X_EPS))),
        lambda z: f"1/sqrt(maximum({z}, {X_EPS!r}))", (0.01, 5.0), None)
    reg("exp", _exp_f, _exp_df, 2, _sp_func("exp"), lambda z: f"exp({z})", (-5.0, 5.0),
        _canon(exp_shift=True))
    reg("log", _log_f, _log_df, 2, lambda z: require_sympy().log(_sp_abs_floor(z)),
        lambda z: f"log({_txt_abs_floor(z)})", (0.01, 5.0),
        _canon(log_homogeneous=True, symmetry=_EVEN))
    reg("abs", _abs_f, _sign_f, 3, _sp_func("Abs"), lambda z: f"abs({z})", (0.1, 5.0),
        _canon(homogeneous=1, symmetry=_EVEN))
    reg("sin", np.sin, np.cos, 2, _sp_func("sin"), lambda z: f"sin({z})", (-6.0, 6.0),
        _canon(symmetry=_ODD, period=(math.pi, -1.0)))
    reg("cos", np.cos, lambda x: -np.sin(x), 2, _sp_func("cos"), lambda z: f"cos({z})",
        (-6.0, 6.0), _canon(symmetry=_EVEN, period=(math.pi, -1.0)))
    reg("tan", _tan_f, _tan_df, 3, lambda z: _sp_clip(require_sympy().tan(z), -1 / X_EPS, 1 / X_EPS),
        lambda z: _txt_clip(f"tan({z})", -1 / X_EPS, 1 / X_EPS), (-1.4, 1.4),
        _canon(symmetry=_ODD, period=(math.pi, 1.0)))
    reg("tanh", np.tanh, _tanh_df, 3, _sp_func("tanh"), lambda z: f"tanh({z})", (-5.0, 5.0),
        _canon(symmetry=_ODD))
    reg("sgn", _sign_f, _zero_f, 3, _sp_func("sign"), lambda z: f"sign({z})", (0.1, 5.0),
        _canon(homogeneous=0, symmetry=_ODD))
    reg("arcsin", _arcsin_f, _arcsin_df, 4, lambda z: require_sympy().asin(_sp_clip(z, -1.0, 1.0)),
        lambda z: f"arcsin({_txt_clip(z, -1.0, 1.0)})", (-0.95, 0.95), _canon(symmetry=_ODD))
    reg("arccos", _arccos_f, _arccos_df, 4, lambda z: require_sympy().acos(_sp_clip(z, -1.0, 1.0)),
        lambda z: f"arccos({_txt_clip(z, -1.0, 1.0)})", (-0.95, 0.95),
        _canon(symmetry=(-1.0, math.pi)))
    reg("arctan", np.arctan, _arctan_df, 4, _sp_func("atan"), lambda z: f"arctan({z})",
        (-10.0, 10.0), _canon(symmetry=_ODD))
    reg("arctanh", _arctanh_f, _arctanh_df, 4,
        lambda z: require_sympy().atanh(_sp_clip(z, -1.0 + X_EPS, 1.0 - X_EPS)),
        lambda z: f"arctanh({_txt_clip(z, -1.0 + X_EPS, 1.0 - X_EPS)})", (-0.95, 0.95),
        _canon(symmetry=_ODD))
    reg("0", _zero_f, _zero_f, 0, lambda z: require_sympy().Integer(0), lambda z: "0", (-5.0, 5.0),
        _canon(zero=True))
    reg("gaussian", _gauss_f, _gauss_df, 3, lambda z: require_sympy().exp(-(z ** 2)),
        lambda z: f"exp(-({z})**2)", (-4.0, 4.0), _canon(symmetry=_EVEN))
    return entries
