"""A piecewise-linear KAN is a ReLU MLP (kanarray.io.mlp): model.to_mlp() computes the same
outputs, inside the grid and outside it, through several layers, masks and both scalings; its
C file computes them too."""
import ctypes
import shutil
import subprocess

import numpy as np
import pytest

import kanarray


def trained_like(model, seed, x):
    """Random parameters of the size training gives; every layer's knots then placed on its
    inputs (non-uniform: x is skewed), as training's grid updates do."""
    model.params = np.random.default_rng(seed).normal(0, 0.5, model.params.shape)
    model.update_grid(x)
    return model


@pytest.fixture(params=["identity", "zero"])
def model(request):
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 5, (200, 3)) ** 3  # skewed: the grid update gives non-uniform knots
    model = kanarray.KAN([3, 4, 3, 2], grid=6, k=1, base_fun=request.param, seed=1)
    model.set_scaling(x, rng.normal(5, 3, (200, 2)))
    trained_like(model, 2, x)
    model.layers[1].mask[1, 2] = 0  # a pruned edge
    return model, x


def test_the_mlp_equals_the_kan_inside_and_outside_the_grid(model):
    model, x = model
    far = np.random.default_rng(3).uniform(-500, 500, (100, 3))  # spline parts zero out here
    mlp = model.to_mlp()
    with pytest.warns(UserWarning, match="outside its grid"):
        model(far)
    for rows in (x, far):
        want = model(rows)
        np.testing.assert_allclose(mlp(rows), want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
    assert len(mlp.weights) == 4 and mlp.weights[0].shape == (3 * (6 + 5), 3)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a C compiler")
def test_the_c_file_computes_the_same_outputs(model, tmp_path):
    model, x = model
    mlp = model.to_mlp()
    source = mlp.write_c(tmp_path / "kan.c", name="kan")
    library = tmp_path / "kan.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-std=c99", "-o", str(library), str(source)],
                   check=True)
    kan = ctypes.CDLL(str(library)).kan
    want = mlp(x[:20])
    got = np.zeros(2)
    for row, expected in zip(x[:20], want):
        kan(np.ascontiguousarray(row).ctypes.data_as(ctypes.c_void_p), got.ctypes.data_as(ctypes.c_void_p))
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13 * np.abs(want).max())


@pytest.mark.parametrize("kwargs, words", [({"k": 3, "base_fun": "identity"}, "k=1"),
                                           ({"k": 1}, "base_fun"),
                                           ({"k": 1, "base_fun": "zero", "width": [2, [2, 1], 1]},
                                            "multiplication")])
def test_what_is_not_piecewise_linear_is_refused_by_name(kwargs, words):
    kwargs = {"width": [2, 3, 1], **kwargs}
    with pytest.raises(ValueError, match=words):
        kanarray.KAN(**kwargs).to_mlp()


def test_an_edge_fixed_to_a_function_is_refused():
    model = kanarray.KAN([2, 3, 1], k=1, base_fun="identity")
    model.fix_symbolic(0, 0, 0, "sin", fit_params=False)
    with pytest.raises(ValueError, match="library functions"):
        model.to_mlp()
