"""The CUDA kernels as the compiler builds them, checked without a GPU (bench/gpu_static.py).

The report compiles every kernel for sm_90 and sm_80 (numba-cuda -> PTX -> ptxas -> nvdisasm) and
these tests hold the hot kernels at k = 3, float32, sm_90 to their budgets:
    no spills and no local memory (stack frame 0);
    registers: forward and dx <= 64 (4 blocks of 256 threads per SM, 50% occupancy), params <= 48;
    <= 24 SASS instructions per (sample, input, output) in each sweep loop.
They also hold the cost model's constants (kernels.cuda.MODEL_INSTR, used by choose_path) to what
the compiler produced. Skipped, with the reason, where ptxas / nvdisasm / numba-cuda's NVVM are
missing; the `test` extra installs all three.
"""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_static.py"
COMMITTED = ROOT / "bench" / "results" / "gpu_static.json"
REGISTER_BUDGET = {"forward": 64, "backward_dx": 64, "backward_params": 48}
MAX_PER_TRIPLE = 24


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_static", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    gs = _load_script()
    missing = [t for t in ("ptxas", "nvdisasm") if gs.find_tool(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: pip install nvidia-cuda-nvcc-cu12 "
                    "nvidia-cuda-nvdisasm (the test extra)")
    if importlib.util.find_spec("numba_cuda") is None:
        pytest.skip("numba-cuda missing: pip install 'numba-cuda[cu12]' (the test extra)")
    out = tmp_path_factory.mktemp("gpu_static")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    run = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], env=env,
                         capture_output=True, text=True, timeout=900)
    if run.returncode != 0 and "libNVVM" in run.stderr:
        pytest.skip(f"numba-cuda cannot compile PTX here: {run.stderr.strip().splitlines()[-1]}")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    return json.loads((out / "gpu_static.json").read_text())


def _hot_rows(report):
    rows = {r["kernel"]: r for r in report["kernels"]
            if r["dtype"] == "float32" and r["arch"] == "sm_90" and r["kernel"] in REGISTER_BUDGET}
    assert set(rows) == set(REGISTER_BUDGET)
    return rows


def test_every_kernel_compiles_for_both_archs_and_dtypes(report):
    seen = {(r["kernel"], r["dtype"], r["arch"]) for r in report["kernels"]}
    kernels = {r["kernel"] for r in report["kernels"]}
    assert len(kernels) == 6
    assert seen == {(k, d, a) for k in kernels for d in ("float32", "float64")
                    for a in ("sm_90", "sm_80")}


@pytest.mark.parametrize("kernel", list(REGISTER_BUDGET))
def test_hot_kernel_no_spills_no_local_memory_within_register_budget(report, kernel):
    row = _hot_rows(report)[kernel]
    assert row["spill_stores"] == 0 and row["spill_loads"] == 0, row
    assert row["stack"] == 0, f"{kernel} uses {row['stack']} bytes of local memory"
    assert row["registers"] <= REGISTER_BUDGET[kernel], row
    assert row["occupancy"] >= 0.5, row


@pytest.mark.parametrize("kernel", list(REGISTER_BUDGET))
def test_hot_kernel_sweep_instructions_per_triple(report, kernel):
    from kanarray.kernels import cuda as kc

    row = _hot_rows(report)[kernel]
    # the loop counted is the arithmetic sweep: at least k+1 = 4 FMAs per triple it handles
    assert row["sweep_fma"] >= 4 * kc.SWEEP_TRIPLES[kernel]
    assert row["per_triple"] <= MAX_PER_TRIPLE, (
        f"{kernel}: {row['per_triple']:.1f} SASS instructions per (sample, input, output)")


def test_cost_model_constants_come_from_the_compiler(report):
    from kanarray.kernels import cuda as kc

    fresh = report["model_constants"]
    for dtype, item in (("float32", 4), ("float64", 8)):
        assert kc.MODEL_INSTR[item] == pytest.approx(fresh[dtype], rel=0.02), dtype


def test_committed_report_matches_the_cost_model():
    from kanarray.kernels import cuda as kc

    committed = json.loads(COMMITTED.read_text())["model_constants"]
    for dtype, item in (("float32", 4), ("float64", 8)):
        assert kc.MODEL_INSTR[item] == pytest.approx(committed[dtype], rel=0.02), dtype
