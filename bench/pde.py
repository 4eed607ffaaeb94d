"""Physics-informed KANs on four PDEs: kanarray.fit_pde against its reference solutions, and,
side by side in the same run, jaxKAN's PIKAN and an MLP PINN in PyTorch (bench/pde_peers.py).

    python bench/pde.py [--problems poisson allen_cahn burgers helmholtz] [--seeds 0 1 2]
                        [--peers jaxkan mlp] [--quick] [--out bench/results]

Problems (u: the solution; x, y in [-1, 1]; t in [0, 1]):
- poisson:    -(u_xx + u_yy) = 2 pi^2 sin(pi x) sin(pi y), u = 0 on the edge; exact solution
              sin(pi x) sin(pi y). The KAN paper's example.
- helmholtz:  u_xx + u_yy + u = q with u = sin(pi x) sin(4 pi y) exact, u = 0 on the edge.
- allen_cahn: u_t - D u_xx + 5 u^3 - 5 u = 0, u(x, 0) = x^2 cos(pi x), periodic in x, D = 1e-3
              (jaxKAN's adaptive-PIKAN example) and D = 1e-4 (the classic PINN benchmark,
              allen_cahn_1e-4). Reference: Fourier pseudo-spectral in x (512 modes) integrated
              by scipy's DOP853 (rtol 1e-10). kanarray trains u = u0(x) + t v(x, t) (the
              initial condition exact, its residual rewritten for v, u periodic by penalty);
              the peers train u with the initial condition as a penalty: the errors of that row
              compare two formulations, the times per iteration the same work.
- burgers:    u_t + u u_x - nu u_xx = 0, nu = 0.01/pi, u(x, 0) = -sin(pi x), u(+-1, t) = 0.
              Reference: the Cole-Hopf solution by Gauss-Hermite quadrature (200 nodes).
Every solver gets the same collocation and condition points (a uniform grid inside, evenly
spaced on the edges), the same loss (mean squared residual + weight x mean squared misfit per
condition) and the same budget of optimizer iterations; relative L2 errors are taken on a
101 x 101 grid (the reference's own grid for allen_cahn and burgers). seconds_per_iter: the
median wall time of one optimizer iteration (an Adam step, or one L-BFGS iteration) after
compilation; kanarray's L-BFGS iterations include their line searches. Float64 for kanarray;
the peers' dtype is theirs (bench/pde_peers.py says).

kanarray's schedule per problem: Adam (lr 1e-2) on the starting grid, then L-BFGS on each grid
of the grid-extension schedule (KAN.refine), as the KAN paper trains its Poisson example; for
the time-dependent problems the Adam phase is causal (fit_pde's causal=(t, 16 slices, eps 10)).
--quick: one seed, a fraction of the iterations, no peers (a smoke run; not for the results).
Writes pde.json and pde.md; the rows of problems not run this time are kept from the files
there (each row names its command and its load), and the speed table is measured again
whenever peers run.
"""
import argparse
import json
import os
import platform
import sys
import time

import numba
import numpy as np
from scipy.integrate import solve_ivp

import kanarray
from kanarray import KAN, PDE, Dirichlet, Periodic, fit_pde

HERE = os.path.dirname(os.path.abspath(__file__))
PI = np.pi


# ---------------------------------------------------------------- problems and references
def _square(n):
    """(interior points, edge points) of an n x n grid on [-1, 1]^2."""
    t = np.linspace(-1, 1, n)
    grid = np.stack(np.meshgrid(t, t), axis=-1).reshape(-1, 2)
    on_edge = (np.abs(grid) == 1).any(axis=1)
    return grid[~on_edge], grid[on_edge]


def _test_square():
    t = np.linspace(-1, 1, 101)
    return np.stack(np.meshgrid(t, t), axis=-1).reshape(-1, 2)


