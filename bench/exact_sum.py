"""What the exact sums over rows cost (kanarray.training.exact).

    python bench/exact_sum.py [--quick] [--out bench/results]

One training evaluation (loss + full gradient through kanarray.training.objective.Objective, the
path fit takes) of [8, 32, 32, 1] at 10,000 rows, G=10, float64, all of Numba's threads, on
random data, in these forms, interleaved round by round:

    one block          block_rows >= rows: the whole batch is one block (one float partial)
    B blocks, exact    block_rows=8192 and 2048: each block evaluated as a batch of
                       its own, the partials summed exactly (what fit does)
    B blocks, float    the same partials added by a plain float sum instead (what a sum that
                       depends on the order of the blocks would cost)

exact-sum share = (exact - float) / one block: what the exact combination adds to an
evaluation. blocking share = (float - one block) / one block: what evaluating the blocks apart
adds. Also timed alone: exact_sum of (blocks, P) partials. Medians over all rounds.

And mini-batches, which are cut at the same block boundaries: Adam steps with batches of 1,000
rows of [2, 5, 1] on 300,000 rows (G=5), with the default block_rows (the batch falls in 5
blocks) and with one block, interleaved fits of 50 steps; median time per step.
"""
import argparse
import json
import os
import platform
import statistics
import time

import numba
import numpy as np

import kanarray
from kanarray.training import exact
from kanarray.training.objective import Objective, OneProcess

WIDTH, ROWS, GRID = [8, 32, 32, 1], 10_000, 10
HERE = os.path.dirname(os.path.abspath(__file__))


class FloatSum(OneProcess):
    """One process whose block partials are added by a plain float sum (for comparison only)."""

    def exact_sum(self, partials, n_blocks):
        return np.asarray(partials, dtype=np.float64).sum(axis=0)


def objectives():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (ROWS, WIDTH[0]))
    data = {"train_input": x, "train_label": np.sin(x.sum(axis=1, keepdims=True)),
            "test_input": x[:10], "test_label": np.zeros((10, 1))}
    model = kanarray.KAN(WIDTH, grid=GRID, k=3, seed=0)
    forms = {"one block": Objective(model, data, block_rows=ROWS)}
    for block_rows in (8192, 2048):
        n = exact.n_blocks_of(ROWS, block_rows)
        forms[f"{n} blocks, exact"] = Objective(model, data, block_rows=block_rows)
        forms[f"{n} blocks, float"] = Objective(model, data, ranks=FloatSum(), block_rows=block_rows)
    return model, forms


