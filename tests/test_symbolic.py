"""Specifications of symbolic edges: branch, gradients, fitting, auto-symbolic, formulas, I/O."""
import numpy as np
import pytest
import sympy as sp

import kanarray
from kanarray import KAN, create_dataset
from kanarray.core import grid as gridlib
from kanarray.symbolic import formula as F
from kanarray.funcs import library as slib
from kanarray.kernels import reference as ref
from finite_differences import central_differences, parameter_gradient


def set_splines(layer, functions):
    """Give every edge (i, o) of `layer` the curve functions[i][o] (a spline fit; base off)."""
    I, O = layer.in_dim, layer.out_dim
    knots = layer.backend.to_numpy(layer.knots)
    xs = np.linspace(knots[0, layer.k], knots[0, -1 - layer.k], 2000)
    design = gridlib.design_matrices(np.tile(xs[:, None], (1, I)), knots, layer.k)
    for i in range(I):
        targets = np.stack([functions[i][o](xs) for o in range(O)], axis=1)
        layer.params["coef"][i] = gridlib.solve_banded_lstsq(design[i], targets, layer.k)
    layer.params["w_base"][...] = 0.0
    layer.params["w_spline"][...] = 1.0
    layer.params["bias"][...] = 0.0


def symbolic_model(seed=0, blend=True):
    """[2, 3, 2] with assorted symbolic edges (and one blended edge) and random splines."""
    rng = np.random.default_rng(seed)
    model = KAN([2, 3, 2], grid=5, seed=seed)
    model.params = model.params + 0.1 * rng.normal(size=model.num_params)
    model.layers[0].set_symbolic(0, 1, "sin", [2.0, 0.3, 1.5, -0.2])
    model.layers[0].set_symbolic(1, 1, "sin", [1.0, 0.1, 0.5, 0.1])
    model.layers[0].set_symbolic(1, 2, "x^2", [0.7, 0.1, 0.5, 0.3])
    model.layers[1].set_symbolic(2, 0, "exp", [0.6, 0.1, 0.5, 0.3])
    model.layers[1].set_symbolic(0, 1, "tanh", [1.6, 0.1, 0.5, 0.3])
    if blend:
        model.layers[1].symbolic_mask[0, 1] = 0.4  # half spline, half tanh
    return model


def all_symbolic_model(seed=3):
    """[2, 3, 1], every edge symbolic (formula checks)."""
    rng = np.random.default_rng(seed)
    model = KAN([2, 3, 1], grid=5, seed=seed)
    names = [["sin", "x^2", "exp"], ["x", "tanh", "cos"]]
    for i in range(2):
        for o in range(3):
            p = [rng.uniform(0.5, 1.5), rng.uniform(-0.5, 0.5), rng.uniform(-2, 2), rng.uniform(-1, 1)]
            model.layers[0].set_symbolic(i, o, names[i][o], p)
    for i, name in enumerate(["x^2", "sin", "gaussian"]):
        model.layers[1].set_symbolic(i, 0, name, [rng.uniform(-1.5, 1.5), rng.uniform(-0.5, 0.5),
                                                     rng.uniform(-2, 2), rng.uniform(-1, 1)])
    model.layers[0].params["bias"][...] = [0.3, -0.2, 0.1]
    model.layers[1].params["bias"][...] = [0.05]
    return model


# ---------------------------------------------------------------------- branch and gradients
def test_symbolic_branch_matches_float64_reference():
    model = symbolic_model()
    layer = model.layers[0]
    rng = np.random.default_rng(1)
    x, g = rng.uniform(-1, 1, (37, 2)), rng.normal(size=(37, 3))
    funcs = [[(slib.LIBRARY[n].f, slib.LIBRARY[n].df) if n else None for n in row]
             for row in layer.symbolic_fun]
    weight = layer.mask * layer.symbolic_mask
    y = np.zeros((37, 3))
    y += layer.symbolic_activations(x).sum(axis=1)
    np.testing.assert_allclose(y, ref.symbolic_forward(x, funcs, layer.params["symbolic"], weight),
                               rtol=1e-13, atol=1e-13)
    dx = np.zeros_like(x)
    grads = {"symbolic": np.zeros_like(layer.params["symbolic"])}
    layer.symbolic_backward(x, g, dx, grads)
    want_dx, want_dp = ref.symbolic_backward(x, g, funcs, layer.params["symbolic"], weight)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(grads["symbolic"], want_dp, rtol=1e-13, atol=1e-13)


