"""Knot vectors and least-squares spline fits: grid update from samples and grid extension.

Both operations refit coefficients so that a spline keeps its shape on a new knot vector. For one
input i the fit is min_c |A c - Y|^2 + ridge |c|^2, where A (N, G+k) is the B-spline design
matrix of the N fit points (k+1 non-zeros a row) and Y (N, O) holds the target curve of every
edge leaving input i, all O outputs as right-hand sides of one factorisation. A^T A is banded
(bandwidth k), so a banded Cholesky solves it in O((G+k) k^2); the ridge keeps it positive
definite when some bases see no sample (the rank-deficient case).

All of this runs on the host in float64; the model moves results back to its device. scipy is
imported where it is used, so that the command line starts without it (`kanarray --help`).
"""
import numpy as np

from .checks import check_int, check_real, check_real_array
from ..kernels import cpu

RIDGE = 1e-12  # relative to the mean diagonal of A^T A


def uniform_knots(n_inputs, grid, k, grid_range):
    """(n_inputs, grid + 2k + 1): grid + 1 uniform knots on grid_range, k more on each side.

    A range too wide (the knots overflow) or too narrow (neighbours round to the same double)
    for that many distinct finite knots raises ValueError.
    """
    n_inputs = check_int(n_inputs, "n_inputs", 1)
    grid = check_int(grid, "grid", 1)
    k = check_int(k, "k", 0)
    if not (hasattr(grid_range, "__len__") and len(grid_range) == 2):
        raise TypeError(f"grid_range must be a pair (lo, hi), got {grid_range!r}")
    lo, hi = check_real(grid_range[0], "grid_range[0]"), check_real(grid_range[1], "grid_range[1]")
    with np.errstate(over="ignore", invalid="ignore"):  # checked below
        step = (hi - lo) / grid
        row = lo + step * np.arange(-k, grid + k + 1)
    if not _strictly_increasing_rows(row[None])[0]:
        raise ValueError(f"grid_range ({lo:g}, {hi:g}) cannot hold {grid + 2 * k + 1} distinct finite "
                         f"float64 knots (grid {grid}, {k} more each side); it needs lo < hi, "
                         "with hi - lo neither overflowing nor far below the spacing of doubles there")
    return np.tile(row, (n_inputs, 1))


def _check_knots(knots, name, min_columns=2):
    """knots: (I, M) finite, strictly increasing rows, I >= 1, M >= min_columns -> float64 array."""
    knots = check_real_array(knots, name)
    if knots.ndim != 2 or knots.shape[0] == 0 or knots.shape[1] < min_columns:
        raise ValueError(f"{name} must be a 2-D array (inputs, knots) with at least {min_columns} "
                         f"knots a row, got shape {knots.shape}")
    knots = np.asarray(knots, dtype=np.float64)
    if not np.all(_strictly_increasing_rows(knots)):
        raise ValueError(f"{name} must hold finite, strictly increasing rows")
    return knots


def _extend(interior, k):
    """extend_knots without its checks: the caller checks the result."""
    step = (interior[:, -1:] - interior[:, :1]) / (interior.shape[1] - 1)
    below = interior[:, :1] - step * np.arange(k, 0, -1)
    above = interior[:, -1:] + step * np.arange(1, k + 1)
    return np.concatenate([below, interior, above], axis=1)


def extend_knots(interior, k):
    """Add k knots on each side of interior knots (I, G+1) at their mean spacing (as pykan does).

    Raises ValueError when the added knots overflow or round onto their neighbours.
    """
    interior = _check_knots(interior, "interior")
    k = check_int(k, "k", 0)
    with np.errstate(over="ignore", invalid="ignore"):  # checked below
        knots = _extend(interior, k)
    if not np.all(_strictly_increasing_rows(knots)):
        raise ValueError(f"interior knots extended by {k} each side are not distinct finite float64 "
                         "values (the range is too wide or too narrow for its magnitude)")
    return knots


def subdivide_knots(interior, grid):
    """grid + 1 interior knots that follow the distribution of `interior` (I, G_old + 1).

    New knot j sits at fractional old position j * G_old / grid, linearly interpolated, so when
    grid is a multiple of G_old every old knot is kept and the old spline is exactly
    representable on the new knots (knot insertion): grid extension then loses nothing.
    """
    interior = _check_knots(interior, "interior")
    grid = check_int(grid, "grid", 1)
    old_grid = interior.shape[1] - 1
    positions = np.arange(grid + 1) * old_grid / grid
    return np.stack([np.interp(positions, np.arange(old_grid + 1), row) for row in interior])


