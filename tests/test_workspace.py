"""Training evaluations reuse a workspace (buffers and basis tapes) and give the bits of a fresh
evaluation: the tapes never go stale when the parameters, the knots, the input map or the rows
change."""
import numpy as np

import kanarray
from kanarray.kernels import cpu
from kanarray.training.objective import Objective, evaluate
from kanarray.training.regularize import Regularization


def fresh(model, x, y, point):
    """Loss and gradient at `point` with no workspace: every buffer and basis computed anew."""
    ev = evaluate(model, model.as_batch(x), model.as_labels(y, x.shape[0]), point=point)
    return ev.loss, ev.grad


def problem(seed=0, rows=300):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (rows, 3))
    y = np.sin(np.pi * x[:, :1]) * x[:, 1:2] + x[:, 2:] ** 2
    data = {"train_input": x, "train_label": y, "test_input": x[:20], "test_label": y[:20]}
    return data, kanarray.KAN([3, 4, 1], grid=6, k=3, seed=seed)


def test_workspace_evaluations_equal_fresh_ones_through_every_change():
    data, model = problem()
    objective = Objective(model, data)
    rng = np.random.default_rng(1)
    x, y = data["train_input"], data["train_label"]
    for step in range(6):
        params = model.params + rng.normal(0, 0.05, model.num_params)
        loss, grad = objective.value_and_grad(params)[:2]
        want_loss, want_grad = fresh(model, x, y, params)
        assert loss == want_loss and np.array_equal(grad, want_grad), step
        if step == 1:
            objective.update_grid()                            # the knots move
        if step == 2:
            model.layers[0].knots[:, 3] -= 1e-3                # moved by hand, e.g. in a callback
        if step == 3:
            model.set_scaling(x * 1.5, y)                      # the input map changes
    rows = np.sort(rng.choice(x.shape[0], 100, replace=False))
    for batch in (rows, rows.copy(), np.sort(rng.choice(x.shape[0], 100, replace=False))):
        objective.select(batch)                                # other rows, same batch size
        loss, grad = objective.value_and_grad(model.params.copy())[:2]
        want_loss, want_grad = fresh(model, x[batch], y[batch], model.params)
        assert loss == want_loss
        assert np.array_equal(grad, want_grad)


def test_first_layer_basis_is_computed_once_for_fixed_rows(monkeypatch):
    data, model = problem()
    objective = Objective(model, data)
    calls = []
    real = cpu.basis_tape
    monkeypatch.setattr(cpu, "basis_tape", lambda x, *a: (calls.append(x.shape[1]), real(x, *a)))
    for _ in range(3):
        objective.value_and_grad(model.params.copy())
    assert calls == [3, 4, 4, 4]  # the inputs' tape once, the hidden layer's at every evaluation
    objective.update_grid()
    calls.clear()
    objective.value_and_grad(model.params.copy())
    assert calls == [3, 4]


def test_regularised_evaluations_match_the_dense_regulariser():
    """With a workspace the regulariser's magnitudes come from the kernels on the basis tapes;
    without one, from the dense arrays that tests/test_regularize.py holds to finite
    differences. The two agree to rounding, also with pruned edges."""
    data, model = problem(seed=2)
    model.layers[0].mask[1, 2] = 0
    reg = Regularization(lamb=0.1, lamb_entropy=2.0, lamb_coef=0.01, lamb_coefdiff=0.01)
    objective = Objective(model, data, reg=reg)
    x, y = data["train_input"], data["train_label"]
    for _ in range(2):
        model.params = model.params * 1.1
        loss, grad = objective.value_and_grad(model.params.copy())[:2]
        want = evaluate(model, model.as_batch(x), model.as_labels(y, x.shape[0]), reg=reg)
        want_loss = want.loss
        assert abs(loss - want_loss) <= 1e-12 * abs(want_loss)
        np.testing.assert_allclose(grad, want.grad, rtol=1e-10, atol=1e-13)


def test_training_evaluations_skip_the_input_gradient_unless_the_regulariser_needs_it(monkeypatch):
    """The first layer's input is data: fit's evaluations leave its dL/dx uncomputed (the
    parameter gradient is the same bits, test above), except that the regulariser adds into it."""
    data, model = problem()
    calls = []
    real = cpu.layer_backward_tape
    monkeypatch.setattr(cpu, "layer_backward_tape",
                        lambda tape, g, *a: (calls.append((tape.window.shape[0], a[5] is None)), real(tape, g, *a)))
    Objective(model, data).value_and_grad(model.params.copy())
    assert calls == [(4, False), (3, True)]  # backward runs from the last layer (4 inputs) down
    calls.clear()
    reg = Regularization(lamb=0.1)
    Objective(model, data, reg=reg).value_and_grad(model.params.copy())
    assert calls == [(4, False), (3, False)]
