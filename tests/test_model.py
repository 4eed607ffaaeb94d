"""The KAN model: hand-derived gradients, determinism, grids, checkpoints and bad input."""
import json
import os
import subprocess
import sys
import textwrap
import warnings
import zipfile

import numpy as np
import pytest

import kanarray
from kanarray import KAN
from finite_differences import central_differences, parameter_gradient


def toy(x):
    return np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2)


@pytest.fixture(scope="module")
def dataset():
    return kanarray.create_dataset(toy, n_var=2, train_num=200, test_num=100, seed=1)


def trained_three_layer(seed=3):
    """A [3, 4, 2, 2] model with non-trivial parameters and non-uniform knots."""
    rng = np.random.default_rng(seed)
    model = KAN([3, 4, 2, 2], grid=6, k=3, seed=seed)
    model.params = model.params + 0.3 * rng.normal(size=model.num_params)
    model.update_grid(rng.uniform(-1, 1, (64, 3)))
    x = rng.uniform(-0.9, 0.9, (20, 3))
    y = rng.normal(size=(20, 2))
    return model, x, y


def test_every_parameter_gradient_matches_finite_differences():
    model, x, y = trained_three_layer()
    _, grad = model.loss_and_grad(x, y)
    numeric = parameter_gradient(model, x, y)
    offset = 0
    for l, layer in enumerate(model.layers):  # every parameter group of every layer
        for name, shape in layer.param_shapes().items():
            size = int(np.prod(shape))
            got, want = grad[offset:offset + size], numeric[offset:offset + size]
            assert np.abs(got - want).max() <= 1e-6 * np.abs(numeric).max(), (l, name)
            offset += size
    assert offset == model.num_params


def test_input_gradient_matches_finite_differences():
    model, x, y = trained_three_layer(seed=5)
    _, _, dx = model.loss_and_grad(x, y, need_dx=True)
    numeric = central_differences(lambda xx: model.loss_and_grad(xx, y)[0], x)
    assert np.abs(dx - numeric).max() <= 1e-6 * np.abs(numeric).max()


def test_gradients_are_bit_identical_for_one_and_two_threads(tmp_path):
    script = textwrap.dedent("""
        import sys, numpy as np, kanarray
        rng = np.random.default_rng(0)
        model = kanarray.KAN([16, 24, 3], grid=7, seed=1)
        model.params = model.params + 0.1 * rng.normal(size=model.num_params)
        x, y = rng.uniform(-1.2, 1.2, (999, 16)), rng.normal(size=(999, 3))
        loss, grad, dx = model.loss_and_grad(x, y, need_dx=True)
        np.savez(sys.argv[1], loss=loss, grad=grad, dx=dx, y=model(x))
    """)
    results = []
    for threads in ("1", "2"):
        out = tmp_path / f"t{threads}.npz"
        env = {**os.environ, "NUMBA_NUM_THREADS": threads}
        subprocess.run([sys.executable, "-c", script, str(out)], check=True, env=env, timeout=300)
        results.append(np.load(out))
    for name in ("loss", "grad", "dx", "y"):
        assert results[0][name].tobytes() == results[1][name].tobytes(), name


def test_float32_model_runs_in_float32_and_tracks_float64():
    x = np.random.default_rng(0).uniform(-1, 1, (50, 2))
    wide, narrow = KAN([2, 5, 1], seed=4), KAN([2, 5, 1], seed=4, dtype="float32")
    assert narrow.params.dtype == np.float32 and narrow(x).dtype == np.float32
    assert np.abs(narrow(x) - wide(x)).max() < 1e-5


def test_flat_params_are_the_layers_storage():
    model = KAN([2, 3, 1], grid=4, k=2)
    # per edge: G+k coefficients, w_base, w_spline and the 4 symbolic (a, b, c, d); per output: bias
    assert model.num_params == model.params.size == 2 * (3 * 6 + 3 + 3 + 3 * 4) + 3 + 3 * (1 * 6 + 1 + 1 + 1 * 4) + 1
    model.params[:] = 0.25
    assert np.all(model.layers[1].params["coef"] == 0.25)
    assert model.width == [2, 3, 1] and model.grid == 4 and model.k == 2


