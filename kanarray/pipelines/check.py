"""Whether a formula read from a network may be presented as found, and how much of a network's
error is label noise: the held-out numbers kanarray.discover decides by.

    check = check_formula(x_test, y_test, formula_values, network_values)
    check["passed"], check["reason"]
    sigma = noise_level(x_test, y_test - network_values)

Both look at the residuals r = y - prediction on held-out rows x (the dataset's test split) and
ask how much of r is noise. Label noise is independent from row to row; what a model misses of
a smooth function is itself a smooth function of the inputs, so neighbouring rows miss by
nearly the same amount. whiteness() compares the two: with j(i) the nearest held-out row to
row i (inputs scaled to [0, 1] per column),

    w = mean_i (r_i - r_j(i))^2 / (2 mean_i r_i^2),

which is about 1 for pure noise (standard deviation about 1.4 / sqrt(N) over N rows, measured
on Gaussian noise in 1 to 8 inputs) and near 0 for a smooth misfit: w ~ sigma^2 / (sigma^2 +
b^2) for noise of standard deviation sigma beside a smooth misfit of RMS b, in few inputs. Its
power falls with the number of inputs that matter, as neighbours grow apart (with 8 inputs and
1000 rows a misfit of half the noise still gives w ~ 0.9).

whiteness has little power where the misfit is small beside the noise and spread over several
inputs. misfit_p() adds a parametric test of the same question: the residuals regressed by least
squares on a smooth basis, the Legendre polynomials of degrees 1 to MISFIT_DEGREE of each input
and of the formula's own values (each scaled to [-1, 1]), beside a constant; the F statistic of
that regression, F = (explained / k) / (left / (N - k - 1)) with k the rank of the basis beyond
the constant (columns that do not vary, or repeat others, do not count), follows
Fisher's F(k, N - k - 1) when the residuals are Gaussian label noise, and misfit_p is its
upper tail. A look-alike of Feynman II.34.29b with 1% noise, 343*B*J*mom*exp(-6/sqrt(g +
14/11))/h (3.8e-3 off the truth), left w = 0.89 but p = 4e-10; on the 48 true formulas of the
same benchmark with 1% noise p was at least 8e-5. A misfit much smaller than the noise stays
out of reach: 1/u - 1/2 for 1/(exp(u) - 1) (Feynman III.4.32, 1.4e-3 off) gives p = 1e-3.

noise_level: sigma = RMSE(r) * sqrt(min(1, w)), the part of a network's held-out error that does
not vary smoothly with the inputs. With noisy labels it is about the noise; on noise-free data
it is at most the network's own error and usually far below it.

check_formula's rule. On the held-out rows let e_f be the formula's RMSE against the labels, e_n
the RMSE of the spline network the formula was read from, s the RMS of the labels and N the
number of rows. The formula passes when

    (1) e_f <= EXACT_SHARE * s: it fits to round-off (noise-free data: it is the function), or
    (2) e_f <= CHECK_FACTOR * e_n, w(formula's residuals) >= 1 - WHITE_Z / sqrt(N) and
        misfit_p >= MISFIT_P, with N >= MIN_WHITE_ROWS: it is about as accurate as its network
        and what it leaves is noise.

(2) needs both parts. A look-alike built from the wrong functions can beat its network yet
leave a smooth residual, which no label noise explains: for q2*Ef (Feynman I.12.5, noise-free)
a formula of sines fitted the held-out labels to a relative 6.8e-5, 2.5 times better than its
network, with w = 0.01. With noisy
labels the true formula leaves the noise (w ~ 1) and an error close to the network's. Below
MIN_WHITE_ROWS held-out rows w says too little, and only (1) can pass. The threshold WHITE_Z
standard deviations below 1 refuses a true formula on noisy data about once in 500 checks;
MISFIT_P one in a million.
"""
import numpy as np

