"""The dense path's host functions: a basis matrix A = [basis | base] (B, I*(G+k+1)) times the
weights by xp.matmul (cuBLAS on a GPU); dx from the fused dx kernel."""
from .build import _kernel
from .fused import _fused_dx
from .host import _flat, _stream, _xp, knot_tables
from .tiles import _cdiv, _check_k


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
