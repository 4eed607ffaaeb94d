"""Attribution scores and pruning of nodes, edges and inputs.

    model.attribute(x)                 # model.edge_scores_[l] (I, O), model.node_scores_[l] (width[l],)
    model.feature_score_               # node_scores_[0]: importance of every input
    small = model.prune(node_th=1e-2, edge_th=3e-2)     # a new model
    fewer = model.prune_input(1e-2)    # a new model on x[:, fewer.input_ids] of the original data

Scores (pykan 0.2's backward attribution, with the paper's edge magnitude)
-------------------------------------------------------------------------
For layer l let m[i, o] = mean_b |phi_io(x_b)| be the magnitude of edge (i, o) on the data (every
edge contribution a node receives: spline edges, and symbolic edges when the layer has them).
Scores flow back from the outputs, every output starting with 1 / n_out (pykan starts from the
identity and averages over the outputs at the end; the propagation is linear, so this is the same):

    edge_scores[l][i, o] = node_scores[l+1][o] * m[i, o] / (sum_i' m[i', o] + 1e-4)
    node_scores[l][i]    = sum_o edge_scores[l][i, o]

So an edge gets the share of its output node's importance that its magnitude carries, a node the
sum over its outgoing edges, and scores are non-negative, exactly 0 for masked edges, and sum to
at most 1 per layer in a network of sum nodes.

Multiplication nodes (kanarray.core.nodes): the layer feeding a level with mult nodes has one output
per factor. In the formulas above, node_scores[l+1][o] is then the score of the node that output o
feeds: a sum node's own score, or, for each factor of a mult node, the mult node's whole score (a
product vanishes when any one factor does, so every factor carries all of its node's importance;
pykan does the same). Scores can then sum to more than 1 per layer. (pykan 0.2 uses the batch standard deviation of phi_io over that of the node
output instead of the mean magnitude over the sum of magnitudes; the mean magnitude also counts
constant offsets, so that a part removed for a low score really is small on the data.)

Pruning
-------
prune_node   a new model without the hidden nodes whose outgoing score (node_scores[l]) and
             incoming score (sum_i edge_scores[l-1][i, h]; for a mult node the smallest such
             sum over its factors) are both below the threshold; widths shrink (sum and mult
             nodes alike) and every per-edge array of the adjacent layers is sliced (a removed
             mult node takes its factor outputs of the layer before with it).
             The best node of a layer is kept if all fall below.
prune_edge   masks (in place) the edges whose score is at most the threshold.
prune        prune_node, then prune_edge on the new model, both on the same data (as pykan).
prune_input  a new model without the inputs scoring at most the threshold, or keeping exactly
             `active_inputs`; new.input_ids records the original index of every kept input.

Outputs on the data are unchanged by the removed parts where those were exactly zero, and change
by at most their (small) magnitude otherwise.

Data: every function takes the data to score on as x; without it, the data the model was last
fitted on (model.cache_data_, set by fit). Removing nodes or inputs returns a new model and
leaves the original as it was; prune_edge changes only values of the model's shape (its masks)
and acts in place, like fit and fix_symbolic.

Slicing a layer happens in one place, `subset_layer`, driven by the layer's table of arrays and
the roles of their axes (kanarray.core.layer.GROUPS). A parameter group outside it is an error.
"""
import numbers

import numpy as np

from ..core.arrays import array_module
from ..core import nodes
from ..core.layer import GROUPS
from ..core.network import check_input_ids

SCORE_EPS = 1e-4
ATTRIBUTE_CHUNK = 4096  # rows per chunk when summing |phi| (bounds the (B, I, O) temporaries)

# ---------------------------------------------------------------------- slicing
def _take(array, axes, ids):
    """array restricted to ids["in"] along its "in" axis and ids["out"] along its "out" axis."""
    xp = array_module(array)
    for axis, role in enumerate(axes):
        if role in ids:
            array = xp.take(array, xp.asarray(ids[role]), axis=axis)
    return array


def subset_layer(src, dst, in_ids, out_ids):
    """Copy into dst every per-layer array of src restricted to inputs in_ids, outputs out_ids.

    dst must have len(in_ids) inputs and len(out_ids) outputs (and src's grid and order).
    """
    ids = {"in": np.asarray(in_ids, dtype=np.int64), "out": np.asarray(out_ids, dtype=np.int64)}
    trained = {group.name for group in GROUPS if group.trained}
    unknown = sorted(set(src.params) - trained)
    if unknown:
        raise KeyError(f"layer parameter groups {unknown} are not in kanarray.core.layer.GROUPS, "
                       "which says how to slice every array of a layer")
    for group in GROUPS:
        if group.trained:
            dst.params[group.name][...] = _take(src.params[group.name], group.axes, ids)
        else:  # not a view: replaced whole
            setattr(dst, group.name, _take(getattr(src, group.name), group.axes, ids).copy())


def factor_ids(model, level, node_ids):
    """The outputs of the layer feeding `level` that make up the nodes node_ids (kanarray.core.nodes)."""
    return [c for n in node_ids
            for c in nodes.factor_columns(model.n_sum[level], model.arities[level], int(n))]


def _derived(model, input_ids, keep):
    """A new model holding the nodes keep[l] (ascending node ids per level; sum nodes come
    first) of model, with every per-layer array sliced to them."""
    n_sum = [int(np.sum(np.asarray(ids) < s)) for ids, s in zip(keep, model.n_sum)]
    arities = [[model.arities[l][n - model.n_sum[l]] for n in ids if n >= model.n_sum[l]]
               for l, ids in enumerate(keep)]
    width = [s if not a else [s, len(a)] for s, a in zip(n_sum, arities)]
    mult_arity = model.mult_arity if isinstance(model.mult_arity, int) else arities
    scaling = None if model.input_scaling is None else [v[keep[0]] for v in model.input_scaling]
    new = model.derived(width=width, mult_arity=mult_arity, input_ids=list(input_ids),
                        input_scaling=scaling)
    for l, (src, dst) in enumerate(zip(model.layers, new.layers)):
        subset_layer(src, dst, keep[l], factor_ids(model, l + 1, keep[l + 1]))
    return new


