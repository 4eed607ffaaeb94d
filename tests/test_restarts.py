"""fit(restarts=n) and grid_extension(restarts=n): several initialisations, the best on the
held-out split kept."""
import numpy as np
import pytest

import kanarray
from kanarray import KAN
from kanarray.pipelines.stages import grid_extension


@pytest.fixture(scope="module")
def data():
    return kanarray.create_dataset(lambda x: np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2, n_var=2,
                                   train_num=200, test_num=100, seed=0)


def fitted(data, seed, restarts):
    model = KAN([2, 3, 1], grid=5, seed=seed)
    return model, model.fit(data, steps=5, restarts=restarts, log=0)


@pytest.mark.filterwarnings("ignore:layer 1")
def test_restarts_keep_the_candidate_with_the_lowest_test_loss(data):
    model, history = fitted(data, seed=0, restarts=3)
    scores = history["restart_test_loss"]
    assert len(scores) == 4
    assert history["restart"] == int(np.argmin(scores))
    # the model holds the kept candidate: its test RMSE is the smallest score
    rmse = float(np.sqrt(np.mean((model(data["test_input"]) - data["test_label"]) ** 2)))
    assert rmse == pytest.approx(min(scores), rel=1e-12)
    assert history["test_loss"][-1] == min(scores)


def test_candidate_zero_is_plain_fit_and_the_others_differ(data):
    _, plain = fitted(data, seed=0, restarts=0)
    _, history = fitted(data, seed=0, restarts=2)
    assert history["restart_test_loss"][0] == plain["test_loss"][-1]
    assert len(set(history["restart_test_loss"])) == 3  # fresh initialisations, not copies


def test_restarts_are_deterministic(data):
    a, ha = fitted(data, seed=1, restarts=2)
    b, hb = fitted(data, seed=1, restarts=2)
    assert ha["restart_test_loss"] == hb["restart_test_loss"]
    np.testing.assert_array_equal(a.params, b.params)


def test_an_error_in_a_later_candidate_keeps_the_best_so_far(data):
    model = KAN([2, 3, 1], grid=5, seed=0)
    calls = []

    def fail_in_second_candidate(step, model, results):
        calls.append(step)
        if len(calls) == 4:  # steps 0, 1 of candidate 0, then step 0, 1 of candidate 1
            raise KeyboardInterrupt

    reference = KAN([2, 3, 1], grid=5, seed=0)
    reference.fit(data, steps=2, log=0)
    with pytest.raises(KeyboardInterrupt):
        model.fit(data, steps=2, restarts=2, log=0, callback=fail_in_second_candidate)
    np.testing.assert_array_equal(model.params, reference.params)


@pytest.mark.filterwarnings("ignore:layer 1")
def test_the_checkpoint_holds_the_best_candidate_so_far_and_at_the_end_the_kept_one(data, tmp_path):
    path = tmp_path / "restarts.npz"
    seen = []  # the checkpoint's test RMSE at each step of every candidate

    def read_checkpoint(step, model, results):
        if path.exists():
            saved = kanarray.load(path)
            seen.append(float(np.sqrt(np.mean((saved(data["test_input"]) - data["test_label"]) ** 2))))

    model = KAN([2, 3, 1], grid=5, seed=0)
    history = model.fit(data, steps=4, restarts=3, log=0, checkpoint=path, callback=read_checkpoint)
    scores = history["restart_test_loss"]
    assert history["restart"] != 0  # the kept candidate is a later one: the file had to move
    np.testing.assert_array_equal(kanarray.load(path).params, model.params)
    best_so_far = [min(scores[:r]) for r in range(1, len(scores))]
    for r in range(1, len(scores)):  # during candidate r the file holds the best of 0 .. r-1
        during = seen[4 * r:4 * (r + 1)]
        assert during == pytest.approx([best_so_far[r - 1]] * 4, rel=1e-12), r


def schedule(data, model, restarts=0):
    return grid_extension(model, data, [3, 5], steps=3, restarts=restarts, log=0)


@pytest.mark.filterwarnings("ignore:layer 1")
def test_grid_extension_restarts_keep_the_whole_schedule_that_ends_best(data):
    """Each start runs every grid; the choice is made on the last stage's test RMSE."""
    model = KAN([2, 3, 1], grid=3, seed=0)
    alone = [schedule(data, KAN([2, 3, 1], grid=3, seed=0))[1][-1]["test_rmse"]]
    alone += [schedule(data, model.fresh_start(r))[1][-1]["test_rmse"] for r in (1, 2)]
    assert len(set(alone)) == 3, alone  # fresh initialisations, not copies
    kept, rows = schedule(data, model, restarts=2)
    assert [row["grid"] for row in rows] == [3, 5] and kept.grid == 5
    assert rows[-1]["start"] == int(np.argmin(alone)) and rows[-1]["test_rmse"] == min(alone)
    rmse = float(np.sqrt(np.mean((kept(data["test_input"]) - data["test_label"]) ** 2)))
    assert rmse == pytest.approx(min(alone), rel=1e-12)


@pytest.mark.parametrize("restarts, error", [(-1, ValueError), (1.5, TypeError)])
def test_grid_extension_names_a_bad_restarts(data, restarts, error):
    with pytest.raises(error, match="restarts"):
        schedule(data, KAN([2, 3, 1], grid=3, seed=0), restarts=restarts)
