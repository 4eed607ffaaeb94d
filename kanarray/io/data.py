"""Datasets in the reference implementation's format: synthetic from a function, or split from arrays.

A dataset is a dict of float64 NumPy arrays: "train_input" (N_train, n_var), "train_label"
(N_train, n_out), "test_input" (N_test, n_var) and "test_label" (N_test, n_out).
"""
import numpy as np

from ..core.checks import check_bool, check_callable, check_int, check_real, check_real_array, check_seed


def _ranges(ranges, n_var):
    """(lo, hi) for every variable, or one pair for all -> (n_var, 2) float64."""
    message = f"ranges must be one pair (lo, hi) or {n_var} pairs, with finite lo < hi and hi - lo"
    try:
        bounds = np.asarray(check_real_array(ranges, "ranges"), dtype=np.float64)
    except TypeError as exc:
        raise TypeError(f"{message}; {exc}") from None
    if bounds.shape == (2,):
        bounds = np.tile(bounds, (n_var, 1))
    if bounds.shape != (n_var, 2) or not np.all(np.isfinite(bounds)):
        raise ValueError(f"{message}, got {np.asarray(ranges).tolist()}")
    with np.errstate(over="ignore"):  # an overflowing width is refused below
        width = bounds[:, 1] - bounds[:, 0]
    if not np.all((width > 0) & np.isfinite(width)):
        raise ValueError(f"{message}, got {np.asarray(ranges).tolist()}")
    return bounds


def create_dataset(f, n_var=2, ranges=(-1, 1), train_num=1000, test_num=1000, seed=0,
                   normalize_label=False):
    """Inputs uniform on `ranges`, labels f(inputs).

    f           takes an (n, n_var) array and returns (n,) or (n, n_out) finite reals
    ranges      one (lo, hi) for every variable, or n_var pairs, e.g. [(0, 1), (1, 5)]
    seed        integer >= 0 seeding the draw of the inputs (train first, then test)
    normalize_label
                False (default): labels are f's values. True: every label column becomes
                (label - mean) / std with the mean and standard deviation (ddof=0) of that
                column over the training labels, applied to train and test alike; the two
                are returned as "label_mean" and "label_std" (1, n_out), so that a prediction
                p maps back to p * label_std + label_mean. A constant column cannot be
                normalised and raises ValueError.

    -> {"train_input" (train_num, n_var), "train_label" (train_num, n_out),
        "test_input", "test_label"}, all float64 NumPy arrays.
    """
    check_callable(f, "f")
    n_var = check_int(n_var, "n_var", 1)
    train_num = check_int(train_num, "train_num", 1)
    test_num = check_int(test_num, "test_num", 1)
    seed = check_seed(seed)
    normalize_label = check_bool(normalize_label, "normalize_label")
    bounds = _ranges(ranges, n_var)
    rng = np.random.default_rng(seed)
    dataset = {}
    for part, n in (("train", train_num), ("test", test_num)):
        x = bounds[:, 0] + (bounds[:, 1] - bounds[:, 0]) * rng.random((n, n_var))
        y = check_real_array(f(x), "f's return value")
        if y.ndim not in (1, 2) or y.shape[0] != n or y.size == 0:
            raise ValueError(f"f must return shape ({n},) or ({n}, n_out), got {y.shape}")
        y = np.asarray(y, dtype=np.float64).reshape(n, -1)
        if not np.all(np.isfinite(y)):
            raise ValueError(f"f returned NaN or Inf on the sampled {part} inputs")
        dataset[f"{part}_input"], dataset[f"{part}_label"] = x, y
    if normalize_label:
        mean = dataset["train_label"].mean(axis=0, keepdims=True)
        std = dataset["train_label"].std(axis=0, keepdims=True)
        if np.any(std == 0):
            raise ValueError(f"normalize_label=True: label column(s) {np.flatnonzero(std[0] == 0).tolist()} "
                             "are constant over the training set and cannot be scaled to unit std")
        for part in ("train", "test"):
            dataset[f"{part}_label"] = (dataset[f"{part}_label"] - mean) / std
        dataset["label_mean"], dataset["label_std"] = mean, std
    return dataset


def from_arrays(x, y, test_frac=0.2, seed=0):
    """Split rows of inputs x (N, n_var) and labels y (N,) or (N, n_out) into a dataset.

    round(test_frac * N) rows drawn at random (held_out_mask, seeded with `seed`, an integer
    >= 0) go to the test part, the rest to the training part, both in the order of x; each part
    must get at least one row. The parts are float64 copies; x and y are left as they were.
    """
    x = check_real_array(x, "x")
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        hint = " (one variable: x.reshape(-1, 1))" if x.ndim == 1 else ""
        raise ValueError(f"x must be a non-empty 2-D array (rows, n_var){hint}, got shape {x.shape}")
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or Inf")
    n = x.shape[0]
    y = check_real_array(y, "y")
    if y.ndim not in (1, 2) or y.shape[0] != n or y.size == 0:
        raise ValueError(f"y must have shape ({n},) or ({n}, n_out) to match x's {n} rows, got {y.shape}")
    y = np.asarray(y, dtype=np.float64).reshape(n, -1)
    if not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or Inf")
    test_frac = check_real(test_frac, "test_frac", above=0, below=1)
    seed = check_seed(seed)
    n_test = round(test_frac * n)
    if not 1 <= n_test <= n - 1:
        raise ValueError(f"test_frac={test_frac} of {n} rows gives {n_test} test and {n - n_test} "
                         "training rows; each part needs at least one row")
    is_test = held_out_mask(n, test_frac, seed)
    return {"train_input": x[~is_test], "train_label": y[~is_test],
            "test_input": x[is_test], "test_label": y[is_test]}


def held_out_mask(n_rows, test_frac, seed):
    """(n_rows,) bool: which rows are test rows, round(test_frac n_rows) of them drawn at random
    (seeded): every train/test split of kanarray (from_arrays, kanarray.io.tabular, kanarray
    fit, the estimators). Depends on nothing but its arguments, so every MPI rank can slice its
    block of it. At least one row lands on each side, or a ValueError says how to get there."""
    if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 0:
        raise ValueError(f"n_rows must be an integer >= 0, got {n_rows!r}")
    if isinstance(test_frac, bool) or not isinstance(test_frac, (int, float, np.floating)) \
            or not 0 < test_frac < 1:
        raise ValueError(f"test_frac must be a fraction strictly between 0 and 1, got "
                         f"{test_frac!r}")
    n_test = int(round(test_frac * n_rows))
    if n_test < 1 or n_test > n_rows - 1:
        side = "test" if n_test < 1 else "training"
        raise ValueError(f"test_frac={test_frac} of {n_rows} rows leaves no {side} rows; "
                         f"use more rows or a test_frac {'larger' if n_test < 1 else 'smaller'}")
    mask = np.zeros(n_rows, dtype=bool)
    mask[np.random.default_rng(seed).permutation(n_rows)[:n_test]] = True
    return mask
