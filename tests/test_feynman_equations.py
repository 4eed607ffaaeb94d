"""The Feynman equations' table (bench/feynman_equations.py): 100 distinct equations whose
formulas sympy reads in exactly their listed variables and which are finite wherever their
ranges let the variables go."""
import importlib.util
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

sympy = pytest.importorskip("sympy")

TABLE = Path(__file__).resolve().parents[1] / "bench" / "feynman_equations.py"


def _load_table():
    spec = importlib.util.spec_from_file_location("feynman_equations", TABLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fe = _load_table()


def test_the_table_holds_the_100_equations_once_each():
    ids = [e.id for e in fe.EQUATIONS]
    assert len(ids) == 100 and len(set(ids)) == 100
    assert set(fe.BY_ID) == set(ids)
    assert ids[0] == "I.6.2a" and ids[-1] == "III.21.20"
    # variables per equation, as the database's rows list them
    assert sorted(Counter(len(e.variables) for e in fe.EQUATIONS).items()) == [
        (1, 1), (2, 15), (3, 36), (4, 27), (5, 13), (6, 6), (8, 1), (9, 1)]


def test_every_range_is_a_finite_interval():
    for e in fe.EQUATIONS:
        assert len(set(e.names)) == len(e.names), e.id
        for low, high in e.ranges:
            assert np.isfinite(low) and np.isfinite(high) and low < high, e.id


@pytest.mark.parametrize("equation", fe.EQUATIONS, ids=lambda e: e.id)
def test_formula_reads_in_its_variables_and_is_finite_on_its_ranges(equation):
    symbols = equation.symbols()
    expr = sympy.sympify(equation.formula, locals=symbols)
    assert {s.name for s in expr.free_symbols} == set(equation.names)
    assert not expr.atoms(sympy.core.function.AppliedUndef)  # only functions sympy knows
    rng = np.random.default_rng(0)
    low, high = np.array(equation.ranges, dtype=float).T
    points = low + (high - low) * rng.random((2000, len(low)))
    f = sympy.lambdify([symbols[n] for n in equation.names], expr, modules="numpy")
    values = np.broadcast_to(f(*points.T), (2000,))
    assert values.dtype.kind == "f" and np.all(np.isfinite(values))


def test_formulas_give_the_physics_values():
    """Spot checks against values worked out by hand."""
    def value(eq_id, **at):
        e = fe.BY_ID[eq_id]
        expr = sympy.sympify(e.formula, locals=e.symbols())
        return float(expr.subs({e.symbols()[k]: v for k, v in at.items()}))

    assert value("I.6.2a", theta=1) == pytest.approx(np.exp(-0.5) / np.sqrt(2 * np.pi))
    assert value("I.39.11", gamma=3, pr=2, V=5) == pytest.approx(5.0)  # gamma is a variable
    assert value("III.17.37", beta=2, alpha=1, theta=0) == pytest.approx(4.0)
    assert value("I.26.2", n=0.5, theta2=np.pi / 2) == pytest.approx(np.pi / 6)  # asin
    assert value("I.44.4", n=1, kb=1, T=1, V1=1, V2=np.e) == pytest.approx(1.0)  # log
