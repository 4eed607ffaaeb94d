"""Numba CUDA kernels of a KAN layer: span search, local B-spline basis, fused forward, fused
deterministic backward, and the dense (basis matrix x cuBLAS) path.

Every kernel mirrors the math of cpu.py and has a twin in reference.py; the host-side launch
functions take the same arguments in the same order as the CPU kernels, so a model can call
either backend:

    span_basis(x, knots, k, spans, values, derivs)
    layer_forward(x, knots, coef, w_base, w_spline, bias, mask, k, base, y)
    layer_backward(x, g, knots, coef, w_base, w_spline, mask, k, base,
                   dx, dcoef, dw_base, dw_spline, dbias)
    layer_forward_dense(...), layer_backward_dense(...)   same signatures, dense path
    choose_path(G, k, dtype, I, O, B, tf32=False) -> "fused" | "dense"

Arrays are device arrays: CuPy arrays (or anything with __cuda_array_interface__), and NumPy
arrays under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1). Kernels are specialised per dtype
(float32, float64) by a factory that closes over the Numba scalar type, so every constant and
every local/shared array of a float32 kernel is float32: the float32 PTX has no .f64 instruction
(tests/test_cuda_kernels.py checks this). k is a run-time argument up to MAX_K; local arrays are
sized MAX_K + 1.

Launch configuration (compile-time tile sizes below):

fused forward       grid (ceil(B/FWD_TB), ceil(O/FWD_TO)), block (32, FWD_WARPS) = 256 threads.
                    A block owns FWD_TB = 32 samples x FWD_TO = 64 outputs. It walks the inputs in
                    chunks of FWD_TI = 8: first every thread evaluates ONE (sample, input) pair of
                    the chunk (32 x 8 = 256 pairs: span by binary search, k+1 basis values by the
                    Cox-de Boor triangle, base value) into shared memory; then the lanes of each warp
                    sweep 32 consecutive outputs (2 per lane) for 4 samples per thread, reusing the
                    staged basis across the whole output tile. Per (sample, input, output) the
                    inner loop is k+1 coefficient loads and k+3 FMAs.
                    The coefficient rows are read coalesced through L1/L2, not staged in shared
                    memory: a warp's read coef[i, m, o0:o0+32] is one 128-byte (float32) line that
                    all 32 lanes use, so no byte is wasted; a block touches at most
                    FWD_TB*(k+1) of the G+k rows of each input, so staging the whole
                    (G+k) x 64 slab would load mostly unused rows for large G, and its size (and so
                    the occupancy) would depend on G. Rows shared by nearby samples hit L1, the
                    slab of one o-tile is shared by all sample blocks in L2. Memory is
                    O(B*(I+O)) + parameters for any G.
fused backward dx   grid (ceil(B/32), ceil(I/8)), block (32, 8). Each thread first evaluates the
                    derivative basis of one (sample, input) pair into shared memory; then warp w
                    (input i0+w) reduces over the outputs with its lanes on consecutive o
                    (coalesced reads of g, coef, w_*), DX_R pairs at a time; lane partials go to
                    shared memory and one thread per pair sums its 32 partials in lane order.
fused backward      the parameter gradients only need, per input i, the reductions over the batch
 parameters             C[i, m, o] = sum_b B_m(x[b,i]) g[b,o]     D[i, o] = sum_b base(x[b,i]) g[b,o]
                    because dcoef = mask w_spline C, dw_spline = mask sum_m coef C, dw_base = mask D
                    and dbias = sum_b g. Kernel 1: grid (ceil(I/4), ceil(O/32), n_chunks), block
                    (32, 4): warp = one input i, lanes = 32 outputs, blockIdx.z = one batch chunk.
                    The warp stages 32 samples' bases (one per lane) in shared memory and then each
                    lane adds them into ITS OWN column of C (no two threads share an element: no
                    atomics, a fixed sample order). The column lives in dynamic shared memory when
                    4*(G+k)*32 values fit in PG_DYN_SMEM_MAX bytes, else directly in the global
                    workspace. Partials go to a workspace (n_chunks, I, G+k, O). Kernel 2 (finalize,
                    grid over (o, i)) sums the chunks in fixed order 0..n_chunks-1 and applies the
                    mask/w_spline/coef factors. n_chunks depends on the shapes and dtype only, so
                    the gradients are bit-identical run to run.
dense path          one thread per (sample, input) writes its row segment of the basis matrix
                    A = [basis (B, I*(G+k)) | base(x) (B, I)] (zeros outside the span, the k+1
                    non-zeros from the same triangle), and of the derivative matrix for dx; the
                    contraction with W = [mask*w_spline*coef ; mask*w_base] is xp.matmul
                    (cupy on a GPU, numpy in the simulator tests).
"""
import math
import os

