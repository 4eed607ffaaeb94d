"""Promises the API, the estimators and the command line make about odd but legal inputs: data in
any units train alike, float32 models refuse what float32 cannot hold, restarts and checkpoints
agree, and every bad argument is named."""
import json
import warnings
import zipfile

import numpy as np
import pytest

import kanarray
from kanarray import KAN, KANRegressor
from kanarray.cli import main
from kanarray.io.checkpoint import CheckpointError
from kanarray.io.tabular import read_table

POWERS = (-6, -3, 0, 3, 6)


def toy(seed=0, n=400):
    f = lambda x: np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2)
    return kanarray.create_dataset(f, n_var=2, train_num=n, test_num=200, seed=seed)


def in_units(data, unit):
    return {key: value * unit for key, value in data.items()}


def relative_test_rmse(data, unit, **fit_kwargs):
    """A scaled [2, 4, 1] fitted on the data times `unit`: its test RMSE over `unit`."""
    scaled = in_units(data, unit)
    model = KAN([2, 4, 1], grid=5, seed=0).set_scaling(scaled["train_input"], scaled["train_label"])
    history = model.fit(scaled, log=0, **fit_kwargs)
    assert history["stopped"] is None
    return history["test_loss"][-1] / unit, model


# ---------------------------------------------------------------------- units
@pytest.mark.parametrize("fit_kwargs, rtol", [(dict(opt="adam", steps=60), 1e-6),
                                              (dict(opt="lbfgs", steps=3), 1e-4)], ids=["adam", "lbfgs"])
def test_data_in_any_units_train_alike(fit_kwargs, rtol):
    """x and y times 10^p, p = -6 .. 6: a scaled model (set_scaling) sees the same standardised
    data and ends with the same relative error, to rounding (unscaled losses gave relative
    errors orders of magnitude apart). L-BFGS amplifies rounding chaotically (a one-ulp change
    of the data moves the toy's test RMSE after 20 steps by ~8%), so it is held to three steps
    and to 1e-4 here."""
    data = toy()
    errors = [relative_test_rmse(data, 10.0 ** p, **fit_kwargs)[0] for p in POWERS]
    np.testing.assert_allclose(errors, errors[2], rtol=rtol)


def test_the_recovered_formula_does_not_depend_on_the_units():
    """The same edges fixed to the same functions, and formulas that agree in raw units."""
    data = kanarray.create_dataset(lambda x: 2.0 * x[:, 0] + x[:, 1] ** 2, n_var=2,
                                   train_num=300, test_num=50, seed=1)
    picks = []
    for p in (-6, 0, 6):
        unit = 10.0 ** p
        _, model = relative_test_rmse(data, unit, steps=5)
        fixed = model.auto_symbolic(lib=["x", "x^2", "sin", "exp"], x=data["train_input"] * unit,
                                    verbose=0)
        picks.append(sorted((edge, name) for edge, (name, _) in fixed.items()))
        x = data["test_input"] * unit
        np.testing.assert_allclose(model(x) / unit, model.predict(x) / unit)
    assert picks[0] == picks[1] == picks[2]


def test_the_estimators_train_alike_in_any_units():
    data = toy(n=300)
    x, y = data["train_input"], data["train_label"][:, 0]
    scores = [KANRegressor(hidden=(3,), steps=40, opt="adam", seed=0).fit(x * 10.0 ** p, y * 10.0 ** p)
              .score(x * 10.0 ** p, y * 10.0 ** p) for p in (-6, 0, 6)]
    assert scores[1] > 0.8
    np.testing.assert_allclose(scores, scores[1], rtol=1e-9)


def test_the_command_line_trains_alike_in_any_units(tmp_path, capsys):
    data = toy(n=200)
    errors = []
    for p in (-6, 0):
        unit = 10.0 ** p
        path = tmp_path / f"units{p}.csv"
        table = np.column_stack([data["train_input"] * unit, data["train_label"] * unit])
        np.savetxt(path, table, delimiter=",", header="a,b,y", comments="")
        out = tmp_path / f"m{p}.npz"
        assert main(["fit", str(path), "--target", "y", "--opt", "adam", "--steps", "30",
                     "--out", str(out)]) == 0, capsys.readouterr()
        model = kanarray.load(out)
        errors.append(np.sqrt(np.mean((model(table[:, :2]) - table[:, 2:]) ** 2)) / unit)
    capsys.readouterr()
    np.testing.assert_allclose(errors, errors[1], rtol=1e-6)


def test_train_loss_is_the_data_term_even_when_the_regulariser_dominates():
    data = toy(n=200)
    model = KAN([2, 3, 1], grid=5, seed=0)
    history = model.fit(data, steps=1, lamb=1e15, lbfgs_iters=1, update_grid=False, log=0)
    mse = model.loss_and_grad(data["train_input"], data["train_label"])[0]
    assert history["train_loss"][-1] == pytest.approx(np.sqrt(mse), rel=1e-9)
    assert history["train_loss"][-1] > 0.1


