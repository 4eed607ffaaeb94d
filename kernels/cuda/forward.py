"""The CUDA kernels that stage bases and go forward, for one float type DT and spline order K:
span_basis, the fused forward, and the dense path's basis matrix. Each build_* returns the
Python function of one kernel (closed over DT, K and the device functions); build.py jits it.
"""
from numba import cuda, types

from .tiles import PAIRS, RB, RO, TB, TI, TO, WARP, WARPS, staged_stride
from .vector import load4

u32 = types.uint32
u64 = types.uint64  # a 32-bit base offset widened once, plus compile-time constants that
#                     fold into the load's immediate offset


def build_span_basis(DT, K, dev):
    """span_basis_kernel: one thread per (sample, input): its span, K+1 bases and slopes."""
    K1 = K + 1
    stage_pair = dev.stage_pair

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
    return span_basis_kernel


def build_forward(DT, K, dev):
    """forward_kernel: grid (ceil(B/32), O/128), block (32, 8); see the package docstring."""
    K1 = K + 1
    KV = staged_stride(K)
    PAIR_VALS = PAIRS * KV
    ACC = RB * RO
    stage_pair, base_value = dev.stage_pair, dev.base_value

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
    return forward_kernel


def build_dense_basis(DT, K, dev):
    """dense_basis_kernel: one thread per (sample, input) scatters its row of the basis matrix."""
    K1 = K + 1
    stage_pair, base_value = dev.stage_pair, dev.base_value

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
    return dense_basis_kernel
