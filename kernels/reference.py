"""Plain NumPy float64 oracle of every kernel: slow, dense, obviously right.

Nothing here is fast and nothing here shares code with the fast kernels; only the base
function and its codes come from common.py, as they do for the layer. The basis is built with
the dense Cox–de Boor recursion over the whole knot vector (every one of the G + k bases, for
every sample), so a fast kernel that evaluates only the k + 1 non-zero bases of a span is
checked against an independent computation. Only tests import this module.

Shapes used throughout:
    x       (B, I)           inputs of a layer
    knots   (I, G + 2k + 1)  one strictly increasing knot vector per input
    coef    (I, G + k, O)    spline coefficients, o fastest
    w_base, w_spline, mask   (I, O)
    bias    (O,)
    g       (B, O)           upstream gradient dL/dy
Base-function codes: 0 = silu, 1 = identity, 2 = zero (see BASE_CODES).

A function here takes the arguments of its fast twin of the same name (kernels/cpu/, kernels/cuda/)
in the same order, less the outputs, which it returns; where the twin reads a BasisTape, it takes
x, knots and base instead.
"""
import numpy as np

from .common import BASE_CODES, base_derivatives, base_function  # noqa: F401  (BASE_CODES: part of the oracle's interface)


def find_spans(x, knots):
    """Span index s with knots[i, s] <= x[b, i] < knots[i, s + 1]; -1 outside [t_0, t_last).

    x (B, I), knots (I, n) -> (B, I) int64.
    """
    knots = np.asarray(knots, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    n = knots.shape[1]
    spans = np.empty(x.shape, dtype=np.int64)
    for i in range(knots.shape[0]):
        s = np.searchsorted(knots[i], x[:, i], side="right") - 1
        s[(s < 0) | (s >= n - 1)] = -1
        spans[:, i] = s
    return spans


def dense_basis(x, knots, k):
    """All G + k order-k B-spline bases at every sample, and their derivatives.

    The recursion starts from the indicator of every knot interval (order 0) and raises the
    order k times, exactly as written in de Boor's formula:
        B_{m,p}(x) = (x - t_m) / (t_{m+p} - t_m) B_{m,p-1}(x)
                   + (t_{m+p+1} - x) / (t_{m+p+1} - t_{m+1}) B_{m+1,p-1}(x)
        B'_{m,p}(x) = p * ( B_{m,p-1} / (t_{m+p} - t_m) - B_{m+1,p-1} / (t_{m+p+1} - t_{m+1}) )

    x (B, I), knots (I, n) -> values, derivs: (B, I, n - 1 - k)
    """
    t = np.asarray(knots, dtype=np.float64)[None, :, :]
    xx = np.asarray(x, dtype=np.float64)[:, :, None]
    basis = ((xx >= t[:, :, :-1]) & (xx < t[:, :, 1:])).astype(np.float64)
    for p in range(1, k + 1):
        lower = basis
        left = (xx - t[:, :, : -(p + 1)]) / (t[:, :, p:-1] - t[:, :, : -(p + 1)])
        right = (t[:, :, p + 1 :] - xx) / (t[:, :, p + 1 :] - t[:, :, 1:-p])
        basis = left * lower[:, :, :-1] + right * lower[:, :, 1:]
    derivs = k * (
        lower[:, :, :-1] / (t[:, :, k:-1] - t[:, :, : -(k + 1)])
        - lower[:, :, 1:] / (t[:, :, k + 1 :] - t[:, :, 1:-k])
    )
    return basis, derivs


def span_basis(x, knots, k):
    """The k + 1 bases that can be non-zero at x (indices s-k .. s of its span s).

    Gathered from dense_basis; entries whose basis index falls outside 0 .. G+k-1, and every
    entry of a sample outside the knot range, are zero.
    -> spans (B, I), values (B, I, k+1), derivs (B, I, k+1)
    """
    spans = find_spans(x, knots)
    dense, ddense = dense_basis(x, knots, k)
    n_basis = dense.shape[2]
    B, I = spans.shape
    values = np.zeros((B, I, k + 1))
    derivs = np.zeros((B, I, k + 1))
    for r in range(k + 1):
        m = spans - k + r
        ok = (spans >= 0) & (m >= 0) & (m < n_basis)
        mm = np.clip(m, 0, n_basis - 1)
        b_idx, i_idx = np.nonzero(ok)
        values[b_idx, i_idx, r] = dense[b_idx, i_idx, mm[b_idx, i_idx]]
        derivs[b_idx, i_idx, r] = ddense[b_idx, i_idx, mm[b_idx, i_idx]]
    return spans, values, derivs


def basis_tape(x, knots, k, base, n_terms):
    """The CPU kernels' BasisTape of x, from span_basis and base_function: every sample's
    window w = clip(s - k, 0, G - 1) (0 outside the knot range), the first of the k+1
    coefficient rows it uses, and the value and derivative of the bases w .. w + n_terms - 1
    there (0 for a row that is not among s-k .. s, and past w + k).
    -> window (I, B), values (I, n_terms, B), derivs (I, n_terms, B), base_val (I, B), base_slope (I, B)
    """
    spans, vals, ders = span_basis(x, knots, k)
    n_basis = np.asarray(knots).shape[1] - 1 - k
    window = np.where(spans >= 0, np.clip(spans - k, 0, n_basis - k - 1), 0)
    B, I = spans.shape
    values = np.zeros((I, n_terms, B))
    derivs = np.zeros((I, n_terms, B))
    for p in range(k + 1):
        r = p + window - (spans - k)  # the term of the span at window row p
        ok = (spans >= 0) & (r >= 0) & (r <= k)
        b_idx, i_idx = np.nonzero(ok)
        values[i_idx, p, b_idx] = vals[b_idx, i_idx, r[b_idx, i_idx]]
        derivs[i_idx, p, b_idx] = ders[b_idx, i_idx, r[b_idx, i_idx]]
    base_val, base_slope = base_function(x, base)
    return window.T, values, derivs, base_val.T, base_slope.T


def layer_forward(x, knots, coef, w_base, w_spline, bias, mask, k, base):
    """y[b, o] = bias[o] + sum_i mask (w_base base(x) + w_spline sum_m coef[i, m, o] B_im(x))."""
    basis, _ = dense_basis(x, knots, k)
    base_val, _ = base_function(x, base)
    spline = np.einsum("bim,imo->bio", basis, np.asarray(coef, dtype=np.float64))
    phi = mask * (w_base * base_val[:, :, None] + w_spline * spline)
    return np.asarray(bias, dtype=np.float64) + phi.sum(axis=1)


def layer_backward(x, g, knots, coef, w_base, w_spline, mask, k, base):
    """Gradients of sum(g * y) with respect to x and every parameter of the layer.

    -> dx (B, I), dcoef (I, G+k, O), dw_base (I, O), dw_spline (I, O), dbias (O,)
    """
    g = np.asarray(g, dtype=np.float64)
    coef = np.asarray(coef, dtype=np.float64)
    basis, dbasis = dense_basis(x, knots, k)
    base_val, base_der = base_function(x, base)
    spline = np.einsum("bim,imo->bio", basis, coef)
    dspline = np.einsum("bim,imo->bio", dbasis, coef)
    gm = g[:, None, :] * mask  # (B, I, O)
    dcoef = np.einsum("bim,bio->imo", basis, gm * w_spline)
    dw_spline = np.einsum("bio,bio->io", gm, spline)
    dw_base = np.einsum("bio,bi->io", gm, base_val)
    dbias = g.sum(axis=0)
    dx = np.einsum("bio,bio->bi", gm, w_base * base_der[:, :, None] + w_spline * dspline)
    return dx, dcoef, dw_base, dw_spline, dbias


def dense_basis_derivatives(x, knots, k, order):
    """All G + k order-k bases at every sample and their derivatives up to `order` (<= 3).

    Every order p = 0..k of the recursion is kept, and the d-th derivative of an order-p basis
    comes from the (d-1)-th of order p - 1:
        D^d B_{m,p} = p * ( D^(d-1) B_{m,p-1} / (t_{m+p} - t_m) - D^(d-1) B_{m+1,p-1} / (t_{m+p+1} - t_{m+1}) )
    (the derivatives of order-0 indicators are 0).

    x (B, I), knots (I, n) -> (order + 1, B, I, n - 1 - k): values, first derivatives, ...
    """
    t = np.asarray(knots, dtype=np.float64)[None, :, :]
    xx = np.asarray(x, dtype=np.float64)[:, :, None]
    level = [((xx >= t[:, :, :-1]) & (xx < t[:, :, 1:])).astype(np.float64)]  # level[d] at order p
    level += [np.zeros_like(level[0]) for _ in range(order)]
    for p in range(1, k + 1):
        left = t[:, :, p:-1] - t[:, :, : -(p + 1)]
        right = t[:, :, p + 1 :] - t[:, :, 1:-p]
        lower = level
        level = [(xx - t[:, :, : -(p + 1)]) / left * lower[0][:, :, :-1]
                 + (t[:, :, p + 1 :] - xx) / right * lower[0][:, :, 1:]]
        level += [p * (lower[d - 1][:, :, :-1] / left - lower[d - 1][:, :, 1:] / right)
                  for d in range(1, order + 1)]
    return np.stack(level)


def _edge_jet(x, knots, coef, w_base, w_spline, mask, k, base, order):
    """phi of every edge and its derivatives in x up to `order`: (order + 1, B, I, O)."""
    basis = dense_basis_derivatives(x, knots, k, order)
    base_d = base_derivatives(x, base)
    coef = np.asarray(coef, dtype=np.float64)
    mask, w_base, w_spline = (np.asarray(a, dtype=np.float64) for a in (mask, w_base, w_spline))
    return np.stack([mask * (w_base * base_d[d][:, :, None]
                             + w_spline * np.einsum("bim,imo->bio", basis[d], coef))
                     for d in range(order + 1)])


def layer_jet_forward(x, dx, d2x, pairs, knots, coef, w_base, w_spline, bias, mask, k, base):
    """A layer's outputs with their derivatives along D input directions (forward mode):

        y[b, o]        = bias[o] + sum_i phi_io(x[b, i])
        dy[b, o, a]    = sum_i phi1_io dx[b, i, a]
        d2y[b, o, p]   = sum_i phi2_io dx[b, i, a_p] dx[b, i, b_p] + phi1_io d2x[b, i, p]

    (phi1, phi2: the first and second derivatives of phi at x[b, i]).
    x (B, I), dx (B, I, D) = dx/dX_a, d2x (B, I, P) = d2x/dX_a_p dX_b_p for the P requested
    pairs (P, 2) of directions -> y (B, O), dy (B, O, D), d2y (B, O, P).
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    dx, d2x = np.asarray(dx, dtype=np.float64), np.asarray(d2x, dtype=np.float64)
    phi = _edge_jet(x, knots, coef, w_base, w_spline, mask, k, base, 2)
    y = np.asarray(bias, dtype=np.float64) + phi[0].sum(axis=1)
    dy = np.einsum("bio,bia->boa", phi[1], dx)
    outer = dx[:, :, pairs[:, 0]] * dx[:, :, pairs[:, 1]]  # (B, I, P)
    d2y = np.einsum("bio,bip->bop", phi[2], outer) + np.einsum("bio,bip->bop", phi[1], d2x)
    return y, dy, d2y


def layer_jet_backward(x, dx, d2x, pairs, gy, gdy, gd2y, knots, coef, w_base, w_spline, mask, k, base):
    """Gradients of sum(gy y) + sum(gdy dy) + sum(gd2y d2y) of layer_jet_forward with respect to
    x, dx, d2x and every parameter. Per (b, i, o) the weights of phi, phi1 and phi2 are
        A0 = gy[b,o],  A1 = sum_a gdy[b,o,a] dx[b,i,a] + sum_p gd2y[b,o,p] d2x[b,i,p],
        A2 = sum_p gd2y[b,o,p] dx[b,i,a_p] dx[b,i,b_p]:
    gx = sum_o A0 phi1 + A1 phi2 + A2 phi3, and each parameter's gradient is A0, A1, A2 times its
    derivative of phi, phi1, phi2.
    -> gx (B, I), gdx (B, I, D), gd2x (B, I, P), dcoef, dw_base, dw_spline, dbias
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    dx, d2x = np.asarray(dx, dtype=np.float64), np.asarray(d2x, dtype=np.float64)
    gy, gdy, gd2y = (np.asarray(a, dtype=np.float64) for a in (gy, gdy, gd2y))
    coef = np.asarray(coef, dtype=np.float64)
    mask, w_base, w_spline = (np.asarray(a, dtype=np.float64) for a in (mask, w_base, w_spline))
    phi = _edge_jet(x, knots, coef, w_base, w_spline, mask, k, base, 3)
    basis = dense_basis_derivatives(x, knots, k, 2)
    base_d = base_derivatives(x, base)
    outer = dx[:, :, pairs[:, 0]] * dx[:, :, pairs[:, 1]]
    weights = [np.broadcast_to(gy[:, None, :], phi[0].shape),
               np.einsum("boa,bia->bio", gdy, dx) + np.einsum("bop,bip->bio", gd2y, d2x),
               np.einsum("bop,bip->bio", gd2y, outer)]
    gx = sum((weights[d] * phi[d + 1]).sum(axis=2) for d in range(3))
    gdx = np.einsum("boa,bio->bia", gdy, phi[1])
    for p, (a, b) in enumerate(pairs):
        through = (gd2y[:, None, :, p] * phi[2]).sum(axis=2)  # (B, I)
        gdx[:, :, a] += through * dx[:, :, b]
        gdx[:, :, b] += through * dx[:, :, a]
    gd2x = np.einsum("bop,bio->bip", gd2y, phi[1])
    dcoef = sum(np.einsum("bim,bio->imo", basis[d], weights[d] * mask * w_spline) for d in range(3))
    dw_base = sum(np.einsum("bio,bi->io", weights[d] * mask, base_d[d]) for d in range(3))
    dw_spline = sum(np.einsum("bio,bio->io", weights[d] * mask, np.einsum("bim,imo->bio", basis[d], coef))
                    for d in range(3))
    return gx, gdx, gd2x, dcoef, dw_base, dw_spline, gy.sum(axis=0)


def symbolic_forward(x, funcs, params, weight):
    """Symbolic branch of a layer: y[b, o] = sum_i weight[i,o] (c f(a x[b,i] + b) + d).

    funcs (I, O) nested lists of (f, df) callables or None (no symbolic function on that edge),
    params (I, O, 4) holding (a, b, c, d), weight (I, O) = mask * symbolic_mask. -> y (B, O)
    """
    x = np.asarray(x, dtype=np.float64)
    params = np.asarray(params, dtype=np.float64)
    y = np.zeros((x.shape[0], params.shape[1]))
    for i, row in enumerate(funcs):
        for o, pair in enumerate(row):
            if pair is None:
                continue
            a, b, c, d = params[i, o]
            y[:, o] += weight[i][o] * (c * np.asarray(pair[0](a * x[:, i] + b)) + d)
    return y


def symbolic_backward(x, g, funcs, params, weight):
    """Gradients of sum(g * symbolic_forward(...)) with respect to x and (a, b, c, d).

    -> dx (B, I), dparams (I, O, 4); zero for edges without a function.
    """
    x = np.asarray(x, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    params = np.asarray(params, dtype=np.float64)
    dx = np.zeros(x.shape)
    dparams = np.zeros(params.shape)
    for i, row in enumerate(funcs):
        for o, pair in enumerate(row):
            if pair is None:
                continue
            f, df = pair
            a, b, c, d = params[i, o]
            z = a * x[:, i] + b
            gw = g[:, o] * weight[i][o]
            slope = c * np.asarray(df(z))
            dparams[i, o] = [np.sum(gw * slope * x[:, i]), np.sum(gw * slope),
                             np.sum(gw * np.asarray(f(z))), np.sum(gw)]
            dx[:, i] += gw * slope * a
    return dx, dparams


def spline_activations(x, knots, coef, w_base, w_spline, mask, k, base):
    """Every edge's spline-branch activation phi (B, I, O): layer_forward before the sum over i
    and the bias.

    phi[b, i, o] = mask (w_base base(x[b,i]) + w_spline sum_m coef[i, m, o] B_im(x[b,i])),
    so that layer_forward = bias + phi.sum(axis=1). Oracle of the regulariser (kanarray.training.regularize).
    """
    basis, _ = dense_basis(x, knots, k)
    base_val, _ = base_function(x, base)
    spline = np.einsum("bim,imo->bio", basis, np.asarray(coef, dtype=np.float64))
    return np.asarray(mask, dtype=np.float64) * (np.asarray(w_base, dtype=np.float64) * base_val[:, :, None]
                                                 + np.asarray(w_spline, dtype=np.float64) * spline)


def mult_nodes(z, n_sum, arities):
    """Multiplication step into a level of n_sum sum nodes and mult nodes of the given arities:
    z (B, n_sum + sum(arities)) -> h (B, n_sum + len(arities)); h keeps the first n_sum columns
    and each mult node is the product of the next arity columns."""
    z = np.asarray(z, dtype=np.float64)
    h = np.empty((z.shape[0], n_sum + len(arities)))
    h[:, :n_sum] = z[:, :n_sum]
    col = n_sum
    for j, r in enumerate(arities):
        product = np.ones(z.shape[0])
        for c in range(col, col + r):
            product = product * z[:, c]
        h[:, n_sum + j] = product
        col += r
    return h


def mult_nodes_backward(z, g, n_sum, arities):
    """dL/dz of mult_nodes for g = dL/dh: a factor's gradient is g of its node times the product
    of the node's other factors (an explicit product, no division)."""
    z = np.asarray(z, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    dz = np.empty_like(z)
    dz[:, :n_sum] = g[:, :n_sum]
    col = n_sum
    for j, r in enumerate(arities):
        for c in range(col, col + r):
            others = np.ones(z.shape[0])
            for c2 in range(col, col + r):
                if c2 != c:
                    others = others * z[:, c2]
            dz[:, c] = g[:, n_sum + j] * others
        col += r
    return dz


def edge_magnitude_sums(x, knots, coef, w_base, w_spline, mask, k, base):
    """sum_b |phi[b, i, o]| of spline_activations: (I, O), the regulariser's L1 magnitudes times B."""
    return np.abs(spline_activations(x, knots, coef, w_base, w_spline, mask, k, base)).sum(axis=0)


def edge_magnitude_backward(x, knots, coef, w_base, w_spline, mask, k, base, scale):
    """Gradient of sum_{i,o} scale[i,o] / mask[i,o] sum_b |phi[b,i,o]| (scale = the weight of
    each edge's magnitude times mask, so a pruned edge adds nothing), sign(0) = 0.
    -> dx (B, I), dcoef (I, G+k, O), dw_base (I, O), dw_spline (I, O)
    """
    coef = np.asarray(coef, dtype=np.float64)
    basis, dbasis = dense_basis(x, knots, k)
    base_val, base_der = base_function(x, base)
    phi = spline_activations(x, knots, coef, w_base, w_spline, mask, k, base)
    spline = np.einsum("bim,imo->bio", basis, coef)
    dspline = np.einsum("bim,imo->bio", dbasis, coef)
    q = np.sign(phi) * scale  # (B, I, O)
    dw_base = np.einsum("bio,bi->io", q, base_val)
    dw_spline = np.einsum("bio,bio->io", q, spline)
    dcoef = np.einsum("bim,bio->imo", basis, q * w_spline)
    dx = np.einsum("bio,bio->bi", q, w_base * base_der[:, :, None] + w_spline * dspline)
    return dx, dcoef, dw_base, dw_spline


def lbfgs_direction(s_hist, y_hist, rho, gamma, grad):
    """-H grad of L-BFGS by the two-loop recursion (Nocedal & Wright, Algorithm 7.4), pairs
    oldest first, in float64."""
    q = -np.asarray(grad, dtype=np.float64)
    s_hist, y_hist = np.asarray(s_hist, dtype=np.float64), np.asarray(y_hist, dtype=np.float64)
    alphas = {}
    for j in reversed(range(len(rho))):
        alphas[j] = rho[j] * (s_hist[j] @ q)
        q = q - alphas[j] * y_hist[j]
    r = gamma * q
    for j in range(len(rho)):
        r = r + (alphas[j] - rho[j] * (y_hist[j] @ r)) * s_hist[j]
    return r