def poisson(n):
    def exact(p):
        return np.sin(PI * p[:, 0]) * np.sin(PI * p[:, 1])

    def residual(x, u, grad, second):
        return (second[:, 0] + second[:, 1] + 2 * PI ** 2 * exact(x), np.zeros_like(u), np.zeros_like(grad),
                np.ones_like(second))

    interior, edge = _square(n)
    test = _test_square()
    return {"residual": residual, "second": [(0, 0), (1, 1)], "interior": interior,
            "conditions": [("dirichlet", edge, np.zeros(len(edge)), 1000.0)],
            "test_points": test, "test_values": exact(test), "peer_residual": "poisson"}


def helmholtz(n):
    a1, a2, kk = 1.0, 4.0, 1.0

    def exact(p):
        return np.sin(a1 * PI * p[:, 0]) * np.sin(a2 * PI * p[:, 1])

    def residual(x, u, grad, second):
        q = (kk ** 2 - (a1 * PI) ** 2 - (a2 * PI) ** 2) * exact(x)
        return (second[:, 0] + second[:, 1] + kk ** 2 * u - q, np.full_like(u, kk ** 2), np.zeros_like(grad),
                np.ones_like(second))

    interior, edge = _square(n)
    test = _test_square()
    return {"residual": residual, "second": [(0, 0), (1, 1)], "interior": interior,
            "conditions": [("dirichlet", edge, np.zeros(len(edge)), 1000.0)],
            "test_points": test, "test_values": exact(test), "peer_residual": "helmholtz"}


def _space_time(n):
    """Interior (x, t) points, the t = 0 line and the x = -1 / x = 1 lines, n points a side."""
    return _space_time_grid(n, n)


def _space_time_grid(nx, nt):
    xs, ts = np.linspace(-1, 1, nx), np.linspace(0, 1, nt)
    n = nx
    grid = np.stack(np.meshgrid(xs, ts), axis=-1).reshape(-1, 2)
    inside = (np.abs(grid[:, 0]) < 1) & (grid[:, 1] > 0)
    start = np.c_[xs, np.zeros(n)]
    left, right = np.c_[-np.ones(nt - 1), ts[1:]], np.c_[np.ones(nt - 1), ts[1:]]
    return grid[inside], start, left, right


def allen_cahn_reference(D, modes=512, times=101):
    """u on x = -1 + 2 j / modes (j < modes) at t = linspace(0, 1, times): (x, t, u (times, modes))."""
    x = -1 + 2 * np.arange(modes) / modes
    wave = PI * np.fft.rfftfreq(modes, d=1.0 / modes)  # d/dx on a period of 2

    def rhs(_, u):
        u_xx = np.fft.irfft(-(wave ** 2) * np.fft.rfft(u), n=modes)
        return D * u_xx - 5 * u ** 3 + 5 * u

    t = np.linspace(0, 1, times)
    out = solve_ivp(rhs, (0, 1), x ** 2 * np.cos(PI * x), method="DOP853", t_eval=t, rtol=1e-10, atol=1e-12)
    return x, t, out.y.T


def allen_cahn(n, D):
    return allen_cahn_from_points(*_space_time(n), D)


def allen_cahn_from_points(interior, start, left, right, D):
    def residual(x, u, grad, second):
        dgrad = np.zeros_like(grad)
        dgrad[:, 1] = 1
        return (grad[:, 1] - D * second[:, 0] + 5 * u ** 3 - 5 * u, 15 * u ** 2 - 5, dgrad,
                np.full_like(second, -D))

    def u0(x):
        return x ** 2 * np.cos(PI * x)

    def u0_xx(x):
        return (2 - PI ** 2 * x ** 2) * np.cos(PI * x) - 4 * PI * x * np.sin(PI * x)

    def residual_v(x, v, grad, second):
        """The same residual for u = u0(x) + t v(x, t), which starts at u0 by construction."""
        t = x[:, 1]
        u = u0(x[:, 0]) + t * v
        dgrad = np.zeros_like(grad)
        dgrad[:, 1] = t
        r = v + t * grad[:, 1] - D * (u0_xx(x[:, 0]) + t * second[:, 0]) + 5 * u ** 3 - 5 * u
        return r, 1 + (15 * u ** 2 - 5) * t, dgrad, (-D * t)[:, None]

    xr, tr, ur = allen_cahn_reference(D)
    xs, ts = xr[::5], tr  # 103 x 101 of the reference grid
    test = np.stack(np.meshgrid(xs, ts), axis=-1).reshape(-1, 2)
    # kanarray solves the hard-constrained form (the initial condition exact, u periodic by
    # penalty: u0 itself has u_x(-1) != u_x(1)); the peers get the penalty form above
    hard = {"residual": residual_v, "conditions": [("periodic_value", left, right, 1.0)],
            "output": lambda p, v: u0(p[:, 0]) + p[:, 1] * v}
    return {"residual": residual, "second": [(0, 0)], "interior": interior, "D": D,
            "conditions": [("dirichlet", start, u0(start[:, 0]), 100.0), ("periodic", left, right, 1.0)],
            "test_points": test, "test_values": ur[:, ::5].reshape(-1), "peer_residual": "allen_cahn",
            "hard": hard}


