"""Specification tests for kanarray.funcs.library (library of symbolic functions + fitter)."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from kanarray.symbolic import fit as F
from kanarray.funcs import library as S
from kanarray.symbolic.fit import AMP_FREE, FIT_TOL, fit_affine, suggest
from kanarray.funcs.library import LIBRARY, SymbolicFunction, add_symbolic, affine_text, evaluate_affine

# pykan's names and complexities
EXPECTED_COMPLEXITY = {
    "x": 1, "x^2": 2, "x^3": 3, "x^4": 3, "x^5": 3,
    "1/x": 2, "1/x^2": 2, "1/x^3": 3, "1/x^4": 4, "1/x^5": 5,
    "sqrt": 2, "x^1.5": 4, "1/sqrt(x)": 2, "exp": 2, "log": 2, "abs": 3,
    "sin": 2, "cos": 2, "tan": 3, "tanh": 3, "sgn": 3,
    "arcsin": 4, "arccos": 4, "arctan": 4, "arctanh": 4, "0": 0, "gaussian": 3,
}

# the mathematical functions, valid on each function's `domain`
REFERENCE = {
    "x": lambda x: x, "x^2": lambda x: x ** 2, "x^3": lambda x: x ** 3,
    "x^4": lambda x: x ** 4, "x^5": lambda x: x ** 5,
    "1/x": lambda x: 1 / x, "1/x^2": lambda x: 1 / x ** 2, "1/x^3": lambda x: 1 / x ** 3,
    "1/x^4": lambda x: 1 / x ** 4, "1/x^5": lambda x: 1 / x ** 5,
    "sqrt": np.sqrt, "x^1.5": lambda x: x ** 1.5, "1/sqrt(x)": lambda x: 1 / np.sqrt(x),
    "exp": np.exp, "log": np.log, "abs": np.abs, "sin": np.sin, "cos": np.cos,
    "tan": np.tan, "tanh": np.tanh, "sgn": np.sign, "arcsin": np.arcsin,
    "arccos": np.arccos, "arctan": np.arctan, "arctanh": np.arctanh,
    "0": lambda x: 0 * x, "gaussian": lambda x: np.exp(-x ** 2),
}

BUILTINS = list(EXPECTED_COMPLEXITY)
X = np.linspace(-1.0, 1.0, 201)


def domain_points(fn, n=60, seed=0):
    lo, hi = fn.domain
    return np.random.default_rng(seed).uniform(lo, hi, n)


# ----------------------------------------------------------------------------- library


def test_library_has_every_required_function_with_pykan_complexity():
    for name, comp in EXPECTED_COMPLEXITY.items():
        assert name in LIBRARY, name
        fn = LIBRARY[name]
        assert isinstance(fn, SymbolicFunction)
        assert fn.name == name
        assert fn.complexity == comp, name
        assert callable(fn.f) and callable(fn.df) and callable(fn.text)
        assert fn.sympy is not None and fn.domain is not None


def test_symbolic_function_is_frozen():
    with pytest.raises(Exception):
        LIBRARY["sin"].complexity = 7


@pytest.mark.parametrize("name", BUILTINS)
def test_df_matches_central_finite_differences(name):
    fn = LIBRARY[name]
    x = domain_points(fn)
    h = 1e-6 * np.maximum(1.0, np.abs(x))
    fd = (fn.f(x + h) - fn.f(x - h)) / (2 * h)
    df = fn.df(x)
    assert df.shape == x.shape
    np.testing.assert_allclose(df, fd, rtol=1e-6, atol=1e-8 * max(1.0, np.max(np.abs(df))))


@pytest.mark.parametrize("name", BUILTINS)
def test_safe_form_equals_the_mathematical_function_on_its_domain(name):
    fn = LIBRARY[name]
    x = domain_points(fn, seed=1)
    np.testing.assert_allclose(fn.f(x), REFERENCE[name](x), rtol=1e-13, atol=1e-15)


WIDE = np.concatenate([
    np.linspace(-10, 10, 2001),
    np.logspace(-300, 300, 61), -np.logspace(-300, 300, 61),
    [0.0, -0.0, 1.0, -1.0, np.pi / 2, -np.pi / 2, 1e-4, -1e-4, 5e-324, -5e-324,
     np.finfo(float).tiny, np.finfo(float).max, -np.finfo(float).max, 1 - 1e-16, 1e30, 1e31],
])


@pytest.mark.parametrize("name", BUILTINS)
def test_f_and_df_are_finite_everywhere_without_fp_warnings(name):
    fn = LIBRARY[name]
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        fx, dfx = fn.f(WIDE), fn.df(WIDE)
    assert fx.shape == WIDE.shape and dfx.shape == WIDE.shape
    assert np.all(np.isfinite(fx)), WIDE[~np.isfinite(fx)]
    assert np.all(np.isfinite(dfx)), WIDE[~np.isfinite(dfx)]
    # works on 2-D arrays (the grid search and the model use them)
    grid = WIDE[:2000].reshape(40, 50)
    assert fn.f(grid).shape == grid.shape and fn.df(grid).shape == grid.shape


def test_safe_forms_at_the_singularities():
    L = LIBRARY
    assert L["1/x"].f(np.array([0.0]))[0] == 0.0  # odd reciprocals: sign(0) = 0
    assert L["1/x"].f(np.array([1e-9]))[0] == pytest.approx(1.0 / S.X_EPS)
    assert L["1/x"].f(np.array([-1e-9]))[0] == pytest.approx(-1.0 / S.X_EPS)
    assert L["1/x^2"].f(np.array([0.0]))[0] == pytest.approx(S.X_EPS ** -2)
    assert L["log"].f(np.array([0.0]))[0] == pytest.approx(math.log(S.X_EPS))
    assert L["log"].f(np.array([-2.0]))[0] == pytest.approx(math.log(2.0))  # log|x|
    assert L["sqrt"].f(np.array([-4.0]))[0] == 0.0
    assert L["sqrt"].df(np.array([-4.0, 0.0]))[0] == 0.0
    assert L["1/sqrt(x)"].f(np.array([-1.0]))[0] == pytest.approx(S.X_EPS ** -0.5)
    assert L["arcsin"].f(np.array([2.0]))[0] == pytest.approx(np.pi / 2)
    assert L["arccos"].f(np.array([-3.0]))[0] == pytest.approx(np.pi)
    assert np.all(L["arcsin"].df(np.array([1.0, -1.0, 2.0])) == 0.0)
    assert np.isfinite(L["arctanh"].f(np.array([1.0]))[0])
    assert abs(L["tan"].f(np.array([np.pi / 2]))[0]) <= 1.0 / S.X_EPS
    assert L["exp"].f(np.array([1e4]))[0] == pytest.approx(math.exp(S.EXP_MAX))
    # clamped regions are flat: derivative exactly zero there
    assert L["1/x"].df(np.array([0.0, 5e-5]))[0] == 0.0
    assert L["exp"].df(np.array([1e4]))[0] == 0.0


def test_sign_and_abs_behave():
    x = np.array([-3.0, -0.5, -0.0, 0.0, 0.25, 7.0])
    np.testing.assert_array_equal(LIBRARY["sgn"].f(x), [-1, -1, 0, 0, 1, 1])
    np.testing.assert_array_equal(LIBRARY["sgn"].df(x), np.zeros(6))
    np.testing.assert_array_equal(LIBRARY["abs"].f(x), [3, 0.5, 0, 0, 0.25, 7])
    np.testing.assert_array_equal(LIBRARY["abs"].df(x), [-1, -1, 0, 0, 1, 1])


@pytest.mark.parametrize("name", BUILTINS)
def test_sympy_and_text_forms_match_f(name):
    sympy = pytest.importorskip("sympy")
    fn = LIBRARY[name]
    x0 = float(domain_points(fn, n=1, seed=2)[0])
    z = sympy.Symbol("z")
    val = float(sympy.sympify(fn.sympy(z)).subs(z, x0).evalf())
    assert val == pytest.approx(float(fn.f(np.array([x0]))[0]), rel=1e-12, abs=1e-14)
    txt = fn.text("(z)")  # a NumPy expression
    assert eval(txt, vars(np), {"z": x0}) == pytest.approx(float(fn.f(np.array([x0]))[0]), rel=1e-12,
                                                    abs=1e-14)


GUARD_PROBES = np.concatenate([
    np.linspace(-6, 6, 241),
    [0.0, -0.0, 0.3 * S.X_EPS, -0.7 * S.X_EPS, S.X_EPS, -S.X_EPS, 1.0, -1.0, 1.001, -1.001,
     1 - S.X_EPS, -1 + S.X_EPS, 1 - 0.5 * S.X_EPS, np.pi / 2, -np.pi / 2, np.pi / 2 + 1e-6],
])


@pytest.mark.parametrize("name", BUILTINS)
def test_sympy_form_is_the_safe_form_on_every_input(name):
    """The formula writes what the network computes: guards included, 0 and the clamps too."""
    sympy = pytest.importorskip("sympy")
    fn = LIBRARY[name]
    z = sympy.Symbol("z")
    with np.errstate(all="ignore"):  # lambdified Max/Piecewise evaluate every branch
        got = sympy.lambdify([z], fn.sympy(z), "numpy")(GUARD_PROBES) * np.ones_like(GUARD_PROBES)
    want = fn.f(GUARD_PROBES)
    assert np.all(np.abs(got - want) <= 1e-12 * np.maximum(1.0, np.abs(want))), name


@pytest.mark.parametrize("name", [n for n in BUILTINS if n not in ("0", "1/sqrt(x)")])
def test_canonical_map_preserves_the_function_and_is_idempotent(name):
    fn = LIBRARY[name]
    rng = np.random.default_rng(3)
    for _ in range(5):
        a = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 2.0)
        b = rng.uniform(-1.0, 1.0)
        p = np.array([a, b, rng.uniform(-2, 2), rng.uniform(-1, 1)])
        q = fn.canonical(p)
        x = (domain_points(fn, n=25, seed=4) - b) / a  # a*x + b lies in the domain
        np.testing.assert_allclose(evaluate_affine(fn, q, x), evaluate_affine(fn, p, x),
                                   rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(fn.canonical(q), q, rtol=1e-12, atol=1e-12)
        if name in ("x^2", "x^3", "x^4", "x^5", "1/x", "1/x^2", "1/x^3", "1/x^4", "1/x^5",
                    "log", "abs", "sgn", "x", "sin", "cos", "tan", "tanh", "arcsin",
                    "arccos", "arctan", "arctanh", "gaussian"):
            assert q[0] > 0
        if name in ("x", "x^2", "x^3", "1/x", "sqrt", "x^1.5", "log", "abs"):
            assert abs(q[0]) == pytest.approx(1.0)
        if name in ("sin", "cos", "tan"):
            assert abs(q[1]) <= np.pi / 2 + 1e-12
        if name == "exp":
            assert q[1] == 0.0


# ----------------------------------------------------------------------------- fitter

E = math.exp
FIT_CASES = [
    # name, truth on X, canonical (a, b, c, d)
    ("sin", lambda x: 2 * np.sin(3 * x + 0.5) - 1, (3, 0.5, 2, -1)),
    ("sin", lambda x: 2 * np.sin(3 * x + 0.5 + np.pi), (3, 0.5, -2, 0)),
    ("exp", lambda x: -0.7 * np.exp(1.3 * x - 0.2) + 0.4, (1.3, 0, -0.7 * E(-0.2), 0.4)),
    ("x^2", lambda x: 1.5 * (0.8 * x + 0.3) ** 2 + 0.1, (1, 0.375, 0.96, 0.1)),
    ("x^3", lambda x: 2 * (-0.5 * x + 1) ** 3, (1, -2, -0.25, 0)),
    ("tanh", lambda x: -2 * np.tanh(1.7 * x - 0.4) + 0.3, (1.7, -0.4, -2, 0.3)),
    ("1/x", lambda x: 0.5 / (2 * x + 3) + 1, (1, 1.5, 0.25, 1)),
    ("log", lambda x: 1.2 * np.log(2 * x + 3) - 0.3, (1, 1.5, 1.2, -0.3 + 1.2 * math.log(2))),
    ("cos", lambda x: np.cos(-2 * x + 0.3), (2, -0.3, 1, 0)),
    ("sqrt", lambda x: np.sqrt(2 * x + 3), (1, 1.5, math.sqrt(2), 0)),
    ("arctan", lambda x: 0.5 * np.arctan(4 * x - 1) + 2, (4, -1, 0.5, 2)),
    ("gaussian", lambda x: 1.3 * np.exp(-(2 * x - 0.5) ** 2), (2, -0.5, 1.3, 0)),
    ("x", lambda x: 3 * x - 1, (1, 0, 3, -1)),
]


@pytest.mark.parametrize("name,truth,expected", FIT_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(FIT_CASES)])
def test_fit_affine_recovers_exact_edges_in_canonical_form(name, truth, expected):
    y = truth(X)
    params, r2 = fit_affine(X, y, name)
    assert isinstance(params, np.ndarray) and params.dtype == np.float64 and params.shape == (4,)
    assert isinstance(r2, float)
    assert r2 > 1 - 1e-12
    assert np.max(np.abs(evaluate_affine(name, params, X) - y)) < 1e-9
    np.testing.assert_allclose(params, expected, rtol=0, atol=1e-6)


def test_fit_affine_with_noise_is_close_and_r2_reflects_the_noise():
    rng = np.random.default_rng(5)
    clean = 2 * np.sin(3 * X + 0.5) - 1
    y = clean + rng.normal(0, 0.02, X.size)
    params, r2 = fit_affine(X, y, "sin")
    np.testing.assert_allclose(params, (3, 0.5, 2, -1), atol=0.05)
    sst = np.sum((y - y.mean()) ** 2)
    expected_r2 = 1 - np.sum((evaluate_affine("sin", params, X) - y) ** 2) / sst
    assert r2 == pytest.approx(expected_r2, abs=1e-12)
    assert 0.99 < r2 < 1 - 1e-6


def test_fit_affine_uses_all_samples_beyond_the_grid_subsample():
    x = np.linspace(-1, 1, 20001)
    params, r2 = fit_affine(x, 2 * np.sin(3 * x + 0.5) - 1, "sin", max_samples=64)
    assert r2 > 1 - 1e-12
    np.testing.assert_allclose(params, (3, 0.5, 2, -1), atol=1e-6)


def test_fit_affine_degenerate_cases_give_no_nan():
    y = np.sin(2 * X)
    params, r2 = fit_affine(X, y, "0")
    np.testing.assert_allclose(params, (0, 0, 0, y.mean()), atol=1e-15)
    assert r2 == pytest.approx(0.0, abs=1e-12)
    const = SymbolicFunction("one", lambda z: np.ones_like(z), lambda z: np.zeros_like(z), 1)
    params, r2 = fit_affine(X, y, const)
    assert np.all(np.isfinite(params)) and r2 == pytest.approx(0.0, abs=1e-12)
    # constant data: every function fits exactly with c = 0
    for name in ("0", "x^2", "sin", "1/x", "sgn"):
        params, r2 = fit_affine(X, np.full_like(X, 2.5), name)
        assert np.all(np.isfinite(params)) and r2 == 1.0
        np.testing.assert_allclose(evaluate_affine(name, params, X), 2.5, atol=1e-12)


@pytest.mark.parametrize("name", [n for n in BUILTINS if n != "0"])
def test_fit_affine_never_returns_nan_on_awkward_data(name):
    y = np.where(X > 0.1, 1.0, -1.0) + 0.1 * X ** 2  # a step: no function fits it exactly
    params, r2 = fit_affine(X, y, name, grid_number=21, iteration=1)
    assert np.all(np.isfinite(params)) and 0.0 <= r2 <= 1.0


def test_fit_affine_without_canonical_map_prefers_positive_a():
    sq = SymbolicFunction("sq", lambda z: z * z, lambda z: 2 * z, 2)  # even, no canonical
    y = (0.8 * X + 0.3) ** 2
    params, r2 = fit_affine(X, y, sq)
    assert r2 > 1 - 1e-12 and params[0] > 0
    np.testing.assert_allclose(evaluate_affine(sq, params, X), y, atol=1e-9)


def test_fit_affine_rejects_bad_input():
    with pytest.raises(ValueError):
        fit_affine(X, X[:-1], "sin")
    with pytest.raises(ValueError):
        fit_affine(X, np.where(X > 0, np.nan, 1.0), "sin")
    with pytest.raises(ValueError):
        fit_affine(X, X, "no-such-function")
    with pytest.raises(TypeError):
        fit_affine(X, X, 3.0)
    with pytest.raises(ValueError):
        fit_affine(X, X, "sin", a_range=(1, -1))
    with pytest.raises(ValueError):
        fit_affine(X, X, "sin", grid_number=1)


# ----------------------------------------------------------------------------- suggest


def test_suggest_ranks_sin_first_on_sin_data():
    y = 2 * np.sin(3 * X + 0.5) - 1
    res = suggest(X, y)
    assert len(res) == 5
    name, r2, comp, score, params = res[0]
    assert name in ("sin", "cos")  # cos with a phase shift is the same curve
    assert r2 > 1 - 1e-12 and comp == 2
    np.testing.assert_allclose(evaluate_affine(name, params, X), y, atol=1e-9)
    assert {"sin", "cos"} == {res[0][0], res[1][0]}
    scores = [row[3] for row in res]
    assert scores == sorted(scores)


def test_suggest_ranks_x2_first_on_quadratic_data():
    res = suggest(X, 1.5 * (0.8 * X + 0.3) ** 2 + 0.1, topk=3)
    assert len(res) == 3
    assert res[0][0] == "x^2" and res[0][1] > 1 - 1e-12
    np.testing.assert_allclose(res[0][4], (1, 0.375, 0.96, 0.1), atol=1e-6)


def test_suggest_score_formula_and_trade_off():
    y = 2 * np.sin(3 * X + 0.5) - 1
    sin_c5 = SymbolicFunction("sin_c5", np.sin, np.cos, 5)  # same curve, more complex
    res = suggest(X, y, lib=["x", sin_c5, "sin"], topk=3)
    names = [r[0] for r in res]
    assert names[0] == "sin"                   # exact and simple beats exact and complex
    for name, r2, comp, score, params in res:
        amp = F.amplification(name if name != "sin_c5" else sin_c5, params, X, y)
        expected = 0.8 * comp + 0.2 * (math.log2(min(max(1 - r2, 0), 1) + FIT_TOL)
                                       + math.log2(max(1.0, amp / AMP_FREE)))
        assert score == pytest.approx(expected)
    # an exact fit beats a poor simpler one
    res = suggest(X, y, lib=["x", "sin"])
    assert res[0][0] == "sin" and res[1][0] == "x" and res[1][1] < 0.9
    # weight_simple = 1 ranks by complexity only; r2_threshold drops poor fits
    assert suggest(X, y, lib=["sin", "0", "x"], weight_simple=1.0)[0][0] == "0"
    res = suggest(X, y, lib=["sin", "0", "x"], r2_threshold=0.9)
    assert [r[0] for r in res] == ["sin"]
    assert len(suggest(X, y, topk=None)) == len(LIBRARY)


def test_score_trades_one_complexity_unit_for_a_16_times_better_fit():
    base = F.score(1 - 1e-3, 1)
    assert F.score(1 - (1e-3 + FIT_TOL) / 16 + FIT_TOL, 2) == pytest.approx(base)
    # differences far below FIT_TOL do not count: exact and 1e-8 away score alike
    assert F.score(1.0, 2) - F.score(1 - 1e-8, 2) == pytest.approx(0.0, abs=5e-4)
    # amplification up to AMP_FREE is free; beyond, log2(A / AMP_FREE) is added to the fit term
    assert F.score(1.0, 2, amp=AMP_FREE) == F.score(1.0, 2)
    assert F.score(1.0, 2, amp=8 * AMP_FREE) == pytest.approx(F.score(1.0, 2) + 0.2 * 3)
    for bad in (dict(r2=float("nan")), dict(amp=-1.0), dict(complexity=-1), dict(weight_simple=2)):
        with pytest.raises(ValueError):
            F.score(**{"r2": 1.0, "complexity": 1, **bad})
    with pytest.raises(ValueError):
        F.amplification("x", [1.0, 0.0, 1.0], X, X)


def spline_like(y, rel=3e-4, seed=0):
    """y plus a small smooth wiggle, as a trained spline carries (rel * std(y) in size)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, y.size)
    wiggle = sum(rng.normal() * np.sin((k + 1) * np.pi * t + rng.uniform(0, 6)) for k in range(6))
    return y + rel * np.std(y) * wiggle / np.std(wiggle)


