"""Specifications of kanarray.analysis.prune: attribution scores, pruning of nodes, edges and inputs."""
import numpy as np
import pytest

import kanarray
from kanarray import KAN
from kanarray.kernels import reference
from kanarray.core.layer import GROUPS

BASE = {"silu": 0, "identity": 1, "zero": 2}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small models, many tiny kernel calls: one thread avoids the parallel launch cost."""
    numba = pytest.importorskip("numba")
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


def target(x):
    """Depends on inputs 0 and 2 of 4 (x_1 and x_3)."""
    return np.exp(np.sin(np.pi * x[:, 0]) + x[:, 2] ** 2)


@pytest.fixture(scope="module")
def data():
    return kanarray.create_dataset(target, n_var=4, train_num=500, test_num=200, seed=0)


@pytest.fixture(scope="module")
def trained(data):
    model = KAN([4, 5, 1], grid=5, k=3, seed=0)
    history = model.fit(data, opt="lbfgs", steps=25, lamb=1e-2)
    assert history["stopped"] is None and history["test_loss"][-1] < 0.2
    return model


def random_model(width, seed):
    rng = np.random.default_rng(seed)
    model = KAN(width, grid=5, k=3, seed=seed, noise_scale=2.0)
    for layer in model.layers:  # by name: the draw does not depend on other parameter groups
        for name in ("coef", "w_base", "w_spline", "bias"):
            layer.params[name][...] += 0.2 * rng.normal(size=layer.params[name].shape)
    x = rng.uniform(-1, 1, (40, width[0]))
    model.update_grid(x)
    return model, x


def edge_phis(model, x):
    """Reference per-edge activations of every layer at the data x."""
    phis = []
    h = x
    for layer in model.layers:
        p = layer.params
        phis.append(reference.spline_activations(h, layer.knots, p["coef"], p["w_base"], p["w_spline"],
                                               layer.mask, layer.k, BASE[layer.base_fun]))
        h = layer.forward(h)
    return phis


# ---------------------------------------------------------------------- attribution
def test_attribution_scores_follow_their_definition():
    model, x = random_model([3, 4, 2], seed=1)
    model.layers[0].mask[1, 2] = 0.0
    model.layers[1].mask[3, 0] = 0.0
    model.attribute(x)
    score = np.full(2, 0.5)
    expected_edges = []
    for m in reversed([np.abs(phi).mean(axis=0) for phi in edge_phis(model, x)]):
        edge = m * score / (m.sum(axis=0) + 1e-4)
        expected_edges.insert(0, edge)
        score = edge.sum(axis=1)
    for got, want in zip(model.edge_scores_, expected_edges):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(model.node_scores_[0], score, rtol=1e-12)
    np.testing.assert_array_equal(model.node_scores_[-1], [0.5, 0.5])
    for l, edges in enumerate(model.edge_scores_):
        assert edges.shape == (model.width[l], model.width[l + 1])
        assert np.all(edges >= 0)
        assert edges.sum() <= 1.0 + 1e-12
        np.testing.assert_allclose(model.node_scores_[l], edges.sum(axis=1), rtol=1e-12)
    assert model.edge_scores_[0][1, 2] == 0.0 and model.edge_scores_[1][3, 0] == 0.0
    np.testing.assert_array_equal(model.feature_score_, model.node_scores_[0])


def test_attribute_needs_data():
    model = KAN([2, 3, 1])
    with pytest.raises(ValueError, match="data"):
        model.attribute()
    with pytest.raises(ValueError, match="data"):
        model.prune()


def test_feature_score_finds_the_used_inputs(trained):
    scores = trained.attribute().feature_score_
    assert scores.shape == (4,) and np.all(scores >= 0)
    assert scores[0] > 0.1 and scores[2] > 0.1
    assert scores[1] < 1e-2 and scores[3] < 1e-2


# ---------------------------------------------------------------------- node and edge pruning
def test_prune_node_removes_exactly_the_weak_nodes_outgoing_contribution():
    model, x = random_model([3, 5, 2], seed=2)
    weak = [1, 3]
    for name in ("coef", "w_base", "w_spline"):
        model.layers[1].params[name][weak] *= 1e-5  # nodes 1 and 3 barely reach the outputs
    phis = edge_phis(model, x)
    small = model.prune_node(threshold=1e-2, x=x)
    assert small.width == [3, 3, 2]
    assert small.num_params < model.num_params
    # the outputs lose precisely the outgoing edges of the removed nodes
    lost = phis[1][:, weak, :].sum(axis=1)
    np.testing.assert_allclose(model(x) - small(x), lost, rtol=1e-9, atol=1e-13)
    assert np.abs(lost).max() < 1e-3
    # kept nodes keep their parameters, knots and masks
    kept = [0, 2, 4]
    for name in ("coef", "w_base", "w_spline"):
        np.testing.assert_array_equal(small.layers[0].params[name], model.layers[0].params[name][..., kept])
        np.testing.assert_array_equal(small.layers[1].params[name], model.layers[1].params[name][kept])
    np.testing.assert_array_equal(small.layers[0].params["bias"], model.layers[0].params["bias"][kept])
    np.testing.assert_array_equal(small.layers[1].knots, model.layers[1].knots[kept])


def test_pruning_parts_that_are_already_zero_changes_no_output():
    model, x = random_model([3, 5, 2], seed=3)
    model.layers[1].mask[[0, 4], :] = 0.0  # nodes 0 and 4 reach nothing
    model.layers[0].mask[1, :] = 0.0  # input 1 reaches nothing
    model.layers[0].mask[0, 2] = 0.0  # and one edge is off
    before = model(x)
    small = model.prune(node_th=1e-2, edge_th=0.0, x=x)
    assert small.width == [3, 3, 2]
    np.testing.assert_allclose(small(x), before, rtol=1e-14, atol=1e-14)
    fewer = small.prune_input(threshold=1e-2, x=x)
    assert fewer.width == [2, 3, 2] and fewer.input_ids == [0, 2]
    np.testing.assert_allclose(fewer(x[:, fewer.input_ids]), before, rtol=1e-14, atol=1e-14)


def test_prune_edge_masks_low_scores_in_place():
    model, x = random_model([3, 4, 2], seed=4)
    model.attribute(x)
    threshold = float(np.median(model.edge_scores_[0]))
    expected = [(scores > threshold).astype(float) for scores in model.edge_scores_]
    assert model.prune_edge(threshold, x=x) is model
    for layer, mask in zip(model.layers, expected):
        np.testing.assert_array_equal(layer.mask, mask)
    model.attribute(x)
    for layer, scores in zip(model.layers, model.edge_scores_):
        assert np.all(scores[layer.mask == 0] == 0)


def test_every_per_edge_array_is_sliced():
    """Parameter groups and per-layer state (symbolic arrays included, when present) follow the
    kept nodes: each element is tagged with its (input, output) position and checked after."""
    model, x = random_model([3, 4, 2], seed=5)
    for layer in model.layers:
        I, O = layer.in_dim, layer.out_dim
        tag = (np.arange(I)[:, None] * 10 + np.arange(O)[None, :]).astype(float)
        assert set(layer.params) <= {group.name for group in GROUPS if group.trained}
        if "symbolic" in layer.params:
            layer.params["symbolic"][...] = tag[:, :, None] + np.arange(4) / 10
        if getattr(layer, "symbolic_fun", None) is not None:
            layer.symbolic_fun = np.vectorize(lambda v: f"f{int(v)}")(tag).astype(layer.symbolic_fun.dtype)
    fewer = kanarray.analysis.prune._derived(model, [0, 2], [np.array([0, 2]), np.array([1, 3]),
                                                               np.arange(2)])
    for l, (src, dst) in enumerate(zip(model.layers, fewer.layers)):
        rows = [0, 2] if l == 0 else [1, 3]
        cols = [1, 3] if l == 0 else [0, 1]
        for name, axes in ((g.name, g.axes) for g in GROUPS if g.trained):
            if name in src.params:
                want = np.asarray(src.params[name])
                for axis, role in enumerate(axes):
                    if role in ("in", "out"):
                        want = np.take(want, rows if role == "in" else cols, axis=axis)
                np.testing.assert_array_equal(dst.params[name], want)
        for name, axes in ((g.name, g.axes) for g in GROUPS if not g.trained):
            if getattr(src, name, None) is None:
                continue
            want = np.asarray(getattr(src, name))
            for axis, role in enumerate(axes):
                if role in ("in", "out"):
                    want = np.take(want, rows if role == "in" else cols, axis=axis)
            np.testing.assert_array_equal(np.asarray(getattr(dst, name)), want)


def test_a_parameter_group_outside_the_layer_table_is_an_error():
    """Pruning slices a layer's arrays by the roles of their axes in kanarray.core.layer.GROUPS;
    an array it cannot place is refused, not dropped."""
    model, x = random_model([2, 3, 1], seed=6)
    layer = model.layers[0]
    layer.params["mystery"] = np.zeros((2, 3))
    try:
        with pytest.raises(KeyError, match="GROUPS"):
            model.prune_node(threshold=1e-2, x=x)
    finally:
        del layer.params["mystery"]


# ---------------------------------------------------------------------- the end-to-end case
def test_trained_model_prunes_to_the_two_used_inputs(trained, data):
    x = data["train_input"]
    before = trained(x)
    y_scale = before.std()

    small = trained.prune()  # on the training data fit() left on the model
    assert small.width[0] == 4 and small.width[1] < 5 and small.width[2] == 1
    assert all(m.shape[0] == w for m, w in zip([l.mask for l in small.layers], small.width[:-1]))
    after = small(x)
    assert np.sqrt(np.mean((after - before) ** 2)) < 1e-2 * y_scale

    fewer = small.prune_input()
    assert fewer.width[0] == 2 and fewer.input_ids == [0, 2]
    # dropping the inputs whose edges prune() had masked changes nothing at all
    np.testing.assert_allclose(fewer(x[:, fewer.input_ids]), after, rtol=1e-14, atol=1e-14)

    direct = trained.prune_input(threshold=1e-2)
    assert direct.input_ids == [0, 2] and direct.width == [2, 5, 1]
    assert np.sqrt(np.mean((direct(x[:, [0, 2]]) - before) ** 2)) < 1e-2 * y_scale


def test_input_ids_survive_chaining_and_checkpoints(tmp_path):
    model, x = random_model([4, 3, 1], seed=7)
    first = model.prune_input(active_inputs=[3, 1, 0])
    assert first.input_ids == [3, 1, 0] and first.width == [3, 3, 1]
    np.testing.assert_array_equal(first.layers[0].params["coef"], model.layers[0].params["coef"][[3, 1, 0]])
    second = first.prune_input(active_inputs=[0, 2])
    assert second.input_ids == [3, 0]
    second.save(tmp_path / "m.npz")
    loaded = kanarray.load(tmp_path / "m.npz")
    assert loaded.input_ids == [3, 0] and loaded.config()["input_ids"] == [3, 0]
    np.testing.assert_array_equal(loaded(x[:, [3, 0]]), second(x[:, [3, 0]]))
    with pytest.raises(ValueError):
        model.prune_input(active_inputs=[0, 4])
    with pytest.raises(ValueError):
        model.prune_input(active_inputs=[1, 1])
    with pytest.raises(ValueError):
        KAN([2, 1], input_ids=[0])


def test_symbolic_edges_are_scored_and_kept_by_pruning():
    model, x = random_model([3, 4, 2], seed=8)
    model.layers[0].set_symbolic(2, 3, "sin", [1.5, 0.2, 0.8, 0.1])
    layer = model.layers[0]
    phi = layer.edge_activations(x)
    np.testing.assert_allclose(phi.sum(axis=1) + layer.params["bias"], layer.forward(x),
                               rtol=1e-12, atol=1e-12)
    expected = np.abs(0.8 * np.sin(1.5 * x[:, 2] + 0.2) + 0.1).mean()
    assert np.abs(phi[:, 2, 3]).mean() == pytest.approx(expected, rel=1e-12)
    # the regulariser sees only spline edges: nothing of the symbolic edge
    assert np.all(layer.spline_activations(x).phi[2, :, 3] == 0)
    fewer = model.prune_input(active_inputs=[2, 0])
    assert fewer.layers[0].symbolic_fun[0, 3] == "sin" and fewer.layers[0].symbolic_mask[0, 3] == 1
    np.testing.assert_array_equal(fewer.layers[0].params["symbolic"][0, 3], [1.5, 0.2, 0.8, 0.1])
    model.layers[0].mask[1, :] = 0.0  # input 1 reaches nothing: dropping it changes no output
    fewer = model.prune_input(active_inputs=[0, 2])
    np.testing.assert_allclose(fewer(x[:, [0, 2]]), model(x), rtol=1e-14, atol=1e-14)
