"""The CUDA kernels' device functions for one float type DT and spline order K: span search,
the Cox-de Boor triangle, the base function, the staging of one (sample, input) pair, and the
dot product of four outputs with a coefficient row.
"""
import math
from typing import NamedTuple

from numba import cuda, types

from .tiles import RO
from .vector import load2

u64 = types.uint64  # a 32-bit base offset widened once, plus compile-time constants that
#                     fold into the load's immediate offset


class Device(NamedTuple):
    """The device functions of one (DT, K), each compiled inline into the kernels that call it."""
    find_span: object
    basis: object
    base_value: object
    base_slope: object
    stage_pair: object
    row_dot: object


def device_functions(DT, K):
    """Device(...) for the Numba float type DT and the spline order K (a compile-time constant)."""
    K1 = K + 1

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

    return Device(find_span, basis, base_value, base_slope, stage_pair, row_dot)