@pytest.mark.parametrize("seed", range(5))
def test_suggest_prefers_x2_over_a_small_frequency_cosine(seed):
    """A cosine of tiny frequency fits a wiggly parabola a little better; x^2 must still win."""
    xs = np.sort(np.random.default_rng(seed).uniform(-1, 1, 400))
    y = spline_like(xs ** 2, seed=seed)
    res = {r[0]: r for r in suggest(xs, y, topk=None)}
    assert res["cos"][1] >= res["x^2"][1] - 1e-9  # the cosine is at least as good a fit ...
    cos_a, _, cos_c, _ = res["cos"][4]
    assert abs(cos_a) < 1 and abs(cos_c) > 10     # ... because it is used near its vertex
    assert F.amplification("cos", res["cos"][4], xs, y) > 10 * AMP_FREE
    assert suggest(xs, y, topk=1)[0][0] == "x^2"


@pytest.mark.parametrize("seed", range(5))
def test_suggest_prefers_x_over_sin_of_a_small_argument(seed):
    """A line bent by 1e-3 x^3 (a spline's systematic error): sin(0.09 x) fits it 100x better,
    but x is within FIT_TOL (1 - R^2 ~ 1e-7) and simpler, so x wins."""
    xs = np.sort(np.random.default_rng(seed).uniform(-1, 1, 400))
    y = 0.7 * xs - 0.2 - 1e-3 * (1 + 0.2 * seed) * xs ** 3
    res = {r[0]: r for r in suggest(xs, y, topk=None)}
    assert 1 - res["sin"][1] < (1 - res["x"][1]) / 100 and 1 - res["x"][1] < FIT_TOL / 10
    assert abs(res["sin"][4][0]) < 0.2              # a small argument
    assert suggest(xs, y, topk=1)[0][0] == "x"


