"""Numba CUDA kernels of a KAN layer: span search, local B-spline basis, fused forward, fused
deterministic backward, and the dense (basis matrix x cuBLAS) path.

Every kernel has a twin in reference.py, and the host functions take the arguments of the CPU
kernels in the same order, so a model calls either backend the same way:

    span_basis(x, knots, k, spans, values, derivs)
    layer_forward(x, knots, coef, w_base, w_spline, bias, mask, k, base, y)
    layer_backward(x, g, knots, coef, w_base, w_spline, mask, k, base,
                   dx, dcoef, dw_base, dw_spline, dbias)
    layer_forward_dense(...), layer_backward_dense(...)   same signatures, dense path
    choose_path(G, k, dtype, I, O, B, path=None) -> "fused" | "dense"   (forward + backward pair)

Arrays are device arrays: CuPy arrays, or NumPy arrays under Numba's CUDA simulator
(NUMBA_ENABLE_CUDASIM=1). Each kernel is built per (dtype, k), lazily, and cached: the float
type is closed over (float32 PTX has no .f64 instruction) and the spline order k is a
compile-time constant, so every loop over the k+1 bases unrolls and every local array lives in
registers. Offsets are 32-bit unsigned (no 64-bit index arithmetic, no negative-index
wraparound), so a layer must have fewer than 2**32 elements in each array.

Knots are passed extended by k on each side, with the reciprocals of every denominator of the
Cox-de Boor triangle per span (knot_tables), so the basis of a span reads every knot it needs
without a branch and divides nowhere. Four consecutive outputs are read with one vector
load (load4: the offsets are multiples of 4 and the arrays aligned, which plain indexing cannot
tell the compiler).

Parameters are repacked per call (one pass over the coefficients, see repack): mask*w_spline is
folded into the coefficients and mask*w_base into wb, the outputs are tiled by TO = 128 and
padded, and k zero rows pad each input's G+k basis rows on both sides, so the k+1 rows of a span
s are rows s..s+k of the padded block at constant offsets and need no bounds test.

fused forward    grid (ceil(B/32), O/128), block (32, 8). Per chunk of 8 inputs every thread
                 stages one (sample, input) pair: span s, k+1 bases, base value (shared memory).
                 Then each thread sweeps 4 samples x 4 consecutive outputs of the tile for each
                 of the 8 inputs: per (sample, input) one staged row, k+1 staged bases and
                 k+1 vector loads of 4 coefficients (load4) feed 4 (k+2) FMAs.
fused dx         grid (ceil(B/32), ceil(I/8)), block (32, 8). Stages the derivative bases of the
                 block's pairs (and stores row, bases and base value of each pair, i-major, for
                 the parameter kernel); each thread accumulates, for 4 samples, its 4 outputs of
                 every output tile as base' (g.w) + sum_r B'_r (g.c_r); the 32 lane partials
                 of a sample are summed in a fixed order, 4 lanes per thread, then the 8 sums by
                 one thread.
fused params     C[i, p, o] = sum_b B_{p-k}(x[b, i]) g[b, o] from the stored bases (no basis is
                 evaluated here). Block (32, PG_WARPS): warp = input, lane = 4 outputs, each lane
                 owns its columns of the warp's slab in dynamic shared memory (no atomics, no
                 global read-modify-write, samples in increasing order). The G+2k span starts are
                 split into windows of rw rows (slab rw+k rows, within PG_SMEM) across blocks,
                 and the batch into chunks (param_split, by shape only). A finalize kernel sums
                 chunk and window partials in fixed order and applies the weights;
                 dw_base = mask (base values)^T g and dbias = sum_b g are GEMM/sum calls.
dense path       A = [basis | base] (B, I*(G+k+1)) zero-filled by a memset, one thread per pair
                 scatters its k+1 non-zeros; y = A W + bias and A^T g by xp.matmul (cuBLAS on a
                 GPU); dx from the fused dx kernel.

bench/gpu_static.py reads these kernels back from ptxas and nvdisasm (registers, spills,
occupancy, SASS instructions per (sample, input, output)) and holds the roofline model whose
constants choose_path uses.

Modules: tiles.py (block shapes, param_split), vector.py (load4/load2/store4), device.py (the
device functions), forward.py and backward.py (the kernels, built per (dtype, k)), build.py
(building, jitting and caching them), host.py (repack, knot_tables, streams), fused.py and
dense.py (the two paths' host functions), cost.py (the H100 cost model and choose_path).
"""
from .build import kernel_signatures, launch_bounds
from .cost import (CLOCK_HZ, DENSE_MAX_BYTES, GEMM_FLOPS, HBM_BYTES_PER_S, ISSUE_PER_CLOCK, L2_BYTES_PER_S,
                   LAUNCH_SECONDS, LAUNCHES, MODEL_INSTR, SM_COUNT, TF32_GEMM_FLOPS, choose_path, mlp_seconds,
                   predict_times, rows_touched)
from .dense import dense_basis, dense_weights, layer_backward_dense, layer_forward_dense
from .fused import layer_backward, layer_forward, span_basis
from .host import _data_pointer, _padded_outputs, knot_tables, repack  # noqa: F401  (tests read the private two)
from .tiles import (FIN_TI, FIN_TO, GROUPS, LAUNCH_BOUNDS, MAX_K, PG_MAX_CHUNKS, PG_MIN_CHUNK, PG_SMEM,
                    PG_TARGET_BLOCKS, PG_WARPS, RB, RED, RED2, RO, SPL, SWEEP_TRIPLES, TB, TI, TO, WARP, WARPS,
                    param_split)
from .vector import load2, load4, store4, vector_alignment

FORWARD = {"fused": layer_forward, "dense": layer_forward_dense}
BACKWARD = {"fused": layer_backward, "dense": layer_backward_dense}

__all__ = ["BACKWARD", "CLOCK_HZ", "DENSE_MAX_BYTES", "FIN_TI", "FIN_TO", "FORWARD", "GEMM_FLOPS", "GROUPS",
           "HBM_BYTES_PER_S", "ISSUE_PER_CLOCK", "L2_BYTES_PER_S", "LAUNCH_BOUNDS", "LAUNCH_SECONDS", "LAUNCHES",
           "MAX_K", "MODEL_INSTR", "PG_MAX_CHUNKS", "PG_MIN_CHUNK", "PG_SMEM", "PG_TARGET_BLOCKS", "PG_WARPS", "RB",
           "RED", "RED2", "RO", "SM_COUNT", "SPL", "SWEEP_TRIPLES", "TB", "TF32_GEMM_FLOPS", "TI", "TO", "WARP",
           "WARPS", "choose_path", "dense_basis", "dense_weights", "kernel_signatures",
           "knot_tables", "launch_bounds", "layer_backward", "layer_backward_dense", "layer_forward",
           "layer_forward_dense", "load2", "load4", "mlp_seconds", "param_split", "predict_times",
           "repack", "rows_touched", "span_basis", "store4", "vector_alignment"]
