"""kanarray.symbolic.judge: a found formula is exact when it is accurate (relative RMSE < 1e-6 on
fresh points, < 1e-3 for noisy data) and no longer than the truth + 2 operations (sympy's
count_ops, after simplification and the tidy-up of fitting's guards, round-off terms and
near-integers)."""
import pytest

pytest.importorskip("sympy")

from kanarray.funcs import library as slib  # noqa: E402
from kanarray.symbolic import judge as judgelib  # noqa: E402
from kanarray.symbolic.judge import judge  # noqa: E402

XY = (["x", "y"], [(1, 5), (1, 5)])


def test_the_same_formula_written_differently_is_exact():
    verdict = judge("y*x", "x*y", *XY)
    assert verdict["exact"] and verdict["rel_rmse"] == 0
    assert verdict["reason"] == ""
    # kanarray writes the i-th variable x_i
    assert judge("x_2*x_1", "mu*Nn", ["mu", "Nn"], [(1, 5), (1, 5)])["exact"]


def test_an_identity_counts_after_simplification_and_the_note_says_so():
    verdict = judge("2*sin(x)*cos(x)", "sin(2*x)", ["x"], [(-3, 3)])
    assert verdict["exact"]
    assert (verdict["ops_found"], verdict["ops_truth"]) == (2, 2)
    assert verdict["found"] == "sin(2*x)"
    assert "4 operations as written, 2 counted" in verdict["note"]
    # and the other way round: the truth, too, counts its shorter form
    reverse = judge("sin(2*x)", "2*sin(x)*cos(x)", ["x"], [(-3, 3)])
    assert reverse["exact"] and reverse["ops_truth"] == 2


def test_fitted_constants_within_1e9_are_exact():
    verdict = judge("0.0795774715459477*(1 + 1e-9)*q/(epsilon*r)", "q/(4*pi*epsilon*r)",
                    ["q", "epsilon", "r"], [(1, 5)] * 3)
    assert verdict["exact"] and verdict["rel_rmse"] == pytest.approx(1e-9, rel=1e-3)
    # a number counts nothing: 0.0796 costs less than 1/(4*pi)
    assert verdict["ops_found"] == 3 and verdict["ops_truth"] == 4
    assert judge("3.000000003*x*y", "3*x*y", *XY)["exact"]


def test_a_relative_error_of_1e4_is_a_near_miss():
    verdict = judge("1.0001*x*y", "x*y", *XY)
    assert not verdict["exact"] and not verdict["accurate"] and verdict["short"]
    assert verdict["rel_rmse"] == pytest.approx(1e-4, rel=1e-6)
    assert verdict["reason"] == "relative RMSE 1.00e-04 >= 1e-06"


def test_an_inaccurate_formula_is_counted_as_written():
    """Not exact whatever its length, so it is not simplified (which can take minutes)."""
    verdict = judge("2.02*sin(x)*cos(x)", "sin(2*x)", ["x"], [(-3, 3)])
    assert not verdict["accurate"] and verdict["ops_found"] == 4
    assert "not simplified" in verdict["note"]


def test_noisy_data_are_judged_to_1e3():
    near = judge("1.0001*x*y", "x*y", *XY, noise=True)
    assert near["exact"] and near["tolerance"] == 1e-3
    assert not judge("1.002*x*y", "x*y", *XY, noise=True)["exact"]


def test_an_equivalent_two_operations_longer_is_exact_three_is_not():
    two = judge("atan(tan(x))", "x", ["x"], [(-1, 1)])  # sympy leaves it as it is
    assert two["exact"] and (two["ops_found"], two["ops_allowed"]) == (2, 2)
    three = judge("1e5*sin(x*y/1e5)", "x*y", *XY)  # within 1e-8 of x*y on the ranges
    assert three["accurate"] and three["rel_rmse"] < 1e-7
    assert not three["exact"] and not three["short"]
    assert (three["ops_found"], three["ops_truth"], three["ops_allowed"]) == (4, 1, 3)
    assert three["reason"] == "4 operations > 1 of the truth + 2"


def test_a_formula_as_discover_writes_it_is_tidied_before_counting():
    """Guards that never switch on the ranges, round-off terms and near-integer numbers go."""
    found = ("0.500000000000076*Max(0.0001, Abs(1.0*x_1 - 2.49651889209183e-14))"
             "**0.999999999999995*Max(0.0001, Abs(1.0*x_2 - 8.75935234423659e-14))"
             "**1.99999999999995")
    verdict = judge(found, "1/2*k_spring*x**2", ["k_spring", "x"], [(1, 5), (1, 5)])
    assert verdict["exact"]
    assert verdict["found"] == "0.500000000000076*k_spring*x**2"
    assert (verdict["ops_found"], verdict["ops_truth"]) == (3, 3)
    for change in ("2 guard(s) removed", "2 negligible term(s) removed", "near-integer(s) snapped"):
        assert change in verdict["note"]
    tidied = judge("1.0000000001*x*y + 1e-12*x**2", "x*y", *XY)
    assert tidied["exact"] and tidied["found"] == "x*y"