def burgers_reference(x, t, nu=0.01 / PI, nodes=200):
    """Cole-Hopf: u(x, t) = -int sin(pi (x - s)) f(x - s) w(s) ds / int f(x - s) w(s) ds with
    f(y) = exp(-cos(pi y) / (2 pi nu)) and the heat kernel w, by Gauss-Hermite quadrature."""
    z, w = np.polynomial.hermite.hermgauss(nodes)
    x, t = np.meshgrid(x, t)
    u = -np.sin(PI * x)
    later = t > 0
    xl, tl = x[later][:, None], t[later][:, None]
    y = xl - np.sqrt(4 * nu * tl) * z[None, :]
    logf = -np.cos(PI * y) / (2 * PI * nu)
    f = np.exp(logf - logf.max(axis=1, keepdims=True))  # the same factor above and below
    u[later] = -(w * np.sin(PI * y) * f).sum(axis=1) / (w * f).sum(axis=1)
    return u


def burgers(n):
    nu = 0.01 / PI

    def residual(x, u, grad, second):
        dgrad = np.zeros_like(grad)
        dgrad[:, 0], dgrad[:, 1] = u, 1
        return (grad[:, 1] + u * grad[:, 0] - nu * second[:, 0], grad[:, 0], dgrad, np.full_like(second, -nu))

    interior, start, left, right = _space_time(n)
    xs, ts = np.linspace(-1, 1, 101), np.linspace(0, 1, 101)
    test = np.stack(np.meshgrid(xs, ts), axis=-1).reshape(-1, 2)
    edges = np.concatenate([left, right])
    return {"residual": residual, "second": [(0, 0)], "interior": interior, "nu": nu,
            "conditions": [("dirichlet", start, -np.sin(PI * start[:, 0]), 100.0),
                           ("dirichlet", edges, np.zeros(len(edges)), 100.0)],
            "test_points": test, "test_values": burgers_reference(xs, ts).reshape(-1), "peer_residual": "burgers"}


# width, grids of the extension schedule, Adam steps, L-BFGS steps per grid, causal training
SETUPS = {
    "poisson": dict(build=lambda: poisson(31), width=[2, 10, 1], grids=[5, 10, 20], adam=200, lbfgs=150),
    "helmholtz": dict(build=lambda: helmholtz(31), width=[2, 10, 1], grids=[5, 10, 20], adam=200, lbfgs=150),
    "allen_cahn": dict(build=lambda: allen_cahn(31, 1e-3), width=[2, 6, 6, 1], grids=[5, 10], adam=2000,
                       lbfgs=100, causal=(1, 16, 10.0)),
    "allen_cahn_1e-4": dict(build=lambda: allen_cahn(31, 1e-4), width=[2, 6, 6, 1], grids=[5, 10], adam=1000,
                            lbfgs=100, causal=(1, 16, 10.0)),
    "burgers": dict(build=lambda: burgers(31), width=[2, 6, 6, 1], grids=[5, 10], adam=500, lbfgs=100,
                    causal=(1, 16, 10.0)),
}


