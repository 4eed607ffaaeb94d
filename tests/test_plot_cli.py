"""Specifications of model.plot and the `kanarray demo` command."""
import re
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

from kanarray import KAN
from kanarray.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_writes_a_png_with_and_without_data(tmp_path):
    model = KAN([2, 3, 1], seed=0)
    model.layers[0].set_symbolic(0, 1, "sin", [3.0, 0.0, 1.0, 0.0])
    model.layers[0].mask[1, 2] = 0
    x = np.random.default_rng(0).uniform(-1, 1, (200, 2))
    for path, data in ((tmp_path / "a.png", x), (tmp_path / "b.png", None)):
        assert model.plot(path, x=data) == str(path)
        content = path.read_bytes()
        assert content.startswith(PNG_MAGIC) and len(content) > 5000


def test_plot_without_matplotlib_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(ImportError, match=r"kanarray\[plot\]"):
        KAN([1, 1]).plot(tmp_path / "x.png")


def test_demo_runs_end_to_end_and_recovers_the_formula(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert main(["demo", "--out", str(out), "--seed", "0"]) == 0
    text = capsys.readouterr().out
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert f"network plot: {out}" in text
    match = re.search(r"recovered formula: (.+)", text)
    x1, x2 = sp.symbols("x_1 x_2")
    target = sp.exp(sp.sin(sp.pi * x1) + x2 ** 2)  # discover snaps 3.14159... to pi
    assert sp.simplify(sp.sympify(match.group(1)) - target) == 0
    final = re.search(r"symbolic fine-tune\s+\[2, 1, 1\]\s+\d+\s+(\S+)\s+(\S+)", text)
    assert final is not None, text
    assert float(final.group(2)) < 1e-8  # test RMSE


def test_demo_on_the_base_install_skips_only_the_plot(tmp_path, capsys, monkeypatch):
    """`pip install . && kanarray demo` has no matplotlib: the story still runs to the formula."""
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    assert main(["demo", "--out", str(tmp_path / "demo.png")]) == 0
    text = capsys.readouterr().out
    assert "recovered formula: exp(" in text
    assert "network plot: skipped" in text and "kanarray[plot]" in text
    assert not (tmp_path / "demo.png").exists()


def test_cli_usage_and_module_entry_point():
    assert main([]) == 2
    done = subprocess.run([sys.executable, "-m", "kanarray", "demo", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "--out" in done.stdout and "--seed" in done.stdout
