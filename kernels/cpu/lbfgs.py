"""The L-BFGS search direction as one compiled loop (the optimizer's cost on small models)."""
import numpy as np
from numba import njit

from .cache import CACHE


@njit(cache=CACHE)
def lbfgs_direction(s_hist, y_hist, rho, gamma, grad):
    """-H grad by the L-BFGS two-loop recursion (Nocedal & Wright, Algorithm 7.4) over the
    pairs s_hist, y_hist (m, n), oldest first, rho (m,) = 1 / (s . y), initial scaling gamma.
    One compiled loop instead of 4m array operations (on small models those were the
    optimizer's cost); sums run in index order."""
    m, n = s_hist.shape
    q = -grad
    alphas = np.empty(m, np.float64)
    for j in range(m - 1, -1, -1):
        dot = 0.0
        for t in range(n):
            dot += s_hist[j, t] * q[t]
        alphas[j] = rho[j] * dot
        a = q.dtype.type(alphas[j])
        for t in range(n):
            q[t] -= a * y_hist[j, t]
    r = q.dtype.type(gamma) * q
    for j in range(m):
        dot = 0.0
        for t in range(n):
            dot += y_hist[j, t] * r[t]
        c = r.dtype.type(alphas[j] - rho[j] * dot)
        for t in range(n):
            r[t] += c * s_hist[j, t]
    return r