def kanarray_problem(spec):
    """The PDE kanarray trains on: the spec's hard-constrained form where it has one."""
    form = spec.get("hard", spec)
    conditions = []
    for kind, points, other, weight in form["conditions"]:
        conditions.append(Dirichlet(points, other, weight=weight) if kind == "dirichlet"
                          else Periodic(points, other, weight=weight, derivative=kind == "periodic"))
    # no solution: the error is taken once at the end, not after every step (as for the peers)
    return PDE(form["residual"], spec["interior"], second=spec["second"], conditions=conditions)


def relative_error(model, spec):
    u = np.asarray(model(spec["test_points"]))[:, 0]
    if "hard" in spec:
        u = spec["hard"]["output"](spec["test_points"], u)
    return float(np.linalg.norm(u - spec["test_values"]) / np.linalg.norm(spec["test_values"]))


def trainable(model):
    """Trained parameters: spline coefficients, base and spline weights, biases."""
    return sum(int(np.prod(shape)) for layer in model.layers for name, shape in layer.param_shapes().items()
               if name != "symbolic")


def run_kanarray(setup, spec, seed, scale):
    """Adam on the first grid, then L-BFGS on every grid of the schedule -> the row."""
    problem = kanarray_problem(spec)
    model = KAN(setup["width"], grid=setup["grids"][0], seed=seed)
    if spec["interior"][:, 1].min() >= 0:  # (x, t): t in [0, 1] enters the grid's [-1, 1]
        model.input_scaling = (np.array([0.0, 0.5]), np.array([1.0, 0.5]))
    stamps = []
    adam_steps, lbfgs_steps = max(2, int(setup["adam"] * scale)), max(1, int(setup["lbfgs"] * scale))
    start = time.perf_counter()
    fit_pde(model, problem, opt="adam", steps=adam_steps, lr=1e-2, log=0, causal=setup.get("causal"),
            callback=lambda step, m, h: stamps.append(time.perf_counter()))
    lbfgs_seconds, lbfgs_evals = 0.0, 0
    for g in setup["grids"]:
        if g != model.grid:
            model = model.refine(g)
        begin = time.perf_counter()
        history = fit_pde(model, problem, opt="lbfgs", steps=lbfgs_steps, log=0)
        lbfgs_seconds += time.perf_counter() - begin
        lbfgs_evals += int(np.sum(history["n_evals"]))
    return {"rel_l2": relative_error(model, spec), "seconds": time.perf_counter() - start,
            "seconds_per_iter": float(np.median(np.diff(stamps))), "params": trainable(model),
            "lbfgs_seconds_per_eval": lbfgs_seconds / max(lbfgs_evals, 1),
            "optimizer": f"Adam {adam_steps} steps (lr 1e-2"
                         + (f", causal {setup['causal']}" if "causal" in setup else "")
                         + f"), then L-BFGS {lbfgs_steps} steps per grid {setup['grids']}",
            "width": setup["width"]}


# Per peer: jaxKAN trains with Adam alone, at most 300 steps (its L-BFGS step takes minutes to
# compile for each problem and seed, and its Adam steps take about 0.5 s here: kanarray's whole
# budget would take it hours); torch on one thread (on the 2-core machine two were slower).
PEER_OPTIONS = {"jaxkan": {"lbfgs_steps": 0}, "mlp": {"torch_threads": 1}}
PEER_MAX_ADAM = {"jaxkan": 300}


def peer_spec(spec, setup, scale):
    """What bench/pde_peers.py takes: the same points, conditions and budget."""
    out = {"name": spec["peer_residual"], "interior": spec["interior"], "test_points": spec["test_points"],
           "test_values": spec["test_values"], "width": setup["width"], "grid": setup["grids"][0],
           "mlp_width": [2, 50, 50, 50, 1], "lr": 1e-2,
           "adam_steps": max(2, int(setup["adam"] * scale)),
           "lbfgs_steps": max(1, int(setup["lbfgs"] * scale)) * len(setup["grids"]),
           "conditions": [{"kind": kind, "points": points, ("values" if kind == "dirichlet" else "partners"): other,
                           "weight": weight} for kind, points, other, weight in spec["conditions"]]}
    for key in ("D", "nu"):
        if key in spec:
            out[key] = spec[key]
    return out


