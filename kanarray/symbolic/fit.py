"""Fitting one edge's curve with a library function, and ranking the library for it.

* :func:`fit_affine` fits ``(a, b, c, d)`` of ``c * f(a*x + b) + d`` for one function: a grid
  search over ``(a, b)`` with ``(c, d)`` by linear least squares, then a Levenberg-Marquardt
  polish, then the function's canonical parameters (kanarray.funcs.forms);
* :func:`suggest` fits every library function and ranks them by :func:`score`: fit quality
  within a tolerance weighed against complexity, with a penalty for fits whose coefficients
  blow up (:func:`amplification`).

scipy is imported where the polish needs it.
"""
import math
import numbers
from typing import Mapping, Sequence

import numpy as np

from ..core.metrics import r2_from_sums
from ..funcs.library import BUILTIN_NAMES, LIBRARY, SymbolicFunction, get_symbolic

#: fit tolerance of the ranking score of :func:`suggest`: unexplained variance fractions
#: (1 - R^2) well below FIT_TOL count as equally good fits
FIT_TOL = 1e-5
#: amplification (see :func:`amplification`) up to AMP_FREE costs nothing in the score
AMP_FREE = 10.0


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
    """(R^2, 1 - R^2) with a rounding-level tolerance: y that varies by no more than rounding
    counts as constant (then R^2 is 1 if the fit is as exact, else 0)."""
    tol = y.size * (16 * np.finfo(float).eps * max(1.0, float(np.max(np.abs(y))))) ** 2
    r2 = r2_from_sums(sse, sst, tol)
    return r2, (1.0 - r2 if sst <= tol else sse / sst)


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


def resolve_lib(lib) -> Sequence[SymbolicFunction]:
    """The library functions `lib` names: None (all), a name or SymbolicFunction, or a list or
    dict of them; an unknown name or an empty list is refused."""
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
    fns = resolve_lib(lib)
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