# ---------------------------------------------------------------------- float32 state
def test_float32_models_refuse_a_grid_range_float32_cannot_hold():
    for grid_range in ((1e6, 1e6 + 1e-3), (-1e38, 1e38)):
        with pytest.raises(ValueError, match="grid_range"):
            KAN([2, 3, 1], grid_range=grid_range, dtype="float32")
    KAN([2, 3, 1], grid_range=(1e6, 1e6 + 1e-3), dtype="float64")  # float64 holds it


def test_a_grid_update_float32_cannot_hold_is_refused_and_changes_nothing():
    model = KAN([1, 2, 1], grid=20, dtype="float32")
    before = [layer.knots.copy() for layer in model.layers]
    x = 1e4 + np.random.default_rng(0).uniform(-0.01, 0.01, (100, 1))
    with pytest.raises(ValueError, match="float32"):
        model.update_grid(x)
    for layer, knots in zip(model.layers, before):
        np.testing.assert_array_equal(layer.knots, knots)
    data = {"train_input": x, "train_label": x, "test_input": x[:5], "test_label": x[:5]}
    with pytest.raises(ValueError, match="float32"):
        model.fit(data, steps=1, log=0)


def test_float32_scaling_maps_must_stay_finite_in_float32():
    model = KAN([1, 2, 1], dtype="float32")
    with pytest.raises(ValueError, match="float32"):
        model.set_scaling(np.array([[0.0], [1e-40]]))
    assert model.input_scaling is None and model.output_scaling is None
    with pytest.raises(ValueError, match="input_scaling"):
        KAN([1, 2, 1], dtype="float32", input_scaling=([0.0], [1e-45]))


def test_symbolic_constants_beyond_float32_are_refused_or_skipped():
    model = KAN([1, 1], grid=5, dtype="float32")
    layer = model.layers[0]
    with pytest.raises(ValueError, match="float32"):
        layer.set_symbolic(0, 0, "exp", (1.0, 0.0, -1.3e45, 0.0))
    assert layer.symbolic_fun[0, 0] == "" and np.all(np.isfinite(model.params))


def test_a_checkpoint_with_knots_float32_cannot_hold_is_refused(tmp_path):
    model = KAN([1, 2, 1], grid=5, dtype="float32")
    config, arrays = model.config(), model.state_arrays()
    arrays["knots_0"] = np.linspace(1e6, 1e6 + 1e-3, arrays["knots_0"].shape[1])[None, :]
    with pytest.raises(CheckpointError, match="float32"):
        kanarray.model.from_state(config, arrays)


