"""fit(checkpoint=path, resume=True): an interrupted fit goes on from its last saved step and
ends with the bits of a fit that was never interrupted."""
import numpy as np
import pytest

import kanarray
from kanarray import KAN

pytestmark = pytest.mark.filterwarnings("ignore:layer")


@pytest.fixture(scope="module")
def data():
    return kanarray.create_dataset(lambda x: np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2),
                                   n_var=2, train_num=300, test_num=100, seed=0)


def interrupted_at(step_to_stop):
    def callback(step, model, results):
        if step == step_to_stop:
            raise KeyboardInterrupt
    return callback


@pytest.mark.parametrize("fit_kwargs", [
    dict(opt="lbfgs"),                                  # curvature pairs, grid updates
    dict(opt="adam", batch=64, lr=0.02),                # moments, the batch generator
    dict(opt="lbfgs", lamb=0.01, lamb_coef=1e-3),       # the regulariser
], ids=["lbfgs", "adam-batches", "regularised"])
def test_a_resumed_fit_ends_with_the_bits_of_one_never_interrupted(data, tmp_path, fit_kwargs):
    whole = KAN([2, 4, 1], grid=5, seed=0)
    expected = whole.fit(data, steps=12, log=0, **fit_kwargs)
    path = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):
        KAN([2, 4, 1], grid=5, seed=0).fit(data, steps=12, log=0, checkpoint=path, resume=True,
                                          callback=interrupted_at(6), **fit_kwargs)
    resumed = KAN([2, 4, 1], grid=5, seed=0)
    history = resumed.fit(data, steps=12, log=0, checkpoint=path, resume=True, **fit_kwargs)
    assert resumed.params.tobytes() == whole.params.tobytes()
    for layer, other in zip(resumed.layers, whole.layers):
        assert layer.knots.tobytes() == other.knots.tobytes()
    assert history["test_loss"] == expected["test_loss"]  # the whole history, steps 0-11
    assert history["reg"] == expected["reg"]


def test_resume_without_a_file_is_a_fresh_fit_and_a_finished_one_returns_at_once(data, tmp_path):
    path = tmp_path / "run.npz"
    model = KAN([2, 3, 1], grid=5, seed=1)
    first = model.fit(data, steps=3, log=0, checkpoint=path, resume=True)
    again = KAN([2, 3, 1], grid=5, seed=1)
    second = again.fit(data, steps=3, log=0, checkpoint=path, resume=True)
    assert again.params.tobytes() == model.params.tobytes()
    assert second["test_loss"] == first["test_loss"]
    longer = KAN([2, 3, 1], grid=5, seed=1)
    history = longer.fit(data, steps=5, log=0, checkpoint=path, resume=True)  # two more steps
    assert len(history["test_loss"]) == 5 and history["test_loss"][:3] == first["test_loss"]


@pytest.mark.parametrize("change, words", [
    (dict(opt="adam"), "other options"),
    (dict(lamb=0.1), "other options"),
    (dict(batch=50), "other options"),
])
def test_a_fit_with_other_options_does_not_resume(data, tmp_path, change, words):
    path = tmp_path / "run.npz"
    KAN([2, 3, 1], grid=5, seed=0).fit(data, steps=2, log=0, checkpoint=path)
    model = KAN([2, 3, 1], grid=5, seed=0)
    before = model.params.copy()
    with pytest.raises(ValueError, match=words):
        model.fit(data, steps=2, log=0, checkpoint=path, resume=True, **change)
    np.testing.assert_array_equal(model.params, before)


def test_resume_needs_the_same_model_and_a_running_fit(data, tmp_path):
    path = tmp_path / "run.npz"
    KAN([2, 3, 1], grid=5, seed=0).fit(data, steps=2, log=0, checkpoint=path)
    with pytest.raises(ValueError, match="another model"):
        KAN([2, 4, 1], grid=5, seed=0).fit(data, steps=2, log=0, checkpoint=path, resume=True)
    plain = tmp_path / "plain.npz"
    KAN([2, 3, 1], grid=5, seed=0).save(plain)
    with pytest.raises(ValueError, match="not a fit in progress"):
        KAN([2, 3, 1], grid=5, seed=0).fit(data, steps=2, log=0, checkpoint=plain, resume=True)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(resume=True), ValueError, "checkpoint"),
    (dict(resume=True, checkpoint="x.npz", restarts=1), ValueError, "restarts"),
    (dict(resume="yes", checkpoint="x.npz"), TypeError, "resume must be True or False"),
])
def test_resume_names_its_mistakes(data, kwargs, error, words):
    with pytest.raises(error, match=words):
        KAN([2, 3, 1], grid=5).fit(data, steps=1, log=0, **kwargs)


def test_load_reads_a_checkpoint_of_a_running_fit_as_a_model(data, tmp_path):
    path = tmp_path / "run.npz"
    model = KAN([2, 3, 1], grid=5, seed=0)
    model.fit(data, steps=2, log=0, checkpoint=path)
    assert kanarray.load(path).params.tobytes() == model.params.tobytes()