import numpy as np
from numba import config as _numba_config
from numba import cuda, types

try:  # CuPy is optional: absent under the simulator and on CPU-only machines
    import cupy as _cupy
except Exception:  # pragma: no cover - depends on the machine
    _cupy = None

MAX_K = 5
MAXK1 = MAX_K + 1
WARP = 32
NO_SPAN = -(1 << 20)  # sentinel "first basis index" of a sample outside the knot range

# fused forward tiles
FWD_WARPS = 8                      # blockDim.y
FWD_TB = 32                        # samples per block
FWD_RB = FWD_TB // FWD_WARPS       # samples per thread
FWD_RO = 2                         # outputs per thread (stride 32)
FWD_TO = WARP * FWD_RO             # outputs per block
FWD_TI = (WARP * FWD_WARPS) // FWD_TB  # inputs staged per chunk: one pair per thread
FWD_ACC = FWD_RB * FWD_RO          # accumulators per thread
# fused backward, dx
DX_TB = 32                         # samples per block (= one per lane in the staging step)
DX_TI = 8                          # inputs per block (= warps per block)
DX_R = 8                           # pairs a warp reduces before the lane partials are summed
DX_ROWS = DX_TI * DX_R             # rows of the lane-partial buffer
WARP_PAD = WARP + 1                # padded row: conflict-free column and row access
# fused backward, parameter gradients
PG_WARPS = 4                       # inputs per block (one warp each)
PG_SUB = WARP                      # samples staged at a time (one per lane)
PG_MIN_CHUNK = 256                 # fewest samples per batch chunk
PG_TARGET_WARPS = 16384            # about two full waves of warps on a 132-SM H100
PG_MAX_CHUNKS = 16                 # workspace is at most this many copies of the coefficients
PG_WS_MAX_BYTES = 512 * 1024 * 1024
PG_DYN_SMEM_MAX = 40 * 1024        # dynamic smem for C columns (48 KiB default minus static)
FIN_TO = 32
FIN_TI = 8

assert FWD_TB * FWD_TI == WARP * FWD_WARPS
assert FWD_TB % FWD_WARPS == 0
assert DX_TB == WARP and DX_TB % DX_R == 0


