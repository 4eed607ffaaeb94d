"""Roofline cost model of the CUDA kernels on an H100 SXM, and the path choice it drives.

predict_times gives the seconds of one layer call on each path, mlp_seconds those of the
equal-width MLP layer, and choose_path picks the fused or the dense path of a layer shape
(cached per shape: a model asks at every layer call).
"""
import functools
import os

import numpy as np

from .tiles import PG_WARPS, SPL, SWEEP_TRIPLES, TB, TI, TO, WARP, _cdiv, _dtype, param_split

# Roofline model of both paths on an H100 SXM (bench/gpu_static.py prints it; choose_path uses
# it). The instruction counts are read from the compiled kernels by bench/gpu_static.py at k=3
# (tests/test_gpu_static.py holds these constants to its committed report); other k are scaled
# by the FMA count (k+2)/5. The hardware figures are datasheet peaks and ASSUMPTIONS (L2
# bandwidth, achieved GEMM rates): nothing here has been measured on a GPU yet.
SM_COUNT = 132
CLOCK_HZ = 1.98e9
ISSUE_PER_CLOCK = 4                # warp instructions per SM per clock (4 schedulers)
HBM_BYTES_PER_S = 3.35e12
L2_BYTES_PER_S = 7.0e12            # assumed L2 -> SM bandwidth (published: ~5.5-12 TB/s)
GEMM_FLOPS = {4: 50e12, 8: 50e12}  # achieved strict-FP32 SGEMM / FP64-tensor-core DGEMM
TF32_GEMM_FLOPS = 400e12           # achieved TF32 GEMM (the MLP comparator only)
DENSE_MAX_BYTES = 8 * 1024 ** 3    # the dense path's basis matrix must fit
LAUNCH_SECONDS = 4e-6              # assumed cost of one kernel launch or array-library call
# launches per call (array-library calls of repack and the contractions included)
LAUNCHES = {"fused": {"forward": 5, "backward": 11}, "dense": {"forward": 8, "backward": 17}}
# Thread instructions at k=3 read from the sm_90 SASS (bench/gpu_static.py model_constants):
# forward, backward_dx, backward_params: per (sample, input, output) in the sweep;
# forward_stage: per (sample, input, output tile), the forward's staging loop;
# dx_pair: per (sample, input), dx's staging and lane reduction (all 8 warps counted: an upper
# bound); params_filter: per thread, per 256-sample group and row window.
MODEL_INSTR = {
    4: dict(forward=10.19, backward_dx=14.25, backward_params=11.5, forward_stage=340,
            dx_pair=2037, params_filter=324),
    8: dict(forward=13.12, backward_dx=15.81, backward_params=14.75, forward_stage=388,
            dx_pair=2166, params_filter=318),
}




def rows_touched(samples, G, k):
    """Expected distinct coefficient rows that `samples` uniform samples touch in one input."""
    spans = np.arange(k, G + k)  # spans of inputs inside the grid; span s touches rows s..s+k
    cover = [np.mean((spans <= p) & (spans >= p - k)) for p in range(G + 3 * k)]
    return float(sum(1.0 - (1.0 - q) ** samples for q in cover))


def _issue_seconds(thread_instructions):
    return thread_instructions / WARP / (SM_COUNT * ISSUE_PER_CLOCK * CLOCK_HZ)


