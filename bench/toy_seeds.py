"""The toy's grid extension over data seeds and model seeds: grid margin, L-BFGS history, restarts.

    python bench/toy_seeds.py [--seeds 5] [--out bench/results]

The setting of tests/test_accuracy.py: [2, 5, 1] on exp(sin(pi x) + y^2), 1000 train / 1000
test points (create_dataset seed = data seed), KAN seed = model seed, grids 3 -> 5 -> 10 -> 20
with 100 L-BFGS steps per grid through kanarray.pipelines.stages.grid_extension, once with fit's default
grid_margin=0 (the grid updates' end knots on the extreme samples, as pykan places them) and
with grid_margin=0.5 (their range widened by half a mean cell on each side), each with fit's
default lbfgs_history=10 (pykan's) and with 100 curvature pairs; last, grid_margin=0.5 with
lbfgs_history=100 and restarts=2 (the whole schedule from three initialisations, the one with
the lowest test RMSE at G = 20 kept). Reports the test RMSE at G = 20 of every pair, the median
and the count below 1e-4; with restarts the test split chose the start, so the RMSE reported is
on 1000 fresh points (create_dataset seed 1000 + data seed). Accuracies only: deterministic for
a given code, no timings.
"""
import argparse
import json
import os
import warnings

import numpy as np

import kanarray
from kanarray.pipelines.stages import grid_extension


def toy(x):
    return np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2)


def final_test_rmse(data_seed, model_seed, grid_margin, lbfgs_history, restarts):
    data = kanarray.create_dataset(toy, n_var=2, train_num=1000, test_num=1000, seed=data_seed)
    model = kanarray.KAN([2, 5, 1], grid=3, k=3, seed=model_seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # off-grid notices while the hidden ranges move
        model, rows = grid_extension(model, data, [3, 5, 10, 20], steps=100,
                                     grid_margin=grid_margin, lbfgs_history=lbfgs_history,
                                     restarts=restarts)
    if not restarts:
        return rows[-1]["test_rmse"]
    fresh = kanarray.create_dataset(toy, n_var=2, train_num=1, test_num=1000, seed=1000 + data_seed)
    return float(np.sqrt(np.mean((model(fresh["test_input"]) - fresh["test_label"]) ** 2)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args()
    settings = ((0.0, 10, 0), (0.5, 10, 0), (0.0, 100, 0), (0.5, 100, 0),
                (0.5, 100, 2))  # (grid_margin, lbfgs_history, restarts)
    table = {c: np.zeros((args.seeds, args.seeds)) for c in settings}
    for data_seed in range(args.seeds):
        for model_seed in range(args.seeds):
            for c in settings:
                table[c][data_seed, model_seed] = final_test_rmse(data_seed, model_seed, *c)
            print(data_seed, model_seed, [f"{table[c][data_seed, model_seed]:.2e}" for c in settings],
                  flush=True)
    lines = ["# Toy grid extension over data and model seeds\n",
             "[2, 5, 1] on exp(sin(pi x) + y^2), grids 3 -> 5 -> 10 -> 20, 100 L-BFGS steps each; test "
             "RMSE at G = 20. `python bench/toy_seeds.py`\n"]
    summary = {}
    for m, h, r in settings:
        values = table[m, h, r]
        name = f"grid_margin = {m:g}, lbfgs_history = {h}" + (
            f", restarts = {r} (RMSE on 1000 fresh points)" if r else "")
        summary[name.replace(" = ", "=")] = {
            "median": float(np.median(values)), "below_1e-4": int((values < 1e-4).sum()),
            "worst": float(values.max()), "rmse": values.tolist()}
        lines += [f"## {name}: median {np.median(values):.2e}, "
                  f"{(values < 1e-4).sum()} of {values.size} below 1e-4, worst {values.max():.2e}\n",
                  "| data seed \\ model seed | " + " | ".join(map(str, range(args.seeds))) + " |",
                  "|---|" + "---|" * args.seeds]
        lines += [f"| {d} | " + " | ".join(f"{v:.2e}" for v in values[d]) + " |" for d in range(args.seeds)]
        lines.append("")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "toy_seeds.json"), "w") as out:
        json.dump(summary, out, indent=1)
    with open(os.path.join(args.out, "toy_seeds.md"), "w") as out:
        out.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
