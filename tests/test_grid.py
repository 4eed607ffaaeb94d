"""Specifications of kanarray.core.grid.knots_from_samples: where grid updates put the knots."""
import numpy as np
import pytest

from kanarray.core.grid import (design_matrices, extend_knots, knots_from_samples, refit_coef,
                           subdivide_knots, uniform_knots)

# Two inputs, nine samples each (deliberately unsorted). With grid = 4 the quantile knots are
# sorted samples number floor(j * 9 / 4) = 0, 2, 4, 6 and the last one, 8.
SAMPLES = np.array([
    [4.0, 1.5, 0.0, 8.0, 1.0, 0.5, 6.0, 2.0, 3.0],
    [-1.0, -8.0, 0.0, -3.0, -6.0, -0.5, -2.0, -4.0, -1.5],
]).T  # (9, 2)
FALLBACK = np.array([[-1.0, 1.0], [-1.0, 1.0]])
# sorted column 0: 0 .5 1 1.5 2 3 4 6 8  -> quantiles 0 1 2 4 8, uniform 0 2 4 6 8
# sorted column 1: -8 -6 -4 -3 -2 -1.5 -1 -.5 0 -> quantiles -8 -4 -2 -1 0, uniform -8 -6 -4 -2 0
INTERIOR = {
    0.0: [[0, 1, 2, 4, 8], [-8, -4, -2, -1, 0]],  # quantiles only
    1.0: [[0, 2, 4, 6, 8], [-8, -6, -4, -2, 0]],  # uniform only
    0.3: [[0, 1.3, 2.6, 4.6, 8], [-8, -4.6, -2.6, -1.3, 0]],  # 0.3 uniform + 0.7 quantiles
}


@pytest.mark.parametrize("grid_eps", sorted(INTERIOR))
def test_interior_knots_mix_uniform_and_quantiles_by_grid_eps(grid_eps):
    knots = knots_from_samples(SAMPLES, 4, 2, grid_eps, FALLBACK)
    assert knots.shape == (2, 4 + 2 * 2 + 1)
    np.testing.assert_allclose(knots[:, 2:-2], INTERIOR[grid_eps], rtol=0, atol=1e-12)


@pytest.mark.parametrize("grid_eps, interior", [
    (0.0, [[-1, 1, 2, 4, 9], [-9, -4, -2, -1, 1]]),  # the end knots move out by 0.5 * 8 / 4 = 1
    (1.0, [[-1, 1.5, 4, 6.5, 9], [-9, -6.5, -4, -1.5, 1]]),  # uniform over the widened range
])
def test_margin_widens_the_range_by_mean_cells(grid_eps, interior):
    knots = knots_from_samples(SAMPLES, 4, 2, grid_eps, FALLBACK, margin=0.5)
    np.testing.assert_allclose(knots[:, 2:-2], interior, rtol=0, atol=1e-12)
    np.testing.assert_allclose(knots[:, :2], knots[:, 2:3] - np.array([5.0, 2.5]))  # spacing 10 / 4


def test_extension_knots_continue_the_mean_spacing():
    """k = 2 knots on each side, spaced (last - first) / grid = 2 for both inputs."""
    knots = knots_from_samples(SAMPLES, 4, 2, 0.0, FALLBACK)
    np.testing.assert_allclose(knots[:, :2], [[-4, -2], [-12, -10]])
    np.testing.assert_allclose(knots[:, -2:], [[10, 12], [2, 4]])


def test_constant_input_falls_back_to_uniform_knots_on_its_range():
    x = np.column_stack([np.full(6, 3.0), np.linspace(0, 1, 6)])
    knots = knots_from_samples(x, 2, 1, 0.0, np.array([[-2.0, 2.0], [0.0, 1.0]]))
    np.testing.assert_allclose(knots[0], [-4, -2, 0, 2, 4])


