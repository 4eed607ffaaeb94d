"""The kanarray command, end to end on small files: fit -> predict -> formula -> plot, for
regression and classification, and one clear line for every user mistake."""
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import sympy as sp

from kanarray.cli import main


def write_csv(path, columns, names):
    np.savetxt(path, np.column_stack(columns), delimiter=",", header=",".join(names), comments="")
    return str(path)


def far_off_grid_csv(folder, seed=0, n=300):
    """y = 3.2 exp(0.5 a) + b^2 with a in [10, 20] and b in [-300, 300]: far outside [-1, 1]."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(10, 20, n), rng.uniform(-300, 300, n)
    y = 3.2 * np.exp(0.5 * a) + b ** 2
    return write_csv(folder / "far.csv", [a, b, y], ["a", "b", "y"]), np.column_stack([a, b]), y


def blobs_csv(folder, seed=0, n=300):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, n)
    x = np.array([[-0.6, -0.5], [0.6, -0.5], [0.0, 0.6]])[label] + 0.15 * rng.normal(size=(n, 2))
    return write_csv(folder / "blobs.csv", [x, label], ["u", "v", "label"]), x, label


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("seed", range(3))
def test_fit_symbolic_on_far_off_grid_data_gives_the_formula_in_column_names(tmp_path, capsys, seed):
    data, x, y = far_off_grid_csv(tmp_path, seed)
    model = str(tmp_path / "m.npz")
    code, out, err = run(["fit", data, "--target", "y", "--width", "0", "--steps", "20",
                          "--symbolic", "--seed", str(seed), "--out", model], capsys)
    assert code == 0, err
    assert "symbolic" in out and f"saved {model}" in out
    code, out, _ = run(["formula", model], capsys)
    target, text = out.strip().split(" = ", 1)
    formula = sp.sympify(text)
    assert target == "y" and {str(s) for s in formula.free_symbols} == {"a", "b"}
    got = sp.lambdify([sp.Symbol("a"), sp.Symbol("b")], formula, "numpy")(x[:, 0], x[:, 1])
    assert np.max(np.abs(got - y) / np.abs(y)) < 1e-6

    preds = tmp_path / "p.csv"
    code, out, _ = run(["predict", model, data, "--out", str(preds)], capsys)
    assert code == 0 and "wrote 300 predictions" in out
    assert preds.read_text().splitlines()[0] == "y"
    np.testing.assert_allclose(np.loadtxt(preds, skiprows=1), y, rtol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_fit_symbolic_with_default_options_prints_the_law(tmp_path, capsys, seed):
    """The README's file (500 rows) and command with no tuning: the hidden layer goes through
    discover, whose formula is the law itself, constants snapped (3 of 3 seeds)."""
    data, x, y = far_off_grid_csv(tmp_path, seed, n=500)
    model = str(tmp_path / "m.npz")
    code, out, err = run(["fit", data, "--target", "y", "--symbolic", "--seed", str(seed),
                          "--out", model], capsys)
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith("y = ")]
    assert len(lines) == 1, out
    a, b = sp.symbols("a b")
    assert sp.simplify(sp.sympify(lines[0][4:]) - (3.2 * sp.exp(a / 2) + b ** 2)) == 0, out
    assert "formula check (test rows)" in out and f"saved {model}" in out
    assert re.search(r"^\*\s+\d+\s+\S+\s+passed\s+" + re.escape(lines[0][4:]) + "$", out, re.M), out
    code, out, _ = run(["formula", model], capsys)  # the saved network computes the law
    formula = sp.sympify(out.strip().split(" = ", 1)[1])
    got = sp.lambdify([a, b], formula, "numpy")(x[:, 0], x[:, 1])
    assert np.max(np.abs(got - y) / np.abs(y)) < 1e-6


def test_fit_symbolic_without_a_formula_saves_the_trained_network(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (300, 2))
    data = write_csv(tmp_path / "noise.csv", [x, rng.normal(size=300)], ["u", "v", "y"])
    model = str(tmp_path / "m.npz")
    code, out, err = run(["fit", data, "--target", "y", "--symbolic", "--steps", "5",
                          "--out", model], capsys)
    assert code == 0, err
    assert "no formula: " in out and "the network is trained as without --symbolic" in out
    assert f"saved {model}" in out
    code, out, _ = run(["predict", model, data], capsys)
    assert code == 0 and len(out.strip().splitlines()) == 301


def test_classification_end_to_end(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    data, x, label = blobs_csv(tmp_path)
    model = str(tmp_path / "c.npz")
    code, out, err = run(["fit", data, "--target", "label", "--task", "classification",
                          "--width", "3", "--steps", "10", "--out", model], capsys)
    assert code == 0, err
    assert "test accuracy" in out
    code, out, _ = run(["predict", model, data], capsys)
    lines = out.strip().splitlines()
    assert lines[0] == "label,p_0,p_1,p_2" and len(lines) == 301
    table = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    assert np.mean(table[:, 0] == label) > 0.95
    np.testing.assert_allclose(table[:, 1:].sum(axis=1), 1.0, rtol=1e-12)
    code, out, _ = run(["plot", model, "--out", str(tmp_path / "net.png")], capsys)
    assert code == 0 and (tmp_path / "net.png").stat().st_size > 1000
    code, _, err = run(["formula", model], capsys)  # splines left: no formula, one line
    assert code == 2 and err.count("\n") == 1 and "--symbolic" in err


def mistakes(tmp_path):
    data, _, _ = far_off_grid_csv(tmp_path, n=30)
    text = tmp_path / "text.csv"
    text.write_text("a,b,y\n1,2,3\n4,oops,6\n")
    holes = tmp_path / "holes.csv"
    holes.write_text("a,b,y\n1,2,3\n4,nan,6\n7,8,9\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    fit = ["fit", data, "--target", "y"]
    return {
        "missing file": (["fit", str(tmp_path / "nope.csv"), "--target", "y"], "nope.csv"),
        "missing column": (["fit", data, "--target", "zz"], "zz"),
        "no target": (["fit", data], "--target"),
        "non-numeric": (["fit", str(text), "--target", "y"], "row 3"),
        "NaN row": (["fit", str(holes), "--target", "y"], "row 3"),
        "empty file": (["fit", str(empty), "--target", "y"], "empty.csv"),
        "grid 0": (fit + ["--grid", "0"], "--grid"),
        "test-frac 1.5": (fit + ["--test-frac", "1.5"], "--test-frac"),
        "steps 0": (fit + ["--steps", "0"], "--steps"),
        "restarts -1": (fit + ["--restarts", "-1"], "--restarts"),
        "restarts with discover": (fit + ["--symbolic", "--restarts", "2"], "--restarts"),
        "refine below grid": (fit + ["--refine", "3"], "--refine"),
        "bad width": (fit + ["--width", "a"], "--width"),
        "bad task": (fit + ["--task", "ranking"], "--task"),
        "out folder": (fit + ["--out", str(tmp_path / "no" / "m.npz")], "does not exist"),
        "wrong model file": (["predict", data, data], "not a readable kanarray checkpoint"),
        "missing model": (["formula", str(tmp_path / "none.npz")], "none.npz"),
        "classes not ids": (fit + ["--task", "classification"], "class ids"),
        "demo out folder": (["demo", "--out", str(tmp_path / "missing" / "x.png")], "does not exist"),
        "unknown command": (["train"], "invalid choice"),
    }


def test_every_user_mistake_is_one_line_and_a_non_zero_exit(tmp_path, capsys):
    for case, (argv, words) in mistakes(tmp_path).items():
        start = time.perf_counter()
        code, out, err = run(argv, capsys)
        assert code == 2, (case, out, err)
        assert err.startswith("kanarray: error:") and err.count("\n") == 1, (case, err)
        assert words in err, (case, err)
        assert time.perf_counter() - start < 5, case  # checked before any training


def test_help_starts_fast_compiles_nothing_and_imports_no_scipy():
    code = ("import sys\nfrom kanarray.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('RESULT', 'numba' in sys.modules, 'scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "fit" in out.stdout and "RESULT False False" in out.stdout  # nothing can have compiled


def test_module_entry_point_and_info(tmp_path):
    out = subprocess.run([sys.executable, "-m", "kanarray", "info"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "kanarray" in out.stdout and "kernel cache" in out.stdout and "cuda" in out.stdout


@pytest.mark.slow
def test_bench_prints_a_table(capsys):
    code, out, _ = run(["bench", "--repeats", "1"], capsys)
    rows = out.strip().splitlines()
    assert code == 0 and len(rows) == 5 and all("GFLOP/s" in row for row in rows)


def test_fit_with_restarts_keeps_the_best_start(tmp_path, capsys):
    data = tmp_path / "data.csv"
    x = np.random.default_rng(0).uniform(-1, 1, (120, 2))
    np.savetxt(data, np.column_stack([x, np.sin(3 * x[:, 0]) + x[:, 1]]), delimiter=",",
               header="a,b,y", comments="")
    model = str(tmp_path / "m.npz")
    code, out, err = run(["fit", str(data), "--target", "y", "--width", "2", "--steps", "3",
                          "--restarts", "2", "--out", model], capsys)
    assert code == 0, err
    assert "restarts: kept start" in out and "of 3 (test loss" in out
    assert "saved" in out and (tmp_path / "m.npz").exists()
