"""How often kanarray.discover recovers the Feynman equations, judged by kanarray.symbolic.judge.

    python bench/feynman_recovery.py [--equations 10 | --equations I.12.1 II.8.31 ...]
                                     [--noise 0 0.01] [--quick] [--split 2] [--jobs 2]
                                     [--out bench/results]

For the equation in row i (0-based) of bench/feynman_equations.py:
- data: 1000 train and 1000 test rows drawn uniformly in its ranges (kanarray.create_dataset,
  seed i); at noise level s > 0 every label gets Gaussian noise of standard deviation s x the
  RMS of the training labels (generator seeded [i, 1]);
- discover(dataset, width=[n, 2n+1, 1], lib=LIB, seed=i) with its other defaults, n the number
  of variables, on one thread (Numba and BLAS);
- the formula it returns is judged against the truth on 10,000 fresh points (generator seeded
  [i, 2]): exact when its relative RMSE is < 1e-6 (< 1e-3 at noise > 0) and it has at most the
  truth's operations + 2 (kanarray.symbolic.judge says how operations are counted).
A run either stops (discover says why it gave no formula) or claims a formula; a claimed formula
the judge does not find exact is a false claim.

discover runs as shipped: the sum and the product route (log|y|, where the labels keep one sign),
its pruning tolerance following the label noise it estimates, and every formula it returns
checked on the test split (kanarray.pipelines.check) before it is claimed. Each row records the
route returned, the noise estimate and the check's numbers.

--split N: discover's split route, N levels (default 0, discover's own default: off).
--jobs N: N equations at a time, each in its own process on one thread (its seconds are its
own wall time; with N up to the number of cores they stay those of a one-thread run).
--quick: the first 8 equations of the table with at most 3 variables, noise-free unless --noise
says otherwise (--quick --noise 0 0.01: both levels). The default is all 100 at noise 0 and
0.01. Writes feynman_recovery.json and .md, rewritten after every
equation so that a long run keeps what it has done.
"""
import os

for _name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # one thread, before numba and numpy start their pools

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
import sympy  # noqa: E402

import kanarray  # noqa: E402
from kanarray.pipelines.discover import discover  # noqa: E402
from kanarray.symbolic.formula import round_formula  # noqa: E402
from kanarray.symbolic.judge import judge  # noqa: E402
from feynman_equations import EQUATIONS, BY_ID  # noqa: E402  (same folder)

LIB = ["x", "x^2", "x^3", "1/x", "1/x^2", "sqrt", "1/sqrt(x)", "exp", "log", "tanh", "sin", "abs"]
ROWS = 1000        # train rows, and as many test rows
QUICK = 8          # equations in --quick
QUICK_MAX_VARS = 3


def select(spec, quick):
    """(row index, equation) pairs: --equations as ids or one count; --quick's default."""
    if spec and len(spec) == 1 and spec[0].isdigit():
        return list(enumerate(EQUATIONS))[:int(spec[0])]
    if spec:
        unknown = [s for s in spec if s not in BY_ID]
        if unknown:
            sys.exit(f"unknown equation id(s): {', '.join(unknown)}")
        return [(i, e) for i, e in enumerate(EQUATIONS) if e.id in spec]
    if quick:
        return [(i, e) for i, e in enumerate(EQUATIONS)
                if len(e.variables) <= QUICK_MAX_VARS][:QUICK]
    return list(enumerate(EQUATIONS))


def dataset(index, equation, noise):
    """The equation's train/test data (module docstring), labels noisy when noise > 0."""
    symbols = equation.symbols()
    truth = sympy.lambdify([symbols[n] for n in equation.names],
                           sympy.sympify(equation.formula, locals=symbols), modules="numpy")
    data = kanarray.create_dataset(lambda x: truth(*x.T), n_var=len(equation.names),
                                   ranges=equation.ranges, train_num=ROWS, test_num=ROWS,
                                   seed=index)
    if noise > 0:
        sigma = noise * float(np.sqrt(np.mean(data["train_label"] ** 2)))
        rng = np.random.default_rng([index, 1])
        for part in ("train_label", "test_label"):
            data[part] = data[part] + rng.normal(0.0, sigma, data[part].shape)
    return data


def run_one(index, equation, noise, split=0):
    """discover on one equation at one noise level (split: discover's split levels), and the
    judge's verdict on its formula."""
    n = len(equation.names)
    data = dataset(index, equation, noise)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = discover(data, [n, 2 * n + 1, 1], lib=LIB, seed=index, split=split)
    seconds = time.perf_counter() - start
    row = {"id": equation.id, "index": index, "n_vars": n, "noise": noise, "seconds": seconds,
           "stopped": result["stopped"], "formula": None, "init": None, "route": None,
           "test_rmse": None, "check": _numbers(result["check"]),
           "routes": [{"route": r["route"], "stopped": r["stopped"],
                       "noise_sigma": r["noise"]["sigma"], "check": _numbers(r["check"])}
                      for r in result["routes"]],
           "verdict": None, "judge_seconds": None, "outcome": "stopped"}
    if result["stopped"] is None:
        start = time.perf_counter()
        verdict = judge(result["formula"], equation.formula, equation.names, equation.ranges,
                        noise=noise > 0, rng=np.random.default_rng([index, 2]))
        row.update(formula=str(result["formula"]), init=result["init"] + 1,
                   route=result["route"], test_rmse=result["report"]["rmse"], verdict=verdict,
                   judge_seconds=time.perf_counter() - start,
                   outcome="exact" if verdict["exact"] else "false claim")
    return row


