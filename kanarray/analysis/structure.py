"""The structure of a function, read from a trained surrogate's exact input derivatives.

    found = structure(model, x_test)     # model: a KAN that fits f well; x: held-out rows (N, d)
    found["irrelevant"]                  # inputs f does not depend on, e.g. [3]
    found["additive"]                    # f = g(x_0) + h(x_1, x_2): [[0], [1, 2]]
    found["multiplicative"]              # f = g(x_0) * h(x_1, x_2) (f of one sign): [[0], [1, 2]]
    found["symmetries"]                  # f depends on x_i and x_j only through x_i*x_j, ...

Every test compares derivatives of the surrogate, which the backward pass gives exactly
(`input_jacobian`), on the rows x and on the same rows with one column shuffled (its values
drawn from the other rows, so the points stay where the data are):

- input i is irrelevant when its share of the output's variation, rms(df/dx_i) * std(x_i) over
  the sum of that over all inputs, is below `irrelevant` (a surrogate's derivative along an
  input f ignores is small but not 0: about 0.001-0.01 of the variation on the toys of
  tests/test_structure.py, whose relevant inputs carry 0.17 or more);
- inputs i and j interact when df/dx_i changes as x_j is shuffled (or df/dx_j as x_i is):
  rms(change) / rms(df/dx_i) above `tol`. f is a sum g(x_A) + h(x_B) exactly when no input of A
  interacts with one of B, so the additive groups are the connected parts of the interaction
  graph (irrelevant inputs left out);
- the same on log|f| (d log|f| / dx_i = (df/dx_i) / f) gives the multiplicative groups, when f
  keeps one sign and stays away from 0 on the rows (min |f| >= `away_from_zero` x rms(f));
- a pair (i, j) of relevant inputs in one additive group depends on x_i and x_j only through
    x_i + x_j  when  df/dx_i = df/dx_j,          x_i - x_j  when  df/dx_i = -df/dx_j,
    x_i * x_j  when  x_i df/dx_i = x_j df/dx_j,  x_i / x_j  when  x_i df/dx_i = -x_j df/dx_j,
  each tested as rms(left - right) / (rms(left) + rms(right)) below `symmetry_tol`.

The scores measure the surrogate, not f: where f has the structure a surrogate scores about its
relative derivative error, so the tolerances sit between that and the structure's own signal.
On the toys of tests/test_structure.py (surrogates of held-out RMSE 1e-4 to 2e-2) absent
interactions score up to 0.11 and present ones 0.30 or more (tol 0.2); true symmetries score
up to 0.05 and false ones 0.18 or more (symmetry_tol 0.1). A weaker interaction than `tol`
reads as none: the groups are a hypothesis to test by fitting, not a proof.
"""
import numpy as np

from ..core.checks import check_int, check_real

SYMMETRIES = ("x_i + x_j", "x_i - x_j", "x_i * x_j", "x_i / x_j")


def input_jacobian(model, x):
    """d outputs / d inputs of a model at raw inputs x (N, width[0]), by the backward pass (one
    per output) -> host float64 (N, width[-1], width[0])."""
    return _values_and_jacobian(model, model.as_batch(x))[1]


