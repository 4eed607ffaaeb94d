"""Built-in losses: values against plain formulas, gradients against finite differences."""
import numpy as np
import pytest

from kanarray.training import losses
from finite_differences import central_differences


def logits_and_labels(seed, n_rows=7, n_classes=4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_rows, n_classes)) * 3, rng.integers(0, n_classes, n_rows)


@pytest.mark.parametrize("seed", range(3))
def test_cross_entropy_value_is_the_plain_formula(seed):
    logits, labels = logits_and_labels(seed)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(p[np.arange(len(labels)), labels]))
    loss, _ = losses.cross_entropy(logits, labels)
    assert loss == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_cross_entropy_gradient_matches_finite_differences(seed):
    logits, labels = logits_and_labels(seed)
    _, grad = losses.cross_entropy(logits, labels)
    numeric = central_differences(lambda z: losses.cross_entropy(z, labels)[0], logits.copy())
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_mse_value_and_gradient(seed):
    rng = np.random.default_rng(seed)
    pred, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    loss, grad = losses.mse(pred, y)
    assert loss == pytest.approx(np.mean((pred - y) ** 2), rel=1e-12)
    numeric = central_differences(lambda p: losses.mse(p, y)[0], pred.copy())
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_extreme_logits_stay_finite_and_exact():
    logits = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 0.0]])
    loss, grad = losses.cross_entropy(logits, np.array([0, 2]))
    # row 1 is certain and right (loss 0), row 2 misses by exactly 1e4 nats
    assert loss == pytest.approx(1e4 / 2)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, [[0, 0, 0], [0, 0.5, -0.5]], atol=1e-12)


def test_accuracy_counts_rows_whose_largest_logit_is_the_label():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [0.1, 0.2]])
    assert losses.accuracy(logits, np.array([0, 1, 1, 0])) == 0.5


def test_float32_logits_keep_their_dtype():
    logits, labels = logits_and_labels(0)
    _, grad = losses.cross_entropy(logits.astype(np.float32), labels)
    assert grad.dtype == np.float32


@pytest.mark.parametrize("labels, message", [
    (np.array([0, 1, 4]), r"in \[0, 4\).*class id 4"),
    (np.array([0, -1, 2]), r"class id -1"),
    (np.array([0.0, 1.0, 2.0]), "integer class ids"),
    (np.array([True, False, True]), "integer class ids"),
    (np.array([[0], [1], [2]]), r"shape \(3,\)"),
    (np.array([0, 1]), r"shape \(3,\)"),
])
def test_invalid_labels_are_named(labels, message):
    logits = np.zeros((3, 4))
    with pytest.raises(ValueError, match=message):
        losses.cross_entropy(logits, labels)
    with pytest.raises(ValueError, match=message):
        losses.accuracy(logits, labels)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="logits must be a 2-D array"):
        losses.cross_entropy(np.zeros(3), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="y must have the shape of pred"):
        losses.mse(np.zeros((3, 2)), np.zeros((3, 1)))


def _cupy_or_skip():
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA GPU")
    except Exception:
        pytest.skip("no CUDA GPU")
    return cupy


@pytest.mark.gpu
def test_cupy_arrays_give_the_numpy_results_on_the_device():
    cp = _cupy_or_skip()
    logits, labels = logits_and_labels(0)
    loss, grad = losses.cross_entropy(cp.asarray(logits), cp.asarray(labels))
    want_loss, want_grad = losses.cross_entropy(logits, labels)
    assert type(grad).__module__.startswith("cupy")
    assert loss == pytest.approx(want_loss, rel=1e-12)
    np.testing.assert_allclose(cp.asnumpy(grad), want_grad, rtol=1e-12, atol=1e-15)
    assert losses.accuracy(cp.asarray(logits), cp.asarray(labels)) == losses.accuracy(logits, labels)