def predict_times(G, k, dtype, I, O, B):
    """Predicted seconds {"fused": {"forward", "backward"}, "dense": {...}} of one layer call.

    Each kernel takes the longest of its issue time (thread instructions / (32 x 4 x SMs x
    clock)), its L2 -> SM traffic and its HBM traffic, plus LAUNCH_SECONDS per launch. The dense
    path's GEMMs run at GEMM_FLOPS and stream the basis matrix once; its backward includes the
    fused dx kernel.
    """
    item = _dtype(dtype).itemsize
    cost = MODEL_INSTR[item]
    sw = {name: cost[name] * (k + 2) / 5.0 for name in SWEEP_TRIPLES}
    OT = _cdiv(O, TO)
    OP = OT * TO
    nb, nbp = G + k, G + 3 * k
    triples = B * I * O
    row_bytes = TO * item
    coef_l2 = _cdiv(B, TB) * I * OT * rows_touched(TB, G, k) * row_bytes
    wp_bytes = I * nbp * OP * item

    def kernel(instr, l2, hbm):
        return max(_issue_seconds(instr), l2 / L2_BYTES_PER_S, hbm / HBM_BYTES_PER_S)

    fwd = kernel(triples * sw["forward"] + B * I * OT * cost["forward_stage"],
                 coef_l2 + B * I * item * OT,
                 B * (I + O) * item + 3 * wp_bytes)
    dx = kernel(triples * sw["backward_dx"] + B * I * cost["dx_pair"],
                coef_l2 + B * OP * item * _cdiv(I, TI),
                B * (2 * I + O) * item + B * I * (k + 3) * item + 3 * wp_bytes)
    rw, n_win, _, n_chunks = param_split(B, I, O, nbp, k, dtype)
    groups = _cdiv(B, WARP * SPL) * I * OT * n_win
    params = kernel(triples * sw["backward_params"] + groups * WARP * cost["params_filter"],
                    B * I * OT * (4 * n_win + (k + 1) * item) + B * OP * item * _cdiv(I, PG_WARPS[item]),
                    B * I * (k + 2) * item + 2 * n_chunks * n_win * I * OP * (rw + k) * item
                    + 3 * I * nb * O * item)
    base_gemm = 2.0 * B * I * O / GEMM_FLOPS[item] + B * (I + O) * item / HBM_BYTES_PER_S
    basis_bytes = B * I * (nb + 1) * item
    dense_basis_s = (basis_bytes + B * I * (k + 2) * 32) / HBM_BYTES_PER_S
    gemm = 2.0 * B * I * (nb + 1) * O / GEMM_FLOPS[item] + basis_bytes / HBM_BYTES_PER_S
    launch = {p: {d: n * LAUNCH_SECONDS for d, n in v.items()} for p, v in LAUNCHES.items()}
    return {"fused": {"forward": fwd + launch["fused"]["forward"],
                      "backward": dx + params + base_gemm + launch["fused"]["backward"],
                      "backward_dx": dx, "backward_params": params + base_gemm},
            "dense": {"forward": dense_basis_s + gemm + launch["dense"]["forward"],
                      "backward": dense_basis_s + gemm + dx + launch["dense"]["backward"]}}


def mlp_seconds(I, O, B, tf32=False):
    """Predicted forward + backward of the equal-width MLP layer: three GEMMs of 2BIO flops."""
    return 6.0 * B * I * O / (TF32_GEMM_FLOPS if tf32 else GEMM_FLOPS[4])


def choose_path(G, k, dtype, I, O, B, path=None):
    """'fused' or 'dense' for the forward + backward pair of a layer of this shape.

    path: 'fused' or 'dense' forces that path; None/'auto' consults the environment variable
    KANARRAY_CUDA_PATH, then picks the pair with the smaller predicted forward + backward time
    (predict_times); the dense path only while its basis matrix fits DENSE_MAX_BYTES.
    """
    if path is None or path == "auto":
        path = os.environ.get("KANARRAY_CUDA_PATH", "auto")
    if path in ("fused", "dense"):
        return path
    if path != "auto":
        raise ValueError(f"path must be 'fused', 'dense' or 'auto', got {path!r}")
    return _model_path(int(G), int(k), _dtype(dtype), int(I), int(O), int(B))


@functools.lru_cache(maxsize=1024)
def _model_path(G, k, dtype, I, O, B):
    """choose_path's pick by the model, per layer shape (the model is a pure function of it)."""
    if B * I * (G + k + 1) * dtype.itemsize > DENSE_MAX_BYTES:
        return "fused"
    t = predict_times(G, k, dtype, I, O, B)
    fused = t["fused"]["forward"] + t["fused"]["backward"]
    dense = t["dense"]["forward"] + t["dense"]["backward"]
    return "dense" if dense < fused else "fused"