def _build(nbtype):
    """Compile-time specialisation of every device function and kernel for one float type."""
    DT = nbtype
    i32 = types.int32

    @cuda.jit(device=True, inline=True)
    def find_span(knots, i, x):
        n = knots.shape[1]
        if not (x >= knots[i, 0] and x < knots[i, n - 1]):
            return -1
        lo = 0
        hi = n - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if x >= knots[i, mid]:
                lo = mid
            else:
                hi = mid
        return lo

    @cuda.jit(device=True, inline=True)
    def knot(knots, i, j):
        # knots[i, j] continued past both ends at the spacing of the end cells (see cpu._knot)
        n = knots.shape[1]
        if j < 0:
            return knots[i, 0] + DT(j) * (knots[i, 1] - knots[i, 0])
        if j >= n:
            return knots[i, n - 1] + DT(j - n + 1) * (knots[i, n - 1] - knots[i, n - 2])
        return knots[i, j]

    @cuda.jit(device=True, inline=True)
    def basis_at(knots, i, s, x, k, values, derivs, left, right, with_derivs):
        zero = DT(0)
        values[0] = DT(1)
        derivs[0] = values[0]
        for j in range(1, k + 1):
            left[j] = x - knot(knots, i, s + 1 - j)
            right[j] = knot(knots, i, s + j) - x
            saved = zero
            for r in range(j):
                temp = values[r] / (right[r + 1] + left[j - r])
                values[r] = saved + right[r + 1] * temp
                saved = left[j - r] * temp
            values[j] = saved
            if with_derivs and j == k - 1:
                for r in range(k):
                    derivs[r] = values[r]
        if with_derivs:
            order = DT(k)
            for r in range(k, -1, -1):
                rising = zero
                falling = zero
                if r >= 1:
                    rising = derivs[r - 1] / (knot(knots, i, s + r) - knot(knots, i, s - k + r))
                if r < k:
                    falling = derivs[r] / (knot(knots, i, s + r + 1) - knot(knots, i, s - k + r + 1))
                derivs[r] = order * (rising - falling)

    @cuda.jit(device=True, inline=True)
    def base_value(x, base):
        one = DT(1)
        if base == 0:
            return x * (one / (one + math.exp(-x)))
        if base == 1:
            return x
        return DT(0)

    @cuda.jit(device=True, inline=True)
    def base_slope(x, base):
        one = DT(1)
        if base == 0:
            sig = one / (one + math.exp(-x))
            return sig * (one + x * (one - sig))
        if base == 1:
            return one
        return DT(0)

    @cuda.jit(device=True, inline=True)
    def local_basis(knots, i, xv, k, n_basis, values, derivs, left, right, with_derivs):
        """Span -> first basis index s-k (NO_SPAN outside); out-of-range bases zeroed."""
        s = find_span(knots, i, xv)
        if s < 0:
            return NO_SPAN
        basis_at(knots, i, s, xv, k, values, derivs, left, right, with_derivs)
        m0 = s - k
        for r in range(k + 1):
            m = m0 + r
            if m < 0 or m >= n_basis:
                values[r] = DT(0)
                derivs[r] = DT(0)
        return m0

    # ------------------------------------------------------------------ span_basis
    def span_basis_kernel(x, knots, k, spans, values, derivs):
        idx = cuda.grid(1)
        B = x.shape[0]
        I = x.shape[1]
        if idx >= B * I:
            return
        b = idx // I
        i = idx - b * I
        n_basis = knots.shape[1] - 1 - k
        vals = cuda.local.array(MAXK1, DT)
        ders = cuda.local.array(MAXK1, DT)
        left = cuda.local.array(MAXK1, DT)
        right = cuda.local.array(MAXK1, DT)
        xv = x[b, i]
        m0 = local_basis(knots, i, xv, k, n_basis, vals, ders, left, right, True)
        if m0 == NO_SPAN:
            spans[b, i] = -1
            for r in range(k + 1):
                values[b, i, r] = DT(0)
                derivs[b, i, r] = DT(0)
            return
        spans[b, i] = m0 + k
        for r in range(k + 1):
            values[b, i, r] = vals[r]
            derivs[b, i, r] = ders[r]

    # ------------------------------------------------------------------ fused forward
    def forward_kernel(x, knots, coef, w_base, w_spline, bias, mask, k, base, y):
        sh_m0 = cuda.shared.array((FWD_TI, FWD_TB), i32)
        sh_v = cuda.shared.array((FWD_TI, FWD_TB, MAXK1), DT)
        sh_base = cuda.shared.array((FWD_TI, FWD_TB), DT)
        vals = cuda.local.array(MAXK1, DT)
        ders = cuda.local.array(MAXK1, DT)
        left = cuda.local.array(MAXK1, DT)
        right = cuda.local.array(MAXK1, DT)
        acc = cuda.local.array(FWD_ACC, DT)
        zero = DT(0)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        t = ty * WARP + tx
        b0 = cuda.blockIdx.x * FWD_TB
        o0 = cuda.blockIdx.y * FWD_TO
        B = x.shape[0]
        I = x.shape[1]
        n_basis = coef.shape[1]
        O = coef.shape[2]
        for j in range(FWD_ACC):
            acc[j] = zero
        pb = t % FWD_TB  # the pair this thread stages
        pi = t // FWD_TB
        for ic in range(0, I, FWD_TI):
            # stage: span, k+1 basis values and base value of one (sample, input) pair
            b = b0 + pb
            i = ic + pi
            m0 = NO_SPAN
            bv = zero
            if b < B and i < I:
                xv = x[b, i]
                bv = base_value(xv, base)
                m0 = local_basis(knots, i, xv, k, n_basis, vals, ders, left, right, False)
                if m0 != NO_SPAN:
                    for r in range(k + 1):
                        sh_v[pi, pb, r] = vals[r]
            sh_m0[pi, pb] = m0
            sh_base[pi, pb] = bv
            cuda.syncthreads()
            # sweep: lanes over outputs, the staged basis reused across the output tile
            for ii in range(FWD_TI):
                i = ic + ii
                if i < I:
                    for ro in range(FWD_RO):
                        o = o0 + tx + WARP * ro
                        if o < O:
                            eb = mask[i, o] * w_base[i, o]
                            es = mask[i, o] * w_spline[i, o]
                            for rb in range(FWD_RB):
                                bb = ty + FWD_WARPS * rb
                                m0 = sh_m0[ii, bb]
                                spline = zero
                                if m0 != NO_SPAN:
                                    for r in range(k + 1):
                                        m = m0 + r
                                        if m >= 0 and m < n_basis:
                                            spline += coef[i, m, o] * sh_v[ii, bb, r]
                                acc[rb * FWD_RO + ro] += eb * sh_base[ii, bb] + es * spline
            cuda.syncthreads()
        for rb in range(FWD_RB):
            b = b0 + ty + FWD_WARPS * rb
            if b < B:
                for ro in range(FWD_RO):
                    o = o0 + tx + WARP * ro
                    if o < O:
                        y[b, o] = bias[o] + acc[rb * FWD_RO + ro]

    # ------------------------------------------------------------------ fused backward: dx
    def backward_dx_kernel(x, g, knots, coef, w_base, w_spline, mask, k, base, dx):
        sh_m0 = cuda.shared.array((DX_TI, DX_TB), i32)
        sh_d = cuda.shared.array((DX_TI, DX_TB, MAXK1), DT)
        sh_bs = cuda.shared.array((DX_TI, DX_TB), DT)
        red = cuda.shared.array((DX_ROWS, WARP_PAD), DT)
        vals = cuda.local.array(MAXK1, DT)
        ders = cuda.local.array(MAXK1, DT)
        left = cuda.local.array(MAXK1, DT)
        right = cuda.local.array(MAXK1, DT)
        zero = DT(0)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        t = ty * WARP + tx
        b0 = cuda.blockIdx.x * DX_TB
        i0 = cuda.blockIdx.y * DX_TI
        B = x.shape[0]
        I = x.shape[1]
        n_basis = coef.shape[1]
        O = coef.shape[2]
        # stage: the derivative basis of pair (sample b0+tx, input i0+ty)
        b = b0 + tx
        i = i0 + ty
        m0 = NO_SPAN
        bs = zero
        if b < B and i < I:
            xv = x[b, i]
            bs = base_slope(xv, base)
            m0 = local_basis(knots, i, xv, k, n_basis, vals, ders, left, right, True)
            if m0 != NO_SPAN:
                for r in range(k + 1):
                    sh_d[ty, tx, r] = ders[r]
        sh_m0[ty, tx] = m0
        sh_bs[ty, tx] = bs
        cuda.syncthreads()
        # warp ty reduces over o for input i0+ty, DX_R samples per round
        for q in range(DX_TB // DX_R):
            for jj in range(DX_R):
                bb = q * DX_R + jj
                b = b0 + bb
                part = zero
                if b < B and i < I:
                    m0 = sh_m0[ty, bb]
                    bs = sh_bs[ty, bb]
                    for o in range(tx, O, WARP):
                        dsp = zero
                        if m0 != NO_SPAN:
                            for r in range(k + 1):
                                m = m0 + r
                                if m >= 0 and m < n_basis:
                                    dsp += coef[i, m, o] * sh_d[ty, bb, r]
                        part += g[b, o] * mask[i, o] * (w_base[i, o] * bs + w_spline[i, o] * dsp)
                red[ty * DX_R + jj, tx] = part
            cuda.syncthreads()
            if t < DX_TI * DX_R:
                wi = t // DX_R
                jj = t - wi * DX_R
                bo = b0 + q * DX_R + jj
                io = i0 + wi
                total = zero
                for lane in range(WARP):  # fixed lane order: deterministic
                    total += red[t, lane]
                if bo < B and io < I:
                    dx[bo, io] = total
            cuda.syncthreads()

    # ------------------------------------------------------------------ fused backward: params
    @cuda.jit(device=True, inline=True)
    def param_chunk(x, g, knots, k, base, chunk_len, acc, abase, astride, copy_out,
                    ws_c, ws_d, ws_bias, sh_m0, sh_v, sh_bv):
        vals = cuda.local.array(MAXK1, DT)
        ders = cuda.local.array(MAXK1, DT)
        left = cuda.local.array(MAXK1, DT)
        right = cuda.local.array(MAXK1, DT)
        zero = DT(0)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        B = x.shape[0]
        I = x.shape[1]
        O = g.shape[1]
        n_basis = knots.shape[1] - 1 - k
        i = cuda.blockIdx.x * PG_WARPS + ty
        o = cuda.blockIdx.y * WARP + tx
        c = cuda.blockIdx.z
        bstart = c * chunk_len
        bend = min(B, bstart + chunk_len)
        active = i < I and o < O
        if active:
            for m in range(n_basis):
                acc[abase + m * astride] = zero
        dsum = zero
        bsum = zero
        for sb in range(bstart, bend, PG_SUB):
            b = sb + tx
            m0 = NO_SPAN
            bv = zero
            if i < I and b < bend:
                xv = x[b, i]
                bv = base_value(xv, base)
                m0 = local_basis(knots, i, xv, k, n_basis, vals, ders, left, right, False)
                if m0 != NO_SPAN:
                    for r in range(k + 1):
                        sh_v[ty, tx, r] = vals[r]
            sh_m0[ty, tx] = m0
            sh_bv[ty, tx] = bv
            cuda.syncthreads()
            if active:
                nb = min(PG_SUB, bend - sb)
                for j in range(nb):  # samples in order: each lane owns its column of C
                    gv = g[sb + j, o]
                    dsum += sh_bv[ty, j] * gv
                    if i == 0:
                        bsum += gv
                    m0 = sh_m0[ty, j]
                    if m0 != NO_SPAN:
                        for r in range(k + 1):
                            m = m0 + r
                            if m >= 0 and m < n_basis:
                                acc[abase + m * astride] += sh_v[ty, j, r] * gv
            cuda.syncthreads()
        if active:
            if copy_out:
                wbase = ((c * I + i) * n_basis) * O + o
                for m in range(n_basis):
                    ws_c[wbase + m * O] = acc[abase + m * astride]
            ws_d[(c * I + i) * O + o] = dsum
            if i == 0:
                ws_bias[c * O + o] = bsum

    def backward_params_kernel(x, g, knots, k, base, chunk_len, use_smem, ws_c, ws_d, ws_bias):
        dyn = cuda.shared.array(0, DT)
        sh_m0 = cuda.shared.array((PG_WARPS, PG_SUB), i32)
        sh_v = cuda.shared.array((PG_WARPS, PG_SUB, MAXK1), DT)
        sh_bv = cuda.shared.array((PG_WARPS, PG_SUB), DT)
        I = x.shape[1]
        O = g.shape[1]
        n_basis = knots.shape[1] - 1 - k
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        if use_smem:
            param_chunk(x, g, knots, k, base, chunk_len, dyn, ty * n_basis * WARP + tx, WARP,
                        True, ws_c, ws_d, ws_bias, sh_m0, sh_v, sh_bv)
        else:
            i = cuda.blockIdx.x * PG_WARPS + ty
            o = cuda.blockIdx.y * WARP + tx
            c = cuda.blockIdx.z
            param_chunk(x, g, knots, k, base, chunk_len, ws_c, ((c * I + i) * n_basis) * O + o,
                        O, False, ws_c, ws_d, ws_bias, sh_m0, sh_v, sh_bv)

    def backward_finalize_kernel(coef, w_spline, mask, n_chunks, ws_c, ws_d, ws_bias,
                                 dcoef, dw_base, dw_spline, dbias):
        o = cuda.blockIdx.x * FIN_TO + cuda.threadIdx.x
        i = cuda.blockIdx.y * FIN_TI + cuda.threadIdx.y
        I = coef.shape[0]
        n_basis = coef.shape[1]
        O = coef.shape[2]
        if i >= I or o >= O:
            return
        zero = DT(0)
        es = mask[i, o] * w_spline[i, o]
        dws = zero
        for m in range(n_basis):
            cs = zero
            for c in range(n_chunks):  # fixed chunk order
                cs += ws_c[((c * I + i) * n_basis + m) * O + o]
            dcoef[i, m, o] = es * cs
            dws += coef[i, m, o] * cs
        dw_spline[i, o] = mask[i, o] * dws
        ds = zero
        for c in range(n_chunks):
            ds += ws_d[(c * I + i) * O + o]
        dw_base[i, o] = mask[i, o] * ds
        if i == 0:
            bs = zero
            for c in range(n_chunks):
                bs += ws_bias[c * O + o]
            dbias[o] = bs

    # ------------------------------------------------------------------ dense basis matrix
    def dense_basis_kernel(x, knots, k, base, with_derivs, A, Ad):
        idx = cuda.grid(1)
        B = x.shape[0]
        I = x.shape[1]
        if idx >= B * I:
            return
        b = idx // I
        i = idx - b * I
        n_basis = knots.shape[1] - 1 - k
        vals = cuda.local.array(MAXK1, DT)
        ders = cuda.local.array(MAXK1, DT)
        left = cuda.local.array(MAXK1, DT)
        right = cuda.local.array(MAXK1, DT)
        zero = DT(0)
        col0 = i * n_basis
        for m in range(n_basis):
            A[b, col0 + m] = zero
        if with_derivs:
            for m in range(n_basis):
                Ad[b, col0 + m] = zero
        xv = x[b, i]
        m0 = local_basis(knots, i, xv, k, n_basis, vals, ders, left, right, with_derivs)
        if m0 != NO_SPAN:
            for r in range(k + 1):
                m = m0 + r
                if m >= 0 and m < n_basis:
                    A[b, col0 + m] = vals[r]
                    if with_derivs:
                        Ad[b, col0 + m] = ders[r]
        A[b, I * n_basis + i] = base_value(xv, base)
        if with_derivs:
            Ad[b, I * n_basis + i] = base_slope(xv, base)

    pyfuncs = {
        "span_basis": span_basis_kernel,
        "forward": forward_kernel,
        "backward_dx": backward_dx_kernel,
        "backward_params": backward_params_kernel,
        "backward_finalize": backward_finalize_kernel,
        "dense_basis": dense_basis_kernel,
    }
    kernels = {name: cuda.jit(fn) for name, fn in pyfuncs.items()}
    return kernels, pyfuncs


_KERNELS = {}


def _get(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"CUDA kernels support float32 and float64, got {dtype}")
    if dtype not in _KERNELS:
        nbtype = types.float32 if dtype == np.float32 else types.float64
        _KERNELS[dtype] = _build(nbtype)
    return _KERNELS[dtype]


def kernel_signatures(dtype):
    """(name, python function, Numba signature) of every CUDA kernel for C-contiguous arrays.

    For ahead-of-time checks: `numba.cuda.compile_ptx(fn, sig, cc=(9, 0))`.
    """
    _, pyfuncs = _get(dtype)
    T = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    a1, a2, a3 = (types.Array(T, n, "C") for n in (1, 2, 3))
    i64, i2 = types.int64, types.Array(types.int64, 2, "C")
    sigs = {
        "span_basis": (a2, a2, i64, i2, a3, a3),
        "forward": (a2, a2, a3, a2, a2, a1, a2, i64, i64, a2),
        "backward_dx": (a2, a2, a2, a3, a2, a2, a2, i64, i64, a2),
        "backward_params": (a2, a2, a2, i64, i64, i64, types.boolean, a1, a1, a1),
        "backward_finalize": (a3, a2, a2, i64, a1, a1, a1, a3, a2, a2, a1),
        "dense_basis": (a2, a2, i64, i64, types.boolean, a2, a2),
    }
    return [(name, pyfuncs[name], sigs[name]) for name in pyfuncs]


# ---------------------------------------------------------------------- host-side helpers
def _is_cupy(a):
    return _cupy is not None and isinstance(a, _cupy.ndarray)


def _xp(a):
    """Array module of a: cupy for CuPy arrays, numpy otherwise (simulator, tests)."""
    return _cupy if _is_cupy(a) else np


def _empty(like, shape, dtype):
    if _is_cupy(like):
        return _cupy.empty(shape, dtype=dtype)
    if isinstance(like, np.ndarray):
        return np.empty(shape, dtype=dtype)
    return cuda.device_array(shape, dtype=dtype)


_STREAMS = {}


def _stream(*arrays):
    """Launch on CuPy's current stream when given CuPy arrays; default stream otherwise."""
    if _numba_config.ENABLE_CUDASIM or not any(_is_cupy(a) for a in arrays):
        return 0
    ptr = _cupy.cuda.get_current_stream().ptr
    if ptr == 0:
        return 0
    if ptr not in _STREAMS:
        _STREAMS[ptr] = cuda.external_stream(ptr)
    return _STREAMS[ptr]


def _check_k(k):
    if not 0 <= int(k) <= MAX_K:
        raise ValueError(f"spline order k must be in 0..{MAX_K}, got {k}")


def _cdiv(a, b):
    return (a + b - 1) // b


# ---------------------------------------------------------------------- fused path
def span_basis(x, knots, k, spans, values, derivs):
    """Spans (B, I) int64 and the k+1 local basis values and derivatives (B, I, k+1)."""
    _check_k(k)
    kern = _get(values.dtype)[0]["span_basis"]
    B, I = x.shape
    n = B * I
    if n == 0:
        return
    threads = 256
    kern[_cdiv(n, threads), threads, _stream(x)](x, knots, int(k), spans, values, derivs)


def layer_forward(x, knots, coef, w_base, w_spline, bias, mask, k, base, y):
    """Fused sparse forward: writes y (B, O)."""
    _check_k(k)
    kern = _get(coef.dtype)[0]["forward"]
    B = x.shape[0]
    O = coef.shape[2]
    if B == 0 or O == 0:
        return
    grid = (_cdiv(B, FWD_TB), _cdiv(O, FWD_TO))
    kern[grid, (WARP, FWD_WARPS), _stream(x)](
        x, knots, coef, w_base, w_spline, bias, mask, int(k), int(base), y)


def backward_chunks(B, I, O, n_basis, itemsize):
    """(n_chunks, chunk_len) of the batch split of the parameter gradients.

    Depends on shapes and dtype only, so the reduction order (and so every bit of the result)
    is the same on every run.
    """
    warps = _cdiv(I, PG_WARPS) * PG_WARPS * _cdiv(O, WARP)
    n = min(_cdiv(max(B, 1), PG_MIN_CHUNK), _cdiv(PG_TARGET_WARPS, max(warps, 1)), PG_MAX_CHUNKS)
    n = min(n, max(1, PG_WS_MAX_BYTES // max(1, I * n_basis * O * itemsize)))
    n = max(1, n)
    chunk_len = _cdiv(_cdiv(max(B, 1), n), PG_SUB) * PG_SUB
    return _cdiv(max(B, 1), chunk_len), chunk_len


def layer_backward(x, g, knots, coef, w_base, w_spline, mask, k, base,
                   dx, dcoef, dw_base, dw_spline, dbias, use_smem=None, chunk_len=None):
    """Fused deterministic backward of sum(g * y): overwrites dx and every parameter gradient.

    use_smem: None picks by size (C columns in shared memory when they fit); True/False forces.
    chunk_len: None picks the batch split by shape (backward_chunks); an int forces it. Both
    overrides exist for the tests, which exercise every variant at tiny sizes.
    """
    _check_k(k)
    kerns = _get(coef.dtype)[0]
    B, I = x.shape
    n_basis = coef.shape[1]
    O = coef.shape[2]
    dtype = np.dtype(coef.dtype)
    stream = _stream(x)
    if B > 0 and I > 0:
        grid = (_cdiv(B, DX_TB), _cdiv(I, DX_TI))
        kerns["backward_dx"][grid, (WARP, DX_TI), stream](
            x, g, knots, coef, w_base, w_spline, mask, int(k), int(base), dx)
    if chunk_len is None:
        n_chunks, chunk_len = backward_chunks(B, I, O, n_basis, dtype.itemsize)
    else:
        chunk_len = max(1, int(chunk_len))
        n_chunks = _cdiv(max(B, 1), chunk_len)
    ws_c = _empty(x, (n_chunks * I * n_basis * O,), dtype)
    ws_d = _empty(x, (n_chunks * I * O,), dtype)
    ws_bias = _empty(x, (n_chunks * O,), dtype)
    smem = PG_WARPS * n_basis * WARP * dtype.itemsize
    if use_smem is None:
        use_smem = smem <= PG_DYN_SMEM_MAX
    if I > 0 and O > 0:
        grid = (_cdiv(I, PG_WARPS), _cdiv(O, WARP), n_chunks)
        kerns["backward_params"][grid, (WARP, PG_WARPS), stream, smem if use_smem else 0](
            x, g, knots, int(k), int(base), int(chunk_len), bool(use_smem), ws_c, ws_d, ws_bias)
        grid = (_cdiv(O, FIN_TO), _cdiv(I, FIN_TI))
        kerns["backward_finalize"][grid, (FIN_TO, FIN_TI), stream](
            coef, w_spline, mask, int(n_chunks), ws_c, ws_d, ws_bias,
            dcoef, dw_base, dw_spline, dbias)
    elif O > 0:  # no inputs: only the bias gradient
        dbias[...] = g.sum(axis=0)


# ---------------------------------------------------------------------- dense path
def dense_basis(x, knots, k, base, A, Ad=None):
    """Write the basis matrix A = [B_m(x_i) (I*(G+k) cols) | base(x_i) (I cols)] of shape
    (B, I*(G+k+1)); Ad (same shape, optional) gets the derivatives [B'_m | base'].
    """
    _check_k(k)
    kern = _get(A.dtype)[0]["dense_basis"]
    B, I = x.shape
    n = B * I
    if n == 0:
        return
    with_derivs = Ad is not None
    threads = 128
    kern[_cdiv(n, threads), threads, _stream(x)](
        x, knots, int(k), int(base), with_derivs, A,
        Ad if with_derivs else _empty(x, (1, 1), A.dtype))  # never A twice (host copies)


def dense_weights(xp, coef, w_base, w_spline, mask):
    """W = [mask*w_spline*coef reshaped (I*(G+k), O) ; mask*w_base (I, O)]."""
    I, n_basis, O = coef.shape
    top = ((mask * w_spline)[:, None, :] * coef).reshape(I * n_basis, O)
    return xp.concatenate([top, mask * w_base], axis=0)


def dense_forward_contract(xp, A, coef, w_base, w_spline, bias, mask, y):
    """y = A @ W + bias (plain array code: cupy on a GPU, numpy in tests)."""
    W = dense_weights(xp, coef, w_base, w_spline, mask)
    xp.matmul(A, W, out=y)
    y += bias


def dense_backward_contract(xp, A, Ad, g, coef, w_base, w_spline, mask,
                            dx, dcoef, dw_base, dw_spline, dbias):
    """Gradients from the basis matrices (plain array code: cupy on a GPU, numpy in tests).

        AG = A^T g  (I*(G+k) + I, O);  C = AG[:I*(G+k)] as (I, G+k, O)
        dcoef = mask w_spline C,  dw_spline = mask sum_m coef C,  dw_base = mask AG[I*(G+k):]
        P = g W^T (B, I*(G+k+1));  dx[b, i] = sum over the columns j of input i of Ad[b, j] P[b, j]
    """
    I, n_basis, O = coef.shape
    B = A.shape[0]
    nI = I * n_basis
    AG = xp.matmul(A.T, g)
    C = AG[:nI].reshape(I, n_basis, O)
    dcoef[...] = (mask * w_spline)[:, None, :] * C
    dw_spline[...] = mask * (coef * C).sum(axis=1)
    dw_base[...] = mask * AG[nI:]
    dbias[...] = g.sum(axis=0)
    W = dense_weights(xp, coef, w_base, w_spline, mask)
    P = xp.matmul(g, W.T)
    P *= Ad
    dx[...] = P[:, :nI].reshape(B, I, n_basis).sum(axis=2) + P[:, nI:]


def layer_forward_dense(x, knots, coef, w_base, w_spline, bias, mask, k, base, y):
    """Dense-path forward: basis matrix kernel, then one GEMM. Writes y (B, O)."""
    xp = _xp(x)
    B, I = x.shape
    n_basis = coef.shape[1]
    A = xp.empty((B, I * (n_basis + 1)), dtype=coef.dtype)
    dense_basis(x, knots, k, base, A)
    dense_forward_contract(xp, A, coef, w_base, w_spline, bias, mask, y)


def layer_backward_dense(x, g, knots, coef, w_base, w_spline, mask, k, base,
                         dx, dcoef, dw_base, dw_spline, dbias):
    """Dense-path backward: basis and derivative matrices, then GEMMs. Overwrites the outputs."""
    xp = _xp(x)
    B, I = x.shape
    n_basis = coef.shape[1]
    A = xp.empty((B, I * (n_basis + 1)), dtype=coef.dtype)
    Ad = xp.empty_like(A)
    dense_basis(x, knots, k, base, A, Ad)
    dense_backward_contract(xp, A, Ad, g, coef, w_base, w_spline, mask,
                            dx, dcoef, dw_base, dw_spline, dbias)


# ---------------------------------------------------------------------- path choice
# Cost model of DESIGN section 3. ASSUMED figures (H100 SXM datasheet peaks and guessed
# efficiencies): they MUST be replaced by the crossovers measured with bench/layer_gpu.py
# (a separate issue); until then the rule only encodes the expected shape of the trade-off.
PEAK_FP32_FLOPS = 67e12           # FP32 FMA units (fused path, and strict-FP32 SGEMM)
PEAK_TF32_FLOPS = 495e12          # TF32 tensor cores, dense
PEAK_FP64_FLOPS = 34e12           # FP64 FMA units (fused path)
PEAK_FP64_TENSOR_FLOPS = 67e12    # FP64 tensor cores (DGEMM)
HBM_BYTES_PER_S = 3.35e12
FUSED_EFFICIENCY = 0.35           # assumed share of FMA peak the fused kernels reach
DENSE_GEMM_EFFICIENCY = 0.70      # assumed SGEMM/DGEMM efficiency at these shapes
DENSE_TF32_EFFICIENCY = 0.50      # assumed TF32 GEMM efficiency
DENSE_MAX_BYTES = 8 * 1024 ** 3   # the dense path's matrices (A, A', P in backward) must fit


def choose_path(G, k, dtype, I, O, B, tf32=False, path=None):
    """'fused' or 'dense' for a layer of this shape, by the cost model above.

    path: 'fused' or 'dense' forces that path; None/'auto' consults the environment variable
    KANARRAY_CUDA_PATH, then the model. Dense does 2BIO(G+k+1) flops on tensor cores (TF32 when
    allowed, FP64 tensor cores for float64) or FP32 FMA units, and streams its basis matrix
    through HBM; fused does 2BIO(k+2) flops on FMA units at lower efficiency.
    """
    if path is None or path == "auto":
        path = os.environ.get("KANARRAY_CUDA_PATH", "auto")
    if path in ("fused", "dense"):
        return path
    if path != "auto":
        raise ValueError(f"path must be 'fused', 'dense' or 'auto', got {path!r}")
    itemsize = np.dtype(dtype).itemsize
    K1 = G + k + 1
    dense_bytes = 3 * B * I * K1 * itemsize
    if dense_bytes > DENSE_MAX_BYTES:
        return "fused"
    if itemsize == 4:
        fused_rate = PEAK_FP32_FLOPS * FUSED_EFFICIENCY
        dense_rate = (PEAK_TF32_FLOPS * DENSE_TF32_EFFICIENCY if tf32
                      else PEAK_FP32_FLOPS * DENSE_GEMM_EFFICIENCY)
    else:
        fused_rate = PEAK_FP64_FLOPS * FUSED_EFFICIENCY
        dense_rate = PEAK_FP64_TENSOR_FLOPS * DENSE_GEMM_EFFICIENCY
    fused_time = 2.0 * B * I * O * (k + 2) / fused_rate
    dense_time = 2.0 * B * I * O * K1 / dense_rate + 2.0 * B * I * K1 * itemsize / HBM_BYTES_PER_S
    return "dense" if dense_time < fused_time else "fused"


FORWARD = {"fused": layer_forward, "dense": layer_forward_dense}
BACKWARD = {"fused": layer_backward, "dense": layer_backward_dense}