def structure(model, x, output=0, tol=0.2, symmetry_tol=0.1, irrelevant=0.02,
              away_from_zero=0.05, seed=0):
    """The module docstring's tests of output `output` of a trained model on rows x (N, d),
    ideally held out from training -> {"irrelevant": [i], "additive": [[i, ...], ...],
    "multiplicative": groups or None (f changes sign or nears 0), "symmetries": [{"inputs":
    (i, j), "kind": one of SYMMETRIES, "score"}], "shares": (d,) each input's share,
    "interaction": (d, d) scores on f, "log_interaction": (d, d) scores on log|f| or None}.
    The groups list the relevant inputs only; seed: the shuffle of each column."""
    xd = model.as_batch(x)
    output = check_int(output, "output", 0)
    if output >= model.width[-1]:
        raise ValueError(f"output must be below the model's {model.width[-1]} outputs, got {output}")
    tol = check_real(tol, "tol", minimum=0)
    symmetry_tol = check_real(symmetry_tol, "symmetry_tol", minimum=0)
    irrelevant = check_real(irrelevant, "irrelevant", minimum=0)
    away_from_zero = check_real(away_from_zero, "away_from_zero", minimum=0)
    rng = np.random.default_rng(check_int(seed, "seed", 0))
    x = np.asarray(model.backend.to_numpy(xd), dtype=np.float64)
    n, d = x.shape
    if n < 2:
        raise ValueError(f"x must hold at least 2 rows, got {n}")
    f, jac = _values_and_jacobian(model, xd)
    f, grad = f[:, output], jac[:, output, :]                          # (N,), (N, d)
    moved_f, moved_grad = [], []                                       # with column j shuffled
    for j in range(d):
        moved = x.copy()
        moved[:, j] = x[rng.permutation(n), j]
        fj, jj = _values_and_jacobian(model, model.as_batch(moved))
        moved_f.append(fj[:, output])
        moved_grad.append(jj[:, output, :])

    shares = _rms(grad, axis=0) * x.std(axis=0)
    shares = shares / shares.sum() if shares.sum() > 0 else shares
    relevant = [i for i in range(d) if shares[i] >= irrelevant]
    interaction = _interaction(grad, moved_grad, relevant)
    out = {"irrelevant": [i for i in range(d) if i not in relevant],
           "additive": _groups(interaction, relevant, tol), "multiplicative": None,
           "symmetries": [], "shares": shares, "interaction": interaction,
           "log_interaction": None}
    all_f = np.concatenate([f, *moved_f])
    if np.all(np.sign(all_f) == np.sign(f[0])) and np.min(np.abs(all_f)) >= away_from_zero * _rms(f):
        out["log_interaction"] = _interaction(grad / f[:, None],
                                              [g / m[:, None] for g, m in zip(moved_grad, moved_f)],
                                              relevant)
        out["multiplicative"] = _groups(out["log_interaction"], relevant, tol)
    for group in out["additive"]:
        for a, i in enumerate(group):
            for j in group[a + 1:]:
                out["symmetries"] += _symmetries(x, grad, i, j, symmetry_tol)
    return out


def _values_and_jacobian(model, xd):
    """(outputs (N, O), d outputs / d inputs (N, O, d)), host float64, at device rows xd."""
    acts = model.forward_all(xd)
    xp = model.backend.xp
    grads = model.views(xp.empty(model.num_params, dtype=model.np_dtype))
    columns = []
    for o in range(model.width[-1]):
        g = xp.zeros(acts[-1].shape, dtype=model.np_dtype)
        g[:, o] = 1
        dx = model.backward(acts, g, grads, need_dx=True)
        columns.append(np.asarray(model.backend.to_numpy(dx), dtype=np.float64))
    values = np.asarray(model.backend.to_numpy(acts[-1]), dtype=np.float64)
    return values, np.stack(columns, axis=1)


def _interaction(grad, moved_grad, relevant):
    """(d, d) scores: [i, j] = the larger of how much d/dx_i moves when x_j is shuffled and
    d/dx_j when x_i is, each relative to that derivative's rms (0 off the relevant inputs)."""
    d = grad.shape[1]
    change = np.zeros((d, d))
    for j in relevant:
        for i in relevant:
            if i != j:
                scale = _rms(grad[:, i])
                change[i, j] = _rms(moved_grad[j][:, i] - grad[:, i]) / scale if scale > 0 else 0.0
    return np.maximum(change, change.T)


def _groups(interaction, relevant, tol):
    """The connected parts of the graph of relevant inputs joined where interaction > tol,
    each sorted, ordered by their first input."""
    groups, left = [], list(relevant)
    while left:
        group, frontier = {left[0]}, [left[0]]
        while frontier:
            i = frontier.pop()
            for j in left:
                if j not in group and interaction[i, j] > tol:
                    group.add(j)
                    frontier.append(j)
        groups.append(sorted(group))
        left = [i for i in left if i not in group]
    return groups


def _symmetries(x, grad, i, j, tol):
    """The SYMMETRIES that inputs i and j of one additive group satisfy, each with its score."""
    a, b = grad[:, i], grad[:, j]
    pairs = {"x_i + x_j": (a, b), "x_i - x_j": (a, -b),
             "x_i * x_j": (x[:, i] * a, x[:, j] * b), "x_i / x_j": (x[:, i] * a, -x[:, j] * b)}
    found = []
    for kind in SYMMETRIES:
        left, right = pairs[kind]
        size = _rms(left) + _rms(right)
        score = _rms(left - right) / size if size > 0 else np.inf
        if score < tol:
            found.append({"inputs": (i, j), "kind": kind, "score": float(score)})
    return found


def _rms(a, axis=None):
    return np.sqrt(np.mean(np.square(a), axis=axis))