def _check_samples(x, n_inputs=None, allow_empty=False):
    """x: an (N, I) array of finite reals, N >= 1 unless allow_empty, I = n_inputs if given
    -> float64 array."""
    x = check_real_array(x, "x")
    if x.ndim != 2 or (x.shape[0] == 0 and not allow_empty) or x.shape[1] == 0:
        raise ValueError(f"x must be a non-empty 2-D array (samples, inputs), got shape {x.shape}")
    if n_inputs is not None and x.shape[1] != n_inputs:
        raise ValueError(f"x must have one column per knot row ({n_inputs}), got shape {x.shape}")
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or Inf")
    return x


def _check_ranges(ranges, n_inputs, name):
    """ranges: (n_inputs, 2) finite rows (lo, hi) with lo < hi -> float64 array."""
    ranges = check_real_array(ranges, name)
    if ranges.shape != (n_inputs, 2):
        raise ValueError(f"{name} must have shape ({n_inputs}, 2), got {ranges.shape}")
    ranges = np.asarray(ranges, dtype=np.float64)
    if not np.all(np.isfinite(ranges)) or np.any(ranges[:, 0] >= ranges[:, 1]):
        raise ValueError(f"{name} must hold finite rows (lo, hi) with lo < hi, got {ranges.tolist()}")
    return ranges


def _strictly_increasing_rows(knots):
    """(I,) bool: row i is finite and strictly increasing."""
    with np.errstate(invalid="ignore"):  # inf - inf is NaN, which fails "> 0" as it should
        return np.all(np.isfinite(knots), axis=1) & np.all(np.diff(knots, axis=1) > 0, axis=1)


def knots_from_samples(x, grid, k, grid_eps, fallback_range, margin=0.0):
    """Interior knots mixing sample quantiles and uniform spacing, extended by k each side.

    interior = grid_eps * uniform + (1 - grid_eps) * quantiles, both spanning the samples'
    range widened by margin * (max - min) / grid on each side (margin >= 0, in mean cells:
    the first and last knot move out, the quantiles between them stay); quantile j is sorted
    sample number floor(j N / grid) (the largest for j = grid).
    x (N, I) -> (I, grid + 2k + 1) float64. An input whose samples are all equal, or too close
    together for grid + 2k + 1 distinct doubles, has nothing to adapt to: it gets uniform knots
    on fallback_range (I, 2), its current range. Samples spread too wide for finite knots
    (e.g. +-1e308, whose difference overflows) raise ValueError.
    """
    x = _check_samples(x)
    grid = check_int(grid, "grid", 1)
    k = check_int(k, "k", 0)
    grid_eps = check_real(grid_eps, "grid_eps", minimum=0, maximum=1)
    fallback_range = _check_ranges(fallback_range, x.shape[1], "fallback_range")
    margin = check_real(margin, "margin", minimum=0)
    n = x.shape[0]
    ordered = np.sort(x, axis=0)
    ids = [int(n / grid * j) for j in range(grid)] + [n - 1]
    adaptive = ordered[ids].T  # (I, grid + 1)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is detected below
        pad = margin * (adaptive[:, -1] - adaptive[:, 0]) / grid
        adaptive[:, 0] -= pad
        adaptive[:, -1] += pad
        span = adaptive[:, -1:] - adaptive[:, :1]
        uniform = adaptive[:, :1] + span * np.arange(grid + 1) / grid
        interior = grid_eps * uniform + (1 - grid_eps) * adaptive
        # quantiles of repeated samples can coincide: keep knots strictly increasing
        min_gap = 1e-6 * np.maximum(span, 1e-12) / grid
        for j in range(1, grid + 1):
            interior[:, j] = np.maximum(interior[:, j], interior[:, j - 1] + min_gap[:, 0])
        knots = _extend(interior, k)
    too_wide = ~np.all(np.isfinite(knots), axis=1)
    if too_wide.any():
        i = int(np.flatnonzero(too_wide)[0])
        raise ValueError(f"x: the samples of input {i} span [{ordered[0, i]:.6g}, {ordered[-1, i]:.6g}], "
                         f"too wide for finite float64 knots (grid {grid}, {k} more each side); "
                         "rescale the inputs")
    flat = (span[:, 0] <= 0) | ~_strictly_increasing_rows(knots)
    lo, hi = fallback_range[flat, :1], fallback_range[flat, 1:]
    with np.errstate(over="ignore", invalid="ignore"):  # checked below
        knots[flat] = _extend(lo + (hi - lo) * np.arange(grid + 1) / grid, k)
    if not np.all(_strictly_increasing_rows(knots)):
        raise ValueError(f"fallback_range {fallback_range[flat].tolist()} cannot hold "
                         f"{grid + 2 * k + 1} distinct finite float64 knots")
    return knots


