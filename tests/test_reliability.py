"""Promises under bad input: nothing is lost on a failure, checkpoints hold only what they should,
and every mistake is named."""
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import kanarray
from kanarray import KAN
from kanarray.io import checkpoint as io


@pytest.fixture(scope="module")
def data():
    return kanarray.create_dataset(lambda x: np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2, n_var=2,
                                   train_num=200, test_num=50, seed=0)


def state(model):
    return model.params.copy(), [layer.knots.copy() for layer in model.layers]


def assert_same_state(model, saved):
    params, knots = saved
    np.testing.assert_array_equal(model.params, params)
    for layer, k in zip(model.layers, knots):
        np.testing.assert_array_equal(layer.knots, k)


# ---------------------------------------------------------------------- nothing is lost
def test_a_nan_step_after_a_grid_update_restores_the_knots_too(data):
    model = KAN([2, 3, 1], seed=0)
    seen = {}

    def remember(step, model, results):
        if step == 2:
            seen["good"] = state(model)

    def mse_until_step_3(pred, y):  # step 3 updates the grid, then its loss is NaN
        loss = float(((pred - y) ** 2).mean())
        return (np.nan if "good" in seen else loss), 2 * (pred - y) / pred.size

    with pytest.warns(RuntimeWarning, match="last good step"):
        results = model.fit(data, opt="adam", steps=6, grid_update_num=6, stop_grid_update_step=6,
                            callback=remember, loss_fn=mse_until_step_3)
    assert "step 3" in results["stopped"]
    assert not np.array_equal(model.layers[0].knots, KAN([2, 3, 1]).layers[0].knots)  # it moved
    assert_same_state(model, seen["good"])


@pytest.mark.parametrize("opt", ["adam", "lbfgs"])
def test_a_fit_that_fails_at_its_first_evaluation_leaves_the_model_as_it_was(data, opt):
    model = KAN([2, 3, 1], seed=1)
    before = state(model)
    nan_loss = lambda pred, y: (float("nan"), pred * 0.0 + 1.0)  # noqa: E731
    with pytest.warns(RuntimeWarning, match="step 0"):
        model.fit(data, opt=opt, steps=3, loss_fn=nan_loss)  # step 0 updates the grid first
    assert_same_state(model, before)


@pytest.mark.parametrize("opt", ["adam", "lbfgs"])
def test_a_finite_loss_with_an_infinite_gradient_stops_training(data, opt):
    model = KAN([2, 3, 1], seed=2)
    before = state(model)
    inf_gradient = lambda pred, y: (0.5, np.full(pred.shape, np.inf))  # noqa: E731
    with pytest.warns(RuntimeWarning, match="gradient"):
        results = model.fit(data, opt=opt, steps=3, loss_fn=inf_gradient)
    assert results["stopped"] and "step 0" in results["stopped"]
    assert_same_state(model, before)


@pytest.mark.parametrize("answer, error, words", [
    (lambda p: (0.0, p[:, 0]), ValueError, "shape"),              # 1-D gradient
    (lambda p: (0.0, p[:-1]), ValueError, "shape"),               # one row short: would overrun
    (lambda p: (0.0, p.T), ValueError, "shape"),                  # transposed
    (lambda p: 0.0, TypeError, "tuple"),                          # one value
    (lambda p: None, TypeError, "tuple"),
    (lambda p: (0.0, p, 1), TypeError, "length 3"),
    (lambda p: ("a", p), TypeError, "real scalar"),
])
def test_a_bad_loss_fn_answer_is_named_and_changes_nothing(data, answer, error, words):
    model = KAN([2, 3, 1], seed=3)
    before = state(model)
    with pytest.raises(error, match=words):
        model.fit(data, steps=2, loss_fn=lambda pred, y: answer(pred))
    assert_same_state(model, before)


def test_a_callback_that_is_not_callable_is_refused_before_training(data):
    model = KAN([2, 3, 1], seed=4)
    before = state(model)
    with pytest.raises(TypeError, match="callback"):
        model.fit(data, steps=2, callback=5)
    assert_same_state(model, before)