# ---------------------------------------------------------------------- attribution
def edge_magnitudes(model, x):
    """[m_l (I, O) host float64] with m_l[i, o] = mean over the rows of x of |phi_io|."""
    to_host = model.backend.to_numpy
    totals = [np.zeros((layer.in_dim, layer.out_dim)) for layer in model.layers]
    n = x.shape[0]
    for start in range(0, n, ATTRIBUTE_CHUNK):
        acts = model.forward_all(x[start:start + ATTRIBUTE_CHUNK])
        for l, layer in enumerate(model.layers):
            phi = layer.edge_activations(acts[l])
            totals[l] += to_host(abs(phi).sum(axis=0)).astype(np.float64)
    return [t / n for t in totals]


def _data(model, x):
    """The device rows to score on: x, validated, or the data of the last fit."""
    if x is not None:
        return model.as_batch(x)
    if model.cache_data_ is None:
        raise ValueError("no data to score on: pass x (the model has not been fitted, so it "
                         "holds no cache_data_)")
    return model.cache_data_


def attribution_scores(model, x=None):
    """(edge_scores, node_scores) on the data x (default: model.cache_data_): lists of host
    float64 arrays, (I, O) per layer and (n_nodes[l],) per level. Changes nothing."""
    mags = edge_magnitudes(model, _data(model, x))
    score = np.full(model.width[-1], 1.0 / model.width[-1])
    node_scores = [score]
    edge_scores = []
    for l in range(model.depth - 1, -1, -1):
        m = mags[l]
        score = score[nodes.factor_owners(model.n_sum[l + 1], model.arities[l + 1])]
        edge = m * (score / (m.sum(axis=0) + SCORE_EPS))[None, :]
        score = edge.sum(axis=1)
        edge_scores.append(edge)
        node_scores.append(score)
    return edge_scores[::-1], node_scores[::-1]


def attribute(model, x=None):
    """Set model.edge_scores_, model.node_scores_ and model.feature_score_ (node_scores_[0])
    from attribution_scores(model, x). Returns the model."""
    model.edge_scores_, model.node_scores_ = attribution_scores(model, x)
    model.feature_score_ = model.node_scores_[0]
    return model


# ---------------------------------------------------------------------- pruning
def _threshold(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def prune_node(model, threshold=1e-2, x=None):
    """A new model without the hidden nodes whose outgoing and incoming scores are both below
    threshold (the best node of a layer survives if none would)."""
    threshold = _threshold(threshold, "threshold")
    attribute(model, x)
    keep = [np.arange(model.width[0])]
    for l in range(1, model.depth):
        outgoing = model.node_scores_[l]
        into_factors = model.edge_scores_[l - 1].sum(axis=0)
        incoming = np.array([into_factors[factor_ids(model, l, [n])].min()
                             for n in range(model.n_nodes[l])])
        alive = (outgoing >= threshold) | (incoming >= threshold)
        if not alive.any():
            alive[np.argmax(outgoing)] = True
        keep.append(np.flatnonzero(alive))
    keep.append(np.arange(model.width[-1]))
    new = _derived(model, model.input_ids, keep)
    new.cache_data_ = model.cache_data_
    return new


def prune_edge(model, threshold=3e-2, x=None):
    """Mask, in place, every edge whose score is at most threshold; returns the model."""
    threshold = _threshold(threshold, "threshold")
    attribute(model, x)
    for layer, scores in zip(model.layers, model.edge_scores_):
        keep = layer.backend.asarray(scores > threshold, layer.dtype)
        layer.mask[...] = layer.mask * keep
    return model


def prune(model, node_th=1e-2, edge_th=3e-2, x=None):
    """prune_node(node_th) into a new model, then prune_edge(edge_th) on it (same data)."""
    new = prune_node(model, _threshold(node_th, "node_th"), x)
    prune_edge(new, _threshold(edge_th, "edge_th"), x)
    return new


def prune_input(model, threshold=1e-2, active_inputs=None, x=None):
    """A new model without the inputs scoring at most threshold, or with exactly active_inputs
    (indices into this model's inputs, in the order given). new.input_ids maps the kept inputs to
    their original index: feed it x_original[:, new.input_ids]."""
    if active_inputs is None:
        threshold = _threshold(threshold, "threshold")
        attribute(model, x)
        scores = model.node_scores_[0]
        keep = np.flatnonzero(scores > threshold)
        if keep.size == 0:
            keep = np.array([int(np.argmax(scores))])
    else:
        if isinstance(active_inputs, (str, bytes)) or not hasattr(active_inputs, "__len__"):
            raise TypeError(f"active_inputs must be a list of input indices, got {active_inputs!r}")
        ids = check_input_ids(active_inputs, len(active_inputs))
        if not ids or max(ids) >= model.width[0]:
            raise ValueError(f"active_inputs must be distinct indices in 0..{model.width[0] - 1}, "
                             f"got {ids!r}")
        keep = np.asarray(ids, dtype=np.int64)
    levels = [keep] + [np.arange(n) for n in model.n_nodes[1:]]
    new = _derived(model, [model.input_ids[j] for j in keep], levels)
    if model.cache_data_ is not None:
        new.cache_data_ = model.cache_data_[:, model.backend.xp.asarray(keep)]
    return new
