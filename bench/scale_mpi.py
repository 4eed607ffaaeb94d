"""Strong and weak scaling of data-parallel training over MPI, 1 and 2 ranks (CPU).

    python bench/scale_mpi.py                 # drives mpiexec; writes bench/results/scale_mpi.{json,md}
    python bench/scale_mpi.py --quick         # smaller sizes, nothing written unless --out

One training step = one Adam step on the full local shard (batch=-1, no grid update): forward
and backward of each local block of --block-rows rows, the exact sum of the blocks' gradients
and losses over the ranks (kanarray.training.exact: an Allreduce(MAX) of the columns' exponents
and an Allreduce(SUM) of their int64 fixed-point sums), the update, and the global test RMSE
(an exact sum of per-row errors on a 32-row test shard). Each configuration is timed as the fastest of
`--rounds` x `--repeats` fits of `--steps` steps each, after a warm-up fit (kernels are loaded
from Numba's cache before timing); rounds interleave the configurations so that load from other
processes hits them alike.

strong  fixed global rows, split over the ranks: ideal time per step halves with 2 ranks
weak    fixed rows per rank: ideal time per step stays the same; efficiency = t(1) / t(2)

Every rank runs with NUMBA_NUM_THREADS=1 (and OMP/BLAS threads 1) so that 2 ranks on a 2-core
machine do not fight over the cores; the 1-rank baseline uses the same single thread, so the
comparison is rank scaling, not thread scaling.

"allreduce share" is the time inside the Allreduces over the step time, measured on rank 0; it
includes waiting for the slower rank (load imbalance, OS noise), so it is an upper bound on the
communication cost. "allreduce alone" is the exact sum of one gradient-sized partial over the
ranks, back-to-back after a barrier: the pure cost of the communication and the conversions.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
WIDTH = [8, 32, 32, 1]


# ---------------------------------------------------------------------------- worker (under MPI)
def worker(args):
    from mpi4py import MPI

    from kanarray import KAN
    from kanarray.training.collectives import Context

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    n_local = args.rows // size if args.mode == "strong" else args.rows
    rng = np.random.default_rng(1000 + rank)  # each rank generates its own shard

    def target(x):
        return np.sin(x[:, :4].sum(1)) + np.cos(x[:, 4:].prod(1))

    x = rng.uniform(-1, 1, (n_local, WIDTH[0]))
    xt = rng.uniform(-1, 1, (32, WIDTH[0]))
    data = {"train_input": x, "train_label": target(x)[:, None],
            "test_input": xt, "test_label": target(xt)[:, None]}
    kwargs = dict(opt="adam", batch=-1, update_grid=False, lr=1e-3, comm=comm,
                  block_rows=args.block_rows)

    model = KAN(width=WIDTH, grid=args.grid, k=3, seed=0)
    model.fit(data, steps=2, **kwargs)  # warm-up: kernels from the cache, MPI connections
    per_step, share, cpu = [], [], []
    for _ in range(args.repeats):
        comm.Barrier()
        cpu_start = time.process_time()
        res = model.fit(data, steps=args.steps, **kwargs)
        cpu.append((time.process_time() - cpu_start) / args.steps)
        per_step.append(res["seconds"] / args.steps)
        share.append(res["comm"]["allreduce_seconds"] / res["seconds"])

    # the pure cost of the exact sum of one gradient over the ranks, back to back
    ctx = Context(comm)
    partial = np.random.default_rng(rank).standard_normal((1, model.num_params + 2))
    n_blocks = size * n_local // args.block_rows
    comm.Barrier()
    start = time.perf_counter()
    for _ in range(200):
        ctx.exact_sum(partial, n_blocks)
    alone = (time.perf_counter() - start) / 200

    # every rank leaves each fit at the same step: rank 0's time is the slowest rank's
    if rank == 0:
        print(json.dumps({
            "mode": args.mode, "ranks": size, "rows_per_rank": n_local, "global_rows": n_local * size,
            "num_params": model.num_params, "step_seconds": min(per_step),
            "step_seconds_median": statistics.median(per_step), "step_seconds_all_repeats": per_step,
            "cpu_seconds_per_step_rank0": min(cpu),
            "allreduce_share": statistics.median(share),
            "allreduce_alone_seconds": alone,
        }))


# ---------------------------------------------------------------------------- driver
def mpiexec():
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else "mpiexec"


def run_config(mode, ranks, rows, args):
    """One mpiexec launch of the worker; -> its JSON record."""
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    load_before = os.getloadavg()[0]
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, os.path.abspath(__file__), "--worker",
           "--mode", mode, "--rows", str(rows), "--steps", str(args.steps), "--repeats",
           str(args.repeats), "--grid", str(args.grid), "--block-rows", str(args.block_rows)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    line = [l for l in proc.stdout.splitlines() if l.startswith("{")][-1]
    record = json.loads(line)
    record["loadavg_1min_before"] = load_before
    return record


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        from mpi4py import MPI

        mpi_version = MPI.Get_library_version().splitlines()[0].strip()
        import mpi4py

        mpi4py_version = mpi4py.__version__
    except ImportError:
        mpi_version = mpi4py_version = "not installed"
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    import numba

    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "numba": numba.__version__, "mpi": mpi_version,
            "mpi4py": mpi4py_version, "platform": platform.platform(),
            "loadavg_at_start": load, "threads_per_rank": 1}


def markdown(report):
    m = report["machine"]
    lines = [
        "# Data-parallel scaling over MPI (CPU)",
        "",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs; {m['mpi']}; mpi4py "
        f"{m['mpi4py']}, Python {m['python']}, NumPy {m['numpy']}, Numba {m['numba']}. "
        f"Load average at start: {m['loadavg_at_start']}.",
        "",
        f"Model {report['width']} (grid {report['grid']}, k 3, {report['rows'][0]['num_params']} "
        "parameters, float64). One step = one full-batch Adam step on the local shard: forward "
        f"and backward of each block of {report.get('block_rows', '?')} rows, the exact sum of "
        "the blocks' gradients and losses over the ranks (Allreduce MAX of exponents, Allreduce "
        "SUM of int64 fixed-point sums), update, global test RMSE. "
        f"Time per step: the fastest of {report['rounds']} rounds x {report['repeats']} fits of "
        f"{report['steps']} steps, configurations interleaved round by round (other jobs shared "
        "this machine; every round is in the JSON). Every rank runs with NUMBA_NUM_THREADS=1 (one core per rank, the 1-rank "
        "baseline too).",
        "",
        "| scaling | ranks | rows/rank | global rows | time/step (ms) | speed-up | efficiency "
        "| Allreduce share of step | Allreduce alone (us) | CPU time/step, rank 0 (ms) "
        "| load avg before the run |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        lines.append(
            f"| {row['mode']} | {row['ranks']} | {row['rows_per_rank']} | {row['global_rows']} | "
            f"{1e3 * row['step_seconds']:.2f} | {row['speedup']:.2f} | {100 * row['efficiency']:.0f}% | "
            f"{100 * row['allreduce_share']:.1f}% | {1e6 * row['allreduce_alone_seconds']:.0f} | "
            f"{1e3 * row.get('cpu_seconds_per_step_rank0', float('nan')):.1f} | "
            f"{row.get('loadavg_1min_before', float('nan')):.1f} |")
    by_key = {(row["mode"], row["ranks"]): row for row in report["rows"]}
    lines.append("")
    for mode in ("strong", "weak"):
        one, two = by_key.get((mode, 1)), by_key.get((mode, 2))
        if one and two and "step_seconds_rounds" in two:
            t1 = statistics.median(one["step_seconds_rounds"])
            t2 = statistics.median(two["step_seconds_rounds"])
            eff = t1 / t2 / (2 if mode == "strong" else 1)
            lines.append(f"Median over all rounds instead of the fastest: {mode} efficiency "
                         f"{100 * eff:.0f}% (rounds under load from other jobs pull it down; every "
                         "round's time and the 1-minute load average before it are in the JSON).")
    lines += [
        "",
        "Strong scaling: speed-up = t(1 rank) / t(2 ranks) at the same global rows, efficiency = "
        "speed-up / 2. Weak scaling: efficiency = t(1 rank) / t(2 ranks) at the same rows per rank.",
        "The Allreduce share includes waiting for the slower rank (imbalance, OS noise), so it "
        "bounds the communication cost from above; 'alone' is the pure cost of the exact sum "
        "of one gradient over the ranks (conversions and both Allreduces, shared memory).",
        "",
        "Reproduce: `python bench/scale_mpi.py` (needs `pip install 'kanarray[mpi]'`).",
    ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("strong", "weak"))
    parser.add_argument("--rows", type=int, default=8192,
                        help="global rows (strong) and rows per rank (weak)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--grid", type=int, default=5)
    parser.add_argument("--block-rows", type=int, default=4096,
                        help="rows per block of the exact sums (each rank's rows: whole blocks)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None, help="results folder (default bench/results unless --quick)")
    parser.add_argument("--markdown-from", default=None, help="rewrite the .md of this JSON and exit")
    args = parser.parse_args()
    if args.markdown_from:
        with open(args.markdown_from) as f:
            report = json.load(f)
        target = os.path.splitext(args.markdown_from)[0] + ".md"
        with open(target, "w") as f:
            f.write(markdown(report))
        return print(f"wrote {target}")
    if args.worker:
        return worker(args)
    if args.quick:
        args.rows, args.steps, args.repeats, args.rounds, args.block_rows = 1024, 5, 2, 1, 512
    out = args.out or (None if args.quick else RESULTS)

    report = {"width": WIDTH, "grid": args.grid, "steps": args.steps, "repeats": args.repeats,
              "rounds": args.rounds, "block_rows": args.block_rows,
              "machine": machine(), "rows": []}
    # Rounds interleave the configurations, so a burst of load from other processes on the
    # machine hits all of them alike; each configuration keeps its fastest round (the least
    # disturbed), and every round's times are kept in the JSON.
    runs = {}
    for round_ in range(args.rounds):
        for mode in ("strong", "weak"):
            for ranks in (1, 2):
                row = run_config(mode, ranks, args.rows, args)
                print(f"round {round_}: {mode:6s} ranks={ranks} "
                      f"step={1e3 * row['step_seconds']:.2f} ms", flush=True)
                runs.setdefault((mode, ranks), []).append(row)
    for mode in ("strong", "weak"):
        base = None
        for ranks in (1, 2):
            rounds = runs[(mode, ranks)]
            row = dict(min(rounds, key=lambda r: r["step_seconds"]))
            row["step_seconds_rounds"] = [r["step_seconds"] for r in rounds]
            row["allreduce_share_rounds"] = [r["allreduce_share"] for r in rounds]
            row["loadavg_1min_rounds"] = [r["loadavg_1min_before"] for r in rounds]
            base = base or row["step_seconds"]
            row["speedup"] = base / row["step_seconds"] if mode == "strong" else (
                ranks * base / row["step_seconds"])
            row["efficiency"] = (row["speedup"] / ranks if mode == "strong"
                                 else base / row["step_seconds"])
            report["rows"].append(row)
            print(f"{mode:6s} ranks={ranks} rows/rank={row['rows_per_rank']:6d} "
                  f"step={1e3 * row['step_seconds']:.2f} ms eff={100 * row['efficiency']:.0f}% "
                  f"allreduce share={100 * row['allreduce_share']:.1f}%", flush=True)
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "scale_mpi.json"), "w") as f:
            json.dump(report, f, indent=1)
        with open(os.path.join(out, "scale_mpi.md"), "w") as f:
            f.write(markdown(report))
        print(f"wrote {out}/scale_mpi.json and scale_mpi.md")


if __name__ == "__main__":
    main()