EXACT_SHARE = 1e-7    # e_f at most this share of the labels' RMS: round-off, the formula is exact
CHECK_FACTOR = 1.1    # e_f at most this many times the network's held-out RMSE
WHITE_Z = 4.0         # w must be at least 1 - WHITE_Z / sqrt(N)
MIN_WHITE_ROWS = 50   # fewer held-out rows: only an exact fit passes
MISFIT_DEGREE = 3     # misfit_p's basis: Legendre polynomials of degrees 1 .. this
MISFIT_P = 1e-6       # misfit_p must be at least this


def whiteness(x, residual):
    """w of the module docstring for residuals (N,) at inputs x (N, d); 1.0 for residuals that
    are all 0 (nothing left to explain), NaN for fewer than 2 rows."""
    from scipy.spatial import cKDTree  # scipy loads only where it is used

    x, r = _rows(x, residual=residual)
    if r.shape[0] < 2:
        return float("nan")
    power = float(np.mean(r ** 2))
    if power == 0:
        return 1.0
    low, high = x.min(axis=0), x.max(axis=0)
    scaled = (x - low) / np.where(high > low, high - low, 1.0)
    _, near = cKDTree(scaled).query(scaled, k=2)
    # duplicated rows: the query may return the row itself second; take the other one
    other = np.where(near[:, 0] == np.arange(r.shape[0]), near[:, 1], near[:, 0])
    return float(np.mean((r - r[other]) ** 2) / (2 * power))


def misfit_p(x, residual, values):
    """The module docstring's upper tail of F for residuals (N,) at inputs x (N, d) of a formula
    whose values there are `values` (N,): near 0 when a smooth function of each input and of the
    values explains part of the residuals; 1.0 when nothing is left to explain, NaN when the
    rows are too few for the basis (N at most twice its columns, 3 (d + 1) + 1)."""
    from scipy.stats import f as fisher  # scipy loads only where it is used

    x, r, values = _rows(x, residual=residual, values=values)
    if r.shape[0] <= 2 * (MISFIT_DEGREE * (x.shape[1] + 1) + 1):
        return float("nan")
    columns = np.column_stack([x, values])
    low, high = columns.min(axis=0), columns.max(axis=0)
    varying = high > low
    z = 2 * (columns[:, varying] - low[varying]) / (high - low)[varying] - 1
    basis = [np.ones_like(r)] + [np.polynomial.legendre.Legendre.basis(degree)(z[:, j])
                                 for j in range(z.shape[1])
                                 for degree in range(1, MISFIT_DEGREE + 1)]
    basis = np.column_stack(basis)
    n = r.shape[0]
    total = float(np.sum((r - r.mean()) ** 2))
    if total == 0:
        return 1.0
    coef, _, rank, _ = np.linalg.lstsq(basis, r, rcond=None)
    left = float(np.sum((r - basis @ coef) ** 2))
    k = rank - 1
    if k < 1 or left == 0:
        return 1.0 if k < 1 else 0.0
    return float(fisher.sf(((total - left) / k) / (left / (n - k - 1)), k, n - k - 1))