def test_every_gradient_matches_finite_differences():
    model = symbolic_model()
    rng = np.random.default_rng(2)
    x, y = rng.uniform(-1, 1, (40, 2)), rng.normal(size=(40, 2))
    _, grad, dx = model.loss_and_grad(x, y, need_dx=True)
    numeric = parameter_gradient(model, x, y)
    scale = np.abs(numeric).max()
    offset = 0
    for l, layer in enumerate(model.layers):
        for name, shape in layer.param_shapes().items():
            size = int(np.prod(shape))
            got, want = grad[offset:offset + size], numeric[offset:offset + size]
            assert np.abs(got - want).max() <= 1e-6 * scale, (l, name)
            offset += size
    # the symbolic gradients are not trivially zero: every fixed edge's a, b, c, d moves the loss
    sym = model.views(grad)[0]["symbolic"]
    assert np.all(np.abs(sym[0, 1]) > 0) and np.all(np.abs(sym[1, 2]) > 0)
    numeric_dx = central_differences(lambda xx: model.loss_and_grad(xx, y)[0], x)
    assert np.abs(dx - numeric_dx).max() <= 1e-6 * np.abs(numeric_dx).max()


def test_fixed_edge_drops_its_spline_and_unfix_restores_it():
    model = KAN([2, 3, 1], seed=1)
    x = np.random.default_rng(0).uniform(-1, 1, (50, 2))
    before = model(x)
    model.fix_symbolic(0, 1, 2, "sin", fit_params=False)
    layer = model.layers[0]
    # edge output is now sin(x) exactly: the rest of the network is unchanged
    h = model.layer_inputs(x)[1]
    plain = KAN([2, 3, 1], seed=1)
    h_plain = plain.layer_inputs(x)[1]
    delta = h - h_plain
    curve = layer.spline_curves(1, x[:, 1])[:, 2]
    np.testing.assert_allclose(delta[:, 2], np.sin(x[:, 1]) - curve, atol=1e-13)
    np.testing.assert_allclose(np.delete(delta, 2, axis=1), 0, atol=1e-15)
    model.unfix_symbolic(0, 1, 2)
    np.testing.assert_array_equal(model(x), before)
    assert not layer.has_symbolic()


# ---------------------------------------------------------------------- fitting
def test_fix_symbolic_recovers_known_affine_parameters():
    model = KAN([1, 1], grid=100, seed=0)
    set_splines(model.layers[0], [[lambda t: 2 * np.sin(3 * t + 0.5) - 1]])
    r2 = model.fix_symbolic(0, 0, 0, "sin")
    np.testing.assert_allclose(model.layers[0].params["symbolic"][0, 0], [3, 0.5, 2, -1], atol=1e-6)
    assert r2 > 1 - 1e-12
    # on samples of the layer's inputs too
    x = np.random.default_rng(0).uniform(-1, 1, (300, 1))
    model.unfix_symbolic(0, 0, 0)
    model.fix_symbolic(0, 0, 0, "sin", x=x)
    np.testing.assert_allclose(model.layers[0].params["symbolic"][0, 0], [3, 0.5, 2, -1], atol=1e-6)
    np.testing.assert_allclose(model(x)[:, 0], 2 * np.sin(3 * x[:, 0] + 0.5) - 1, atol=1e-8)


def test_suggest_symbolic_ranks_the_true_function_first(capsys):
    model = KAN([1, 1], grid=50, seed=0)
    set_splines(model.layers[0], [[lambda t: 0.5 * np.exp(1.3 * t) + 0.2]])
    rows = model.suggest_symbolic(0, 0, 0, topk=3, lib=["x", "x^2", "exp", "sin", "tanh"])
    assert rows[0][0] == "exp" and rows[0][1] > 1 - 1e-9 and len(rows) == 3
    assert "exp" in capsys.readouterr().out
    with pytest.raises(IndexError):
        model.suggest_symbolic(0, 1, 0)


def test_auto_symbolic_recovers_product_through_two_layers():
    """x y = ((x + y)^2 - (x - y)^2) / 4 on a [2, 2, 1] KAN, picked from the whole library."""
    model = KAN([2, 2, 1], grid=10, seed=0)
    set_splines(model.layers[0], [[lambda t: t, lambda t: t], [lambda t: t, lambda t: -t]])
    model.layers[1].knots[...] = gridlib.uniform_knots(2, 10, 3, (-2, 2))
    set_splines(model.layers[1], [[lambda h: h * h / 4], [lambda h: -h * h / 4]])
    x = np.random.default_rng(0).uniform(-1, 1, (400, 2))
    fixed = model.auto_symbolic(x=x, verbose=0)
    assert {k: v[0] for k, v in fixed.items()} == {(0, 0, 0): "x", (0, 0, 1): "x", (0, 1, 0): "x",
                                                  (0, 1, 1): "x", (1, 0, 0): "x^2", (1, 1, 0): "x^2"}
    np.testing.assert_allclose(model(x)[:, 0], x[:, 0] * x[:, 1], atol=1e-10)
    formula = model.symbolic_formula()[0]
    x1, x2 = sp.symbols("x_1 x_2")
    assert F.round_formula(sp.expand(formula), 6) == x1 * x2


