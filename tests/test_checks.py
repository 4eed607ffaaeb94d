"""Specifications of kanarray.core.checks: shared argument checks name the argument and the expectation."""
import numpy as np
import pytest

from kanarray.core.checks import check_bool, check_callable, check_choice, check_int, check_real, check_seed


def test_check_real_accepts_python_and_numpy_reals_and_returns_a_python_float():
    for value in (2, 2.5, np.float32(2.5), np.int64(2), np.float64(-0.0)):
        out = check_real(value, "lr")
        assert type(out) is float and out == float(value)


@pytest.mark.parametrize("value, error, words", [
    ("0.5", TypeError, "noise_scale must be a real number, got str '0.5'"),
    (0.5 + 0j, TypeError, "noise_scale must be a real number, got complex"),
    (np.array([0.5]), TypeError, "noise_scale must be a real number, got ndarray"),
    (np.array(0.5), TypeError, "noise_scale must be a real number, got ndarray"),
    (True, TypeError, "noise_scale must be a real number, got bool"),
    (None, TypeError, "noise_scale must be a real number, got NoneType"),
    (float("nan"), ValueError, "noise_scale must be a finite number, got nan"),
    (-float("inf"), ValueError, "noise_scale must be a finite number"),
    pytest.param(10**400, ValueError, "noise_scale must be a finite number", id="int-beyond-float"),
])
def test_check_real_rejects_non_reals_and_non_finite(value, error, words):
    with pytest.raises(error, match=words):
        check_real(value, "noise_scale")


@pytest.mark.parametrize("bounds, value, words", [
    ({"minimum": 0}, -1e-300, "x must be >= 0"),
    ({"maximum": 1}, 1.5, "x must be <= 1"),
    ({"above": 0}, 0, "x must be > 0"),
    ({"below": 1}, 1, "x must be < 1"),
])
def test_check_real_bounds_are_inclusive_or_strict_as_named(bounds, value, words):
    with pytest.raises(ValueError, match=words):
        check_real(value, "x", **bounds)


def test_check_real_inclusive_bounds_admit_the_edge():
    assert check_real(0, "x", minimum=0) == 0.0
    assert check_real(1, "x", maximum=1) == 1.0


def test_check_int_bounds_and_types():
    assert check_int(np.int64(5), "k", 1, maximum=5) == 5 and type(check_int(np.int64(5), "k", 1)) is int
    with pytest.raises(ValueError, match="k must be <= 20, got 21"):
        check_int(21, "k", 1, maximum=20)
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        check_int(0, "k", 1)
    for value in (True, np.bool_(True), 2.0, "2", None):
        with pytest.raises(TypeError, match="k must be an integer"):
            check_int(value, "k", 1)


def test_check_seed():
    assert check_seed(0) == 0 and check_seed(np.uint64(2**63)) == 2**63
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        check_seed(-1)
    with pytest.raises(TypeError, match="rng_seed must be an integer >= 0, got None"):
        check_seed(None, "rng_seed")
    with pytest.raises(TypeError, match="seed must be an integer, got float"):
        check_seed(1.0)


def test_check_bool():
    assert check_bool(np.bool_(True), "update_grid") is True
    for value in (1, "False", None):
        with pytest.raises(TypeError, match="update_grid must be True or False"):
            check_bool(value, "update_grid")


def test_check_callable():
    assert check_callable(len, "callback") is len
    with pytest.raises(TypeError, match="callback must be callable, got int 5"):
        check_callable(5, "callback")


def test_check_choice_compares_type_and_value():
    assert check_choice("adam", "opt", ("lbfgs", "adam")) == "adam"
    with pytest.raises(ValueError, match="opt must be one of 'lbfgs', 'adam'; got 'sgd'"):
        check_choice("sgd", "opt", ("lbfgs", "adam"))
    with pytest.raises(ValueError, match="log must be one of 0, 1; got True"):
        check_choice(True, "log", (0, 1))
    with pytest.raises(ValueError, match="opt must be one of"):
        check_choice(np.array(["adam"]), "opt", ("lbfgs", "adam"))
