"""Synthetic datasets from a function, in the reference implementation's format."""
import numpy as np

from .checks import check_int


def _ranges(ranges, n_var):
    ranges = np.asarray(ranges, dtype=np.float64)
    if ranges.shape == (2,):
        ranges = np.tile(ranges, (n_var, 1))
    if ranges.shape != (n_var, 2) or not np.all(np.isfinite(ranges)) or np.any(ranges[:, 0] >= ranges[:, 1]):
        raise ValueError(f"ranges must be (lo, hi) or {n_var} pairs (lo, hi) with lo < hi, got {ranges.tolist()}")
    return ranges


def create_dataset(f, n_var=2, ranges=(-1, 1), train_num=1000, test_num=1000, seed=0):
    """Inputs uniform on `ranges`, labels f(inputs).

    f takes an (n, n_var) array and returns (n,) or (n, n_out).
    -> {"train_input" (train_num, n_var), "train_label" (train_num, n_out),
        "test_input", "test_label"}, all float64 NumPy arrays.
    """
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    n_var = check_int(n_var, "n_var", 1)
    train_num = check_int(train_num, "train_num", 1)
    test_num = check_int(test_num, "test_num", 1)
    bounds = _ranges(ranges, n_var)
    rng = np.random.default_rng(seed)
    dataset = {}
    for part, n in (("train", train_num), ("test", test_num)):
        x = bounds[:, 0] + (bounds[:, 1] - bounds[:, 0]) * rng.random((n, n_var))
        y = np.asarray(f(x), dtype=np.float64)
        if y.ndim not in (1, 2) or y.shape[0] != n:
            raise ValueError(f"f must return shape ({n},) or ({n}, n_out), got {y.shape}")
        y = y.reshape(n, -1)
        if not np.all(np.isfinite(y)):
            raise ValueError("f returned NaN or Inf on the sampled inputs")
        dataset[f"{part}_input"], dataset[f"{part}_label"] = x, y
    return dataset
