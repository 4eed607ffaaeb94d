"""The CUDA kernels' tiling: block shapes, the parameter-gradient kernel's shared-memory slabs and
batch chunks (param_split), and the checks of a kernel's dtype and spline order.

The parameter kernel reads PG_SMEM and param_split reads PG_SMEM and PG_MIN_CHUNK from this
module when they run, so a test can shrink them (tests/cudasim_check.py) to reach several row
windows and batch chunks at tiny shapes.
"""
import numpy as np

MAX_K = 5
WARP = 32
RO = 4                       # consecutive outputs per thread
TO = WARP * RO               # outputs per warp = output tile of the repacked coefficients
WARPS = 8                    # warps per block, forward and dx
TB = 32                      # samples per block, forward and dx
RB = TB // WARPS             # samples per thread
TI = WARP * WARPS // TB      # inputs staged per chunk (one (sample, input) pair per thread)
RED = WARP + 1               # padded row of the dx lane-partial buffer
GROUPS = WARP // RO          # dx: lane partials of a sample are summed in groups of RO lanes
RED2 = GROUPS + 1            # padded row of the group sums
PG_WARPS = {4: 4, 8: 2}      # inputs per parameter-gradient block, by itemsize
PG_SMEM = 22 * 1024          # accumulator slabs of one parameter-gradient block (bytes)
SPL = 8                      # samples per lane in the parameter kernel's window filter
PG_TARGET_BLOCKS = 2048      # about two waves of 7 blocks on each of 132 SMs
PG_MAX_CHUNKS = 16
PG_MIN_CHUNK = 256            # fewest samples per batch chunk
FIN_TO, FIN_TI = 32, 8
LAUNCH_BOUNDS = {4: {"forward": (WARP * WARPS, 4), "backward_dx": (WARP * WARPS, 4)}, 8: {}}
# (sample, input, output) triples one iteration of a kernel's sweep loop handles per thread
SWEEP_TRIPLES = {"forward": RB * RO, "backward_dx": RB * RO, "backward_params": RO}
PAIRS = TI * TB               # (sample, input) pairs staged per chunk, forward and dx

assert TB * TI == WARP * WARPS and TB % WARPS == 0


def _dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"CUDA kernels support float32 and float64, got {dtype}")
    return dtype


def _check_k(k):
    if not isinstance(k, (int, np.integer)) or not 0 <= int(k) <= MAX_K:
        raise ValueError(f"spline order k must be an integer in 0..{MAX_K}, got {k!r}")
    return int(k)


def _cdiv(a, b):
    return (a + b - 1) // b


def staged_stride(K):
    """Stride of one pair's staged bases in shared memory: one 128-bit shared load for K <= 3."""
    return 4 if K + 1 <= 4 else 8


def param_split(B, I, O, nbp, k, dtype):
    """(rows per window, windows, samples per chunk, chunks) of the parameter-gradient kernel.

    A warp's slab holds PG_SMEM / (PG_WARPS TO itemsize) rows, so a window owns that many
    minus k span starts; chunks split the batch until about PG_TARGET_BLOCKS blocks run.
    Depends on the shapes and dtype only, so the reduction order - and every bit of the
    result - is fixed.
    """
    itemsize = _dtype(dtype).itemsize
    warps = PG_WARPS[itemsize]
    rw = PG_SMEM // (warps * TO * itemsize) - k
    if rw < 1:
        raise ValueError(f"PG_SMEM = {PG_SMEM} holds no row window for k = {k}")
    n_win = _cdiv(nbp - k, rw)
    blocks = _cdiv(I, warps) * _cdiv(O, TO) * n_win
    n_chunks = max(1, min(_cdiv(PG_TARGET_BLOCKS, blocks), _cdiv(max(B, 1), PG_MIN_CHUNK),
                              PG_MAX_CHUNKS))
    chunk_len = _cdiv(max(B, 1), n_chunks)
    return rw, n_win, chunk_len, _cdiv(max(B, 1), chunk_len)
