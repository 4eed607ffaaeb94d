"""kanarray.symbolic.snap: fitted numbers read as 0, small rationals and multiples of pi where
the data allow, and only there."""
import numpy as np
import pytest

from kanarray.symbolic.formula import formula_function
from kanarray.symbolic.snap import (candidates, linearize, refit_constants, snap_constants)

sp = pytest.importorskip("sympy")
x1, x2 = sp.symbols("x_1 x_2")
NAMES = ["x_1", "x_2"]


def rows(seed):
    return np.random.default_rng(seed).uniform(1, 5, (500, 2))


def accept_within(truth, share, held_out=rows(1)):
    """accept(candidate): its RMS distance to truth on held-out rows is at most share x RMS."""
    t = truth(held_out)
    scale = np.sqrt(np.mean(t ** 2))

    def accept(candidate):
        v = formula_function(candidate, NAMES)(held_out)
        return bool(np.sqrt(np.mean((v - t) ** 2)) <= share * scale)
    return accept


def test_candidates_start_with_0_and_the_unit_and_hold_the_simple_value_nearby():
    assert candidates(0.0795774715459)[:2] == [0, 1]
    assert sp.pi ** -1 / 4 in candidates(0.0795774715459)
    assert candidates(-0.4999999999)[:3] == [0, -1, sp.Rational(-1, 2)]
    assert 1 / sp.sqrt(2 * sp.pi) in candidates(0.3989422804)
    assert candidates(0.0) == [0]


def test_a_law_with_fitted_numbers_reads_as_written():
    def truth(x):
        return x[:, 0] / (4 * np.pi * x[:, 1] ** 2)

    fitted = (sp.Float(0.0795774715459) * x1 ** sp.Float(1.0000000000002)
              * x2 ** sp.Float(-1.99999999999) + sp.Float(3e-14) * x1)
    x = rows(0)
    snapped = snap_constants(fitted, NAMES, x, truth(x), accept_within(truth, 1e-7))
    assert snapped == x1 / (4 * sp.pi * x2 ** 2)


def test_a_number_the_data_pin_elsewhere_stays_fitted():
    def truth(x):
        return 0.51 * x[:, 0] ** 2

    x = rows(0)
    snapped = snap_constants(sp.Float(0.51) * x1 ** 2, NAMES, x, truth(x),
                             accept_within(truth, 1e-7))
    assert snapped == sp.Float(0.51) * x1 ** 2  # 1/2 is within SNAP_REL, the data say no


def test_a_scale_written_twice_snaps_to_1():
    """c * (x_1 / c) is x_1 whatever c: the refit of one makes the other's 1 exact."""
    def truth(x):
        return 2 * x[:, 0] + x[:, 1]

    c = sp.Float(63.6)
    fitted = c * (sp.Float(2.0) * x1 / c + x2 / c)
    x = rows(0)
    snapped = snap_constants(sp.Mul(fitted, evaluate=False), NAMES, x, truth(x),
                             accept_within(truth, 1e-7))
    assert snapped == 2 * x1 + x2


def test_guard_bounds_are_neither_snapped_nor_refitted():
    def truth(x):
        return np.log(x[:, 0]) + 0.5

    guarded = sp.log(sp.Max(sp.Abs(x1), sp.Float(1e-4))) + sp.Float(0.5000000001)
    x = rows(0)
    snapped = snap_constants(guarded, NAMES, x, truth(x), accept_within(truth, 1e-7))
    assert snapped == sp.log(sp.Max(sp.Abs(x1), sp.Float(1e-4))) + sp.Rational(1, 2)


def test_refit_constants_fits_numbers_started_near_the_truth():
    def truth(x):
        return 2.5 * np.sin(1.5 * x[:, 0] + 0.3) - 0.7

    start = sp.Float(2.4) * sp.sin(sp.Float(1.45) * x1 + sp.Float(0.25)) - sp.Float(0.6)
    x = rows(0)
    fitted = refit_constants(start, NAMES, x, truth(x))
    values = formula_function(fitted, NAMES)(rows(2))
    assert np.max(np.abs(values - truth(rows(2)))) < 1e-10


def test_refit_constants_leaves_a_formula_it_cannot_improve():
    expr = x1 * x2
    assert refit_constants(expr, NAMES, rows(0), rows(0).prod(axis=1)) is expr


def test_snap_names_rows_that_do_not_match():
    with pytest.raises(ValueError, match="one column per name"):
        snap_constants(x1, NAMES, np.zeros((5, 3)), np.zeros(5), lambda e: True)
    with pytest.raises(ValueError, match="one value per row"):
        snap_constants(x1, NAMES, np.zeros((5, 2)), np.zeros(4), lambda e: True)


def test_a_function_seen_along_a_straight_piece_becomes_its_tangent():
    """1 - exp(-0.0014 x_2) on x_2 in [1, 5] is 0.0014 x_2 to 1e-3 of its variation: a
    look-alike of a line that noisy labels let through."""
    x = rows(0)
    look_alike = 709 * x1 * (1 - sp.exp(sp.Float(-0.0014) * x2))
    straight = linearize(look_alike, NAMES, x)
    assert not straight.has(sp.exp)
    gap = (formula_function(straight, NAMES)(x) - formula_function(look_alike, NAMES)(x))
    assert np.max(np.abs(gap)) < 1e-2 * np.ptp(formula_function(look_alike, NAMES)(x))
    polished = refit_constants(straight, NAMES, x, 0.9926 * x[:, 0] * x[:, 1])
    assert np.allclose(formula_function(polished, NAMES)(x), 0.9926 * x[:, 0] * x[:, 1])


def test_a_part_in_one_variable_that_is_straight_in_it_becomes_a_line():
    """exp(-6/sqrt(x_2 + 14/11)) bends in its argument and so does the sqrt in x_2, but the two
    together are within 1.5% of a line in x_2 on [1, 5]: a look-alike of 2 pi g (Feynman
    II.34.29b) that 1% label noise let through."""
    x = rows(0)
    look_alike = 343 * x1 * sp.exp(-6 / sp.sqrt(x2 + sp.Rational(14, 11)))
    straight = linearize(look_alike, NAMES, x)
    assert not straight.has(sp.exp) and straight.is_polynomial(x1, x2)
    polished = refit_constants(straight, NAMES, x, 2 * np.pi * x[:, 0] * x[:, 1])
    assert np.allclose(formula_function(polished, NAMES)(x), 2 * np.pi * x[:, 0] * x[:, 1])


def test_a_curve_the_rows_see_bending_stays():
    x = rows(0)
    for curved in (sp.exp(-x2 ** 2 / 2), sp.sin(x1) * x2, 1 / sp.sqrt(x1 + x2), sp.Abs(x1 - 3)):
        assert linearize(curved, NAMES, x) == curved
    assert linearize(x1 ** 2 + 3 * x2, NAMES, x) == x1 ** 2 + 3 * x2  # integer powers stay
    near_one = 1 / sp.sqrt(1 + sp.Float(1e-4) * x1)                  # a power nearly straight
    assert linearize(near_one, NAMES, x).is_polynomial(x1)