def design_matrices(x, knots, k):
    """One sparse design matrix A_i (N, G+k) per input: A_i[b, m] = B_im(x[b, i]).

    x (N, I), knots (I, G + 2k + 1) strictly increasing rows.
    """
    k = check_int(k, "k", 0)
    knots = _check_knots(knots, "knots", min_columns=k + 2)
    x = _check_samples(x, knots.shape[0], allow_empty=True)
    n, n_inputs = x.shape
    n_basis = knots.shape[1] - 1 - k
    spans = np.empty((n, n_inputs), np.int64)
    values = np.empty((n, n_inputs, k + 1))
    derivs = np.empty((n, n_inputs, k + 1))
    cpu.span_basis(np.ascontiguousarray(x, np.float64), np.ascontiguousarray(knots, np.float64),
                   k, spans, values, derivs)
    from scipy.sparse import csr_matrix

    rows = np.repeat(np.arange(n), k + 1)
    matrices = []
    for i in range(n_inputs):
        cols = (spans[:, i, None] - k + np.arange(k + 1)).ravel()
        vals = values[:, i, :].ravel()
        keep = (cols >= 0) & (cols < n_basis) & (np.repeat(spans[:, i], k + 1) >= 0)
        matrices.append(csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(n, n_basis)))
    return matrices


def spline_curves(design, coef):
    """Spline part of every edge at the fit points: design[i] @ coef[i] -> list of (N, O)."""
    return [a @ c for a, c in zip(design, coef)]


def solve_banded_lstsq(design, targets, k):
    """min |A c - Y|^2 + ridge |c|^2 by a banded Cholesky of A^T A. A (N, K) sparse, Y (N, O)."""
    from scipy.linalg import LinAlgError, solveh_banded

    normal = (design.T @ design).toarray()
    n_basis = normal.shape[0]
    diag_mean = max(float(np.trace(normal)) / n_basis, 1e-300)
    rhs = design.T @ targets
    band = np.zeros((k + 1, n_basis))  # upper form: band[k + i - j, j] = normal[i, j]
    for d in range(k + 1):
        band[k - d, d:] = np.diagonal(normal, offset=d)
    ridge = RIDGE
    while True:
        banded = band.copy()
        banded[k] += ridge * diag_mean
        try:
            return solveh_banded(banded, rhs, lower=False)
        except LinAlgError:  # round-off left it indefinite: a larger ridge always succeeds
            ridge *= 1e3


def fit_points(x, knots, k):
    """The samples, plus uniform points over the new grid's interior so no basis goes unfitted.

    Fitting only on the samples leaves bases between samples undetermined (the reference
    implementation's lstsq then fails or returns zeros there, and test points that land in
    such a gap see a collapsed spline). The old spline is known everywhere, so fitting it on a
    uniform cover of the interior as well is free information. The cover stops at the interior:
    in the extension cells the old spline fades out on its own knots, and matching that fade on
    different knots would only pull the fit away where the data are. x (N, I) -> (N + M, I).
    """
    n_cover = 4 * knots.shape[1]
    lo, hi = knots[:, k], knots[:, -1 - k]
    cover = lo + (hi - lo) * (np.arange(n_cover)[:, None] + 0.5) / n_cover
    return np.concatenate([x, cover], axis=0)


def refit_coef(x, old_knots, old_coef, new_knots, k_old, k_new):
    """Coefficients on new_knots whose splines match the old ones (old_coef on old_knots).

    x (N, I) samples (N may be 0), old_knots (I, G_old + 2 k_old + 1), old_coef
    (I, G_old + k_old, O), new_knots (I, G_new + 2 k_new + 1) -> new coef (I, G_new + k_new, O),
    float64.
    """
    k_old, k_new = check_int(k_old, "k_old", 0), check_int(k_new, "k_new", 0)
    old_knots = _check_knots(old_knots, "old_knots", min_columns=k_old + 2)
    new_knots = _check_knots(new_knots, "new_knots", min_columns=k_new + 2)
    n_inputs = old_knots.shape[0]
    if new_knots.shape[0] != n_inputs:
        raise ValueError(f"new_knots must have {n_inputs} rows like old_knots, got {new_knots.shape}")
    x = _check_samples(x, n_inputs, allow_empty=True)
    old_coef = check_real_array(old_coef, "old_coef")
    n_basis = old_knots.shape[1] - 1 - k_old
    if old_coef.ndim != 3 or old_coef.shape[:2] != (n_inputs, n_basis) or old_coef.shape[2] == 0:
        raise ValueError(f"old_coef must have shape ({n_inputs}, {n_basis}, outputs), got {old_coef.shape}")
    if not np.all(np.isfinite(old_coef)):
        raise ValueError("old_coef contains NaN or Inf")
    points = fit_points(x, new_knots, k_new)
    old_design = design_matrices(points, old_knots, k_old)
    new_design = design_matrices(points, new_knots, k_new)
    curves = spline_curves(old_design, old_coef)
    return np.stack([solve_banded_lstsq(a, y, k_new) for a, y in zip(new_design, curves)])