def minibatch_steps(rounds, n_rows=300_000, batch=1000, steps=50):
    """Median ms per Adam step on batches of `batch` rows: {"default": ..., "one block": ...}."""
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (n_rows, 2))
    y = np.sin(x.sum(axis=1, keepdims=True))
    data = {"train_input": x, "train_label": y, "test_input": x[:100], "test_label": y[:100]}
    forms = {"default": exact.BLOCK_ROWS, "one block": n_rows}
    times = {name: [] for name in forms}
    for round_ in range(rounds + 1):  # round 0 warms up
        for name, block_rows in forms.items():
            model = kanarray.KAN([2, 5, 1], grid=5, seed=0)
            res = model.fit(data, opt="adam", steps=steps, batch=batch, update_grid=False,
                            block_rows=block_rows, log=0)
            if round_:
                times[name].append(1e3 * res["seconds"] / steps)
    return {"rows": n_rows, "batch": batch, "blocks": exact.n_blocks_of(n_rows, exact.BLOCK_ROWS),
            **{name: statistics.median(t) for name, t in times.items()}}


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "threads": numba.config.NUMBA_NUM_THREADS,
            "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "loadavg_at_start": os.getloadavg()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None, help="results folder (default bench/results unless --quick)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.repeats = 3, 2
    out = args.out or (None if args.quick else os.path.join(HERE, "results"))

    model, forms = objectives()
    params = model.params.copy()
    for objective in forms.values():  # warm-up: compile, fill the workspaces
        for _ in range(3):
            objective.value_and_grad(params)
    times = {name: [] for name in forms}
    for _ in range(args.rounds):
        for name, objective in forms.items():
            for _ in range(args.repeats):
                start = time.perf_counter()
                objective.value_and_grad(params)
                times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    base = median["one block"]

    alone = {}
    for block_rows in (8192, 2048):
        n = exact.n_blocks_of(ROWS, block_rows)
        partials = np.random.default_rng(1).standard_normal((n, model.num_params + 2))
        t = []
        for _ in range(200):
            start = time.perf_counter()
            exact.exact_sum(partials, n)
            t.append(time.perf_counter() - start)
        alone[n] = statistics.median(t)

    batch_steps = minibatch_steps(args.rounds)

    rows = []
    for n in sorted(alone, key=int):
        ex, fl = median[f"{n} blocks, exact"], median[f"{n} blocks, float"]
        rows.append({"blocks": n, "exact_ms": 1e3 * ex, "float_ms": 1e3 * fl,
                     "exact_sum_share": (ex - fl) / base, "blocking_share": (fl - base) / base,
                     "exact_sum_alone_ms": 1e3 * alone[n]})
    report = {"width": WIDTH, "rows": ROWS, "grid": GRID, "params": model.num_params,
              "rounds": args.rounds, "repeats": args.repeats, "machine": machine(),
              "default_block_rows": exact.BLOCK_ROWS,
              "one_block_ms": 1e3 * base, "forms": rows, "minibatch": batch_steps,
              "all_times_ms": {k: [1e3 * v for v in t] for k, t in times.items()}}
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    text = markdown(report)
    print(text)
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "exact_sum.json"), "w") as f:
            json.dump(report, f, indent=1)
        with open(os.path.join(out, "exact_sum.md"), "w") as f:
            f.write(text)


def markdown(report):
    m = report["machine"]
    lines = [
        "# What the exact sums over rows cost",
        "",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['threads']} Numba threads; "
        f"Python {m['python']}, NumPy {m['numpy']}, Numba {m['numba']}. Load average at start "
        f"{tuple(round(v, 2) for v in m['loadavg_at_start'])}, at end "
        f"{tuple(round(v, 2) for v in m['loadavg_at_end'])}.",
        "",
        f"One training evaluation (loss + gradient, as fit makes it) of {report['width']} at "
        f"{report['rows']:,} rows, G={report['grid']}, float64, {report['params']:,} parameters; "
        f"medians of {report['rounds']} interleaved rounds x {report['repeats']} evaluations. "
        f"The whole batch as one block: {report['one_block_ms']:.1f} ms.",
        "",
        "| blocks | exact sum (ms) | float sum of the same partials (ms) | exact sum's share "
        "of an evaluation | evaluating blocks apart, share | exact_sum alone (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["forms"]:
        lines.append(f"| {row['blocks']} | {row['exact_ms']:.1f} | {row['float_ms']:.1f} | "
                     f"{100 * row['exact_sum_share']:+.1f}% | {100 * row['blocking_share']:+.1f}% | "
                     f"{row['exact_sum_alone_ms']:.2f} |")
    mb = report["minibatch"]
    lines += [
        "",
        f"Mini-batches: Adam steps on batches of {mb['batch']:,} of {mb['rows']:,} rows, [2, 5, 1], "
        f"G=5: {mb['default']:.2f} ms per step with the default block_rows (a batch falls in "
        f"{mb['blocks']} blocks, each evaluated apart) against {mb['one block']:.2f} ms with one "
        "block (block_rows >= the rows).",
    ]
    lines += [
        "",
        "Exact sum's share = (exact - float) / one-block evaluation: what combining the partials "
        "exactly adds. Blocks apart = (float - one block) / one-block evaluation: what "
        "evaluating each block as a batch of its own adds (more kernel launches, smaller "
        f"parallel sweeps). The default block_rows={report['default_block_rows']:,} keeps batches "
        "up to that size one block, so fit at this size evaluates as in the first column.",
        "",
        "Reproduce: `python bench/exact_sum.py`.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
