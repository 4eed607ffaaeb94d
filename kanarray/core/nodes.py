"""Sum and multiplication nodes (KAN 2.0): the width convention and the multiplication step.

A level of the network is an int n (n sum nodes) or a pair [n_sum, n_mult] (pykan's MultKAN
convention): n_sum sum nodes followed by n_mult multiplication nodes. Multiplication nodes live
in hidden levels only. Mult node j of a level has arity r_j (mult_arity: one int for every mult
node, or one entry per level, each an int or a list of n_mult ints, as pykan).

The layer feeding a level with [n_sum, n_mult] has n_sum + sum_j r_j outputs z (its "factors"):
the first n_sum are the sum nodes themselves, then every mult node takes the next r_j columns
and multiplies them. The next layer takes n_sum + n_mult inputs h:

    h[:, :n_sum] = z[:, :n_sum]
    h[:, n_sum + j] = prod_{c in group j} z[:, c]

Backward: dL/dz_c = dL/dh_j * prod_{c' in group j, c' != c} z[:, c'], computed from prefix and
suffix products (never by dividing by z_c, so factors that are exactly zero are handled).
kernels.reference.mult_nodes / mult_nodes_backward are the float64 oracle of both.
"""
import numbers

from .arrays import array_module


def _count(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be integers, got {value!r}")
    return int(value)


def check_width(width, mult_arity):
    """Validate width and mult_arity -> (width, n_sum, n_mult, arities, mult_arity).

    width comes back with an int for every level without mult nodes and [n_sum, n_mult] pairs
    elsewhere; n_sum, n_mult are per-level ints; arities[l] is the list of the arities of level
    l's mult nodes; mult_arity comes back as an int or as per-level lists of ints.
    """
    if isinstance(width, (str, bytes)) or not hasattr(width, "__len__") or len(width) < 2:
        raise ValueError(f"width must be a list of at least 2 layer widths, got {width!r}")
    n_sum, n_mult = [], []
    for w in width:
        if isinstance(w, (list, tuple)):
            if len(w) != 2:
                raise ValueError(f"a width entry must be an int or a pair [n_sum, n_mult], got {w!r}")
            s, m = (_count(v, "width pairs") for v in w)
        else:
            s, m = _count(w, "width entries"), 0
        if s < 0 or m < 0 or s + m < 1:
            raise ValueError(f"width entries must be node counts >= 1 or pairs [n_sum, n_mult] of "
                             f"counts >= 0 with at least one node, got {w!r}")
        n_sum.append(s)
        n_mult.append(m)
    if n_mult[0] or n_mult[-1]:
        raise ValueError(f"multiplication nodes belong to hidden levels only, got width {width!r}")
    if isinstance(mult_arity, numbers.Integral) and not isinstance(mult_arity, bool):
        if mult_arity < 2:
            raise ValueError(f"mult_arity must be an int >= 2 or per-level lists, got {mult_arity!r}")
        arities = [[int(mult_arity)] * m for m in n_mult]
        normal = int(mult_arity)
    else:
        if isinstance(mult_arity, (str, bytes)) or not hasattr(mult_arity, "__len__") \
                or len(mult_arity) != len(width):
            raise ValueError(f"mult_arity must be an int >= 2 or a list of {len(width)} per-level "
                             f"entries, got {mult_arity!r}")
        arities = []
        for m, entry in zip(n_mult, mult_arity):
            if not (isinstance(entry, numbers.Integral) or hasattr(entry, "__len__")) \
                    or isinstance(entry, (str, bytes)):
                raise ValueError(f"mult_arity needs, per level, an int >= 2 or a list of one int >= 2 "
                                 f"per mult node, got {entry!r} in {mult_arity!r}")
            level = [entry] * m if isinstance(entry, numbers.Integral) else list(entry)
            if len(level) != m or any(_count(r, "mult_arity entries") < 2 for r in level):
                raise ValueError(f"mult_arity needs, per level, an int >= 2 or one int >= 2 per "
                                 f"mult node, got {mult_arity!r} for width {width!r}")
            arities.append([int(r) for r in level])
        normal = arities
    width = [s if m == 0 else [s, m] for s, m in zip(n_sum, n_mult)]
    return width, n_sum, n_mult, arities, normal


def n_factors(n_sum, arities):
    """Outputs of the layer feeding a level: its sum nodes plus every mult node's factors."""
    return n_sum + sum(arities)


def factor_columns(n_sum, arities, node):
    """The columns of the feeding layer's outputs that make up node `node` of the level."""
    if node < n_sum:
        return [node]
    start = n_sum + sum(arities[:node - n_sum])
    return list(range(start, start + arities[node - n_sum]))


def factor_owners(n_sum, arities):
    """For every output of the layer feeding a level, the node of the level it belongs to."""
    return list(range(n_sum)) + [n_sum + j for j, r in enumerate(arities) for _ in range(r)]


def multiply(z, n_sum, arities):
    """h (B, n_sum + len(arities)) from the factors z (B, n_sum + sum(arities))."""
    xp = array_module(z)
    columns = [z[:, :n_sum]]
    start = n_sum
    for r in arities:
        columns.append(z[:, start:start + r].prod(axis=1, keepdims=True))
        start += r
    return xp.concatenate(columns, axis=1)


def multiply_backward(z, g, n_sum, arities):
    """dL/dz (B, n_sum + sum(arities)) from the factors z and g = dL/dh."""
    xp = array_module(z)
    dz = xp.empty_like(z)
    dz[:, :n_sum] = g[:, :n_sum]
    start = n_sum
    for j, r in enumerate(arities):
        group = z[:, start:start + r]
        ones = xp.ones_like(group[:, :1])
        before = xp.concatenate([ones, xp.cumprod(group[:, :-1], axis=1)], axis=1)
        after = xp.concatenate([xp.cumprod(group[:, :0:-1], axis=1)[:, ::-1], ones], axis=1)
        dz[:, start:start + r] = g[:, n_sum + j:n_sum + j + 1] * before * after
        start += r
    return dz


def level_nodes(n_sum, n_mult):
    """Node count of every level."""
    return [s + m for s, m in zip(n_sum, n_mult)]

