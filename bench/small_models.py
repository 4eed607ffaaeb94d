"""Where scientists run: small networks, busy machines, first runs.

    python bench/small_models.py [--quick] [--out bench/results]

1. One training evaluation (loss + full gradient, through kanarray.training.objective.Objective,
   the path fit takes) of [2, 5, 1], [4, 9, 1] and [8, 32, 32, 1] at 1,000 and 10,000 rows,
   G=10, float64, with 1 thread and with all of Numba's threads: median time and useful GFLOP/s
   (6 B I O (k + 2) per layer: forward 2, backward 4 multiply-adds per basis term and edge).
2. The same with a competing CPU-bound process on every core (started and stopped here), and
   the loaded / quiet ratio.
   And the optimizer's own cost: L-BFGS iterations (as fit runs them) on
   the [2, 5, 1] objective at 1,000 rows, their time less the time inside the objective.
3. End to end, wall time of whole processes: `kanarray demo --no-plot` with an empty kernel
   cache (NUMBA_CACHE_DIR pointing at a new folder) and with a warm one, and the grid-extension
   schedule of bench/train_toy.py (part 1: [2, 5, 1], G = 3 ... 100, 200 steps each).

All rows are measured side by side in one run, after warm-up, on random data.
"""
import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time

import numba
import numpy as np

import kanarray
from kanarray.kernels import cpu
from kanarray.training.objective import Objective

WIDTHS = ([2, 5, 1], [4, 9, 1], [8, 32, 32, 1])
ROWS = (1_000, 10_000)
GRID, K = 10, 3
HERE = os.path.dirname(os.path.abspath(__file__))


def useful_flops(width, rows):
    return sum(6 * rows * i * o * (K + 2) for i, o in zip(width[:-1], width[1:]))