def test_update_grid_keeps_each_edge_shape(dataset):
    """Knots move to the samples and the splines keep their shape up to the refit error."""
    model = KAN([2, 5, 1], grid=10, seed=0)
    model.fit(dataset, steps=20)  # trained, with grid updates along the way as usual
    before = model(dataset["test_input"])
    model.update_grid(dataset["train_input"])
    assert np.abs(model(dataset["test_input"]) - before).max() < 1e-2 * np.abs(before).max()


def test_update_grid_moves_knots_to_the_samples():
    model = KAN([1, 1], grid=4, grid_eps=0.0)
    samples = np.random.default_rng(0).uniform(0.0, 0.5, (400, 1))
    model.update_grid(samples)
    interior = model.layers[0].interior_range()
    assert interior[0, 0] == pytest.approx(samples.min()) and interior[0, 1] == pytest.approx(samples.max())


def test_fit_grid_margin_widens_the_updated_range(dataset):
    """fit(grid_margin=m): the grid updates' end knots sit m mean cells beyond the samples."""
    x = dataset["train_input"]
    for margin in (0.0, 0.5):
        model = KAN([2, 1], grid=4, seed=0)
        model.fit(dataset, steps=1, grid_margin=margin, log=0)
        pad = margin * (x.max(axis=0) - x.min(axis=0)) / 4
        np.testing.assert_allclose(model.layers[0].interior_range(),
                                   np.c_[x.min(axis=0) - pad, x.max(axis=0) + pad])
    with pytest.raises(ValueError, match="grid_margin must be >= 0"):
        model.fit(dataset, steps=1, grid_margin=-0.5)


def test_fit_lbfgs_history_is_the_curvature_pairs_kept(dataset):
    """fit(lbfgs_history=m): 10 (pykan's) is the default, bit for bit; another m changes the path;
    a bad m is named and leaves the model as it was."""
    params = {}
    for history in (None, 10, 3):
        model = KAN([2, 3, 1], grid=4, seed=0)
        model.fit(dataset, steps=4, log=0, **({} if history is None else {"lbfgs_history": history}))
        params[history] = model.params.tobytes()
    assert params[None] == params[10]
    assert params[3] != params[10]
    model = KAN([2, 3, 1], grid=4, seed=0)
    before = model.params.tobytes()
    for bad, error in ((0, ValueError), (2.5, TypeError)):
        with pytest.raises(error, match="lbfgs_history"):
            model.fit(dataset, steps=1, log=0, lbfgs_history=bad)
        assert model.params.tobytes() == before


def test_refine_fits_the_coarse_splines(dataset):
    """On the data the grids were fitted to, the finer splines reproduce the coarse ones.

    (Beyond the interior of the grid, in the k extension cells, the finer grid's extension is
    narrower, as in the reference implementation, so agreement there is only approximate.)
    """
    model = KAN([2, 5, 1], grid=5, seed=0)
    model.fit(dataset, steps=20)
    model.update_grid(dataset["train_input"])
    coarse = model(dataset["train_input"])
    for x in (None, dataset["train_input"]):
        fine = model.refine(20, x=x)
        assert fine.grid == 20 and fine.layers[0].params["coef"].shape == (2, 23, 5)
        assert np.abs(fine(dataset["train_input"]) - coarse).max() < 1e-8 * np.abs(coarse).max()


def test_refine_never_fails_on_rank_deficient_samples():
    model = KAN([1, 2, 1], grid=3)
    few = np.array([[0.1], [0.1], [0.2]])  # far fewer distinct samples than bases
    fine = model.refine(50, x=few)
    assert np.all(np.isfinite(fine.params))