def test_auto_symbolic_recovers_sin_plus_square_after_training():
    f = lambda x: np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2  # noqa: E731
    data = create_dataset(f, n_var=2, train_num=400, test_num=400, seed=0)
    model = KAN([2, 1, 1], grid=5, seed=0)
    model.fit(data, steps=30)
    model = model.refine(10, x=data["train_input"])
    model.fit(data, steps=30, update_grid=False)
    model.auto_symbolic(lib=["x", "x^2", "x^3", "exp", "sin", "tanh"], x=data["train_input"], verbose=0)
    results = model.fit(data, steps=20, update_grid=False)
    assert results["test_loss"][-1] < 1e-8
    x1, x2 = sp.symbols("x_1 x_2")
    got = F.round_formula(sp.expand(model.symbolic_formula()[0]), 4)
    assert got == sp.sin(sp.Float("3.1416") * x1) + x2 ** 2


def test_auto_symbolic_skips_pruned_and_leaves_poor_fits():
    model = KAN([2, 2], grid=8, seed=0)
    set_splines(model.layers[0], [[np.sin, lambda t: t], [lambda t: np.abs(t - 0.1) ** 0.3, np.cos]])
    model.layers[0].mask[0, 1] = 0
    fixed = model.auto_symbolic(lib=["sin", "cos", "x"], r2_threshold=0.999, verbose=0)
    assert {k for k, (name, _) in fixed.items() if name} == {(0, 0, 0), (0, 1, 1)}
    assert fixed[(0, 1, 0)][0] == "" and fixed[(0, 1, 0)][1] < 0.999  # left a spline, reported
    assert model.layers[0].symbolic_fun[1, 0] == "" and model.layers[0].symbolic_fun[0, 1] == ""
    with pytest.raises(ValueError, match=r"\(0, 1, 0\)"):
        model.symbolic_formula()
    unknown = model.symbolic_formula(allow_splines=True)
    assert any(str(f).startswith("phi_0_1_0") for f in unknown[0].atoms(sp.Function))


# ---------------------------------------------------------------------- formulas
def test_formula_reproduces_the_model_output():
    model = all_symbolic_model()
    x = np.random.default_rng(5).uniform(-1, 1, (500, 2))
    want = model(x)[:, 0]
    for normalize in (True, False):
        formula = model.symbolic_formula(normalize=normalize)[0]
        got = F.formula_function(formula, ["x_1", "x_2"])(x)
        assert np.abs(got - want).max() < 1e-8 * max(1.0, np.abs(want).max())
    named = model.symbolic_formula(var_names=["a", "b"])[0]
    assert {str(s) for s in named.free_symbols} == {"a", "b"}


def test_formula_without_sympy_is_a_plain_string(monkeypatch):
    model = all_symbolic_model()
    monkeypatch.setattr(slib, "optional_sympy", lambda: None)
    formula = model.symbolic_formula()[0]
    assert isinstance(formula, str) and "sin(" in formula
    x = np.random.default_rng(5).uniform(-1, 1, (100, 2))
    namespace = {"sin": np.sin, "cos": np.cos, "exp": np.exp, "tanh": np.tanh,
                 "x_1": x[:, 0], "x_2": x[:, 1]}
    got = eval(formula.replace("^", "**"), namespace)  # noqa: S307 - our own formula
    assert np.abs(got - model(x)[:, 0]).max() < 1e-8
    assert "3.1416" in F.round_formula("3.14159265*x + 1.00000001", 4)


def test_round_formula_snaps_integers_and_drops_zeros():
    x = sp.Symbol("x")
    expr = sp.Float(1.0000000003) * sp.exp(sp.Float(3.14159265) * x) + sp.Float(2e-12)
    assert F.round_formula(expr, 4) == sp.exp(sp.Float("3.1416") * x)


# ---------------------------------------------------------------------- state
def test_save_load_round_trip_with_symbolic_edges(tmp_path):
    model = symbolic_model()
    model.layers[0].mask[1, 0] = 0
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = kanarray.load(path)
    x = np.random.default_rng(0).uniform(-1, 1, (30, 2))
    np.testing.assert_array_equal(loaded(x), model(x))
    for a, b in zip(model.layers, loaded.layers):
        np.testing.assert_array_equal(a.symbolic_fun, b.symbolic_fun)
        np.testing.assert_array_equal(a.symbolic_mask, b.symbolic_mask)
    # the function names are covered by the checksum
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["symbolic_fun_0"] = np.where(arrays["symbolic_fun_0"] == "sin", "cos", arrays["symbolic_fun_0"])
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="checksum"):
        kanarray.load(tmp_path / "bad.npz")


