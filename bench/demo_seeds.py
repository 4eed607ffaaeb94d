"""How often `kanarray demo --seed S` recovers the exact formula, over seeds 0-9.

    python bench/demo_seeds.py [--seeds 10] [--out bench/results]

Per seed: the initialisations the demo needed, the pruned width, whether the rounded formula is
exactly exp(x_2**2 + sin(3.1416*x_1)), and the formula report on the test data (largest gap
between formula and network, formula RMSE against the labels). Beside it, the same target
through the README script's steps by hand from one initialisation (fit with lamb, model.prune,
fit, refine(20), fit, auto_symbolic on its five functions, fit_constants): the pruned width,
the edges left splines and whether the formula is exact. Writes demo_seeds.json and .md.
"""
import argparse
import json
import os
import warnings

import kanarray
from kanarray.pipelines.demo import demo_function, matches_target, run_demo
from kanarray.symbolic.formula import round_formula

README_LIB = ["x", "x^2", "exp", "sin", "tanh"]


def steps_by_hand(seed):
    """The README script's steps by hand from model seed `seed` -> a row of the second table."""
    data = kanarray.create_dataset(demo_function, n_var=2, train_num=1000, test_num=1000, seed=0)
    model = kanarray.KAN(width=[2, 5, 1], grid=5, k=3, seed=seed)
    model.fit(data, steps=20, lamb=0.01, lamb_entropy=10.0, log=0)
    model = model.prune(x=data["train_input"])
    width = model.width
    model.fit(data, steps=30, log=0)
    model = model.refine(20)
    model.fit(data, steps=30, update_grid=False, log=0)
    fixed = model.auto_symbolic(lib=README_LIB, x=data["train_input"], verbose=0)
    left = sorted(edge for edge, (name, _) in fixed.items() if not name)
    formula = None
    if not left:
        model.fit_constants(data["train_input"], data["train_label"])
        formula = str(round_formula(model.symbolic_formula()[0], 4))
    return {"seed": seed, "width": width, "splines_left": len(left), "formula": formula,
            "exact": bool(formula is not None and matches_target(formula))}


def _shortened(formula, width=70):
    """A formula for a table cell: '-' for none, cut at `width` characters."""
    if formula is None:
        return "-"
    return formula if len(formula) <= width else formula[:width] + " ..."


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args()
    rows = []
    for seed in range(args.seeds):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = run_demo(seed=seed, plot=False, verbose=False)
        report = result["report"] or {}
        rows.append({"seed": seed,
                     "inits": sum(s["stage"].startswith("fit [2,5,1]") for s in result["stages"]),
                     "width": result["stages"][-1]["width"], "exact": bool(result["exact"]),
                     "formula": str(result["formula_rounded"]), "stopped": result["stopped"],
                     "max_gap": report.get("max_gap"), "formula_rmse": report.get("rmse")})
        print(rows[-1], flush=True)
    lines = ["# `kanarray demo --seed S`: exact recovery over seeds\n",
             f"{sum(r['exact'] for r in rows)} of {len(rows)} seeds recover "
             "exp(x_2**2 + sin(3.1416*x_1)). `python bench/demo_seeds.py`\n",
             "| seed | inits | width | exact | max abs(formula - network) | formula RMSE | formula or why it stopped |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        gap = "-" if r["max_gap"] is None else f"{r['max_gap']:.1e}"
        err = "-" if r["formula_rmse"] is None else f"{r['formula_rmse']:.1e}"
        lines.append(f"| {r['seed']} | {r['inits']} | {r['width']} | {'yes' if r['exact'] else 'no'} "
                     f"| {gap} | {err} | {r['stopped'] or r['formula']} |")
    hand = []
    for seed in range(args.seeds):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hand.append(steps_by_hand(seed))
        print(hand[-1], flush=True)
    lines += ["", "## The README script's steps by hand, one initialisation each\n",
              f"{sum(r['exact'] for r in hand)} of {len(hand)} seeds recover the formula.\n",
              "| seed | pruned width | edges left splines | exact | formula |", "|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['width']} | {r['splines_left']} | {'yes' if r['exact'] else 'no'} "
              f"| {_shortened(r['formula'])} |" for r in hand]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "demo_seeds.json"), "w") as out:
        json.dump({"demo": rows, "by_hand": hand}, out, indent=2)
    with open(os.path.join(args.out, "demo_seeds.md"), "w") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