def _run_task(task):
    return run_one(*task)


def _numbers(check):
    """The held-out check's numbers (kanarray.pipelines.check.check_formula), or None."""
    if check is None:
        return None
    return {key: check[key] for key in ("passed", "rmse", "network_rmse", "labels_rms",
                                        "whiteness", "whiteness_min")}


def machine():
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "numba": numba.__version__,
            "numba_threads": numba.get_num_threads(), "numpy": np.__version__,
            "sympy": sympy.__version__, "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d"), "load_average_1min_before": os.getloadavg()[0]}


def stop_category(text):
    """discover's reason without its numbers and details:
    '2 edge(s) fit no ... splines: [(0, 1, 0)]' -> 'edge(s) fit no ... splines'."""
    return re.sub(r"^\d+ ", "", text.split(":")[0].split(" (")[0])


def summarize(rows, levels):
    """The summary and the exact counts by number of variables."""
    def exact_at(level, subset=rows):
        return sum(r["outcome"] == "exact" for r in subset if r["noise"] == level)

    n_equations = len({r["id"] for r in rows})
    summary = {"equations": n_equations,
               "noise_free_exact": exact_at(0.0) if 0.0 in levels else None,
               "noise_1pct_exact": exact_at(0.01) if 0.01 in levels else None,
               "false_claims": sum(r["outcome"] == "false claim" for r in rows),
               "stopped": sum(r["outcome"] == "stopped" for r in rows),
               "median_seconds": float(np.median([r["seconds"] for r in rows])) if rows else None,
               "total_seconds": float(sum(r["seconds"] + (r["judge_seconds"] or 0) for r in rows)),
               "by_noise": {f"{level:g}": {outcome: sum(r["outcome"] == outcome for r in rows
                                                        if r["noise"] == level)
                                           for outcome in ("exact", "false claim", "stopped")}
                            for level in levels}}
    stops = {}
    for r in rows:
        for route in r["routes"] if r["stopped"] else ():  # each route's reason, counted once
            key = f"{route['route']} route: {stop_category(route['stopped'])}"
            stops[key] = stops.get(key, 0) + 1
    summary["stopped_by_reason"] = stops
    by_vars = {}
    for n in sorted({r["n_vars"] for r in rows}):
        subset = [r for r in rows if r["n_vars"] == n]
        by_vars[n] = {"equations": len({r["id"] for r in subset}),
                      **{f"exact_at_noise_{level:g}": exact_at(level, subset) for level in levels}}
    return summary, by_vars


