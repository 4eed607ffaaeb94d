"""Forward+backward time of one KAN layer on the CPU, side by side with the equal-width MLP layer.

    python bench/layer_cpu.py [--quick] [--out bench/results]

For each grid size G and dtype, one KAN layer (B=4096, I=O=128, k=3) runs forward and backward
as training runs them: basis_tape (spans, bases and base function of x, once), then
layer_forward_tape and layer_backward_tape on that tape; the MLP layer of the same width runs y = silu(x W + b) and its backward
(dW = x^T g', dx = g' W^T, db = sum g', g' = g silu'(z)) through NumPy's BLAS. The three GEMMs of
that layer alone (x W, x^T g', g' W^T) are timed too: the MLP's floor. All are timed in the same
run, after warm-up, as the median of repeats, on random data.

Useful FLOPs count only the non-zero work: a KAN edge does k+1 basis terms and the base branch,
so forward 2BIO(k+2) and backward 4BIO(k+2); the MLP layer 2BIO and 4BIO.
"""
import argparse
import json
import os
import platform
import time

import numba
import numpy as np

from kanarray.cli.info import median_seconds
from kanarray.kernels import cpu

B, I, O, K = 4096, 128, 128, 3
GRIDS = (5, 10, 20, 50, 100, 200)


def kan_layer(rng, G, dtype):
    knots = np.tile(np.linspace(-1 - K * 2 / G, 1 + K * 2 / G, G + 2 * K + 1), (I, 1)).astype(dtype)
    arrays = {
        "x": rng.uniform(-1, 1, (B, I)), "g": rng.normal(size=(B, O)), "knots": knots,
        "coef": rng.normal(size=(I, G + K, O)) / np.sqrt(I), "w_base": rng.normal(size=(I, O)),
        "w_spline": rng.normal(size=(I, O)), "bias": rng.normal(size=O), "mask": np.ones((I, O)),
    }
    a = {name: np.ascontiguousarray(v, dtype) for name, v in arrays.items()}
    y = np.empty((B, O), dtype)
    grads = [np.empty((B, I), dtype), np.empty_like(a["coef"]), np.empty((I, O), dtype),
             np.empty((I, O), dtype), np.empty(O, dtype)]
    tape = cpu.new_basis_tape(B, I, knots.shape[1], K, dtype)

    def step():
        cpu.basis_tape(a["x"], a["knots"], K, 0, tape)
        cpu.layer_forward_tape(tape, a["coef"], a["w_base"], a["w_spline"], a["bias"], a["mask"], K, y)
        cpu.layer_backward_tape(tape, a["g"], a["coef"], a["w_base"], a["w_spline"], a["mask"], K, *grads)
    return step


def mlp_layer(rng, dtype):
    x = rng.uniform(-1, 1, (B, I)).astype(dtype)
    w = (rng.normal(size=(I, O)) / np.sqrt(I)).astype(dtype)
    b = rng.normal(size=O).astype(dtype)
    g = rng.normal(size=(B, O)).astype(dtype)

    def step():
        z = x @ w + b
        sig = 1 / (1 + np.exp(-z))
        y = z * sig
        gz = g * (sig * (1 + z * (1 - sig)))
        dw = x.T @ gz
        dx = gz @ w.T
        db = gz.sum(axis=0)
        return y, dw, dx, db
    return step


def mlp_gemms(rng, dtype):
    x = rng.uniform(-1, 1, (B, I)).astype(dtype)
    w = (rng.normal(size=(I, O)) / np.sqrt(I)).astype(dtype)
    gz = rng.normal(size=(B, O)).astype(dtype)
    z = np.empty((B, O), dtype)
    dw = np.empty((I, O), dtype)
    dx = np.empty((B, I), dtype)

    def step():
        np.matmul(x, w, out=z)
        np.matmul(x.T, gz, out=dw)
        np.matmul(gz, w.T, out=dx)
    return step


def cpu_model():
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="G = 5 and 200 only, fewer repeats")
    parser.add_argument("--grids", type=int, nargs="+", help="grid sizes to run (default: all)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args()
    grids = args.grids or ((5, 200) if args.quick else GRIDS)
    repeats = 3 if args.quick else 7
    rng = np.random.default_rng(0)
    threads = cpu.max_threads()
    rows = []
    for dtype in (np.float32, np.float64):
        mlp = median_seconds(mlp_layer(rng, dtype), repeats, warmup=2)
        gemms = median_seconds(mlp_gemms(rng, dtype), repeats, warmup=2)
        for G in grids:
            kan = median_seconds(kan_layer(rng, G, dtype), repeats, warmup=2)
            useful = 6 * B * I * O * (K + 2)
            rows.append({"dtype": np.dtype(dtype).name, "G": G, "kan_ms": kan * 1e3, "mlp_ms": mlp * 1e3,
                         "ratio": kan / mlp, "gemm_ms": gemms * 1e3,
                         "ratio_to_gemms": kan / gemms, "kan_gflops": useful / kan / 1e9,
                         "mlp_gflops": 6 * B * I * O / mlp / 1e9})
            print(f"{rows[-1]['dtype']:8s} G={G:4d}  KAN {kan * 1e3:8.2f} ms  MLP {mlp * 1e3:7.2f} ms  "
                  f"ratio {kan / mlp:6.2f}  GEMMs {gemms * 1e3:7.2f} ms  KAN/GEMMs {kan / gemms:6.2f}  KAN {useful / kan / 1e9:6.1f} GFLOP/s", flush=True)
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "numba_threads": threads,
               "threading_layer": numba.threading_layer(),
               "numpy": np.__version__, "date": time.strftime("%Y-%m-%d")}
    spread = {}
    for dtype in ("float32", "float64"):
        ratios = [r["ratio"] for r in rows if r["dtype"] == dtype]
        spread[dtype] = max(ratios) / min(ratios)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "layer_cpu.json"), "w") as out:
        json.dump({"machine": machine, "shape": {"B": B, "I": I, "O": O, "k": K}, "rows": rows,
                   "ratio_spread": spread}, out, indent=2)
    lines = ["# One KAN layer vs the MLP layer on the CPU\n",
             f"{machine['cpu']}, {machine['cores']} cores, {threads} Numba threads ({machine['threading_layer']}), NumPy {np.__version__}, "
             f"{machine['date']}. B={B}, I=O={I}, k={K}; forward+backward, median of {repeats}.\n",
             "| dtype | G | KAN ms | MLP ms | KAN / MLP | 3 GEMMs ms | KAN / GEMMs | KAN useful GFLOP/s | MLP GFLOP/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['dtype']} | {r['G']} | {r['kan_ms']:.2f} | {r['mlp_ms']:.2f} | {r['ratio']:.2f} | "
              f"{r['gemm_ms']:.2f} | {r['ratio_to_gemms']:.2f} | "
              f"{r['kan_gflops']:.1f} | {r['mlp_gflops']:.1f} |" for r in rows]
    lines += ["", "Spread of the ratio over G (max / min): " +
              ", ".join(f"{d} {v:.2f}x" for d, v in spread.items())]
    with open(os.path.join(args.out, "layer_cpu.md"), "w") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
