"""Raw units in and out (the model's affine scaling), the cross-entropy loss, and fit's progress."""
import sys

import numpy as np
import pytest

import kanarray
from kanarray import KAN
from kanarray.symbolic import formula as F
from kanarray.training.objective import evaluate
from finite_differences import central_differences


def raw_data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.uniform(10, 20, n), rng.uniform(-300, 300, n)])
    return x, (3.2 * np.exp(0.5 * x[:, 0]) + x[:, 1] ** 2)[:, None]


# ---------------------------------------------------------------------- scaling
def test_set_scaling_maps_each_column_onto_the_grid_and_standardises_labels():
    x, y = raw_data()
    model = KAN([2, 3, 1], seed=0).set_scaling(x, y)
    h0 = model.forward_all(x)[0]
    np.testing.assert_allclose(h0.min(axis=0), [-1, -1], atol=1e-12)
    np.testing.assert_allclose(h0.max(axis=0), [1, 1], atol=1e-12)
    plain = KAN([2, 3, 1], seed=0)
    shift, scale = model.output_scaling
    np.testing.assert_allclose(model(x), plain(h0) * scale + shift, rtol=1e-13)
    assert shift[0] == pytest.approx(y.mean()) and scale[0] == pytest.approx(y.std())


def test_gradients_through_the_scaling_match_finite_differences():
    x, y = raw_data(40)
    model = KAN([2, 3, 1], seed=1).set_scaling(x, y)
    _, grad, dx = model.loss_and_grad(x, y, need_dx=True)
    start = model.params.copy()

    def at(params):
        model.params = params
        return model.loss_and_grad(x, y)[0]

    numeric = central_differences(at, start, eps=1e-6)
    model.params = start
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9 * np.abs(numeric).max())
    numeric_dx = central_differences(lambda xx: model.loss_and_grad(xx, y)[0], x, eps=1e-4)
    np.testing.assert_allclose(dx, numeric_dx, rtol=1e-5, atol=1e-8 * np.abs(numeric_dx).max())


def test_scaling_survives_save_load_refine_and_prune_input(tmp_path):
    x, y = raw_data()
    model = KAN([2, 3, 1], seed=2).set_scaling(x, y)
    model.save(tmp_path / "m.npz")
    loaded = kanarray.load(tmp_path / "m.npz")
    assert loaded(x).tobytes() == model(x).tobytes()
    finer = model.refine(10)
    np.testing.assert_allclose(finer(x), model(x), rtol=1e-6)
    model.layers[0].mask[0, :] = 0.0  # input 0 reaches nothing: dropping it changes no output
    fewer = model.prune_input(active_inputs=[1])
    np.testing.assert_allclose(fewer(x[:, [1]]), model(x), rtol=1e-13)


def test_formula_reads_in_raw_units():
    x, y = raw_data()
    model = KAN([2, 1], seed=3).set_scaling(x, y)
    model.layers[0].set_symbolic(0, 0, "exp", [1.3, 0.2, 0.7, 0.1])
    model.layers[0].set_symbolic(1, 0, "x^2", [0.9, -0.1, 0.4, 0.0])
    formula = model.symbolic_formula(var_names=["a", "b"])[0]
    assert {str(s) for s in formula.free_symbols} == {"a", "b"}
    got = F.formula_function(formula, ["a", "b"])(x)
    want = model(x)[:, 0]
    assert np.abs(got - want).max() < 1e-10 * np.abs(want).max()


@pytest.mark.parametrize("bad", [([0.0], [1.0]), ([0.0, 0.0], [1.0, 0.0]), ([np.nan, 0], [1, 1]), "x"])
def test_bad_scaling_is_refused(bad):
    with pytest.raises((TypeError, ValueError), match="input_scaling"):
        KAN([2, 1], input_scaling=bad)


# ---------------------------------------------------------------------- cross-entropy
def blobs(n, seed):
    """Three well-separated classes in 2-D, labels 0..2."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    centres = np.array([[-0.6, -0.5], [0.6, -0.5], [0.0, 0.6]])
    return centres[labels] + 0.15 * rng.normal(size=(n, 2)), labels


def test_cross_entropy_gradient_matches_finite_differences():
    x, labels = blobs(30, 0)
    model = KAN([2, 3, 3], seed=4)
    ev = evaluate(model, x, labels, "ce")
    loss, grad = ev.loss, ev.grad
    start = model.params.copy()

    def at(params):
        model.params = params
        return evaluate(model, x, labels, "ce").loss

    numeric = central_differences(at, start, eps=1e-5)
    assert loss > 0 and np.abs(numeric).max() > 0
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8 * np.abs(numeric).max())


@pytest.mark.parametrize("seed", range(3))
def test_fit_with_cross_entropy_classifies_and_records_accuracy(seed):
    (xtr, ytr), (xte, yte) = blobs(300, seed), blobs(300, seed + 100)
    data = {"train_input": xtr, "train_label": ytr, "test_input": xte, "test_label": yte}
    model = KAN([2, 3, 3], seed=seed)
    results = model.fit(data, loss="ce", steps=10, lamb=1e-3)
    assert results["test_accuracy"][-1] > 0.95
    assert results["train_loss"][-1] < results["train_loss"][0]
    assert len(results["train_accuracy"]) == len(results["test_loss"]) == 10


def test_class_labels_are_checked():
    x, labels = blobs(20, 1)
    data = {"train_input": x, "train_label": labels, "test_input": x, "test_label": labels}
    with pytest.raises(ValueError, match="class ids in"):
        KAN([2, 2]).fit(data, loss="ce", steps=1)
    with pytest.raises(ValueError, match="integer class ids"):
        KAN([2, 3]).fit({**data, "train_label": labels + 0.5}, loss="ce", steps=1)
    with pytest.raises(ValueError, match="loss must be one of"):
        KAN([2, 3]).fit(data, loss="hinge", steps=1)
    with pytest.raises(ValueError, match="not both"):
        KAN([2, 3]).fit(data, loss="ce", loss_fn=lambda p, y: (0.0, p * 0), steps=1)


# ---------------------------------------------------------------------- progress
@pytest.fixture
def toy():
    return kanarray.create_dataset(lambda x: x[:, 0] * x[:, 1], n_var=2, train_num=50, test_num=20)


def test_fit_is_quiet_off_a_terminal_and_with_log_0(toy, capsys):
    KAN([2, 2, 1]).fit(toy, steps=2)
    KAN([2, 2, 1]).fit(toy, steps=2, log=0)
    assert capsys.readouterr().out == ""


def test_log_n_prints_every_n_steps(toy, capsys):
    results = KAN([2, 2, 1]).fit(toy, steps=5, log=2)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["0/5", "2/5", "4/5"]
    assert all("evals/s" in line for line in lines) and len(results["evals_per_second"]) == 5


def test_on_a_terminal_one_line_is_updated_in_place(toy, capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    KAN([2, 2, 1]).fit(toy, steps=3)
    out = capsys.readouterr().out
    assert out.count("\r") == 3 and out.endswith("\n") and out.count("\n") == 1