# ---------------------------------------------------------------------- the command line
def test_classification_counts_classes_on_every_row(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    label = (x[:, 0] > 0).astype(int)
    label[np.flatnonzero(kanarray.io.data.held_out_mask(60, 0.2, 0))[0]] = 2  # held out, alone
    path = tmp_path / "classes.csv"
    np.savetxt(path, np.column_stack([x, label]), delimiter=",", header="u,v,c", comments="")
    code = main(["fit", str(path), "--target", "c", "--task", "classification", "--steps", "2",
                 "--out", str(tmp_path / "c.npz")])
    assert code == 0, capsys.readouterr()
    assert kanarray.load(tmp_path / "c.npz").width[-1] == 3


def test_targets_near_the_float_limit_and_a_huge_lamb_end_cleanly(tmp_path, capsys):
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, 100)
    path = tmp_path / "huge.csv"
    np.savetxt(path, np.column_stack([a, 1e160 * (2 + a)]), delimiter=",", header="a,y", comments="")
    out = str(tmp_path / "h.npz")
    assert main(["fit", str(path), "--target", "y", "--width", "0", "--steps", "3", "--out", out]) == 0
    model = kanarray.load(out)
    assert np.all(np.isfinite(model.output_scaling[1])) and model.output_scaling[1][0] > 1e158
    assert main(["fit", str(path), "--target", "y", "--width", "0", "--steps", "2",
                 "--lamb", "1e308", "--out", out]) == 0
    assert "stopped early" in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["formula", "MODEL", "--digits", "-1"], "--digits"),
    (["bench", "--repeats", "0"], "--repeats"),
    (["bench", "--repeats", "-3"], "--repeats"),
])
def test_bad_counts_on_the_command_line_are_named(tmp_path, capsys, argv, words):
    model = tmp_path / "m.npz"
    KAN([2, 3, 1]).save(model)
    assert main([str(model) if a == "MODEL" else a for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kanarray: error:") and words in err


@pytest.mark.parametrize("metadata, words", [
    ({"inputs": 3}, "metadata['inputs']"),
    ({"inputs": ["a"]}, "metadata['inputs']"),
    ({"targets": "y"}, "metadata['targets']"),
    ({"task": "ranking"}, "metadata['task']"),
    ({"task": "classification"}, "target column"),
])
def test_predict_and_formula_check_a_checkpoints_metadata(tmp_path, capsys, metadata, words):
    model, data = tmp_path / "m.npz", tmp_path / "d.csv"
    KAN([2, 3, 1]).save(model, metadata=metadata)
    np.savetxt(data, np.ones((3, 2)), delimiter=",", header="a,b", comments="")
    for argv in (["predict", str(model), str(data)], ["formula", str(model)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("kanarray: error:") and words in err, err


def test_a_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("a,y\n1,2\n\xe9,3\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.csv: not a UTF-8 text file"):
        read_table(path)


# ---------------------------------------------------------------------- arguments of the API
def test_fit_constants_needs_as_many_values_as_constants():
    model = KAN([1, 1], grid=5)
    model.fix_symbolic(0, 0, 0, "x", fit_params=False)
    before = model.params.copy()
    with pytest.raises(ValueError, match="y has 2"):
        model.fit_constants(np.array([[0.1], [0.2]]), np.array([1.0, 2.0]))
    np.testing.assert_array_equal(model.params, before)


def test_fit_constants_fits_constants_started_from_perturbed_values():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (200, 1))
    y = 2.5 * np.sin(1.5 * x[:, 0] + 0.3) - 0.7
    model = KAN([1, 1], grid=5)
    model.layers[0].set_symbolic(0, 0, "sin", (1.2, 0.1, 2.0, -0.5))  # near, not at, the truth
    error = model.fit_constants(x, y)
    assert error < 1e-10
    np.testing.assert_allclose(model(x)[:, 0], y, atol=1e-9)


@pytest.mark.parametrize("kwargs, error, words", [
    ({"dataset": {"train_input": np.zeros((5, 2))}}, ValueError, "missing"),
    ({"dataset": "data.csv"}, TypeError, "dataset must be a dict"),
    ({"lib": ["x", "no_such_function"]}, (KeyError, ValueError), "no_such_function"),
    ({"say": "print"}, TypeError, "say must be callable"),
    ({"on_stage": 3}, TypeError, "on_stage must be callable"),
])
def test_discover_checks_its_arguments_before_training(kwargs, error, words):
    arguments = {"dataset": toy(n=50), "width": [2, 2, 1], **kwargs}
    with pytest.raises(error, match=words):
        kanarray.discover(**arguments)


@pytest.mark.parametrize("refine", [None, 2.5, "10"])
def test_the_estimators_name_a_bad_refine(refine):
    data = toy(n=50)
    with pytest.raises(ValueError, match="refine"):
        KANRegressor(refine=refine, steps=1).fit(data["train_input"], data["train_label"][:, 0])


def test_the_estimators_check_the_labels_they_are_scored_on():
    data = toy(n=50)
    est = KANRegressor(hidden=(2,), steps=1).fit(data["train_input"], data["train_label"][:, 0])
    for y, words in ((np.zeros(7), "rows"), (np.array(["a"] * 50), "real"), (np.full(50, np.nan), "y")):
        with pytest.raises((ValueError, TypeError), match=words):
            est.score(data["train_input"], y)


def test_metadata_holds_numpy_scalars_and_refuses_what_json_cannot_hold(tmp_path):
    model = KAN([2, 3, 1])
    model.save(tmp_path / "m.npz", metadata={"r2": np.float64(0.5), "n": [np.int32(3)]})
    assert kanarray.load(tmp_path / "m.npz").metadata_ == {"r2": 0.5, "n": [3]}
    for metadata in ({"x": np.zeros(3)}, {1: "one"}, {"f": print}):
        with pytest.raises(TypeError, match="metadata"):
            model.save(tmp_path / "bad.npz", metadata=metadata)
    assert not (tmp_path / "bad.npz").exists()


def test_the_checkpoint_digest_covers_the_metadata(tmp_path):
    path = tmp_path / "m.npz"
    KAN([2, 3, 1]).save(path, metadata={"task": "regression"})
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(arrays["meta"].tobytes().decode())
    meta["metadata"]["task"] = "classification"  # changed, the digest kept
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    assert zipfile.is_zipfile(path)
    with pytest.raises(CheckpointError, match="failed its checksum"):
        kanarray.load(path)


@pytest.mark.parametrize("mult_arity", [[2, None, 2], [2, 2.5, 2], [2, "2", 2]])
def test_a_bad_mult_arity_entry_is_named(mult_arity):
    with pytest.raises(ValueError, match="mult_arity"):
        KAN([2, [1, 1], 1], mult_arity=mult_arity)


def test_a_grid_too_large_for_any_model_is_an_argument_error():
    with pytest.raises(ValueError, match="grid must be at most"):
        KAN([1, 1], grid=10 ** 9)


def test_restarts_with_a_checkpoint_leave_the_kept_model_on_disk(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = toy(n=150)
        model = KAN([2, 3, 1], grid=5, seed=0)
        history = model.fit(data, steps=3, restarts=3, checkpoint=tmp_path / "r.npz", log=0)
    np.testing.assert_array_equal(kanarray.load(tmp_path / "r.npz").params, model.params)
    assert history["restart"] == int(np.argmin(history["restart_test_loss"]))