def speed(peers, seed=0, steps=10):
    """Seconds per Adam iteration on Allen-Cahn (D = 1e-3) at 4,096 interior points (a 66 x 65
    grid less its edges) with [2, 8, 8, 1], G = 5: every solver, one seed, `steps` iterations."""
    spec = allen_cahn_from_points(*_space_time_grid(66, 65), 1e-3)
    setup = {"width": [2, 8, 8, 1], "grids": [5], "adam": steps, "lbfgs": 0}
    model = KAN(setup["width"], grid=5, seed=seed)
    model.input_scaling = (np.array([0.0, 0.5]), np.array([1.0, 0.5]))
    stamps = []
    fit_pde(model, kanarray_problem(spec), opt="adam", steps=steps, lr=1e-2, log=0,
            callback=lambda step, m, h: stamps.append(time.perf_counter()))
    rows = {"kanarray": float(np.median(np.diff(stamps)))}
    for name, run in peers.items():
        rows[name] = run(dict(peer_settings(name, spec, setup, 1.0), lbfgs_steps=0), seed)["seconds_per_iter"]
    return {"points": len(spec["interior"]), "width": setup["width"], "seconds_per_iter": rows}


def cpu_name():
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def peer_settings(peer, spec, setup, scale):
    settings = dict(peer_spec(spec, setup, scale), **PEER_OPTIONS.get(peer, {}))
    settings["adam_steps"] = min(settings["adam_steps"], PEER_MAX_ADAM.get(peer, settings["adam_steps"]))
    return settings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--peers", nargs="*", default=["jaxkan", "mlp"])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    seeds = args.seeds[:1] if args.quick else args.seeds
    peers = {}
    if args.peers and not args.quick:
        sys.path.insert(0, HERE)
        import pde_peers  # bench-only: jax, jaxkan, torch

        peers = {name: pde_peers.PEERS[name] for name in args.peers}
    command = "python bench/pde.py " + " ".join(sys.argv[1:])
    results = {"machine": f"{cpu_name()}, {os.cpu_count()} cores",
               "numba": numba.__version__, "numpy": np.__version__, "kanarray": kanarray.__version__,
               "date": time.strftime("%Y-%m-%d"), "threads": numba.get_num_threads(), "quick": args.quick,
               "runs": []}
    earlier = os.path.join(args.out, "pde.json")
    if not args.quick and os.path.exists(earlier):  # rows of the problems not run now are kept
        with open(earlier) as f:
            kept = json.load(f)
        results["runs"] = [row for row in kept["runs"] if row["problem"] not in args.problems]
        for key in ("speed", "peer_versions"):
            if key in kept and not peers:
                results[key] = kept[key]
    if peers:
        results["peer_versions"] = pde_peers.versions()
        results["speed"] = speed(peers)
        results["speed"].update(command=command, load=os.getloadavg()[0])
        print("speed:", results["speed"], flush=True)
    for name in args.problems:
        setup = SETUPS[name]
        spec = setup["build"]()
        for seed in seeds:
            solvers = [("kanarray", lambda: run_kanarray(setup, spec, seed, scale))]
            solvers += [(peer, lambda peer=peer: peers[peer](peer_settings(peer, spec, setup, scale), seed))
                        for peer in peers]
            for solver, run in solvers:
                row = run()
                row.update(problem=name, solver=solver, seed=seed, command=command, load=os.getloadavg()[0])
                results["runs"].append(row)
                print(f"{name:16s} {solver:9s} seed {seed}: rel L2 {row['rel_l2']:.3e}, "
                      f"{row['seconds_per_iter'] * 1e3:.1f} ms/iter, {row['seconds']:.0f} s", flush=True)
                write(results, args.out)