def _rows(x, **columns):
    """x as float64 (N, d) and each named column as float64 (N,), or a ValueError naming the
    argument whose rows do not match."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must be a 2-D array (rows, inputs), got shape {x.shape}")
    out = [x]
    for name, column in columns.items():
        column = np.asarray(column, dtype=np.float64).reshape(-1)
        if column.shape[0] != x.shape[0]:
            raise ValueError(f"{name} must have one value per row of x ({x.shape[0]}), got "
                             f"{column.shape[0]}")
        out.append(column)
    return out


def noise_level(x, residual):
    """The label noise a network's held-out residuals (N,) at inputs x show (module docstring):
    -> {"rmse": RMSE of the residuals, "whiteness": w, "sigma": rmse * sqrt(min(1, w))}."""
    r = np.asarray(residual, dtype=np.float64).reshape(-1)
    error = float(np.sqrt(np.mean(r ** 2)))
    w = whiteness(x, r)
    share = 1.0 if not np.isfinite(w) else min(1.0, w)
    return {"rmse": error, "whiteness": w, "sigma": error * float(np.sqrt(share))}


def check_formula(x, y, formula_values, network_values):
    """The module docstring's rule for one output on held-out rows: inputs x (N, d), labels y,
    the formula's values and its network's values (N,) there.
    -> {"passed", "rmse" (e_f), "network_rmse" (e_n), "labels_rms" (s), "exact_limit",
        "network_limit", "whiteness", "whiteness_min" (None below MIN_WHITE_ROWS rows),
        "misfit_p", "reason": why it failed, with the numbers ("" when it passed)}"""
    x, y = _rows(x, y=y)
    values = np.asarray(formula_values, dtype=np.float64).reshape(-1)
    network = np.asarray(network_values, dtype=np.float64).reshape(-1)
    if not (y.shape == values.shape == network.shape):
        raise ValueError(f"y, formula_values and network_values must have one value per row, "
                         f"got {y.shape}, {values.shape}, {network.shape}")
    n = y.shape[0]
    labels_rms = float(np.sqrt(np.mean(y ** 2)))
    finite = bool(np.all(np.isfinite(values)))
    e_f = float(np.sqrt(np.mean((values - y) ** 2))) if finite else float("inf")
    e_n = float(np.sqrt(np.mean((network - y) ** 2)))
    out = {"passed": False, "rmse": e_f, "network_rmse": e_n, "labels_rms": labels_rms,
           "exact_limit": EXACT_SHARE * labels_rms, "network_limit": CHECK_FACTOR * e_n,
           "whiteness": whiteness(x, values - y) if finite else float("nan"),
           "whiteness_min": 1 - WHITE_Z / np.sqrt(n) if n >= MIN_WHITE_ROWS else None,
           "misfit_p": misfit_p(x, values - y, values) if finite else float("nan"),
           "reason": ""}
    if not finite:
        out["reason"] = (f"the formula is not finite on {int(np.sum(~np.isfinite(values)))} of "
                         f"{n} held-out rows")
        return out
    if e_f <= out["exact_limit"]:
        out["passed"] = True
        return out
    reasons = []
    if e_f > out["network_limit"]:
        reasons.append(f"its held-out RMSE {e_f:.3e} is {e_f / e_n:.3g} times its network's "
                       f"{e_n:.3e} (at most {CHECK_FACTOR:g} times allowed)" if e_n > 0 else
                       f"its held-out RMSE {e_f:.3e} is above its network's {e_n:.3e}")
    if out["whiteness_min"] is None:
        reasons.append(f"it does not fit to round-off (RMSE {e_f:.3e} > {out['exact_limit']:.3e}"
                       f", {EXACT_SHARE:g} x the labels' RMS) and {n} held-out rows are too few "
                       f"(< {MIN_WHITE_ROWS}) to tell label noise from a misfit")
    elif out["whiteness"] < out["whiteness_min"]:
        reasons.append(f"its residuals vary smoothly with the inputs, as a misfit does and label "
                       f"noise does not (whiteness {out['whiteness']:.2f} < "
                       f"{out['whiteness_min']:.2f}), and it does not fit to round-off (RMSE "
                       f"{e_f:.3e} > {out['exact_limit']:.3e}, {EXACT_SHARE:g} x the labels' RMS)")
    elif out["misfit_p"] < MISFIT_P:  # NaN (too few rows for the basis) leaves it to w
        reasons.append(f"smooth functions of the inputs explain part of its residuals, as of a "
                       f"misfit and not of label noise (F test p = {out['misfit_p']:.1e} < "
                       f"{MISFIT_P:g}), and it does not fit to round-off (RMSE {e_f:.3e} > "
                       f"{out['exact_limit']:.3e}, {EXACT_SHARE:g} x the labels' RMS)")
    out["passed"] = not reasons
    out["reason"] = "; ".join(reasons)
    return out
