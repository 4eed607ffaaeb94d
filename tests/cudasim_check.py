"""Checks of the CUDA kernels under Numba's CUDA simulator, run as a subprocess.

NUMBA_ENABLE_CUDASIM must be set before numba is first imported, and other test files import
numba normally, so tests/test_cuda_kernels.py runs this script in its own process:

    NUMBA_ENABLE_CUDASIM=1 python tests/cudasim_check.py '{"dtype": "float64", "k": 3, ...}'

Every CUDA kernel (span_basis, fused forward, fused backward, dense basis writer) and both
paths end to end (the dense one's contraction with NumPy) is compared with its float64 twin in
kernels/reference.py, and the fused backward is run twice and compared bit for bit. Prints
one JSON line; exits 1 on any failure.
"""
import json
import os
import sys

PTX_MODE = len(sys.argv) > 1 and sys.argv[1] == "--ptx"
if not PTX_MODE and os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    sys.exit("cudasim_check.py must run with NUMBA_ENABLE_CUDASIM=1 set before numba is imported")
if PTX_MODE and os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    sys.exit("cudasim_check.py --ptx must run without NUMBA_ENABLE_CUDASIM")

import numpy as np  # noqa: E402

import cudasim_shared  # noqa: E402
from kanarray.kernels import cuda as kc  # noqa: E402
from kanarray.kernels import reference as ref  # noqa: E402

TOL = {"float32": 1e-5, "float64": 1e-12}


def make_knots(rng, I, G, k, nonuniform):
    knots = np.empty((I, G + 2 * k + 1))
    for i in range(I):
        lo, hi = -1.0 - 0.1 * i, 1.0 + 0.05 * i
        interior = np.linspace(lo, hi, G + 1)
        if nonuniform and G > 1:
            inner = np.sort(rng.uniform(lo, hi, G - 1))
            interior = np.concatenate([[lo], inner, [hi]])
            # keep cells from collapsing
            interior = 0.7 * interior + 0.3 * np.linspace(lo, hi, G + 1)
        h0 = interior[1] - interior[0]
        h1 = interior[-1] - interior[-2]
        left = interior[0] - h0 * np.arange(k, 0, -1)
        right = interior[-1] + h1 * np.arange(1, k + 1)
        knots[i] = np.concatenate([left, interior, right])
    return knots


def make_inputs(rng, B, I, knots):
    """Inside, outside, exactly on knots (every one, ends included), in the end cells."""
    n = knots.shape[1]
    x = np.empty((B, I))
    for i in range(I):
        t = knots[i]
        for b in range(B):
            kind = (b + 3 * i) % 6
            if kind == 0:
                x[b, i] = t[(b * 7 + i) % n]                      # exactly on a knot
            elif kind == 1:
                x[b, i] = rng.uniform(t[0] - 0.5, t[-1] + 0.5)    # may fall outside
            elif kind == 2:
                x[b, i] = rng.uniform(t[0], t[1])                 # first extended cell
            elif kind == 3:
                x[b, i] = rng.uniform(t[-2], t[-1])               # last extended cell
            elif kind == 4:
                x[b, i] = rng.uniform(t[0], t[-1])
            else:
                x[b, i] = rng.choice([-7.0, 6.0, t[0], t[-1]])    # far outside / range ends
    return x


