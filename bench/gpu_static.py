"""Static performance report of the CUDA kernels, proven from the compiler without a GPU.

    python bench/gpu_static.py             # writes bench/results/gpu_static.json and .md
    python bench/gpu_static.py --out DIR   # elsewhere (tests/test_gpu_static.py)

Needs numba-cuda with its NVVM (`numba-cuda[cu12]`), ptxas (`nvidia-cuda-nvcc-cu12`) and nvdisasm
(`nvidia-cuda-nvdisasm`): all in the `test` extra. No GPU, no driver, no CUDA toolkit install.

Method, for every kernel of kernels/cuda/ at k = 3 (k is a compile-time constant: each k is
its own kernel), in float32 and float64, for sm_90 (H100) and sm_80 (A100):
1. PTX from numba-cuda's compile_ptx (with the kernel's launch bounds), cached by (kernels/cuda/ contents, numba-cuda version,
   kernel, dtype, k, arch) in $KANARRAY_PTX_CACHE (default: the system temp directory).
2. Resources from `ptxas -arch=sm_XX -O3 -v`: registers, stack frame, spill stores and loads,
   static shared memory (no kernel uses dynamic shared memory).
3. Theoretical occupancy from the per-SM limits (registers allocated per warp in units of 256,
   shared memory with 1 KiB reserved per block, block and warp limits; table ARCH below).
4. SASS from `nvdisasm -c`. A loop is a backward branch (BRA to a label above it); its body
   runs from the label to the branch, NOPs excluded. The sweep of a hot kernel is its innermost
   loop holding the most FMA instructions (FFMA, DFMA). Instructions per (sample, input,
   output) = body / triples one iteration handles per thread (kernels.cuda.SWEEP_TRIPLES:
   forward and dx 4 samples x 4 outputs, params one listed sample x 4 outputs). A thread
   instruction is a warp instruction issued for 32 threads, so these are issue slots per triple.
   Also counted, as the overheads of the model: the instructions of the loop around the sweep
   outside it (forward: staging one (sample, input) pair per thread per 8-input chunk;
   dx: the lane reduction per input; params: the window filter per 256-sample group), and
   dx's instructions outside every loop (its staging). Static counts: each instruction once,
   loops inside those regions (the span search) once, slow paths of divisions included.
5. Roofline at B=16384, I=O=256, k=3 for G = 5..200 from kernels.cuda.predict_times (the model
   choose_path uses), whose instruction constants this report checks against the compiler
   (tests/test_gpu_static.py), beside the cuBLAS FP32 (SGEMM) and TF32 MLP layer.
"""
import argparse
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
K = 3
SHAPE = dict(B=16384, I=256, O=256)
GRIDS = [5, 10, 20, 50, 100, 200]
HOT = ("forward", "backward_dx", "backward_params")
# per-SM limits: registers, warps, blocks, shared memory (bytes), per-block reserved shared
ARCH = {"sm_90": dict(cc=(9, 0), regs=65536, warps=64, blocks=32, smem=228 * 1024, reserved=1024),
        "sm_80": dict(cc=(8, 0), regs=65536, warps=64, blocks=32, smem=164 * 1024, reserved=1024)}
THREADS = {"span_basis": 256, "forward": 256, "backward_dx": 256, "backward_params": None,
           "backward_finalize": 256, "dense_basis": 128}


def find_tool(name):
    """ptxas / nvdisasm from the NVIDIA wheels (nvidia/*/bin), else from PATH; None if absent."""
    try:
        import nvidia
        for root in nvidia.__path__:
            for hit in sorted(Path(root).glob(f"*/bin/{name}")):
                return str(hit)
    except ImportError:
        pass
    return shutil.which(name)