def test_refine_and_float32_keep_symbolic_edges():
    model = symbolic_model(blend=False)
    x = np.random.default_rng(0).uniform(-1, 1, (30, 2))
    finer = model.refine(10)
    np.testing.assert_array_equal(finer.layers[0].symbolic_fun, model.layers[0].symbolic_fun)
    np.testing.assert_array_equal(finer.layers[1].params["symbolic"], model.layers[1].params["symbolic"])
    np.testing.assert_array_equal(finer.layers[1].symbolic_mask, model.layers[1].symbolic_mask)
    # layer 0 (inputs inside its grid) is refined exactly, symbolic edges included
    np.testing.assert_allclose(finer.layer_inputs(x)[1], model.layer_inputs(x)[1], atol=1e-10)
    narrow = KAN([2, 3, 2], seed=0, dtype="float32")
    narrow.params = symbolic_model(blend=False).params
    for a, b in zip(narrow.layers, model.layers):
        a.symbolic_fun, a.symbolic_mask[...] = b.symbolic_fun.copy(), b.symbolic_mask
    out = narrow(x)
    assert out.dtype == np.float32 and np.abs(out - model(x)).max() < 1e-4
    loss, grad = narrow.loss_and_grad(x, np.zeros((30, 2)))
    assert grad.dtype == np.float32 and np.isfinite(loss)


def test_edge_activations_sum_to_the_layer_output():
    pytest.importorskip("kanarray.training.regularize")
    model = symbolic_model()
    layer = model.layers[1]
    h = np.random.default_rng(0).uniform(-1, 1, (20, 3))
    phi = layer.edge_activations(h)
    np.testing.assert_allclose(phi.sum(axis=1) + layer.params["bias"], layer.forward(h), atol=1e-13)


def test_pruning_slices_symbolic_state():
    if not hasattr(KAN, "prune_input"):
        pytest.skip("needs pruning (kanarray.analysis.prune)")
    model = symbolic_model(blend=False)
    x = np.random.default_rng(0).uniform(-1, 1, (30, 2))
    small = model.prune_input(active_inputs=[1])
    assert small.layers[0].symbolic_fun.tolist() == [model.layers[0].symbolic_fun[1].tolist()]
    np.testing.assert_array_equal(small.layers[0].params["symbolic"], model.layers[0].params["symbolic"][1:])
    # with input 0 removed the model equals the original with input 0's edges cut
    cut = symbolic_model(blend=False)
    cut.layers[0].mask[0] = 0
    np.testing.assert_allclose(small(x[:, 1:]), cut(x), atol=1e-13)


def _gpu_available():
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_available(), reason="needs an NVIDIA GPU with CuPy")
def test_symbolic_edges_on_the_gpu_match_the_cpu():
    import cupy

    cpu = symbolic_model()
    gpu = KAN([2, 3, 2], grid=5, seed=0, device="cuda")
    gpu.params = cupy.asarray(cpu.params)
    for a, b in zip(gpu.layers, cpu.layers):
        a.symbolic_fun = b.symbolic_fun.copy()
        a.symbolic_mask[...] = cupy.asarray(b.symbolic_mask)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-1, 1, (64, 2)), rng.normal(size=(64, 2))
    loss_c, grad_c, dx_c = cpu.loss_and_grad(x, y, need_dx=True)
    loss_g, grad_g, dx_g = gpu.loss_and_grad(cupy.asarray(x), cupy.asarray(y), need_dx=True)
    assert abs(loss_c - loss_g) < 1e-12
    np.testing.assert_allclose(cupy.asnumpy(grad_g), grad_c, atol=1e-11)
    np.testing.assert_allclose(cupy.asnumpy(dx_g), dx_c, atol=1e-12)
    for name in slib.LIBRARY:  # every library function accepts CuPy arrays and returns them
        z = cupy.linspace(-2, 2, 11)
        assert isinstance(slib.LIBRARY[name].f(z), cupy.ndarray), name
        assert isinstance(slib.LIBRARY[name].df(z), cupy.ndarray), name


def test_auto_symbolic_fixes_only_the_layers_asked_for():
    model = kanarray.KAN([2, 2, 1], grid=5, seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (50, 2))
    fixed = model.auto_symbolic(lib=["x", "x^2", "sin"], x=x, verbose=0, r2_threshold=0.0,
                                layers=[0])
    assert {l for l, _, _ in fixed} == {0}
    assert np.all(model.layers[0].symbolic_fun != "") and np.all(model.layers[1].symbolic_fun == "")
    with pytest.raises(ValueError, match="layers"):
        model.auto_symbolic(lib=["x"], x=x, verbose=0, layers=[2])