def err(got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
    return float(np.max(np.abs(got - want))) / scale if want.size else 0.0


def main(case):
    dtype = np.dtype(case["dtype"])
    B, I, O, G, k = case["B"], case["I"], case["O"], case["G"], case["k"]
    base = case.get("base", 0)
    rng = np.random.default_rng(case.get("seed", 0))
    # smaller parameter-kernel slabs and chunks, so that tiny shapes still use several row
    # windows and batch chunks (set before the kernels are built: the slab is compile-time)
    kc.tiles.PG_SMEM = case.get("pg_smem", kc.PG_SMEM)
    kc.tiles.PG_MIN_CHUNK = case.get("pg_min_chunk", kc.PG_MIN_CHUNK)
    knots = make_knots(rng, I, G, k, case.get("nonuniform", True)).astype(dtype)
    x = make_inputs(rng, B, I, knots.astype(np.float64)).astype(dtype)
    nb = G + k
    coef = rng.normal(size=(I, nb, O)).astype(dtype)
    w_base = rng.normal(size=(I, O)).astype(dtype)
    w_spline = rng.normal(size=(I, O)).astype(dtype)
    bias = rng.normal(size=O).astype(dtype)
    mask = (rng.uniform(size=(I, O)) > 0.15).astype(dtype)
    g = rng.normal(size=(B, O)).astype(dtype)
    tol = TOL[dtype.name]
    errors = {}
    failures = []

    def check(name, got, want):
        e = err(got, want)
        errors[name] = e
        if not e <= tol:
            failures.append(f"{name}: error {e:.3e} > {tol:.0e}")

    # span_basis
    spans = np.full((B, I), -99, np.int64)
    values = np.full((B, I, k + 1), np.nan, dtype)
    derivs = np.full((B, I, k + 1), np.nan, dtype)
    kc.span_basis(x, knots, k, spans, values, derivs)
    r_spans, r_values, r_derivs = ref.span_basis(x, knots, k)
    if not np.array_equal(spans, r_spans):
        failures.append(f"span_basis: spans differ at {np.argwhere(spans != r_spans)[:5].tolist()}")
    check("span_values", values, r_values)
    check("span_derivs", derivs, r_derivs)

    # fused forward
    y_ref = ref.layer_forward(x, knots, coef, w_base, w_spline, bias, mask, k, base)
    y = np.full((B, O), np.nan, dtype)
    kc.layer_forward(x, knots, coef, w_base, w_spline, bias, mask, k, base, y)
    check("forward", y, y_ref)

    # fused backward
    split = kc.param_split(B, I, O, nb + 2 * k, k, dtype)
    r_grads = ref.layer_backward(x, g, knots, coef, w_base, w_spline, mask, k, base)
    names = ("dx", "dcoef", "dw_base", "dw_spline", "dbias")

    def run_backward(fn):
        out = [np.full(r.shape, np.nan, dtype) for r in r_grads]
        fn(x, g, knots, coef, w_base, w_spline, mask, k, base, *out)
        return out

    first = run_backward(kc.layer_backward)
    for nm, got, want in zip(names, first, r_grads):
        check(f"backward_{nm}", got, want)
    second = run_backward(kc.layer_backward)
    for nm, a, b in zip(names, first, second):
        if not np.array_equal(a.view(np.uint8), b.view(np.uint8)):
            failures.append(f"backward_{nm}: not bit-identical across two runs")

    # dense basis writer
    A = np.full((B, I * (nb + 1)), np.nan, dtype)
    kc.dense_basis(x, knots, k, base, A)
    r_dense, _ = ref.dense_basis(x, knots, k)
    r_bv, _ = ref.base_function(x, base)
    check("dense_basis", A[:, : I * nb].reshape(B, I, nb), r_dense)
    check("dense_base", A[:, I * nb:], r_bv)

    # dense path end to end (kernel + NumPy contraction)
    y2 = np.full((B, O), np.nan, dtype)
    kc.layer_forward_dense(x, knots, coef, w_base, w_spline, bias, mask, k, base, y2)
    check("dense_forward", y2, y_ref)
    out = run_backward(kc.layer_backward_dense)
    for nm, got, want in zip(names, out, r_grads):
        check(f"dense_backward_{nm}", got, want)

    outside = float(np.mean(r_spans < 0))
    print(json.dumps({"case": case, "ok": not failures, "failures": failures, "split": split,
                      "outside_share": outside, "max_error": max(errors.values()),
                      "errors": errors}))
    return 0 if not failures else 1


def ptx_main():
    """Compile every kernel (k = 3) to PTX for compute capability 9.0 in float32 and float64.

    Needs the numba-cuda package with its NVVM (pip: numba-cuda[cu12]); no GPU and no
    system CUDA toolkit. Prints {"skip": reason} when the compiler is not available.
    """
    import importlib.util
    import re
    import time

    if importlib.util.find_spec("numba_cuda") is None:
        print(json.dumps({"skip": "numba-cuda is not installed (pip install 'numba-cuda[cu12]'); "
                                  "Numba's built-in CUDA target needs a driver to compile"}))
        return 0
    from numba import cuda, types

    def probe(a):
        a[0] = a[0] + types.float32(1)

    try:
        cuda.compile_ptx(probe, (types.float32[::1],), cc=(9, 0))
    except Exception as exc:  # no NVVM: skip, never fail
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(json.dumps({"skip": f"numba-cuda cannot compile PTX here (no libNVVM?): {msg}"}))
        return 0
    f64_op = re.compile(r"\.f64\b")
    results, failures = {}, []
    for dtype in (np.float32, np.float64):
        for name, fn, sig in kc.kernel_signatures(dtype, 3):
            key = f"{np.dtype(dtype).name}:{name}"
            t0 = time.perf_counter()
            try:
                ptx, _ = cuda.compile_ptx(fn, sig, cc=(9, 0))
            except Exception as exc:
                failures.append(f"{key}: {type(exc).__name__}: {str(exc)[:2000]}")
                continue
            lines = [ln.strip() for ln in ptx.splitlines()
                     if ln.strip() and not ln.strip().startswith("//")]
            f64_lines = [ln for ln in lines if f64_op.search(ln)]
            results[key] = {"seconds": round(time.perf_counter() - t0, 2),
                            "sm_90": ".target sm_90" in ptx, "f64_lines": len(f64_lines)}
            if ".target sm_90" not in ptx:
                failures.append(f"{key}: PTX does not target sm_90")
            # a 16-byte vector access to shared memory (kernels.cuda.load4/store4) faults unless
            # the array is declared 16-byte aligned: numba declares the element's alignment
            vector_shared = re.search(r"\b(ld|st)\.shared\.(v4\.(f32|b32)|v2\.(f64|b64))", ptx)
            aligned = re.search(r"\.shared \.align (16|32|64|128) ", ptx)
            if vector_shared and not aligned:
                failures.append(f"{key}: 16-byte shared-memory vector access, no 16-byte aligned "
                                "shared array")
            if dtype == np.float32:
                if f64_lines:
                    failures.append(f"{key}: float64 in float32 PTX: {f64_lines[:5]}")
                if "cvt.f64.f32" in ptx:
                    failures.append(f"{key}: cvt.f64.f32 in float32 PTX")
            elif not f64_lines:
                failures.append(f"{key}: float64 PTX has no .f64 instruction (wrong dtype?)")
    print(json.dumps({"ok": not failures, "failures": failures, "kernels": results}))
    return 0 if not failures else 1


if __name__ == "__main__":
    if PTX_MODE:
        sys.exit(ptx_main())
    cudasim_shared.install()
    sys.exit(main(json.loads(sys.argv[1])))