def test_samples_too_close_for_distinct_knots_fall_back():
    """1e16 and 1e16 + 2 differ by one ulp: no grid of 4 fits between them in float64."""
    x = np.array([[1e16], [1e16 + 2.0], [1e16], [1e16 + 2.0]])
    knots = knots_from_samples(x, 4, 3, 0.02, np.array([[-1.0, 1.0]]))
    np.testing.assert_allclose(knots[0], np.linspace(-2.5, 2.5, 11))


@pytest.mark.parametrize("column", [[-1e308, 1e308, 0.0], [0.0, 1.7e308, 1.0], [-1.7e308, 0.0, 5.0]])
def test_samples_too_wide_for_finite_knots_raise(column):
    """+-1e308 overflows max - min; [0, 1.7e308] is fine until the extension knots overflow."""
    x = np.column_stack([np.linspace(0, 1, 3), column])
    with pytest.raises(ValueError, match="x: the samples of input 1 span .* too wide"):
        knots_from_samples(x, 3, 3, 0.02, FALLBACK)


@pytest.mark.parametrize("kw, error, words", [
    ({"x": np.zeros((0, 2))}, ValueError, "x must be a non-empty 2-D array"),
    ({"x": np.zeros(5)}, ValueError, "x must be a non-empty 2-D array"),
    ({"x": np.array([[0.0, np.nan]])}, ValueError, "x contains NaN"),
    ({"x": np.zeros((3, 2), complex)}, TypeError, "x must hold real numbers"),
    ({"grid": 0}, ValueError, "grid must be >= 1"),
    ({"grid": 2.0}, TypeError, "grid must be an integer"),
    ({"k": -1}, ValueError, "k must be >= 0"),
    ({"grid_eps": 1.5}, ValueError, "grid_eps must be <= 1"),
    ({"grid_eps": "0.5"}, TypeError, "grid_eps must be a real number"),
    ({"margin": -0.5}, ValueError, "margin must be >= 0"),
    ({"margin": None}, TypeError, "margin must be a real number"),
    ({"fallback_range": np.array([[-1.0, 1.0]])}, ValueError, r"fallback_range must have shape \(2, 2\)"),
    ({"fallback_range": np.array([[1.0, -1.0], [0.0, 1.0]])}, ValueError, "lo < hi"),
    ({"fallback_range": np.array([[-1e308, 1e308], [0.0, 1.0]]), "x": np.zeros((3, 2))},
     ValueError, "fallback_range .* cannot hold"),
])
def test_bad_arguments_are_named(kw, error, words):
    args = {"x": SAMPLES, "grid": 4, "k": 2, "grid_eps": 0.02, "fallback_range": FALLBACK, **kw}
    with pytest.raises(error, match=words):
        knots_from_samples(**args)


def test_uniform_knots_cover_the_range_and_extend_by_k():
    knots = uniform_knots(3, 4, 2, (-1, 1))
    assert knots.shape == (3, 9)
    np.testing.assert_allclose(knots, np.tile(np.linspace(-2, 2, 9), (3, 1)), rtol=0, atol=1e-15)


@pytest.mark.parametrize("args, error, words", [
    ((2, 5, 3, (-1e308, 1e308)), ValueError, r"grid_range \(-1e\+308, 1e\+308\) cannot hold 12 distinct"),
    ((2, 5, 3, (0.0, 1.7e308)), ValueError, "grid_range .* cannot hold"),  # the extension overflows
    ((2, 5, 3, (1e16, 1e16 + 4)), ValueError, "grid_range .* cannot hold"),  # knots round together
    ((2, 5, 3, (1.0, -1.0)), ValueError, "grid_range .* cannot hold"),
    ((2, 5, 3, (0.0, np.nan)), ValueError, r"grid_range\[1\] must be a finite number"),
    ((2, 5, 3, "ab"), TypeError, r"grid_range\[0\] must be a real number"),
    ((2, 5, 3, 1.0), TypeError, "grid_range must be a pair"),
    ((0, 5, 3, (-1, 1)), ValueError, "n_inputs must be >= 1"),
    ((2, 5.0, 3, (-1, 1)), TypeError, "grid must be an integer"),
    ((2, 5, -1, (-1, 1)), ValueError, "k must be >= 0"),
])
def test_uniform_knots_bad_arguments_are_named(args, error, words):
    with pytest.raises(error, match=words):
        uniform_knots(*args)