# ---------------------------------------------------------------------- checkpoints
def rewrite(path, edit, target):
    """A copy of checkpoint `path` edited by edit(config, arrays), with a valid digest again."""
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(arrays.pop("meta").tobytes())
    edit(meta["config"], arrays)
    meta["sha256"] = io._digest(meta["config"], meta["metadata"], arrays)
    np.savez(target, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    return target


def _set(arrays, name, value):
    arrays[name] = value


EDITS = {
    "NaN parameter": (lambda c, a: a["params"].__setitem__(0, np.nan), "not finite"),
    "Inf parameter": (lambda c, a: a["params"].__setitem__(3, np.inf), "not finite"),
    "reversed knots": (lambda c, a: _set(a, "knots_0", a["knots_0"][:, ::-1].copy()), "increasing"),
    "equal knots": (lambda c, a: a["knots_0"].__setitem__((0, 4), a["knots_0"][0, 3]), "increasing"),
    "NaN mask": (lambda c, a: a["mask_1"].__setitem__((0, 0), np.nan), "mask"),
    "half mask": (lambda c, a: a["mask_1"].__setitem__((0, 0), 0.5), "mask"),
    "unknown base_fun": (lambda c, a: c.__setitem__("base_fun", "relu"), "base_fun"),
    "duplicate input_ids": (lambda c, a: c.__setitem__("input_ids", [0, 0]), "input_ids"),
    "unknown dtype": (lambda c, a: c.__setitem__("dtype", "float16"), "dtype"),
    "huge width": (lambda c, a: c.__setitem__("width", [10 ** 12, 3, 1]), "parameters"),
    "unknown key": (lambda c, a: c.__setitem__("colour", "red"), "not a readable"),
    "unknown function": (lambda c, a: _set(a, "symbolic_fun_0", np.full((2, 3), "nope")), "library"),
    "missing array": (lambda c, a: a.pop("mask_0"), "missing"),
}


@pytest.mark.parametrize("case", sorted(EDITS))
def test_consistently_edited_checkpoints_are_refused(tmp_path, case):
    path = tmp_path / "m.npz"
    KAN([2, 3, 1], seed=5).save(path)
    edit, words = EDITS[case]
    edited = rewrite(path, edit, tmp_path / "edited.npz")
    with pytest.raises(ValueError, match=words):
        kanarray.load(edited)


def test_a_checkpoint_without_a_config_is_not_readable(tmp_path):
    path = tmp_path / "m.npz"
    KAN([2, 1]).save(path)
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(arrays.pop("meta").tobytes())
    del meta["config"]
    np.savez(path, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    with pytest.raises(ValueError, match="not a readable kanarray checkpoint"):
        kanarray.load(path)


def test_checkpoints_get_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        KAN([2, 1]).save(tmp_path / "open.npz")
        os.umask(0o077)
        KAN([2, 1]).save(tmp_path / "private.npz")
    finally:
        os.umask(old)
    assert (tmp_path / "open.npz").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private.npz").stat().st_mode & 0o777 == 0o600


def test_a_save_error_names_the_users_path(tmp_path):
    target = tmp_path / "no" / "such" / "model.npz"
    with pytest.raises(FileNotFoundError) as info:
        KAN([2, 1]).save(target)
    assert str(target) in str(info.value) and ".kanarray-" not in str(info.value)


def test_a_failure_mid_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    KAN([2, 3, 1], seed=6).save(path)
    good = path.read_bytes()

    def half_written(file, **arrays):
        file.write(b"PK\x03\x04 half a zip file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", half_written)
    with pytest.raises(OSError, match="No space"):
        KAN([2, 3, 1], seed=7).save(path)
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


class LeavesATrace:
    """Unpickling this creates a file: the proof that a loader ran pickle."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_load_never_unpickles(tmp_path):
    path = tmp_path / "m.npz"
    KAN([2, 1]).save(path)
    trace = tmp_path / "unpickled"
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    evil = np.empty(1, dtype=object)
    evil[0] = LeavesATrace(str(trace))
    arrays["params"] = evil
    np.savez(tmp_path / "evil.npz", **arrays)  # np.savez pickles object arrays
    with zipfile.ZipFile(tmp_path / "evil.npz") as z:
        assert b"unpickled" in z.read("params.npy")  # the payload is really in there
    with pytest.raises(ValueError, match="not a readable"):
        kanarray.load(tmp_path / "evil.npz")
    assert not trace.exists()
    assert pickle.loads(pickle.dumps(LeavesATrace(str(trace)))) and trace.exists()  # the probe works


# ---------------------------------------------------------------------- values a model cannot hold
def test_float32_models_refuse_values_beyond_float32(data):
    model = KAN([2, 3, 1], dtype="float32")
    with pytest.raises(ValueError, match="beyond the range"):
        model(np.array([[1e39, 0.0]]))
    with pytest.raises(ValueError, match="beyond the range"):
        model.fit({**data, "train_label": data["train_label"] * 1e40}, steps=1)


def test_masked_arrays_are_refused():
    x = np.ma.masked_invalid(np.array([[0.1, np.nan], [0.2, 0.3]]))
    with pytest.raises(TypeError, match="masked array"):
        KAN([2, 1])(x)


@pytest.mark.parametrize("kwargs, error, words", [
    ({"k": 10 ** 7}, ValueError, "k must be at most"),
    ({"width": [10 ** 6, 10 ** 6], "grid": 5}, ValueError, "parameters"),
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": 1.5}, TypeError, "seed"),
    ({"noise_scale": "0.5"}, ValueError, "noise_scale"),
    ({"noise_scale": float("nan")}, ValueError, "noise_scale"),
    ({"noise_scale": 1j}, ValueError, "noise_scale"),
    ({"base_fun": []}, ValueError, "base_fun"),
    ({"path": ["fused"]}, ValueError, "path"),
])
def test_constructor_limits_and_types_are_named(kwargs, error, words):
    with pytest.raises(error, match=words):
        KAN(**{"width": [2, 3, 1], **kwargs})


@pytest.mark.parametrize("kwargs, error, words", [
    ({"start_grid_update_step": None}, TypeError, "start_grid_update_step"),
    ({"stop_grid_update_step": "5"}, TypeError, "stop_grid_update_step"),
    ({"grid_update_num": None}, TypeError, "grid_update_num"),
    ({"log": "x"}, TypeError, "log"),
    ({"lr": np.array([0.1, 0.2])}, ValueError, "lr"),
    ({"comm": "x"}, TypeError, "comm"),
    ({"seed": -1}, ValueError, "seed"),
    ({"opt": "sgd"}, ValueError, "opt"),
    ({"update_grid": "yes"}, TypeError, "update_grid"),
    ({"restarts": -1}, ValueError, "restarts"),
    ({"restarts": 1.5}, TypeError, "restarts"),
])
def test_fit_arguments_are_named(data, kwargs, error, words):
    model = KAN([2, 3, 1], seed=8)
    before = state(model)
    with pytest.raises(error, match=words):
        model.fit(data, steps=1, **kwargs)
    assert_same_state(model, before)


def test_symbolic_arguments_are_named():
    model = KAN([2, 1], seed=9)
    model.layers[0].set_symbolic(0, 0, "sin", [1, 0, 1, 0])
    model.layers[0].set_symbolic(1, 0, "x^2", [1, 0, 1, 0])
    for var_names, error in ((5, TypeError), (["a", "a"], ValueError), (["a", None], ValueError),
                             (["a"], ValueError)):
        with pytest.raises(error, match="var_names"):
            model.symbolic_formula(var_names=var_names)
    spline = KAN([2, 1], seed=9)
    with pytest.raises((TypeError, ValueError), match="lib"):
        spline.suggest_symbolic(0, 0, 0, lib=5, verbose=False)
    with pytest.raises((TypeError, ValueError), match="weight_simple"):
        spline.suggest_symbolic(0, 0, 0, weight_simple="a", verbose=False)
    with pytest.raises(IndexError, match=r"i=5 out of range"):
        spline.fix_symbolic(0, 5, 0, "sin")


def test_score_of_one_row_is_an_error_not_minus_infinity():
    with pytest.raises(ValueError, match="at least 2 rows"):
        KAN([2, 1]).score(np.zeros((1, 2)), np.zeros((1, 1)))


def test_digest_covers_the_config(tmp_path):
    path = tmp_path / "m.npz"
    KAN([2, 3, 1], seed=10).save(path)
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(arrays.pop("meta").tobytes())
    meta["config"]["grid_eps"] = 0.5  # a valid value, but not the saved one: the digest catches it
    np.savez(path, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    with pytest.raises(ValueError, match="checksum"):
        kanarray.load(path)


def test_a_failing_constant_fit_leaves_the_model_as_it_was(monkeypatch):
    import scipy.optimize

    model = KAN([2, 1], seed=11)
    model.layers[0].set_symbolic(0, 0, "sin", [1.0, 0.0, 1.0, 0.0])
    model.layers[0].set_symbolic(1, 0, "x^2", [1.0, 0.0, 1.0, 0.0])
    x = np.random.default_rng(0).uniform(-1, 1, (30, 2))
    before = state(model)

    def fails_midway(fun, x0, **kwargs):
        fun(x0 + 0.5)  # moves the model's constants, as the real solver does
        raise FloatingPointError("solver failed")

    monkeypatch.setattr(scipy.optimize, "least_squares", fails_midway)
    with pytest.raises(FloatingPointError):
        model.fit_constants(x, np.sin(x[:, :1]))
    assert_same_state(model, before)
    with pytest.raises(ValueError, match="every live edge symbolic"):
        KAN([2, 1], seed=11).fit_constants(x, np.sin(x[:, :1]))
