"""Which training-schedule change makes the toy's grid extension reach test RMSE < 1e-4 for every seed?

    python bench/toy_variants.py VARIANT MODEL_SEED,DATA_SEED [...]

The setting of tests/test_accuracy.py: [2, 5, 1] on exp(sin(pi x) + y^2), 1000 train / 1000 test
points, grids 3 -> 5 -> 10 -> 20, 100 L-BFGS steps per grid. Prints the test RMSE after each grid.
VARIANT (names may be combined, e.g. noupd_samples):
  base        the defaults
  samples     refine places the new knots at the activations (refine(G, x)) instead of subdividing
  noupd       no grid updates after the first grid
  late80      grid updates until step 80 instead of 50
  once        one grid update per grid (grid_update_num=1)
  eps1        grid_eps=1: uniform knots over the activations' range instead of their quantiles
  marginF     the knots of every grid update span the activations' range widened by F x its
              width on each side (e.g. margin0.05)
  gmarginF    fit(..., grid_margin=F): the same in mean cells, (max - min) / grid
"""
import re
import sys
import warnings

import numpy as np

import kanarray
from kanarray.core import grid as gridlib


def toy(x):
    return np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2)


def widen_knot_range(fraction):
    """Make every grid update see two more samples, fraction x the range beyond each end."""
    knots_from_samples = gridlib.knots_from_samples

    def widened(x, grid, k, grid_eps, fallback_range, margin=0.0):
        lo, hi = x.min(axis=0), x.max(axis=0)
        pad = fraction * (hi - lo)
        return knots_from_samples(np.concatenate([x, [lo - pad], [hi + pad]]), grid, k,
                                  grid_eps, fallback_range, margin)

    gridlib.knots_from_samples = widened


def run(variant, model_seed, data_seed):
    data = kanarray.create_dataset(toy, n_var=2, train_num=1000, test_num=1000, seed=data_seed)
    model = kanarray.KAN([2, 5, 1], grid=3, k=3, seed=model_seed,
                         grid_eps=1.0 if "eps1" in variant else 0.02)
    out = []
    for stage, grid in enumerate([3, 5, 10, 20]):
        if stage:
            model = model.refine(grid, x=data["train_input"] if "samples" in variant else None)
        kwargs = {}
        cells = re.search(r"gmargin([0-9.]+)", variant)
        if cells:
            kwargs["grid_margin"] = float(cells.group(1))
        if "noupd" in variant and stage:
            kwargs["update_grid"] = False
        if "late80" in variant:
            kwargs["stop_grid_update_step"] = 80
        if "once" in variant:
            kwargs["grid_update_num"] = 1
        results = model.fit(data, steps=100, log=0, **kwargs)
        out.append(results["test_loss"][-1])
    return out


def main():
    variant = sys.argv[1]
    margin = re.search(r"(?<!g)margin([0-9.]+)", variant)
    if margin:
        widen_knot_range(float(margin.group(1)))
    warnings.simplefilter("ignore")
    for spec in sys.argv[2:]:
        model_seed, data_seed = map(int, spec.split(","))
        rmse = run(variant, model_seed, data_seed)
        print(variant, model_seed, data_seed, " ".join(f"{r:.2e}" for r in rmse), flush=True)


if __name__ == "__main__":
    main()
