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

assert TB * TI == WARP * WARPS and TB % WARPS == 0


def _build(nbtype, K):
    """Every kernel for one float type and one spline order K (a compile-time constant)."""
    DT = nbtype
    u32 = types.uint32
    u64 = types.uint64  # a 32-bit base offset widened once, plus compile-time constants that
    #                     fold into the load's immediate offset
    K1 = K + 1
    KV = 4 if K1 <= 4 else 8    # staged basis stride: one 128-bit shared load for K <= 3
    PAIRS = TI * TB             # (sample, input) pairs staged per chunk
    PAIR_VALS = PAIRS * KV
    RED_SIZE = WARPS * RB * RED
    RED2_SIZE = TB * RED2
    ACC = RB * RO
    PGW = PG_WARPS[DT.bitwidth // 8]
    ROWS = PG_SMEM // (DT.bitwidth // 8) // (PGW * TO)   # slab rows per warp
    RW = ROWS - K                                         # span starts per row window
    SLAB = PGW * ROWS * TO
    LIST = PGW * WARP
    SCAN = 2 * LIST
    GROUP = WARP * SPL                                    # samples a warp filters at once
    LISTED = PGW * GROUP
    # load4/store4 on shared memory need its 16-byte alignment declared (numba declares the
    # element's); the simulator takes no alignment argument
    SMEM_ALIGN = None if _numba_config.ENABLE_CUDASIM else 16

    @cuda.jit(device=True, inline=True)
    def find_span(kn, row, n, x):
        """s with t_s <= x < t_{s+1}; -1 outside [t_0, t_{n-1})."""
        if not (x >= kn[row] and x < kn[row + n - 1]):
            return -1
        lo = 0
        hi = n - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if x >= kn[row + mid]:
                lo = mid
            else:
                hi = mid
        return lo

    @cuda.jit(device=True, inline=True)
    def basis(kn, row, q, s, x, vals, ders, with_derivs):
        """The K+1 bases s-K..s at x and, optionally, their slopes: the Cox-de Boor triangle
        without a division (kernels/cpu/basis.py's _span_terms), knot t_j at kn[row + j], the
        reciprocal of its j-th denominator at kn[q + j(j-1)/2 + r] (knot_tables)."""
        vals[0] = DT(1)
        for j in range(1, K1):
            saved = DT(0)
            for r in range(j):
                temp = vals[r] * kn[q + j * (j - 1) // 2 + r]
                if with_derivs and j == K:
                    ders[r] = temp  # B_{s-K+1+r, K-1} / (t_{s+r+1} - t_{s+r+1-K})
                vals[r] = saved + (kn[row + s + r + 1] - x) * temp
                saved = (x - kn[row + s + r + 1 - j]) * temp
            vals[j] = saved
        if with_derivs:
            for r in range(K, -1, -1):  # descending: ders[r - 1] is still the quotient
                rising = ders[r - 1] if r >= 1 else DT(0)
                falling = ders[r] if r < K else DT(0)
                ders[r] = DT(K) * (rising - falling)

    @cuda.jit(device=True, inline=True)
    def base_value(x, base):
        if base == 0:
            return x / (DT(1) + math.exp(-x))
        if base == 1:
            return x
        return DT(0)

    @cuda.jit(device=True, inline=True)
    def base_slope(x, base):
        if base == 0:
            sig = DT(1) / (DT(1) + math.exp(-x))
            return sig * (DT(1) + x * (DT(1) - sig))
        if base == 1:
            return DT(1)
        return DT(0)

    @cuda.jit(device=True, inline=True)
    def stage_pair(x, kn, n, B, I, b, i, vals, ders, with_derivs):
        """Padded first row s (= span; 0 outside the knot range, with zero bases) of pair (b, i)."""
        for r in range(K1):
            vals[r] = DT(0)
            ders[r] = DT(0)
        if b >= B or i >= I:
            return 0
        row = types.int64(i) * (n + 2 * K) + K  # signed: the triangle reads knots row - K..
        xv = x[b * I + i]
        s = find_span(kn, row, n, xv)
        if s < 0:
            return 0
        q = I * (n + 2 * K) + (types.int64(i) * (n - 1) + s) * (K * K1 // 2)
        basis(kn, row, q, s, xv, vals, ders, with_derivs)
        return s

    if DT.bitwidth == 32:
        @cuda.jit(device=True, inline=True)
        def row_dot(wp, c, gv):
            """g . wp[c:c+4] by two 64-bit loads (one 128-bit load costs dx a spill)."""
            lo = load2(wp, c)
            hi = load2(wp, c + u64(2))
            return gv[0] * lo[0] + gv[1] * lo[1] + gv[2] * hi[0] + gv[3] * hi[1]
    else:
        @cuda.jit(device=True, inline=True)
        def row_dot(wp, c, gv):
            """g . wp[c:c+4] by scalar loads (vector ones raise dx past 128 registers)."""
            total = DT(0)
            for j in range(RO):
                total += gv[j] * wp[c + u64(j)]
            return total

    # ------------------------------------------------------------------ span_basis
    def span_basis_kernel(x, kn, B, I, n, spans, values, derivs):
        idx = cuda.grid(1)
        if idx >= B * I:
            return
        b = idx // I
        i = idx - b * I
        vals = cuda.local.array(K1, DT)
        ders = cuda.local.array(K1, DT)
        s = stage_pair(x, kn, n, B, I, b, i, vals, ders, True)
        xv = x[idx]
        row = i * (n + 2 * K) + K
        inside = xv >= kn[row] and xv < kn[row + n - 1]
        spans[b, i] = s if inside else -1
        for r in range(K1):
            m = s - K + r
            ok = inside and m >= 0 and m < n - K1
            values[b, i, r] = vals[r] if ok else DT(0)
            derivs[b, i, r] = ders[r] if ok else DT(0)

    # ------------------------------------------------------------------ fused forward
    def forward_kernel(x, kn, B, I, n, wp, wb, nbp, OP, bias, base, y, O):
        """y = bias + sum_i (wb base(x) + sum_r wp[i, tile, s+r, :] B_r(x)), one 128-output tile."""
        sh_row = cuda.shared.array(PAIRS, types.int32)
        sh_v = cuda.shared.array(PAIR_VALS, DT)
        sh_bv = cuda.shared.array(PAIRS, DT)
        vals = cuda.local.array(K1, DT)
        ders = cuda.local.array(K1, DT)
        acc = cuda.local.array(ACC, DT)
        tx = u32(cuda.threadIdx.x)
        ty = u32(cuda.threadIdx.y)
        t = u32(ty * WARP + tx)
        b0 = u32(cuda.blockIdx.x * TB)
        ot = u32(cuda.blockIdx.y)
        OT = u32(OP // TO)
        lane_o = u32(ot * TO + RO * tx)
        for j in range(RB * RO):
            acc[j] = DT(0)
        pb = u32(t % TB)
        pi = u32(t // TB)
        for ic in range(0, I, TI):
            b = u32(b0 + pb)
            i = u32(ic + pi)
            s = stage_pair(x, kn, n, B, I, b, i, vals, ders, False)
            sh_row[t] = s * TO  # the row's offset in a tile
            sh_bv[t] = base_value(x[b * I + i], base) if (b < B and i < I) else DT(0)
            for r in range(K1):
                sh_v[u32(t * KV + r)] = vals[r]
            cuda.syncthreads()
            for ii in range(TI):
                i = u32(ic + ii)
                if i < I:
                    lane0 = u32((i * OT + ot) * nbp * TO + RO * tx)  # row 0 of the lane's outputs
                    w = load4(wb, u64(u32(i * OP + lane_o)))
                    for rb in range(RB):
                        p = u32(ii * TB + ty + WARPS * rb)
                        c0 = u64(lane0 + u32(sh_row[p]))
                        pv = u64(u32(p * KV))
                        bv = sh_bv[p]
                        for j in range(RO):
                            acc[rb * RO + j] += w[j] * bv
                        for r in range(K1):
                            v = sh_v[pv + u64(r)]
                            c = load4(wp, c0 + u64(r * TO))
                            for j in range(RO):
                                acc[rb * RO + j] += c[j] * v
            cuda.syncthreads()
        for rb in range(RB):
            b = u32(b0 + ty + WARPS * rb)
            if b < B:
                for j in range(RO):
                    o = u32(lane_o + j)
                    if o < O:
                        y[u32(b * O + o)] = bias[o] + acc[rb * RO + j]

    # ------------------------------------------------------------------ fused backward: dx
    def backward_dx_kernel(x, kn, B, I, n, g, wp, wb, nbp, OP, base, dx, st_row, st_val, st_bv):
        """dx[b, i] = sum_o g[b, o] (wb base'(x) + sum_r wp[.., s+r, o] B'_r(x)).

        Also stores each pair's padded row, K+1 basis values and base value (i-major) for the
        parameter-gradient kernel, which then never evaluates a basis.
        """
        sh_row = cuda.shared.array(PAIRS, types.int32)
        sh_d = cuda.shared.array(PAIR_VALS, DT)
        sh_bs = cuda.shared.array(PAIRS, DT)
        red = cuda.shared.array(RED_SIZE, DT)
        red2 = cuda.shared.array(RED2_SIZE, DT)
        vals = cuda.local.array(K1, DT)
        ders = cuda.local.array(K1, DT)
        part = cuda.local.array(RB, DT)
        tx = u32(cuda.threadIdx.x)
        ty = u32(cuda.threadIdx.y)
        t = u32(ty * WARP + tx)
        b0 = u32(cuda.blockIdx.x * TB)
        ic = u32(cuda.blockIdx.y * TI)
        OT = u32(OP // TO)
        pb = u32(t % TB)
        pi = u32(t // TB)
        b = u32(b0 + pb)
        i = u32(ic + pi)
        s = stage_pair(x, kn, n, B, I, b, i, vals, ders, True)
        sh_row[t] = s * TO  # the row's offset in a tile
        bs = DT(0)
        if b < B and i < I:
            xv = x[b * I + i]
            bs = base_slope(xv, base)
            q = u32(i * B + b)
            st_row[q] = s
            st_bv[q] = base_value(xv, base)
            for r in range(K1):
                st_val[u32(q * K1 + r)] = vals[r]
        sh_bs[t] = bs
        for r in range(K1):
            sh_d[u32(t * KV + r)] = ders[r]
        cuda.syncthreads()
        for ii in range(TI):
            i = u32(ic + ii)
            if i < I:  # uniform over the block
                for rb in range(RB):
                    part[rb] = DT(0)
                for ot in range(OT):
                    o = u32(ot * TO + RO * tx)
                    lane0 = u32((i * OT + ot) * nbp * TO + RO * tx)  # row 0 of the lane's outputs
                    w = load4(wb, u64(u32(i * OP + o)))
                    for rb in range(RB):
                        p = u32(ii * TB + ty + WARPS * rb)
                        bb = min(u32(b0 + ty + WARPS * rb), u32(B - 1))
                        c0 = u64(lane0 + u32(sh_row[p]))
                        pv = u64(u32(p * KV))
                        gv = load4(g, u64(u32(bb * OP + o)))
                        # sum_j g_j (w_j base' + sum_r c_rj B'_r) = base' g.w + sum_r B'_r g.c_r
                        gw = DT(0)
                        for j in range(RO):
                            gw += gv[j] * w[j]
                        total = gw * sh_bs[p]
                        for r in range(K1):
                            total += row_dot(wp, c0 + u64(r * TO), gv) * sh_d[pv + u64(r)]
                        part[rb] += total
                # the 32 lane partials of each sample, summed in a fixed order in two steps:
                # every thread sums 4 lanes of one sample, then one thread per sample the 8 sums
                for rb in range(RB):
                    red[u32((ty * RB + rb) * RED + tx)] = part[rb]
                cuda.syncthreads()
                q = u32(t // GROUPS)
                lanes = u32(q * RED + RO * (t % GROUPS))
                quarter = DT(0)
                for lane in range(RO):
                    quarter += red[lanes + u32(lane)]
                red2[u32(q * RED2 + t % GROUPS)] = quarter
                cuda.syncthreads()  # also orders these reads of red before the next input's writes
                if ty == 0:
                    row = u32((tx % WARPS) * RB + tx // WARPS)
                    total = DT(0)
                    for gq in range(GROUPS):
                        total += red2[u32(row * RED2 + gq)]
                    bt = u32(b0 + tx)
                    if bt < B:
                        dx[u32(bt * I + i)] = total

    # ------------------------------------------------------------------ fused backward: params
    def backward_params_kernel(st_row, st_val, B, I, g, OP, n_win, chunk_len, ws):
        """Partial C[i, p, o] = sum_b B_{p-K}(x[b, i]) g[b, o] of one batch chunk and row window.

        Block (32, PGW): warp = input, lane = RO consecutive outputs of the tile blockIdx.y;
        blockIdx.z = chunk * n_win + window. The window owns the samples whose first padded row s
        lies in [w0, w0 + RW); their rows s..s+K fall in the warp's slab of RW + K rows in
        shared memory, each lane owning its columns (no two threads write one element, no
        atomics, samples in increasing order). Samples are read SPL per lane, 32 SPL at a time;
        a prefix sum over the lanes lists those in the window, and the warp sweeps only them.
        The slab goes to ws[chunk, window, i, tile] and the finalize kernel sums the overlaps.
        """
        sh_c = cuda.shared.array(SLAB, DT, alignment=SMEM_ALIGN)  # read and written by load4/store4
        sh_scan = cuda.shared.array(SCAN, types.int32)
        sh_list = cuda.shared.array(LISTED, types.int32)
        tx = u32(cuda.threadIdx.x)
        ty = u32(cuda.threadIdx.y)
        i = u32(cuda.blockIdx.x * PGW + ty)
        ot = u32(cuda.blockIdx.y)
        win = u32(cuda.blockIdx.z % n_win)
        chunk = u32(cuda.blockIdx.z // n_win)
        slab = u32(ty * ROWS * TO + RO * tx)
        for r in range(ROWS):
            for j in range(RO):
                sh_c[slab + u32(r * TO + j)] = DT(0)
        w0 = u32(win * RW)
        o = u32(ot * TO + RO * tx)
        lane = u32(ty * WARP + tx)
        lo = u32(chunk * chunk_len)
        hi = min(u32(lo + chunk_len), u32(B))
        for gb in range(lo, hi, GROUP):  # the same trip count for every warp of the block
            sv = cuda.local.array(SPL, types.uint32)
            hits = 0
            for u in range(SPL):
                b = u32(gb + tx * SPL + u)
                sv[u] = u32(0xFFFFFFFF)
                if i < I and b < hi:
                    sv[u] = u32(st_row[u32(i * B + b)])
                if sv[u] >= w0 and sv[u] < w0 + RW:
                    hits += 1
            count = hits  # inclusive prefix sum over the warp's lanes (Hillis-Steele)
            sh_scan[lane] = count
            cuda.syncthreads()
            for step in range(5):
                d = 1 << step
                src = u32((step % 2) * LIST + lane)
                if tx >= d:
                    count += sh_scan[src - d]
                sh_scan[u32(((step + 1) % 2) * LIST + lane)] = count
                cuda.syncthreads()
            slot = u32(ty * GROUP + count - hits)
            for u in range(SPL):  # list the window's samples, in increasing order
                if sv[u] >= w0 and sv[u] < w0 + RW:
                    sh_list[slot] = (sv[u] - w0) << 8 | (tx * SPL + u)
                    slot += 1
            cuda.syncthreads()
            listed = u32(ty * GROUP)
            end = u32(listed + u32(sh_scan[u32(LIST + ty * WARP + WARP - 1)]))
            while listed < end:
                e = u32(sh_list[listed])
                listed += u32(1)
                bb = u32(gb + (e & 255))
                gv = load4(g, u64(u32(bb * OP + o)))
                c0 = u64(u32(slab + (e >> 8) * TO))
                v0 = u64(u32((i * B + bb) * K1))
                vals = load4(st_val, v0) if K1 == 4 else st_val[v0:v0 + u64(K1)]
                for r in range(K1):
                    v = vals[r]
                    acc = load4(sh_c, c0 + u64(r * TO))
                    store4(sh_c, c0 + u64(r * TO), acc[0] + v * gv[0], acc[1] + v * gv[1],
                           acc[2] + v * gv[2], acc[3] + v * gv[3])
            cuda.syncthreads()
        if i < I:
            OT = u32(OP // TO)
            dst = u64(u32((((chunk * n_win + win) * I + i) * OT + ot) * ROWS * TO + RO * tx))
            for r in range(ROWS):
                for j in range(RO):
                    ws[dst + u64(r * TO + j)] = sh_c[slab + u32(r * TO + j)]

    def backward_finalize_kernel(ws, I, OP, nbp, rw, n_win, n_chunks, coef, w_spline, mask,
                                 dcoef, dw_spline):
        """Sum the partials in fixed order (chunk, then window) and apply the weights."""
        o = cuda.blockIdx.x * FIN_TO + cuda.threadIdx.x
        i = cuda.blockIdx.y * FIN_TI + cuda.threadIdx.y
        n_basis = coef.shape[1]
        O = coef.shape[2]
        if i >= I or o >= O:
            return
        OT = OP // TO
        ot = o // TO
        oo = o - ot * TO
        rows = rw + K
        es = mask[i, o] * w_spline[i, o]
        dws = DT(0)
        for m in range(n_basis):
            p = m + K
            cs = DT(0)
            for c in range(n_chunks):
                for win in range(max(0, (p - rows) // rw + 1), min(n_win, p // rw + 1)):
                    cs += ws[((((c * n_win + win) * I + i) * OT + ot) * rows + p - win * rw) * TO
                             + oo]
            dcoef[i, m, o] = es * cs
            dws += coef[i, m, o] * cs
        dw_spline[i, o] = mask[i, o] * dws

    # ------------------------------------------------------------------ dense basis matrix
    def dense_basis_kernel(x, kn, B, I, n, base, A):
        """Scatter the K+1 non-zero bases and the base value of pair (b, i) into the zeroed A."""
        idx = cuda.grid(1)
        if idx >= B * I:
            return
        b = idx // I
        i = idx - b * I
        n_basis = n - K1
        vals = cuda.local.array(K1, DT)
        ders = cuda.local.array(K1, DT)
        s = stage_pair(x, kn, n, B, I, b, i, vals, ders, False)
        for r in range(K1):
            m = s - K + r
            if m >= 0 and m < n_basis:
                A[b, i * n_basis + m] = vals[r]
        A[b, I * n_basis + i] = base_value(x[idx], base)

    pyfuncs = {
        "span_basis": span_basis_kernel,
        "forward": forward_kernel,
        "backward_dx": backward_dx_kernel,
        "backward_params": backward_params_kernel,
        "backward_finalize": backward_finalize_kernel,
        "dense_basis": dense_basis_kernel,
    }
    return pyfuncs


_PYFUNCS = {}
_KERNELS = {}


def vector_alignment(width, itemsize):
    """Bytes of alignment a vector load of `width` elements needs: its size, at most 16 (the
    widest load is 128 bits; a float64 load4 is two of them)."""
    return min(16, width * itemsize)


def _load4_python(a, offset):
    """The simulator's load4: four elements, and the alignment the GPU's vector load needs."""
    assert offset % 4 == 0, f"load4 at offset {offset}: not a multiple of 4 elements"
    return a[offset], a[offset + 1], a[offset + 2], a[offset + 3]


def _load2_python(a, offset):
    assert offset % 2 == 0, f"load2 at offset {offset}: not a multiple of 2 elements"
    return a[offset], a[offset + 1]


def _load_intrinsic(width):
    """load4(a, offset) -> a[offset:offset+4] as one vector load (LDG.E.128; two for float64);
    load2 likewise for two elements.

    The compiler cannot merge four scalar loads of a kernel argument by itself: it does not know
    the array's alignment. Here the load promises 4-element alignment: `offset` must be a
    multiple of 4 and the array's data aligned to vector_alignment (16 bytes; the arrays the
    kernels read this way are allocated here, and _padded_outputs copies a gradient that is not
    aligned) - every caller's offsets are multiples of RO = 4 by construction.
    """
    from llvmlite import ir
    from numba.cuda.extending import intrinsic

    @intrinsic
    def load(typingctx, a, offset):
        sig = types.UniTuple(a.dtype, width)(a, offset)

        def codegen(context, builder, signature, args):
            array = context.make_array(signature.args[0])(context, builder, args[0])
            element = context.get_value_type(signature.args[0].dtype)
            vector = ir.VectorType(element, width)
            pointer = builder.bitcast(builder.gep(array.data, [args[1]], inbounds=True),
                                      vector.as_pointer())
            itemsize = signature.args[0].dtype.bitwidth // 8
            loaded = builder.load(pointer, align=vector_alignment(width, itemsize))
            parts = [builder.extract_element(loaded, ir.Constant(ir.IntType(32), j))
                     for j in range(width)]
            return context.make_tuple(builder, signature.return_type, parts)

        return sig, codegen

    return load


def _store4_python(a, offset, v0, v1, v2, v3):
    assert offset % 4 == 0, f"store4 at offset {offset}: not a multiple of 4 elements"
    a[offset], a[offset + 1], a[offset + 2], a[offset + 3] = v0, v1, v2, v3


def _store4_intrinsic():
    """store4(a, offset, v0, v1, v2, v3): a[offset:offset+4] = v as one vector store, with
    load4's alignment contract."""
    from llvmlite import ir
    from numba.cuda.extending import intrinsic

    @intrinsic
    def store4(typingctx, a, offset, v0, v1, v2, v3):
        sig = types.void(a, offset, a.dtype, a.dtype, a.dtype, a.dtype)

        def codegen(context, builder, signature, args):
            array = context.make_array(signature.args[0])(context, builder, args[0])
            element = context.get_value_type(signature.args[0].dtype)
            vector = ir.Constant(ir.VectorType(element, 4), ir.Undefined)
            for j, value in enumerate(args[2:]):
                vector = builder.insert_element(vector, value, ir.Constant(ir.IntType(32), j))
            pointer = builder.bitcast(builder.gep(array.data, [args[1]], inbounds=True),
                                      vector.type.as_pointer())
            itemsize = signature.args[0].dtype.bitwidth // 8
            builder.store(vector, pointer, align=vector_alignment(4, itemsize))
            return context.get_dummy_value()

        return sig, codegen

    return store4


load4 = _load4_python if _numba_config.ENABLE_CUDASIM else _load_intrinsic(4)
load2 = _load2_python if _numba_config.ENABLE_CUDASIM else _load_intrinsic(2)
store4 = _store4_python if _numba_config.ENABLE_CUDASIM else _store4_intrinsic()


def _dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"CUDA kernels support float32 and float64, got {dtype}")
    return dtype


def _check_k(k):
    if not isinstance(k, (int, np.integer)) or not 0 <= int(k) <= MAX_K:
        raise ValueError(f"spline order k must be an integer in 0..{MAX_K}, got {k!r}")
    return int(k)


def _pyfuncs(dtype, k):
    key = (_dtype(dtype), _check_k(k))
    if key not in _PYFUNCS:
        _PYFUNCS[key] = _build(types.float32 if key[0] == np.float32 else types.float64, key[1])
    return _PYFUNCS[key]


def launch_bounds(name, dtype):
    """(threads per block, blocks per SM) promised to ptxas for kernel `name`, or None.

    float32 forward and dx: 4 blocks of 256 threads, which caps them at 64 registers (50%
    occupancy); they fit without spilling (bench/gpu_static.py checks).
    """
    return LAUNCH_BOUNDS[_dtype(dtype).itemsize].get(name)


def _kernel(name, dtype, k):
    """The jitted kernel `name` for (dtype, k), built on first use and cached."""
    key = (name, _dtype(dtype), _check_k(k))
    if key not in _KERNELS:
        bounds = launch_bounds(name, dtype)
        opts = {"launch_bounds": bounds} if bounds and not _numba_config.ENABLE_CUDASIM else {}
        _KERNELS[key] = cuda.jit(**opts)(_pyfuncs(dtype, k)[name])
    return _KERNELS[key]


def kernel_signatures(dtype, k):
    """(name, python function, Numba signature) of every CUDA kernel for (dtype, k).

    For ahead-of-time checks: `numba.cuda.compile_ptx(fn, sig, cc=(9, 0))`.
    """
    T = types.float32 if _dtype(dtype) == np.float32 else types.float64
    a1, a2, a3 = (types.Array(T, n, "C") for n in (1, 2, 3))
    i64, u4 = types.int64, types.Array(types.int32, 1, "C")
    l2 = types.Array(types.int64, 2, "C")
    sigs = {
        "span_basis": (a1, a1, i64, i64, i64, l2, a3, a3),
        "forward": (a1, a1, i64, i64, i64, a1, a1, i64, i64, a1, i64, a1, i64),
        "backward_dx": (a1, a1, i64, i64, i64, a1, a1, a1, i64, i64, i64, a1, u4, a1, a1),
        "backward_params": (u4, a1, i64, i64, a1, i64, i64, i64, a1),
        "backward_finalize": (a1, i64, i64, i64, i64, i64, i64, a3, a2, a2, a3, a2),
        "dense_basis": (a1, a1, i64, i64, i64, i64, a2),
    }
    funcs = _pyfuncs(dtype, k)
    return [(name, funcs[name], sigs[name]) for name in funcs]


# ---------------------------------------------------------------------- host-side helpers
def _is_cupy(a):
    return _cupy is not None and isinstance(a, _cupy.ndarray)


def _xp(a):
    """Array module of a: cupy for CuPy arrays, numpy otherwise (simulator, tests)."""
    return _cupy if _is_cupy(a) else np


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


def _cdiv(a, b):
    return (a + b - 1) // b


def _flat(xp, a):
    """C-contiguous 1-D view (a copy only when a is not contiguous): kernels index flat offsets."""
    return xp.ascontiguousarray(a).reshape(-1)


def repack(xp, coef, w_base, w_spline, mask, k):
    """Per-call repack of the parameters into the layout the fused kernels read.

        wp (I, OT, G+3k, TO): mask*w_spline*coef, outputs tiled by TO = 128 and padded to OT*TO
                              with zeros, k zero rows before and after the G+k basis rows, so
                              the k+1 rows of a span are constant offsets (TO apart) and never
                              out of range;
        wb (I, OT*TO):        mask*w_base, zero-padded.
    Returns flat wp, flat wb, G+3k, OT*TO. Costs one pass over the coefficients.
    """
    I, n_basis, O = coef.shape
    OP = _cdiv(O, TO) * TO
    folded = (mask * w_spline)[:, None, :] * coef
    wp = xp.zeros((I, n_basis + 2 * k, OP), dtype=coef.dtype)
    wp[:, k:k + n_basis, :O] = folded
    wp = wp.reshape(I, n_basis + 2 * k, OP // TO, TO).transpose(0, 2, 1, 3)
    wb = xp.zeros((I, OP), dtype=coef.dtype)
    wb[:, :O] = mask * w_base
    return _flat(xp, wp), _flat(xp, wb), n_basis + 2 * k, OP


def _data_pointer(a):
    return a.data.ptr if _is_cupy(a) else a.ctypes.data


def knot_tables(xp, knots, k):
    """What the kernels' Cox-de Boor triangle reads, flat: [ext | inv] (kernels/cpu/basis.py's
    _knot_tables, computed on the knots' device).

    ext (I, n + 2k): knots (I, n) with k more on each side at the end cells' spacing, knot j of
        input i (-k <= j < n + k) at ext[i, k + j], so a span near an end reads the knots past
        it without a branch;
    inv (I, n - 1, k(k+1)/2): inv[i, s, j(j-1)/2 + r] = 1 / (t_{s+r+1} - t_{s+r+1-j}) for
        j = 1..k, r < j: every denominator of the triangle at span s, so it divides nowhere.
    """
    I, n = knots.shape
    steps = xp.arange(1, k + 1, dtype=knots.dtype)
    left = knots[:, :1] - steps[::-1] * (knots[:, 1:2] - knots[:, :1])
    right = knots[:, -1:] + steps * (knots[:, -1:] - knots[:, -2:-1])
    ext = xp.concatenate([left, knots, right], axis=1)
    inv = xp.empty((I, n - 1, k * (k + 1) // 2), dtype=knots.dtype)
    one = knots.dtype.type(1)
    for j in range(1, k + 1):
        for r in range(j):
            upper = ext[:, r + 1 + k:r + k + n]          # t_{s+r+1}, s = 0..n-2
            lower = ext[:, r + 1 - j + k:r - j + k + n]  # t_{s+r+1-j}
            inv[:, :, j * (j - 1) // 2 + r] = one / (upper - lower)
    return xp.concatenate([ext.reshape(-1), inv.reshape(-1)])


def _padded_outputs(xp, g, OP):
    """g (B, O) as flat (B, OP), zero-padded when O is not a multiple of TO, and copied when
    its data is not aligned for load4 (4 elements: a view into a larger array may not be)."""
    B, O = g.shape
    if O == OP:
        flat = _flat(xp, g)
        if _data_pointer(flat) % vector_alignment(4, g.dtype.itemsize) == 0:
            return flat
    gp = xp.zeros((B, OP), dtype=g.dtype)
    gp[:, :O] = g
    return gp.reshape(-1)


# ---------------------------------------------------------------------- fused path
def span_basis(x, knots, k, spans, values, derivs):
    """Spans (B, I) int64 and the k+1 local basis values and derivatives (B, I, k+1)."""
    xp = _xp(x)
    B, I = x.shape
    if B * I == 0:
        return
    kern = _kernel("span_basis", values.dtype, k)
    kern[_cdiv(B * I, 256), 256, _stream(x)](_flat(xp, x), knot_tables(xp, knots, k), B, I,
                                             knots.shape[1], spans, values, derivs)


def layer_forward(x, knots, coef, w_base, w_spline, bias, mask, k, base, y):
    """Fused sparse forward: writes y (B, O)."""
    xp = _xp(x)
    B, I = x.shape
    O = coef.shape[2]
    if B == 0 or O == 0:
        return
    if I == 0:
        y[...] = bias
        return
    wp, wb, nbp, OP = repack(xp, coef, w_base, w_spline, mask, _check_k(k))
    out = y if y.flags.c_contiguous else xp.empty_like(y)
    kern = _kernel("forward", coef.dtype, k)
    kern[(_cdiv(B, TB), OP // TO), (WARP, WARPS), _stream(x)](
        _flat(xp, x), knot_tables(xp, knots, k), B, I, knots.shape[1], wp, wb, nbp, OP, bias,
        int(base), out.reshape(-1), O)
    if out is not y:
        y[...] = out


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


def layer_backward(x, g, knots, coef, w_base, w_spline, mask, k, base,
                   dx, dcoef, dw_base, dw_spline, dbias):
    """Fused deterministic backward of sum(g * y): overwrites dx and every parameter gradient."""
    xp = _xp(x)
    k = _check_k(k)
    B, I = x.shape
    O = coef.shape[2]
    stream = _stream(x)
    if B == 0 or I == 0 or O == 0:
        dx[...] = 0
        dcoef[...] = 0
        dw_base[...] = 0
        dw_spline[...] = 0
        dbias[...] = g.sum(axis=0) if B > 0 else 0
        return
    gp, OP, nbp, staged = _fused_dx(xp, x, g, knots, coef, w_base, w_spline, mask, k, base, dx)
    _parameter_gradients(xp, B, I, O, k, g, gp, OP, nbp, *staged,
                         coef, w_spline, mask, dcoef, dw_base, dw_spline, dbias, stream)


def _fused_dx(xp, x, g, knots, coef, w_base, w_spline, mask, k, base, dx):
    """Launch the dx kernel; -> (padded g, OP, G+3k, (rows, values, base values) it stored)."""
    B, I = x.shape
    dtype = _dtype(coef.dtype)
    wp, wb, nbp, OP = repack(xp, coef, w_base, w_spline, mask, k)
    gp = _padded_outputs(xp, g, OP)
    st_row = xp.empty(I * B, dtype=np.int32)
    st_val = xp.empty(I * B * (k + 1), dtype=dtype)
    st_bv = xp.empty(I * B, dtype=dtype)
    out = dx if dx.flags.c_contiguous else xp.empty_like(dx)
    _kernel("backward_dx", dtype, k)[(_cdiv(B, TB), _cdiv(I, TI)), (WARP, WARPS), _stream(x)](
        _flat(xp, x), knot_tables(xp, knots, k), B, I, knots.shape[1], gp, wp, wb, nbp, OP,
        int(base), out.reshape(-1), st_row, st_val, st_bv)
    if out is not dx:
        dx[...] = out
    return gp, OP, nbp, (st_row, st_val, st_bv)


def _parameter_gradients(xp, B, I, O, k, g, gp, OP, nbp, st_row, st_val, st_bv,
                         coef, w_spline, mask, dcoef, dw_base, dw_spline, dbias, stream):
    dtype = _dtype(coef.dtype)
    warps = PG_WARPS[dtype.itemsize]
    rw, n_win, chunk_len, n_chunks = param_split(B, I, O, nbp, k, dtype)
    rows = rw + k
    ws = xp.empty(n_chunks * n_win * I * OP * rows, dtype=dtype)
    _kernel("backward_params", dtype, k)[(_cdiv(I, warps), OP // TO, n_chunks * n_win),
                                         (WARP, warps), stream](
        st_row, st_val, B, I, gp, OP, n_win, chunk_len, ws)
    _kernel("backward_finalize", dtype, k)[(_cdiv(O, FIN_TO), _cdiv(I, FIN_TI)),
                                           (FIN_TO, FIN_TI), stream](
        ws, I, OP, nbp, rw, n_win, n_chunks, coef, w_spline, mask, dcoef, dw_spline)
    # the base branch and the bias are plain reductions over the batch: GEMM and sum
    dw_base[...] = mask * xp.matmul(st_bv.reshape(I, B), g)
    dbias[...] = g.sum(axis=0)


# ---------------------------------------------------------------------- dense path
def dense_basis(x, knots, k, base, A):
    """Basis matrix A = [B_m(x_i) (I*(G+k) columns) | base(x_i) (I columns)] (B, I*(G+k+1)):
    zero-filled by a memset, then one thread per (sample, input) scatters its k+1 non-zeros."""
    xp = _xp(x)
    B, I = x.shape
    A[...] = 0
    if B * I == 0:
        return
    _kernel("dense_basis", A.dtype, k)[_cdiv(B * I, 128), 128, _stream(x)](
        _flat(xp, x), knot_tables(xp, knots, k), B, I, knots.shape[1], int(base), A)


def dense_weights(xp, coef, w_base, w_spline, mask):
    """W = [mask*w_spline*coef reshaped (I*(G+k), O) ; mask*w_base (I, O)]."""
    I, n_basis, O = coef.shape
    top = ((mask * w_spline)[:, None, :] * coef).reshape(I * n_basis, O)
    return xp.concatenate([top, mask * w_base], axis=0)


def layer_forward_dense(x, knots, coef, w_base, w_spline, bias, mask, k, base, y):
    """Dense-path forward: basis matrix, then one GEMM y = A W + bias. Writes y (B, O)."""
    xp = _xp(x)
    B, I = x.shape
    A = xp.empty((B, I * (coef.shape[1] + 1)), dtype=coef.dtype)
    dense_basis(x, knots, k, base, A)
    y[...] = xp.matmul(A, dense_weights(xp, coef, w_base, w_spline, mask)) + bias


def layer_backward_dense(x, g, knots, coef, w_base, w_spline, mask, k, base,
                         dx, dcoef, dw_base, dw_spline, dbias):
    """Dense-path backward: AG = A^T g gives the parameter gradients,

        C = AG[:I*(G+k)] as (I, G+k, O):  dcoef = mask w_spline C,  dw_spline = mask sum_m coef C,
        dw_base = mask AG[I*(G+k):],  dbias = sum_b g;
    dx comes from the fused dx kernel (a dense dx would need a second basis matrix and a GEMM
    of the same size for k+1 useful terms per edge).
    """
    xp = _xp(x)
    B, I = x.shape
    I, n_basis, O = coef.shape
    A = xp.empty((B, I * (n_basis + 1)), dtype=coef.dtype)
    dense_basis(x, knots, k, base, A)
    AG = xp.matmul(A.T, g)
    C = AG[:I * n_basis].reshape(I, n_basis, O)
    dcoef[...] = (mask * w_spline)[:, None, :] * C
    dw_spline[...] = mask * (coef * C).sum(axis=1)
    dw_base[...] = mask * AG[I * n_basis:]
    dbias[...] = g.sum(axis=0)
    if B > 0 and I > 0 and O > 0:  # (the bases it stores for the parameter kernel go unused)
        _fused_dx(xp, x, g, knots, coef, w_base, w_spline, mask, _check_k(k), base, dx)
    else:
        dx[...] = 0


# ---------------------------------------------------------------------- cost model
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


# ---------------------------------------------------------------------- path choice
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
    if B * I * (G + k + 1) * _dtype(dtype).itemsize > DENSE_MAX_BYTES:
        return "fused"
    t = predict_times(G, k, dtype, I, O, B)
    fused = t["fused"]["forward"] + t["fused"]["backward"]
    dense = t["dense"]["forward"] + t["dense"]["backward"]
    return "dense" if dense < fused else "fused"


FORWARD = {"fused": layer_forward, "dense": layer_forward_dense}
BACKWARD = {"fused": layer_backward, "dense": layer_backward_dense}