def test_a_guard_that_switches_on_the_ranges_is_kept_and_counted():
    verdict = judge("sqrt(Max(x, 0))", "sqrt(Max(x, 0))", ["x"], [(-1, 1)])
    assert verdict["exact"] and verdict["found"] == "sqrt(Max(0, x))"
    assert verdict["ops_found"] == verdict["ops_truth"] == 3 and verdict["note"] == ""


def test_a_term_above_the_share_of_the_tolerance_is_not_round_off():
    verdict = judge("x*y + 1e-5*sin(x)", "x*y", *XY)  # relative size ~7e-7 > 0.1 x 1e-6
    assert verdict["accurate"] and "negligible" not in verdict["note"]
    assert verdict["ops_found"] == 4 and not verdict["short"]


def test_a_formula_undefined_on_part_of_the_ranges_is_not_exact():
    verdict = judge("log(x - 2)", "log(x)", ["x"], [(1, 5)])
    assert not verdict["exact"] and verdict["rel_rmse"] is None
    assert verdict["reason"].startswith("not finite at ")


def test_the_points_come_from_rng():
    import numpy as np

    a = judge("1.0001*x*y + 1e-3", "x*y", *XY, rng=3)
    assert a == judge("1.0001*x*y + 1e-3", "x*y", *XY, rng=np.random.default_rng(3))
    assert a["rel_rmse"] != judge("1.0001*x*y + 1e-3", "x*y", *XY, rng=4)["rel_rmse"]


@pytest.mark.parametrize("changes, error, match", [
    ({"found": 42}, TypeError, "found must be a sympy expression or a formula string"),
    ({"found": "x +"}, ValueError, "found is not a formula sympy can read"),
    ({"found": "x*z"}, ValueError, "found uses names that are not variables: z"),
    ({"found": "x*x_3"}, ValueError, "found uses names that are not variables: x_3"),
    ({"found": "foo(x)"}, ValueError, "found calls functions sympy does not know: foo"),
    ({"found": "x > 1"}, ValueError, "found must be an expression"),
    ({"truth": None}, TypeError, "truth must be a sympy expression"),
    ({"truth": "log(x - 2)"}, ValueError, "truth is not finite at"),
    ({"truth": "x - x"}, ValueError, "truth is 0 at every point"),
    ({"variables": "x y"}, TypeError, "variables must be a list of names"),
    ({"variables": []}, ValueError, "variables must be a non-empty list of identifiers"),
    ({"variables": ["x", "2y"]}, ValueError, "variables must be a non-empty list of identifiers"),
    ({"variables": ["x", "x"]}, ValueError, "variables must be distinct"),
    ({"ranges": [(1, 5)]}, ValueError, r"ranges must give one \(low, high\) per variable \(2\)"),
    ({"ranges": [(5, 1), (1, 5)]}, ValueError, "ranges must be finite with low < high"),
    ({"ranges": [(1, float("inf")), (1, 5)]}, ValueError, "ranges must be finite"),
    ({"ranges": [("1", 5), (1, 5)]}, TypeError, "ranges must hold"),
    ({"ranges": [(1, 5, 9), (1, 5)]}, TypeError, "ranges must hold"),
    ({"ranges": None}, TypeError, "ranges must be a list"),
    ({"noise": "yes"}, TypeError, "noise must be True or False"),
    ({"rng": -1}, ValueError, "rng must be >= 0"),
    ({"rng": 0.5}, TypeError, "rng must be an integer"),
    ({"n_points": 1}, ValueError, "n_points must be >= 2"),
])
def test_bad_arguments_are_named(changes, error, match):
    kwargs = {"found": "x*y", "truth": "x*y", "variables": ["x", "y"], "ranges": [(1, 5), (1, 5)]}
    kwargs.update(changes)
    with pytest.raises(error, match=match):
        judge(**kwargs)


def test_without_sympy_the_error_names_the_extra(monkeypatch):
    monkeypatch.setattr(slib, "optional_sympy", lambda: None)
    with pytest.raises(ImportError, match=r"pip install 'kanarray\[symbolic\]'"):
        judge("x", "x", ["x"], [(1, 2)])
    with pytest.raises(ImportError, match="symbolic"):
        judgelib.operations("x")
