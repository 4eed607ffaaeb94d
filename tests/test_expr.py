"""Formulas without sympy: expression trees that read as a person writes them, in text, LaTeX
and NumPy code that computes exactly what the model does."""
import numpy as np
import pytest

import kanarray
from kanarray import KAN
from kanarray.cli import main
from kanarray.pipelines import demo
from kanarray.symbolic import expr
from kanarray.symbolic.expr import add, call, mul, num, var
from kanarray.symbolic.formula import formula_trees

X1, X2 = var("x_1"), var("x_2")


@pytest.mark.parametrize("tree, written", [
    (add([mul([num(2.0), call("sin", X1)]), call("x^2", X2), num(1.5)]), "2*sin(x_1) + x_2**2 + 1.5"),
    (add([mul([num(-3.0), call("1/x", add([X1, num(1.0)]))]), num(-0.5)]), "-3/(x_1 + 1) - 0.5"),
    (mul([X1, call("1/x^2", X2)]), "x_1/x_2**2"),
    (mul([num(-1.0), X1, X2]), "-x_1*x_2"),
    (add([X1, mul([num(-1.0), X1, X2])]), "x_1 - x_1*x_2"),
    (call("x^2", add([X1, X2])), "(x_1 + x_2)**2"),
    (call("x^2", mul([num(2.0), X1])), "(2*x_1)**2"),
    (mul([num(2.0), add([X1, num(1.0)])]), "2*x_1 + 2"),  # a number times a sum is distributed
    (call("exp", add([call("sin", mul([num(3.1416), X1])), call("x^2", X2)])), "exp(sin(3.1416*x_1) + x_2**2)"),
    (call("1/sqrt(x)", X1), "1/sqrt(x_1)"),
    (call("gaussian", X1), "exp(-x_1**2)"),
    (add([num(0.0), mul([num(1.0), X1]), num(0.0)]), "x_1"),
])
def test_text_reads_as_a_person_writes_it(tree, written):
    assert expr.text(tree) == written


def test_digits_round_before_the_tree_is_simplified():
    tree = add([mul([num(0.9999999999), call("x^2", add([X2, num(3e-16)]))]), num(-7e-12),
                mul([num(3.2000000001), call("exp", mul([num(0.5), X1]))])])
    assert expr.text(tree, digits=4) == "x_2**2 + 3.2*exp(0.5*x_1)"
    assert expr.latex(tree, digits=4) == r"x_{2}^{2} + 3.2 \exp\left(0.5 x_{1}\right)"


@pytest.mark.parametrize("tree, written", [
    (mul([X1, call("1/x^2", X2)]), r"\frac{x_{1}}{x_{2}^{2}}"),
    (call("sqrt", add([X1, X2])), r"\sqrt{x_{1} + x_{2}}"),
    (call("abs", X1), r"\left|x_{1}\right|"),
    (call("arctan", X1), r"\arctan\left(x_{1}\right)"),
    (call("x^3", add([X1, num(1.0)])), r"\left(x_{1} + 1\right)^{3}"),
])
def test_latex(tree, written):
    assert expr.latex(tree) == written


def test_code_and_evaluate_compute_what_the_library_computes():
    """Guards included: 1/x at 0 and sqrt of a negative number stay finite, as in the model."""
    tree = add([call("1/x", X1), call("sqrt", X2), mul([num(2.0), call("log", X1)])])
    x1, x2 = np.array([0.0, 0.5, -2.0]), np.array([-1.0, 4.0, 9.0])
    lib = kanarray.funcs.library.LIBRARY
    want = lib["1/x"].f(x1) + lib["sqrt"].f(x2) + 2.0 * lib["log"].f(x1)
    np.testing.assert_array_equal(expr.evaluate(tree, {"x_1": x1, "x_2": x2}), want)
    source, used = expr.code(tree, ["x_1", "x_2"])
    namespace = {name: getattr(np, name) for name in used}
    np.testing.assert_allclose(eval(source, namespace, {"x_1": x1, "x_2": x2}), want, rtol=1e-15)
    assert np.all(np.isfinite(want))


def symbolic_model():
    """x_1 * sin(x_2) + 0.5 through a multiplication node, edges fixed by hand."""
    model = KAN([2, [0, 1], 1], grid=5, seed=0)
    model.fix_symbolic(0, 0, 0, "x", fit_params=False)
    model.fix_symbolic(0, 1, 1, "sin", fit_params=False)
    model.fix_symbolic(1, 0, 0, "x", fit_params=False)
    model.layers[0].mask[0, 1] = model.layers[0].mask[1, 0] = 0.0
    model.layers[1].params["bias"][...] = 0.5
    return model


def test_formula_trees_compute_what_the_model_computes():
    model = symbolic_model()
    x = np.random.default_rng(0).uniform(-1, 1, (50, 2))
    tree = formula_trees(model)[0]
    assert expr.text(tree) == "x_1*sin(x_2) + 0.5"
    np.testing.assert_allclose(expr.evaluate(tree, {"x_1": x[:, 0], "x_2": x[:, 1]}), model(x)[:, 0],
                               rtol=1e-13)


def test_the_command_line_writes_latex_and_a_standalone_python_function(tmp_path, capsys):
    model = symbolic_model().set_scaling(np.array([[10.0, -1.0], [20.0, 1.0]]))
    path = tmp_path / "m.npz"
    model.save(path, metadata={"inputs": ["speed (m/s)", "angle"], "targets": ["y"]})
    assert main(["formula", str(path), "--latex", "--digits", "3"]) == 0
    latex = capsys.readouterr().out
    assert latex.startswith("y = ") and r"\sin\left(" in latex and "speed" in latex
    assert main(["formula", str(path), "--python"]) == 0
    source = capsys.readouterr().out
    namespace = {}
    exec(compile(source, "formula.py", "exec"), namespace)
    x = np.column_stack([np.linspace(10, 20, 7), np.linspace(-1, 1, 7)])
    np.testing.assert_allclose(namespace["formula"](x[:, 0], x[:, 1]), model(x)[:, 0], rtol=1e-13)
    assert "def formula(speed__m_s_, angle)" in source


def test_the_demo_checks_its_formula_without_sympy(monkeypatch):
    """Without sympy the check compares what the rounded formula computes with the target."""
    monkeypatch.setattr(kanarray.funcs.library, "optional_sympy", lambda: None)
    monkeypatch.setattr(demo, "optional_sympy", lambda: None)
    good = call("exp", add([call("sin", mul([num(3.14159265), X1])), call("x^2", X2)]))
    bad = call("exp", add([call("sin", mul([num(3.1417), X1])), call("x^2", X2)]))
    assert demo.matches_target("exp(sin(3.1416*x_1) + x_2**2)", good) is True
    assert demo.matches_target("exp(sin(3.1417*x_1) + x_2**2)", bad) is False