def _cache_dir():
    d = Path(os.environ.get("KANARRAY_PTX_CACHE", Path(tempfile.gettempdir()) / "kanarray-ptx"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def compile_ptx(kc, name, fn, sig, dtype, arch):
    from numba import cuda
    src = b"".join(p.read_bytes() for p in sorted(Path(kc.__file__).parent.glob("*.py")))
    bounds = kc.launch_bounds(name, dtype)
    key = hashlib.sha256(src + f"{metadata.version('numba-cuda')}|{name}|{dtype}|{K}|{arch}"
                         .encode()).hexdigest()[:24]
    path = _cache_dir() / f"{name}-{key}.ptx"
    if not path.exists():
        ptx, _ = cuda.compile_ptx(fn, sig, cc=ARCH[arch]["cc"], launch_bounds=bounds)
        path.write_text(ptx)
    return path


def ptxas(tool, ptx_path, arch, workdir):
    cubin = Path(workdir) / (ptx_path.stem + f"-{arch}.cubin")
    out = subprocess.run([tool, f"-arch={arch}", "-O3", "-v", str(ptx_path), "-o", str(cubin)],
                         capture_output=True, text=True, check=True).stderr
    num = lambda pat: int(re.search(pat, out).group(1)) if re.search(pat, out) else 0  # noqa: E731
    return cubin, dict(registers=num(r"Used (\d+) registers"), stack=num(r"(\d+) bytes stack frame"),
                       spill_stores=num(r"(\d+) bytes spill stores"),
                       spill_loads=num(r"(\d+) bytes spill loads"), smem=num(r"(\d+) bytes smem"))


def occupancy(registers, smem, threads, arch):
    """Theoretical share of the SM's warp slots that resident blocks fill."""
    a = ARCH[arch]
    warps = math.ceil(threads / 32)
    regs_per_warp = math.ceil(max(registers, 1) * 32 / 256) * 256
    by_regs = a["regs"] // (regs_per_warp * warps)
    by_smem = a["smem"] // (smem + a["reserved"]) if smem else a["blocks"]
    blocks = min(by_regs, by_smem, a["blocks"], a["warps"] // warps)
    limit = min((by_regs, "registers"), (by_smem, "shared memory"), (a["blocks"], "blocks"),
                (a["warps"] // warps, "warps"))[1]
    return blocks * warps / a["warps"], limit


def sass_lines(tool, cubin):
    """[(label or None, opcode, text)] of the kernel in cubin, in address order."""
    text = subprocess.run([tool, "-c", str(cubin)], capture_output=True, text=True,
                          check=True).stdout
    rows = []
    for line in text.splitlines():
        m = re.match(r"^(\.L_x_\d+):", line)
        if m:
            rows.append((m.group(1), None, line))
            continue
        m = re.match(r"^\s+/\*[0-9a-f]{4,}\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)", line)
        if m:
            rows.append((None, m.group(2), line.strip()))
    return rows


def loops(rows):
    """Loops as (start index, end index) of [label .. backward branch], innermost first."""
    where = {lab: n for n, (lab, _, _) in enumerate(rows) if lab}
    found = []
    for n, (_, op, text) in enumerate(rows):
        m = re.search(r"BRA\s+`\((\.L_x_\d+)\)", text) if op and op.startswith("BRA") else None
        if m and where.get(m.group(1), n) < n:
            found.append((where[m.group(1)], n))
    return sorted(found, key=lambda se: se[1] - se[0])


def count(rows, start, end, exclude=()):
    """Instructions in rows[start..end] outside the ranges in exclude, NOPs not counted."""
    return sum(1 for n in range(start, end + 1)
               if rows[n][1] and rows[n][1] != "NOP"
               and not any(a <= n <= b for a, b in exclude))


def analyse_sass(rows, name, fma):
    """Sweep and overhead counts of one kernel (see the module docstring)."""
    found = loops(rows)
    inner = [lp for lp in found if not any(o != lp and lp[0] <= o[0] and o[1] <= lp[1]
                                           for o in found)]
    fmas = lambda lp: sum(1 for n in range(lp[0], lp[1] + 1) if rows[n][1] == fma)  # noqa: E731
    out = {"instructions": count(rows, 0, len(rows) - 1), "loops": len(found)}
    if name not in HOT or not inner:
        return out, None
    sweep = max(inner, key=fmas)
    out.update(sweep_instructions=count(rows, *sweep), sweep_fma=fmas(sweep))
    enclosing = [lp for lp in found if lp[0] <= sweep[0] and sweep[1] <= lp[1] and lp != sweep]
    if enclosing:
        outer = min(enclosing, key=lambda lp: lp[1] - lp[0])
        nested = [lp for lp in found if outer[0] <= lp[0] and lp[1] <= outer[1] and lp != outer]
        out["enclosing_instructions"] = count(rows, *outer, exclude=nested)
    return out, sweep


def measure(kc, dtypes=("float32", "float64"), archs=("sm_90", "sm_80")):
    tools = {t: find_tool(t) for t in ("ptxas", "nvdisasm")}
    missing = [t for t, p in tools.items() if p is None]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} not found: pip install "
                                "nvidia-cuda-nvcc-cu12 nvidia-cuda-nvdisasm (the test extra)")
    kernels = []
    with tempfile.TemporaryDirectory() as work:
        for dtype in dtypes:
            item = np.dtype(dtype).itemsize
            for name, fn, sig in kc.kernel_signatures(dtype, K):
                for arch in archs:
                    ptx = compile_ptx(kc, name, fn, sig, dtype, arch)
                    cubin, res = ptxas(tools["ptxas"], ptx, arch, work)
                    threads = THREADS[name] or kc.WARP * kc.PG_WARPS[item]
                    occ, limit = occupancy(res["registers"], res["smem"], threads, arch)
                    rows = sass_lines(tools["nvdisasm"], cubin)
                    sass, _ = analyse_sass(rows, name, "FFMA" if item == 4 else "DFMA")
                    row = dict(kernel=name, dtype=dtype, arch=arch, k=K, threads=threads, **res,
                               occupancy=round(occ, 4), occupancy_limit=limit, **sass)
                    if "sweep_instructions" in sass:
                        row["per_triple"] = sass["sweep_instructions"] / kc.SWEEP_TRIPLES[name]
                    kernels.append(row)
    return kernels


def model_constants(kernels):
    """The instruction constants of kernels.cuda.MODEL_INSTR, from the sm_90 rows (see there)."""
    out = {}
    for dtype in ("float32", "float64"):
        rows = {r["kernel"]: r for r in kernels if r["arch"] == "sm_90" and r["dtype"] == dtype}
        if not all(n in rows for n in HOT):
            continue
        dx = rows["backward_dx"]
        dx_pair = (rows["backward_dx"]["threads"] // 32 * dx["enclosing_instructions"]
                   + dx["instructions"] - dx["sweep_instructions"] - dx["enclosing_instructions"])
        out[dtype] = {**{n: round(rows[n]["per_triple"], 2) for n in HOT},
                      "forward_stage": rows["forward"]["enclosing_instructions"],
                      "dx_pair": dx_pair,
                      "params_filter": rows["backward_params"]["enclosing_instructions"]}
    return out


def roofline(kc):
    B, I, O = SHAPE["B"], SHAPE["I"], SHAPE["O"]
    mlp, mlp_tf32 = kc.mlp_seconds(I, O, B), kc.mlp_seconds(I, O, B, tf32=True)
    rows = []
    for G in GRIDS:
        t = kc.predict_times(G, K, np.float32, I, O, B)
        fused = t["fused"]["forward"] + t["fused"]["backward"]
        dense = t["dense"]["forward"] + t["dense"]["backward"]
        rows.append(dict(
            G=G, fwd_flops=2.0 * B * I * O * (K + 2), bwd_flops=2.0 * B * I * O * (2 * K + 4),
            fused_forward_ms=t["fused"]["forward"] * 1e3,
            fused_backward_dx_ms=t["fused"]["backward_dx"] * 1e3,
            fused_backward_params_ms=t["fused"]["backward_params"] * 1e3,
            fused_ms=fused * 1e3, dense_ms=dense * 1e3, mlp_fp32_ms=mlp * 1e3,
            mlp_tf32_ms=mlp_tf32 * 1e3, fused_over_sgemm=fused / mlp,
            fused_over_tf32=fused / mlp_tf32, choose_path=kc.choose_path(G, K, np.float32, I, O, B,
                                                                         path="auto")))
    return rows


def markdown(report):
    lines = ["# CUDA kernels read back from the compiler (no GPU)", "",
             f"numba-cuda {report['env']['numba_cuda']}, ptxas {report['env']['ptxas']}, "
             f"nvdisasm {report['env']['nvdisasm']}; k = {K} (a compile-time constant).", "",
             "Counting method: a loop is a backward branch in the SASS (`nvdisasm -c`); its body "
             "runs from the target label to the branch, NOPs excluded. A hot kernel's sweep is "
             "its innermost loop with the most FMAs (FFMA / DFMA). Per triple = body / the "
             "(sample, input, output) triples one iteration handles per thread (forward and dx: "
             "4 samples x 4 outputs; params: one listed sample x 4 outputs), i.e. warp-issue "
             "slots per triple. Registers, stack, spills, shared memory: `ptxas -O3 -v`. "
             "Occupancy: theoretical, from the per-SM register, shared-memory, block and warp "
             "limits. Details: the bench/gpu_static.py docstring.", "",
             "| kernel | dtype | arch | threads | registers | stack B | spills B | smem B "
             "| occupancy (limit) | sweep / triple |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["kernels"]:
        pt = f"{r['per_triple']:.2f}" if "per_triple" in r else ""
        lines.append(f"| {r['kernel']} | {r['dtype']} | {r['arch']} | {r['threads']} "
                     f"| {r['registers']} | {r['stack']} | {r['spill_stores'] + r['spill_loads']} "
                     f"| {r['smem']} | {100 * r['occupancy']:.1f}% ({r['occupancy_limit']}) "
                     f"| {pt} |")
    lines += ["", f"## Roofline estimate, float32, B={SHAPE['B']}, I=O={SHAPE['I']}, k={K} "
              "(H100 SXM; kernels.cuda.predict_times)", "",
              "Each kernel takes the longest of issue (thread instructions / (32 x 4 x 132 SMs x "
              "1.98 GHz)), L2->SM traffic at an assumed 7 TB/s and HBM traffic at 3.35 TB/s. "
              "MLP layer: forward + backward = 3 GEMMs of 2BIO flops at 50 TFLOP/s (FP32 SGEMM) "
              "or 400 TFLOP/s (TF32). Nothing here is measured on a GPU.", "",
              "| G | fused fwd ms | dx ms | params ms | fused fwd+bwd ms | dense fwd+bwd ms "
              "| MLP FP32 ms | MLP TF32 ms | fused / FP32 MLP | fused / TF32 MLP | choose_path |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["roofline"]:
        lines.append(f"| {r['G']} | {r['fused_forward_ms']:.3f} | {r['fused_backward_dx_ms']:.3f} "
                     f"| {r['fused_backward_params_ms']:.3f} | {r['fused_ms']:.3f} "
                     f"| {r['dense_ms']:.3f} | {r['mlp_fp32_ms']:.3f} | {r['mlp_tf32_ms']:.3f} "
                     f"| {r['fused_over_sgemm']:.1f}x | {r['fused_over_tf32']:.1f}x "
                     f"| {r['choose_path']} |")
    return "\n".join(lines) + "\n"


def _tool_version(tool):
    out = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"V(\d+\.\d+\.\d+)", out)
    return m.group(1) if m else None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for gpu_static.json/.md")
    args = ap.parse_args(argv)
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        sys.exit("gpu_static.py compiles real kernels: run it without NUMBA_ENABLE_CUDASIM")
    from kanarray.kernels import cuda as kc
    kernels = measure(kc)
    report = {"env": {"numba_cuda": metadata.version("numba-cuda"),
                      "ptxas": _tool_version(find_tool("ptxas")),
                      "nvdisasm": _tool_version(find_tool("nvdisasm"))},
              "k": K, "shape": SHAPE, "kernels": kernels,
              "model_constants": model_constants(kernels), "roofline": roofline(kc)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_static.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "gpu_static.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
