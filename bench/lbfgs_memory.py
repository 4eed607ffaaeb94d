"""fit's L-BFGS memory and grid margin against the three accuracy benchmarks that move with them.

    python bench/lbfgs_memory.py [--settings 10,0 100,0.5 ...] [--out bench/results]

For each setting (lbfgs_history, grid_margin), passed to every stage's fit through
kanarray.pipelines.stages.grid_extension:
  toy    [2, 5, 1] on exp(sin(pi x) + y^2), grids 3 -> 5 -> 10 -> 20, 100 steps each, data and
         model seeds 0-4 (bench/toy_seeds.py's setting): pairs with test RMSE < 1e-4 at G = 20
         (all 25, and the 5 of data seed 0), median and worst;
  rate   [2, 1, 1], 3000 train points, grids 5 -> 10 -> 20 -> 50 -> 100, 200 steps each, default
         quantile knots (grid_eps=0.02) and uniform ones (grid_eps=1): train RMSE at G = 100
         (bench/train_toy.py part 2);
  best   [2, 5, 1], grids 3 ... 100, 200 steps each, model seeds 0-4: best test RMSE over the
         schedule, median over the seeds (bench/train_toy.py part 1).
Accuracies only. Writes lbfgs_memory.json and .md.
"""
import argparse
import json
import os
import warnings

import numpy as np

import kanarray
from kanarray.pipelines.stages import grid_extension
from train_toy import toy  # same folder

DEFAULT_SETTINGS = ("10,0", "30,0", "100,0", "30,0.5", "50,0.5", "100,0.5")


def last_rows(width, grid_eps, grids, steps, train_num, data_seed, model_seed, history, margin):
    data = kanarray.create_dataset(toy, n_var=2, train_num=train_num, test_num=1000, seed=data_seed)
    model = kanarray.KAN(width, grid=grids[0], k=3, seed=model_seed, grid_eps=grid_eps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # off-grid notices while the hidden ranges move
        _, rows = grid_extension(model, data, grids, steps=steps, lbfgs_history=history, grid_margin=margin)
    return rows


def measure(history, margin):
    toy_rmse = np.array([[last_rows([2, 5, 1], 0.02, [3, 5, 10, 20], 100, 1000, d, m, history, margin)[-1]["test_rmse"]
                          for m in range(5)] for d in range(5)])
    rate = {eps: last_rows([2, 1, 1], eps, [5, 10, 20, 50, 100], 200, 3000, 0, 0, history, margin)[-1]["train_rmse"]
            for eps in (0.02, 1.0)}
    best = [min(r["test_rmse"] for r in last_rows([2, 5, 1], 0.02, [3, 5, 10, 20, 50, 100], 200, 1000, 0, m,
                                                   history, margin)) for m in range(5)]
    return {"lbfgs_history": history, "grid_margin": margin,
            "toy_below_1e-4": int((toy_rmse < 1e-4).sum()), "toy_data_seed_0_below_1e-4": int((toy_rmse[0] < 1e-4).sum()),
            "toy_median": float(np.median(toy_rmse)), "toy_worst": float(toy_rmse.max()), "toy_rmse": toy_rmse.tolist(),
            "rate_train_rmse_G100_quantile_knots": rate[0.02], "rate_train_rmse_G100_uniform_knots": rate[1.0],
            "best_test_rmse_per_seed": best, "best_test_rmse_median": float(np.median(best))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS), help="history,margin pairs")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args()
    results = []
    for setting in args.settings:
        history, margin = setting.split(",")
        results.append(measure(int(history), float(margin)))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "toy_rmse"}), flush=True)
    lines = ["# fit's L-BFGS memory and grid margin on the accuracy benchmarks\n",
             "`python bench/lbfgs_memory.py` (see its docstring). toy: pairs of data and model seeds 0-4 "
             "below test RMSE 1e-4 at G = 20; rate: [2, 1, 1] train RMSE at G = 100; best: median over "
             "model seeds 0-4 of the best test RMSE on G = 3 ... 100.\n",
             "| lbfgs_history | grid_margin | toy < 1e-4 (of 25) | of data seed 0 (of 5) | toy median | toy worst "
             "| rate, quantile knots | rate, uniform knots | best, median |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['lbfgs_history']} | {r['grid_margin']:g} | {r['toy_below_1e-4']} | "
                     f"{r['toy_data_seed_0_below_1e-4']} | {r['toy_median']:.2e} | {r['toy_worst']:.2e} | "
                     f"{r['rate_train_rmse_G100_quantile_knots']:.2e} | {r['rate_train_rmse_G100_uniform_knots']:.2e} | "
                     f"{r['best_test_rmse_median']:.2e} |")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "lbfgs_memory.json"), "w") as out:
        json.dump(results, out, indent=1)
    with open(os.path.join(args.out, "lbfgs_memory.md"), "w") as out:
        out.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