def markdown(report):
    run, summary, by_vars = report["run"], report["summary"], report["by_n_vars"]
    m = report["machine"]
    lines = ["# Feynman equations recovered by kanarray.discover\n", f"`{run['command']}`\n"]
    if run["subset"]:
        lines.append(f"**A subset run: {summary['equations']} of the 100 equations** "
                     f"({', '.join(run['equations'])}), noise level(s) "
                     f"{', '.join(f'{s:g}' for s in run['noise'])}. Not the benchmark's result.\n")
    load = m["load_average_1min_before"], m.get("load_average_1min_after")
    lines += [f"{m['cpu']}, {m['cores']} cores, {m['numba_threads']} Numba thread(s) per "
              f"equation, {run.get('jobs', 1)} equation(s) at a time, "
              f"Numba {m['numba']}, NumPy {m['numpy']}, sympy {m['sympy']}, {m['date']}; "
              f"1-minute load average {load[0]:.1f} before"
              + ("" if load[1] is None else f", {load[1]:.1f} after") + ".\n",
              f"Data: {ROWS} train + {ROWS} test rows per equation, seed = row index in "
              "bench/feynman_equations.py; width [n, 2n+1, 1]; library "
              f"{', '.join(LIB)}. Exact: relative RMSE < 1e-6 (1e-3 with noise) on 10,000 fresh "
              "points and at most the truth's operations + 2 (kanarray.symbolic.judge).\n",
              "## Summary\n", "| | |", "|---|---|"]
    for key in ("equations", "noise_free_exact", "noise_1pct_exact", "false_claims", "stopped",
                "median_seconds", "total_seconds"):
        value = summary[key]
        shown = ("not run" if value is None else f"{value:.1f}" if isinstance(value, float)
                 else value)
        lines.append(f"| {key} | {shown} |")
    for reason, count in sorted(summary["stopped_by_reason"].items()):
        lines.append(f"| stopped: {reason} | {count} |")
    lines += ["", "## Outcomes by noise level\n", "| noise | exact | false claims | stopped |",
              "|---|---|---|---|"]
    for level, counts in summary["by_noise"].items():
        lines.append(f"| {level} | {counts['exact']} | {counts['false claim']} | "
                     f"{counts['stopped']} |")
    levels = run["noise"]
    lines += ["", "## Exact by number of variables\n",
              "| variables | equations | "
              + " | ".join(f"exact, noise {s:g}" for s in levels) + " |",
              "|---|---|" + "---|" * len(levels)]
    for n, counts in by_vars.items():
        lines.append(f"| {n} | {counts['equations']} | "
                     + " | ".join(str(counts[f'exact_at_noise_{s:g}']) for s in levels) + " |")
    lines += ["", "## Every run\n",
              "| equation | variables | noise | outcome | route | seconds | relative RMSE | "
              "operations (found / allowed) | formula (rounded) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        v = r["verdict"]
        rel = "-" if v is None or v["rel_rmse"] is None else f"{v['rel_rmse']:.1e}"
        ops = "-" if v is None else f"{v['ops_found']} / {v['ops_allowed']}"
        shown = "-" if v is None else _rounded(v["found"])
        lines.append(f"| {r['id']} | {r['n_vars']} | {r['noise']:g} | {r['outcome']} | "
                     f"{r['route'] or '-'} | {r['seconds']:.1f} | {rel} | {ops} | `{shown}` |")
    failures = [r for r in report["results"] if r["outcome"] != "exact"]
    lines += ["", f"## Failures ({len(failures)})\n"]
    for r in failures:
        head = f"- {r['id']} (noise {r['noise']:g}): "
        if r["outcome"] == "stopped":
            lines.append(head + f"stopped: {r['stopped']}")
        else:
            v = r["verdict"]
            lines.append(head + f"false claim: {v['reason']}; truth `{v['truth']}`, "
                         f"found `{_rounded(v['found'])}`")
    return "\n".join(lines) + "\n"


def _rounded(text):
    """A formula's text with its numbers rounded to 4 decimals, for the tables."""
    return round_formula(text, 4).replace("|", "\\|")


def write(report, out):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "feynman_recovery.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(out, "feynman_recovery.md"), "w") as f:
        f.write(markdown(report))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--equations", nargs="+", help="ids (I.12.1 ...) or one count (the "
                        "first N rows of the table); default: all 100")
    parser.add_argument("--noise", type=float, nargs="+", help="label noise levels as shares "
                        "of the labels' RMS (default: 0 and 0.01; --quick: 0)")
    parser.add_argument("--quick", action="store_true", help=f"the first {QUICK} equations with "
                        f"at most {QUICK_MAX_VARS} variables, noise-free")
    parser.add_argument("--split", type=int, default=0, help="discover's split levels (default "
                        "0: the split route off, as discover's default)")
    parser.add_argument("--jobs", type=int, default=1, help="equations run at once, each in "
                        "its own process on one thread (default 1)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args()
    chosen = select(args.equations, args.quick)
    levels = sorted(set(args.noise or ([0.0] if args.quick else [0.0, 0.01])))
    report = {"run": {"command": "python bench/feynman_recovery.py " + " ".join(sys.argv[1:]),
                      "subset": len(chosen) < len(EQUATIONS) or levels != [0.0, 0.01],
                      "equations": [e.id for _, e in chosen], "noise": levels, "rows": ROWS,
                      "width": "[n, 2n+1, 1]", "lib": LIB, "split": args.split, "jobs": args.jobs,
                      "seeds": "data and discover: row "
                      "index i; noise: [i, 1]; judge's points: [i, 2]"},
              "machine": machine(), "summary": None, "by_n_vars": None, "results": []}
    tasks = [(index, equation, level, args.split) for index, equation in chosen
             for level in levels]
    order = {(t[0], t[2]): k for k, t in enumerate(tasks)}
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for row in pool.imap_unordered(_run_task, tasks):
            report["results"].append(row)
            report["results"].sort(key=lambda r: order[(r["index"], r["noise"])])
            report["summary"], report["by_n_vars"] = summarize(report["results"], levels)
            write(report, args.out)
            v = row["verdict"]
            detail = (row["stopped"] if v is None
                      else (v["reason"] or "exact") + f": {row['formula']}")
            print(f"{row['id']:10s} n={row['n_vars']} noise={row['noise']:g} "
                  f"{row['outcome']:11s} {row['seconds']:6.1f} s  {detail}", flush=True)
    report["machine"]["load_average_1min_after"] = os.getloadavg()[0]
    write(report, args.out)
    print(json.dumps(report["summary"], indent=1))


if __name__ == "__main__":
    main()
