"""The fused backward's CUDA kernels for one float type DT and spline order K: dx (which also
stores every pair's row, bases and base value), the parameter-gradient partials, and the
finalize kernel that sums them in a fixed order. Each build_* returns the Python function of
one kernel (closed over DT, K and the device functions); build.py jits it.
"""
from numba import config as _numba_config
from numba import cuda, types

from . import tiles
from .tiles import (FIN_TI, FIN_TO, GROUPS, PAIRS, PG_WARPS, RB, RED, RED2, RO, SPL, TB, TI, TO, WARP, WARPS,
                    staged_stride)
from .vector import load4, store4

u32 = types.uint32
u64 = types.uint64  # a 32-bit base offset widened once, plus compile-time constants that
#                     fold into the load's immediate offset


def build_backward_dx(DT, K, dev):
    """backward_dx_kernel: grid (ceil(B/32), ceil(I/8)), block (32, 8); see the package docstring."""
    K1 = K + 1
    KV = staged_stride(K)
    PAIR_VALS = PAIRS * KV
    RED_SIZE = WARPS * RB * RED
    RED2_SIZE = TB * RED2
    stage_pair, base_value, base_slope, row_dot = dev.stage_pair, dev.base_value, dev.base_slope, dev.row_dot

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
    return backward_dx_kernel


def build_backward_params(DT, K):
    """backward_params_kernel: block (32, PG_WARPS), one warp per input; see its docstring."""
    K1 = K + 1
    PGW = PG_WARPS[DT.bitwidth // 8]
    ROWS = tiles.PG_SMEM // (DT.bitwidth // 8) // (PGW * TO)   # slab rows per warp
    RW = ROWS - K                                               # span starts per row window
    SLAB = PGW * ROWS * TO
    LIST = PGW * WARP
    SCAN = 2 * LIST
    GROUP = WARP * SPL                                          # samples a warp filters at once
    LISTED = PGW * GROUP
    # load4/store4 on shared memory need its 16-byte alignment declared (numba declares the
    # element's); the simulator takes no alignment argument
    SMEM_ALIGN = None if _numba_config.ENABLE_CUDASIM else 16

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
    return backward_params_kernel


def build_backward_finalize(DT, K):
    """backward_finalize_kernel: one thread per (input, output)."""
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
    return backward_finalize_kernel