def test_suggest_penalises_a_blown_up_coefficient_against_the_simple_function():
    """50 - 50 cos(0.2 x) fits exactly where x^2 leaves 1 - R^2 ~ 7e-7 (within FIT_TOL): x^2 wins."""
    xs = np.linspace(-1, 1, 300)
    y = 50 * (1 - np.cos(0.2 * xs))              # = x^2 - x^4 / 300 + ...
    res = suggest(xs, y, lib=["cos", "x^2"], topk=None)
    assert [r[0] for r in res] == ["x^2", "cos"]
    assert res[1][1] > res[0][1]                  # the cosine is the better fit ...
    np.testing.assert_allclose(res[1][4], (0.2, 0, -50, 50), atol=1e-6)  # ... blown up
    assert F.amplification("cos", res[1][4], xs, y) > 100


def test_suggest_rejects_bad_arguments():
    with pytest.raises(ValueError):
        suggest(X, X, topk=0)
    with pytest.raises(ValueError):
        suggest(X, X, weight_simple=1.5)
    with pytest.raises(ValueError):
        suggest(X, X, lib=["nope"])


# ----------------------------------------------------------------------------- add_symbolic


@pytest.fixture
def softplus():
    def f(z):
        return np.logaddexp(0.0, z)

    def df(z):
        return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float)))

    yield add_symbolic("softplus", f, df, 3, domain=(-5, 5))
    LIBRARY.pop("softplus", None)
    LIBRARY.pop("sp2", None)


