"""Which seeds kanarray.pipelines.discover gets through, on the targets of tests/test_discover.py.

    python bench/discover_seeds.py [--seeds 5] [--out bench/results]

sin(pi x_1) + x_2^2 from a [2, 5, 1], and x_1 x_2 from a [2, 2, 1] with lamb = 0.001 and with
the default 0.01; data seed = model seed = s, 1000 train / 1000 test points, the library of
the tests. Per seed: the initialisation that got through (1-based), the formula's largest error
against the truth on the test points, or why the pipeline stopped. Accuracies only, no timings.
"""
import argparse
import json
import os
import warnings

import numpy as np

import kanarray
from kanarray.pipelines.discover import discover
from kanarray.symbolic.formula import formula_function

LIB = ["x", "x^2", "x^3", "x^4", "exp", "log", "sqrt", "tanh", "sin", "abs"]
CASES = {  # name -> (target, width, discover keyword arguments)
    "sin(pi x_1) + x_2^2, [2, 5, 1]": (lambda x: np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2, [2, 5, 1], {}),
    "x_1 x_2, [2, 2, 1], lamb 0.001": (lambda x: x[:, 0] * x[:, 1], [2, 2, 1], {"lamb": 0.001}),
    "x_1 x_2, [2, 2, 1], lamb 0.01": (lambda x: x[:, 0] * x[:, 1], [2, 2, 1], {}),
}


def run(target, width, kwargs, seed):
    data = kanarray.create_dataset(target, n_var=2, train_num=1000, test_num=1000, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = discover(data, width, lib=LIB, seed=seed, **kwargs)
    if result["stopped"] is not None:
        return {"seed": seed, "recovered": False, "init": None, "error": None, "stopped": result["stopped"]}
    values = formula_function(result["formula"], ["x_1", "x_2"])(data["test_input"])
    error = float(np.max(np.abs(values - target(data["test_input"]))))
    return {"seed": seed, "recovered": error < 1e-6, "init": result["init"] + 1, "error": error,
            "stopped": None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args()
    results, lines = {}, ["# kanarray.pipelines.discover over seeds\n", "`python bench/discover_seeds.py`\n"]
    for name, (target, width, kwargs) in CASES.items():
        rows = [run(target, width, kwargs, seed) for seed in range(args.seeds)]
        results[name] = rows
        lines += [f"## {name}: {sum(r['recovered'] for r in rows)} of {len(rows)} recovered\n",
                  "| seed | recovered | initialisation | max error against the truth | why it stopped |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['seed']} | {'yes' if r['recovered'] else 'no'} | {r['init'] or '-'} | "
                  f"{'-' if r['error'] is None else format(r['error'], '.1e')} | {r['stopped'] or ''} |"
                  for r in rows]
        lines.append("")
        print("\n".join(lines[-len(rows) - 4:]), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "discover_seeds.json"), "w") as out:
        json.dump(results, out, indent=1)
    with open(os.path.join(args.out, "discover_seeds.md"), "w") as out:
        out.write("\n".join(lines))


if __name__ == "__main__":
    main()