def summarise(runs):
    """{problem: {solver: {"rel_l2": [one per seed], "seconds_per_iter": median}}}."""
    summary = {}
    for row in runs:
        entry = summary.setdefault(row["problem"], {}).setdefault(row["solver"], {"rel_l2": [], "times": []})
        entry["rel_l2"].append(row["rel_l2"])
        entry["times"].append(row["seconds_per_iter"])
    for solvers in summary.values():
        for entry in solvers.values():
            entry["seconds_per_iter"] = float(np.median(entry.pop("times")))
    return summary


def write(results, out):
    os.makedirs(out, exist_ok=True)
    results["summary"] = summarise(results["runs"])
    with open(os.path.join(out, "pde.json"), "w") as f:
        json.dump(results, f, indent=1)
    commands = sorted({row["command"] for row in results["runs"]})
    lines = ["# Physics-informed KANs: kanarray.fit_pde and its peers", "",
             "; ".join(f"`{c}`" for c in commands), "",
             f"{results['machine']}, Numba {results['numba']} ({results['threads']} threads), NumPy "
             f"{results['numpy']}, {results['date']}."
             + (f" Peers: {results['peer_versions']}." if "peer_versions" in results else ""), "",
             "Relative L2 error against the reference per seed, and the median milliseconds of one Adam "
             "iteration (loss, gradient, update) after compilation. Each run's 1-minute load average is in "
             "the table of every run (2 cores: above 1, another process shared the machine).", "",
             "Solvers: kanarray in float64 on Numba's threads, the schedule of each row's optimizer column; "
             "jaxkan (jaxKAN's PIKAN, float32, its 'base' B-spline layer, derivatives by nested jax.grad per "
             "point as its PDE examples take them) with Adam alone and at most 300 steps (its L-BFGS step "
             "compiles for minutes per run); mlp (a tanh MLP [2, 50, 50, 50, 1] in PyTorch, float32, one "
             "thread) with kanarray's Adam steps and then as many L-BFGS steps of 20 iterations as kanarray "
             "takes over all its grids. Same points, same loss, same condition weights (bench/pde_peers.py). "
             "allen_cahn rows: kanarray trains u = u0(x) + t v(x, t), the initial condition exact, the peers "
             "the penalty form, so those errors compare two formulations.", "",
             "| problem | solver | rel. L2 error per seed | median | ms per Adam iteration |", "|---|---|---|---|---|"]
    for problem, solvers in results["summary"].items():
        for solver, row in solvers.items():
            errors = ", ".join(f"{e:.2e}" for e in row["rel_l2"])
            lines.append(f"| {problem} | {solver} | {errors} | {np.median(row['rel_l2']):.2e} | "
                         f"{row['seconds_per_iter'] * 1e3:.1f} |")
    if "speed" in results:
        speed_row = results["speed"]
        lines += ["", f"### One Adam iteration on Allen-Cahn, {speed_row['points']} collocation points, "
                      f"{speed_row['width']}, G = 5", "", f"`{speed_row['command']}`, load average "
                      f"{speed_row['load']:.1f}.", "", "| solver | ms per iteration | kanarray faster by |",
                  "|---|---|---|"]
        ours = speed_row["seconds_per_iter"]["kanarray"]
        for solver, seconds in speed_row["seconds_per_iter"].items():
            lines.append(f"| {solver} | {seconds * 1e3:.1f} | {seconds / ours:.1f}x |")
    lines += ["", "## Every run", "", "| problem | solver | seed | width | parameters | optimizer | rel. L2 | "
              "ms/iter | total s | load |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in results["runs"]:
        lines.append(f"| {row['problem']} | {row['solver']} | {row['seed']} | {row.get('width', '')} | "
                     f"{row.get('params', '')} | {row.get('optimizer', '')} | {row['rel_l2']:.2e} | "
                     f"{row['seconds_per_iter'] * 1e3:.1f} | {row['seconds']:.0f} | {row['load']:.1f} |")
    with open(os.path.join(out, "pde.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
