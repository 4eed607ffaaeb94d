"""Specifications of kanarray.io.data: create_dataset and from_arrays."""
import numpy as np
import pytest

import kanarray
from kanarray import create_dataset, from_arrays


def product(x):
    return x[:, :1] * x[:, 1:]


# ---------------------------------------------------------------- create_dataset


def test_per_variable_ranges_are_filled():
    data = create_dataset(product, n_var=2, ranges=[(0, 1), (1, 5)], train_num=2000, test_num=500)
    for part in ("train_input", "test_input"):
        x = data[part]
        assert np.all((x[:, 0] >= 0) & (x[:, 0] <= 1) & (x[:, 1] >= 1) & (x[:, 1] <= 5))
    x = data["train_input"]  # 2000 uniform draws come within 1% of each end
    np.testing.assert_allclose(x.min(axis=0), [0, 1], atol=0.05)
    np.testing.assert_allclose(x.max(axis=0), [1, 5], atol=0.05)


def test_one_range_applies_to_every_variable():
    data = create_dataset(lambda x: x.sum(axis=1), n_var=3, ranges=(2, 3), train_num=300)
    assert data["train_input"].shape == (300, 3) and data["train_label"].shape == (300, 1)
    assert data["train_input"].min() >= 2 and data["train_input"].max() <= 3


def test_labels_are_f_of_the_inputs_by_default():
    data = create_dataset(product, train_num=50, test_num=40, seed=3)
    assert set(data) == {"train_input", "train_label", "test_input", "test_label"}
    for part in ("train", "test"):
        np.testing.assert_array_equal(data[f"{part}_label"], product(data[f"{part}_input"]))
        assert data[f"{part}_input"].dtype == data[f"{part}_label"].dtype == np.float64


def test_normalize_label_uses_training_statistics_for_both_parts():
    two_outputs = lambda x: np.column_stack([3 + 2 * x[:, 0], x[:, 1] ** 2])  # noqa: E731
    plain = create_dataset(two_outputs, train_num=200, test_num=100, seed=1)
    data = create_dataset(two_outputs, train_num=200, test_num=100, seed=1, normalize_label=True)
    np.testing.assert_array_equal(data["train_input"], plain["train_input"])
    np.testing.assert_allclose(data["train_label"].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(data["train_label"].std(axis=0), 1, rtol=1e-12)
    mean, std = plain["train_label"].mean(axis=0), plain["train_label"].std(axis=0)
    np.testing.assert_allclose(data["label_mean"], [mean])
    np.testing.assert_allclose(data["label_std"], [std])
    for part in ("train", "test"):
        np.testing.assert_allclose(data[f"{part}_label"] * std + mean, plain[f"{part}_label"],
                                   rtol=1e-12, atol=1e-12)


def test_normalize_label_refuses_a_constant_column():
    with pytest.raises(ValueError, match=r"normalize_label=True: label column\(s\) \[1\] are constant"):
        create_dataset(lambda x: np.column_stack([x[:, 0], np.ones(len(x))]), normalize_label=True)


def test_same_seed_same_dataset_other_seed_other_inputs():
    first, again = create_dataset(product, seed=7), create_dataset(product, seed=7)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["train_input"], create_dataset(product, seed=8)["train_input"])


@pytest.mark.parametrize("kw, error, words", [
    ({"f": 42}, TypeError, "f must be callable"),
    ({"n_var": 0}, ValueError, "n_var must be >= 1"),
    ({"train_num": "10"}, TypeError, "train_num must be an integer"),
    ({"test_num": 2.0}, TypeError, "test_num must be an integer"),
    ({"seed": -1}, ValueError, "seed must be >= 0"),
    ({"seed": 1.5}, TypeError, "seed must be an integer"),
    ({"seed": None}, TypeError, "seed must be an integer"),
    ({"normalize_label": "yes"}, TypeError, "normalize_label must be True or False"),
    ({"ranges": (1, -1)}, ValueError, "ranges must be one pair"),
    ({"ranges": [(0, 1)] * 3}, ValueError, "ranges must be one pair .* or 2 pairs"),
    ({"ranges": (0, np.nan)}, ValueError, "ranges must be one pair"),
    ({"ranges": (-1e308, 1e308)}, ValueError, "ranges must be one pair .* finite lo < hi and hi - lo"),
    ({"ranges": ("a", "b")}, TypeError, "ranges must be one pair"),
    ({"ranges": None}, TypeError, "ranges must be one pair"),
    ({"f": lambda x: x[:3, 0]}, ValueError, "must return shape"),
    ({"f": lambda x: x[:, :0]}, ValueError, "must return shape"),
    ({"f": lambda x: x[:, 0] + 1j}, TypeError, "f's return value must hold real numbers"),
    ({"f": lambda x: None}, TypeError, "f's return value must hold real numbers"),
    ({"f": lambda x: np.log(x[:, 0] - 1)}, ValueError, "f returned NaN or Inf"),
])
def test_create_dataset_names_bad_arguments(kw, error, words):
    args = {"f": product, "train_num": 20, "test_num": 10, **kw}
    with np.errstate(invalid="ignore"), pytest.raises(error, match=words):
        create_dataset(**args)