def test_subdivided_then_extended_knots_keep_the_old_ones():
    interior = np.array([[0.0, 1.0, 4.0]])
    knots = extend_knots(subdivide_knots(interior, 4), 1)
    np.testing.assert_allclose(knots, [[-1.0, 0.0, 0.5, 1.0, 2.5, 4.0, 5.0]])


@pytest.mark.parametrize("call, error, words", [
    (lambda: extend_knots(np.array([[0.0, 1e308]]), 2), ValueError, "not distinct finite"),
    (lambda: extend_knots(np.array([[0.0, 0.0, 1.0]]), 1), ValueError,
     "interior must hold finite, strictly increasing"),
    (lambda: extend_knots(np.array([[0.0, np.nan]]), 1), ValueError, "interior must hold finite"),
    (lambda: extend_knots(np.array([0.0, 1.0]), 1), ValueError, "interior must be a 2-D array"),
    (lambda: extend_knots(np.array([[0.0, 1.0]]), -1), ValueError, "k must be >= 0"),
    (lambda: subdivide_knots(np.array([[0.0, 1.0]]), 0), ValueError, "grid must be >= 1"),
    (lambda: subdivide_knots([["a", "b"]], 2), TypeError, "interior must hold real numbers"),
    (lambda: design_matrices(np.zeros((4, 2)), uniform_knots(3, 4, 3, (-1, 1)), 3), ValueError,
     "x must have one column per knot row"),
    (lambda: design_matrices(np.zeros((4, 1)), uniform_knots(1, 1, 3, (-1, 1))[:, :4], 3), ValueError,
     "knots must be a 2-D array .* at least 5 knots"),
    (lambda: design_matrices(np.full((4, 1), np.inf), uniform_knots(1, 4, 3, (-1, 1)), 3), ValueError,
     "x contains NaN or Inf"),
    (lambda: refit_coef(np.zeros((0, 1)), uniform_knots(1, 4, 3, (-1, 1)), np.zeros((1, 6, 2)),
                        uniform_knots(1, 8, 3, (-1, 1)), 3, 3), ValueError,
     r"old_coef must have shape \(1, 7, outputs\)"),
    (lambda: refit_coef(np.zeros((0, 1)), uniform_knots(1, 4, 3, (-1, 1)), np.full((1, 7, 2), np.nan),
                        uniform_knots(1, 8, 3, (-1, 1)), 3, 3), ValueError, "old_coef contains NaN"),
    (lambda: refit_coef(np.zeros((0, 1)), uniform_knots(1, 4, 3, (-1, 1)), np.zeros((1, 7, 2)),
                        uniform_knots(2, 8, 3, (-1, 1)), 3, 3), ValueError, "new_knots must have 1 rows"),
])
def test_knot_and_refit_helpers_name_bad_arguments(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_refit_onto_a_refined_grid_reproduces_the_spline():
    """Without samples, a spline refit onto knots that keep the old ones is reproduced exactly
    (knot insertion), checked at points across the old grid."""
    old_knots, new_knots = uniform_knots(2, 4, 3, (-1, 1)), uniform_knots(2, 8, 3, (-1, 1))
    old_coef = np.random.default_rng(0).standard_normal((2, 7, 3))
    new_coef = refit_coef(np.zeros((0, 2)), old_knots, old_coef, new_knots, 3, 3)
    points = np.tile(np.linspace(-1, 1, 50)[:, None], (1, 2))
    old = [a @ c for a, c in zip(design_matrices(points, old_knots, 3), old_coef)]
    new = [a @ c for a, c in zip(design_matrices(points, new_knots, 3), new_coef)]
    np.testing.assert_allclose(new, old, atol=1e-9)