def test_save_load_round_trip_is_bit_exact(tmp_path, dataset):
    model = KAN([2, 3, 1], grid=5, seed=2)
    model.fit(dataset, steps=2)
    model.layers[0].mask[0, 1] = 0.0
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = kanarray.load(path)
    assert loaded.config() == model.config()
    assert loaded.params.tobytes() == model.params.tobytes()
    for a, b in zip(model.layers, loaded.layers):
        assert a.knots.tobytes() == b.knots.tobytes() and a.mask.tobytes() == b.mask.tobytes()
    assert model(dataset["test_input"]).tobytes() == loaded(dataset["test_input"]).tobytes()
    assert not list(tmp_path.glob(".kanarray-*"))  # no temporary file left behind


def test_corrupt_and_tampered_checkpoints_are_refused(tmp_path):
    path = tmp_path / "model.npz"
    KAN([2, 2, 1]).save(path)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="not a readable kanarray checkpoint"):
        kanarray.load(garbage)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="checkpoint"):
        kanarray.load(truncated)
    with np.load(path) as archive:  # change one parameter, keep the old checksum
        arrays = {name: archive[name] for name in archive.files}
    arrays["params"] = arrays["params"].copy()
    arrays["params"][0] += 1.0
    tampered = tmp_path / "tampered.npz"
    np.savez(tampered, **arrays)
    with pytest.raises(ValueError, match="checksum"):
        kanarray.load(tampered)
    meta = json.loads(arrays["meta"].tobytes())
    meta["version"] = 99
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(tampered, **arrays)
    with pytest.raises(ValueError, match="version"):
        kanarray.load(tampered)
    with zipfile.ZipFile(tmp_path / "pickled.npz", "w") as archive:
        archive.writestr("meta.npy", b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="checkpoint"):
        kanarray.load(tmp_path / "pickled.npz")


@pytest.mark.parametrize("kwargs, error, words", [
    ({"k": 0}, ValueError, "k must be >= 1"),
    ({"grid": 0}, ValueError, "grid must be >= 1"),
    ({"grid": 2.5}, TypeError, "grid must be an integer"),
    ({"width": [3]}, ValueError, "width"),
    ({"width": [2, 0, 1]}, ValueError, "width entries"),
    ({"grid_range": (1, -1)}, ValueError, "grid_range"),
    ({"base_fun": "relu"}, ValueError, "base_fun"),
    ({"dtype": "float16"}, ValueError, "dtype"),
    ({"device": "tpu"}, ValueError, "device"),
    ({"grid_eps": 2.0}, ValueError, "grid_eps"),
])
def test_bad_configuration_names_the_argument(kwargs, error, words):
    with pytest.raises(error, match=words):
        KAN(**{"width": [2, 3, 1], **kwargs})


@pytest.mark.parametrize("x, error, words", [
    (np.zeros((5, 3)), ValueError, "2 columns"),
    (np.zeros(5), ValueError, "2-D"),
    (np.zeros((0, 2)), ValueError, "empty batch"),
    (np.array([[0.0, np.nan]]), ValueError, "NaN or Inf"),
    (np.array([[0.0, np.inf]]), ValueError, "NaN or Inf"),
    (np.zeros((2, 2), dtype=complex), TypeError, "real numbers"),
    (np.array([["a", "b"]]), TypeError, "real numbers"),
    (np.zeros((2, 2), dtype=bool), TypeError, "real numbers"),
])
def test_bad_inputs_name_the_argument(x, error, words):
    model = KAN([2, 3, 1])
    with pytest.raises(error, match=words):
        model(x)
    with pytest.raises(error, match=words):
        model.loss_and_grad(x, np.zeros((max(len(x), 1), 1)))