def evaluation_seconds(width, rows, threads, repeats):
    """Median seconds of one loss + gradient evaluation, as fit makes it."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (rows, width[0]))
    data = {"train_input": x, "train_label": np.sin(x.sum(axis=1, keepdims=True)),
            "test_input": x[:10], "test_label": np.zeros((10, width[-1]))}
    model = kanarray.KAN(width, grid=GRID, k=K, seed=0)
    objective = Objective(model, data)
    params = model.params.copy()
    with cpu.thread_limit(threads):
        for _ in range(3):
            objective.value_and_grad(params)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            objective.value_and_grad(params)
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def lbfgs_overhead(iterations=300):
    """Seconds per L-BFGS iteration outside the objective, and evaluations per iteration, on
    the [2, 5, 1] objective at 1,000 rows (one thread)."""
    from kanarray.training import lbfgs as optim

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1000, 2))
    data = {"train_input": x, "train_label": np.sin(x.sum(axis=1, keepdims=True)),
            "test_input": x[:10], "test_label": np.zeros((10, 1))}
    model = kanarray.KAN([2, 5, 1], grid=GRID, k=K, seed=0)
    objective = Objective(model, data)
    inside = [0.0]

    def timed(params):
        start = time.perf_counter()
        answer = objective.value_and_grad(params)
        inside[0] += time.perf_counter() - start
        return answer

    opt = optim.LBFGS()  # fit's default

    def iterate(point, loss, grad, state, count):
        evals = 0
        for _ in range(count):
            point, loss, grad, _, state, info = optim._lbfgs_iteration(  # as LBFGS.update runs it
                timed, point, loss, grad, None, state, opt.lr, opt.history, opt.max_ls,
                opt.tolerance_grad, opt.tolerance_change)
            evals += info["n_evals"]
            if info["converged"] or info["failed"]:
                state = optim.lbfgs_init()
        return point, loss, grad, state, evals

    with cpu.thread_limit(1):
        point = model.params.copy()
        loss, grad = timed(point)[:2]
        point, loss, grad, state, _ = iterate(point, loss, grad, optim.lbfgs_init(), 20)  # warm-up
        inside[0] = 0.0
        start = time.perf_counter()
        point, loss, grad, state, evals = iterate(point, loss, grad, state, iterations)
        total = time.perf_counter() - start
    return (total - inside[0]) / iterations, evals / iterations


def _spin(stop):
    while not stop.is_set():
        sum(i * i for i in range(10_000))


class CompetingLoad:
    """One busy-looping process per core while the block runs."""

    def __enter__(self):
        self.stop = multiprocessing.Event()
        self.procs = [multiprocessing.Process(target=_spin, args=(self.stop,), daemon=True)
                      for _ in range(os.cpu_count())]
        for p in self.procs:
            p.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for p in self.procs:
            p.join()


def evaluation_table(repeats):
    rows = []
    all_threads = numba.config.NUMBA_NUM_THREADS
    for load in ("quiet", "loaded"):
        with CompetingLoad() if load == "loaded" else contextlib.nullcontext():
            for width in WIDTHS:
                for n in ROWS:
                    for threads in sorted({1, all_threads}):
                        reps = repeats if n * sum(width) < 200_000 else max(3, repeats // 5)
                        seconds = evaluation_seconds(width, n, threads, reps)
                        rows.append({"load": load, "width": width, "rows": n, "threads": threads,
                                     "us": seconds * 1e6,
                                     "gflops": useful_flops(width, n) / seconds / 1e9})
    quiet = {(str(r["width"]), r["rows"], r["threads"]): r["us"] for r in rows if r["load"] == "quiet"}
    for r in rows:
        r["loaded_over_quiet"] = r["us"] / quiet[(str(r["width"]), r["rows"], r["threads"])]
    return rows


def process_seconds(argv, env=None):
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    return time.perf_counter() - start


def end_to_end(quick):
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        demo = [sys.executable, "-m", "kanarray", "demo", "--no-plot"]
        rows.append({"what": "kanarray demo, empty kernel cache",
                     "seconds": process_seconds(demo, {"NUMBA_CACHE_DIR": cache})})
        rows.append({"what": "kanarray demo, warm kernel cache",
                     "seconds": process_seconds(demo, {"NUMBA_CACHE_DIR": cache})})
    if not quick:  # in this process, kernels compiled: the schedule itself
        sys.path.insert(0, HERE)
        import train_toy

        start = time.perf_counter()
        train_toy.run([2, 5, 1], [3, 5, 10, 20, 50, 100], 1000, 200, 0)
        rows.append({"what": "toy schedule of bench/train_toy.py part 1 ([2,5,1], G=3..100, "
                             "200 steps each, model seed 0), kernels compiled",
                     "seconds": time.perf_counter() - start})
    return rows


def markdown(meta, evaluations, processes):
    lines = [f"{meta['cpu']}, {meta['cores']} cores, Numba {meta['numba']} "
             f"({meta['threading_layer']} layer, up to {meta['threads']} threads), {meta['date']}. "
             "`python bench/small_models.py`", "",
             "### One loss + gradient evaluation, G=10, float64", "",
             "| width | rows | threads | quiet us | GFLOP/s | loaded us | loaded / quiet |",
             "|---|---|---|---|---|---|---|"]
    loaded = {(str(r["width"]), r["rows"], r["threads"]): r for r in evaluations if r["load"] == "loaded"}
    for r in evaluations:
        if r["load"] != "quiet":
            continue
        other = loaded[(str(r["width"]), r["rows"], r["threads"])]
        lines.append(f"| {r['width']} | {r['rows']} | {r['threads']} | {r['us']:.0f} | "
                     f"{r['gflops']:.2f} | {other['us']:.0f} | {other['loaded_over_quiet']:.2f} |")
    lines += ["", "Loaded: one busy-looping process per core, started by the bench.", "",
              f"L-BFGS outside the objective ([2, 5, 1], 1000 rows): {meta['lbfgs_us']:.0f} us per "
              f"iteration ({meta['lbfgs_evals']:.2f} evaluations per iteration).", "",
              "### Whole processes", "", "| what | seconds |", "|---|---|"]
    lines += [f"| {r['what']} | {r['seconds']:.1f} |" for r in processes]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no toy schedule")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    meta = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "numba": numba.__version__, "threading_layer": numba.config.THREADING_LAYER,
            "threads": numba.config.NUMBA_NUM_THREADS, "date": time.strftime("%Y-%m-%d")}
    try:
        with open("/proc/cpuinfo") as f:
            meta["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    evaluations = evaluation_table(5 if args.quick else 50)
    overhead, evals = lbfgs_overhead()
    meta["lbfgs_us"], meta["lbfgs_evals"] = overhead * 1e6, evals
    processes = end_to_end(args.quick)
    text = markdown(meta, evaluations, processes)
    print(text)
    if args.out:
        with open(os.path.join(args.out, "small_models.json"), "w") as f:
            json.dump({"meta": meta, "evaluations": evaluations, "processes": processes}, f, indent=1)
        with open(os.path.join(args.out, "small_models.md"), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