# ---------------------------------------------------------------- from_arrays


def test_from_arrays_splits_every_row_once_and_keeps_pairs():
    x = np.column_stack([np.arange(50.0), -np.arange(50.0)])
    y = 10.0 * np.arange(50)
    x_before, y_before = x.copy(), y.copy()
    data = from_arrays(x, y, test_frac=0.2, seed=4)
    assert data["train_input"].shape == (40, 2) and data["test_input"].shape == (10, 2)
    assert data["train_label"].shape == (40, 1) and data["test_label"].shape == (10, 1)
    rows = np.concatenate([data["train_input"][:, 0], data["test_input"][:, 0]])
    np.testing.assert_array_equal(np.sort(rows), np.arange(50.0))  # each row exactly once
    assert not np.array_equal(data["test_input"][:, 0], np.arange(40.0, 50.0))  # drawn at random
    for part in ("train", "test"):  # a row keeps its label
        np.testing.assert_array_equal(data[f"{part}_label"][:, 0], 10.0 * data[f"{part}_input"][:, 0])
    data["train_input"][...] = 0.0
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(y, y_before)


def test_from_arrays_is_seeded_and_converts_to_float64():
    x, y = np.arange(20, dtype=np.int32).reshape(10, 2), np.ones((10, 3), np.float32)
    first, again, other = from_arrays(x, y, seed=1), from_arrays(x, y, seed=1), from_arrays(x, y, seed=2)
    for key in first:
        assert first[key].dtype == np.float64
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["train_input"], other["train_input"])


def test_from_arrays_test_size_is_the_nearest_integer():
    x = np.zeros((7, 1))
    assert len(from_arrays(x, np.zeros(7), test_frac=0.3)["test_input"]) == 2  # 2.1 -> 2
    assert len(from_arrays(x, np.zeros(7), test_frac=0.5)["test_input"]) == 4  # 3.5 -> 4
    assert len(from_arrays(np.zeros((2, 1)), np.zeros(2), test_frac=0.5)["test_input"]) == 1


def test_from_arrays_is_exported():
    assert kanarray.from_arrays is from_arrays


@pytest.mark.parametrize("kw, error, words", [
    ({"x": np.arange(10.0)}, ValueError, r"x must be a non-empty 2-D array .*x.reshape\(-1, 1\)"),
    ({"x": np.zeros((0, 2)), "y": np.zeros(0)}, ValueError, "x must be a non-empty 2-D array"),
    ({"x": [[1, 2], [3]]}, TypeError, "x must be a numeric array"),
    ({"x": np.full((10, 2), np.inf)}, ValueError, "x contains NaN or Inf"),
    ({"x": np.zeros((10, 2), complex)}, TypeError, "x must hold real numbers"),
    ({"y": np.zeros(9)}, ValueError, r"y must have shape \(10,\) or \(10, n_out\)"),
    ({"y": np.zeros((10, 0))}, ValueError, "y must have shape"),
    ({"y": np.full(10, np.nan)}, ValueError, "y contains NaN or Inf"),
    ({"y": ["a"] * 10}, TypeError, "y must hold real numbers"),
    ({"test_frac": 0.0}, ValueError, "test_frac must be > 0"),
    ({"test_frac": 1.0}, ValueError, "test_frac must be < 1"),
    ({"test_frac": "0.2"}, TypeError, "test_frac must be a real number"),
    ({"test_frac": float("nan")}, ValueError, "test_frac must be a finite number"),
    ({"test_frac": 0.01}, ValueError, "test_frac=0.01 of 10 rows gives 0 test and 10 training rows"),
    ({"test_frac": 0.97}, ValueError, "gives 10 test and 0 training rows"),
    ({"seed": -1}, ValueError, "seed must be >= 0"),
    ({"seed": np.int64(3), "test_frac": np.float32(0.5)}, None, None),  # NumPy scalars are fine
])
def test_from_arrays_names_bad_arguments(kw, error, words):
    args = {"x": np.zeros((10, 2)), "y": np.zeros(10), **kw}
    if error is None:
        assert len(from_arrays(**args)["test_input"]) == 5
        return
    with pytest.raises(error, match=words):
        from_arrays(**args)