def test_bad_labels_and_datasets_name_the_argument(dataset):
    model = KAN([2, 3, 1])
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="y has 3 rows"):
        model.loss_and_grad(x, np.zeros((3, 1)))
    with pytest.raises(ValueError, match="y contains NaN"):
        model.loss_and_grad(x, np.array([[0.0], [np.nan], [0.0], [0.0]]))
    with pytest.raises(ValueError, match="missing"):
        model.fit({"train_input": x}, steps=1)
    bad = {**dataset, "train_label": dataset["train_label"].copy()}
    bad["train_label"][3] = np.inf
    with pytest.raises(ValueError, match=r"dataset\['train_label'\] contains NaN"):
        model.fit(bad, steps=1)
    with pytest.raises(ValueError, match="opt"):
        model.fit(dataset, opt="sgd")
    with pytest.raises(ValueError, match="batch"):
        model.fit(dataset, batch=10_000)


def test_inputs_outside_the_grid_are_legal_but_warned():
    model = KAN([2, 3, 1], grid_range=(-1, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(np.full((10, 2), 0.5))  # inside: silent
    far = np.full((10, 2), 5.0)
    with pytest.warns(UserWarning, match=r"layer 0: 100% of its inputs fall outside its grid"):
        y = model(far)
    assert np.all(np.isfinite(y))
    # outside the extended knot range every basis is zero: a layer is its base branch alone
    one_layer = KAN([2, 3], grid_range=(-1, 1))
    p = one_layer.layers[0].params
    silu = far / (1 + np.exp(-far))
    with pytest.warns(UserWarning):
        np.testing.assert_allclose(one_layer(far), silu @ p["w_base"] + p["bias"], rtol=1e-14)


def test_nan_during_training_restores_the_last_good_parameters(dataset):
    model = KAN([2, 3, 1], seed=0)
    snapshots = []

    def poison(step, model, results):
        snapshots.append(model.params.copy())
        if step == 2:  # the next step's gradient becomes NaN
            model.layers[0].params["coef"][0, 0, 0] = np.nan

    with pytest.warns(RuntimeWarning, match="restored the parameters of the last good step"):
        results = model.fit(dataset, opt="adam", steps=10, update_grid=False, callback=poison)
    assert "step 3" in results["stopped"]
    assert len(results["train_loss"]) == 3
    assert np.all(np.isfinite(model.params))
    np.testing.assert_array_equal(model.params, snapshots[2])


def test_fit_returns_rmse_history_like_the_reference_implementation(dataset):
    model = KAN([2, 3, 1], seed=0)
    results = model.fit(dataset, opt="lbfgs", steps=4)
    assert len(results["train_loss"]) == len(results["test_loss"]) == 4
    assert results["train_loss"][-1] < results["train_loss"][0]
    assert results["stopped"] is None
    adam = KAN([2, 3, 1], seed=0).fit(dataset, opt="adam", steps=30, batch=50, lr=1e-2)
    assert adam["test_loss"][-1] < adam["test_loss"][0]


def test_create_dataset_shapes_and_validation():
    data = kanarray.create_dataset(lambda x: x[:, :1] * x[:, 1:], n_var=2, ranges=[(-1, 1), (0, 2)],
                                   train_num=10, test_num=7, seed=0)
    assert data["train_input"].shape == (10, 2) and data["test_label"].shape == (7, 1)
    assert data["train_input"][:, 1].min() >= 0
    with pytest.raises(ValueError, match="ranges"):
        kanarray.create_dataset(toy, ranges=(1, -1))
    with pytest.raises(ValueError, match="must return shape"):
        kanarray.create_dataset(lambda x: x[:3, 0])
    with pytest.raises(TypeError, match="callable"):
        kanarray.create_dataset(42)


def test_import_is_fast_and_compiles_nothing():
    code = "import time; t = time.perf_counter(); import kanarray, sys; " \
           "print(time.perf_counter() - t, 'numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, numba_loaded = out.stdout.split()
    assert float(seconds) < 0.5 and numba_loaded == "False"