def test_add_symbolic_registers_a_function_fit_affine_uses(softplus):
    assert LIBRARY["softplus"] is softplus and softplus.complexity == 3
    y = 2 * np.logaddexp(0, 4 * X - 0.3) + 0.1
    params, r2 = fit_affine(X, y, "softplus")
    assert r2 > 1 - 1e-12
    np.testing.assert_allclose(params, (4, -0.3, 2, 0.1), atol=1e-6)
    assert suggest(X, y, lib=["x", "x^2", "softplus"])[0][0] == "softplus"
    assert "softplus(" in affine_text("softplus", params)
    # its derivative passes the same finite-difference check as the built-ins
    x = domain_points(softplus)
    fd = (softplus.f(x + 1e-6) - softplus.f(x - 1e-6)) / 2e-6
    np.testing.assert_allclose(softplus.df(x), fd, rtol=1e-6)


def test_add_symbolic_validates_arguments(softplus):
    f, df = np.sin, np.cos
    with pytest.raises(TypeError):
        add_symbolic(3, f, df, 2)
    with pytest.raises(ValueError):
        add_symbolic("  ", f, df, 2)
    with pytest.raises(ValueError):
        add_symbolic("sin", f, df, 2)                 # built-ins are protected
    with pytest.raises(ValueError):
        add_symbolic("softplus", f, df, 2)            # already registered
    with pytest.raises(TypeError):
        add_symbolic("sp2", "sin", df, 2)
    with pytest.raises(TypeError):
        add_symbolic("sp2", f, None, 2)
    for bad in ("2", 2.5, True, None):
        with pytest.raises(TypeError):
            add_symbolic("sp2", f, df, bad)
    with pytest.raises(ValueError):
        add_symbolic("sp2", f, df, -1)
    with pytest.raises(ValueError):
        add_symbolic("sp2", f, df, 2, domain=(1.0, 0.0))
    with pytest.raises(TypeError):
        add_symbolic("sp2", f, df, 2, domain="ab")
    with pytest.raises(TypeError):
        add_symbolic("sp2", f, df, 2, text="sin")
    with np.errstate(divide="ignore", invalid="ignore"):
        with pytest.raises(ValueError):
            add_symbolic("sp2", np.log, lambda z: 1 / z, 2)  # not safe: -inf / nan at 0
    with pytest.raises(ValueError):
        add_symbolic("sp2", math.sin, math.cos, 2)           # not array-valued
    with pytest.raises(ValueError):
        add_symbolic("sp2", lambda z: np.sum(z), df, 2)      # wrong shape
    assert "sp2" not in LIBRARY
    add_symbolic("softplus", np.sin, np.cos, 2, overwrite=True)
    assert LIBRARY["softplus"].complexity == 2


# ----------------------------------------------------------------------------- imports


def test_library_imports_and_formats_without_sympy():
    code = (
        "import sys\n"
        "sys.modules['sympy'] = None  # any 'import sympy' now raises ImportError\n"
        "import kanarray.funcs.library as S\n"
        "out = S.affine_formula('sin', [3.0, 0.5, 2.0, -1.0])\n"
        "assert isinstance(out, str) and 'sin(3*x + 0.5)' in out, out\n"
        "import numpy as np\n"
        "assert all(np.all(np.isfinite(fn.f(np.linspace(-2, 2, 9)))) for fn in S.LIBRARY.values())\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_affine_formula_gives_sympy_when_available():
    sympy = pytest.importorskip("sympy")
    expr = S.affine_formula("sin", [3.0, 0.5, 2.0, -1.0])
    x = sympy.Symbol("x")
    assert isinstance(expr, sympy.Expr)
    assert float(expr.subs(x, 0.2)) == pytest.approx(2 * math.sin(1.1) - 1)
