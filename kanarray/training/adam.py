"""Adam (Kingma & Ba) over a flat parameter vector, as a pure update and as an optimizer.

    opt = Adam(lr=1e-2)                                    # kanarray.training.optim's interface
    delta, state = adam_update(grad, adam_init(params))    # the pure building block
"""
from dataclasses import dataclass
from typing import NamedTuple

from .optim import Step, call, check_lr, check_vector, to_host
from ..core.arrays import array_module
from ..core.checks import check_real


class AdamState(NamedTuple):
    """Adam moments.  ``m``, ``v``: (n,) arrays; ``step``: updates done so far."""

    step: int
    m: object
    v: object


def adam_init(params):
    """Zero moments for parameters ``params`` of shape (n,)."""
    xp = array_module(params)
    return AdamState(step=0, m=xp.zeros_like(params), v=xp.zeros_like(params))


def adam_update(grad, state, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """One bias-corrected Adam update (Kingma & Ba, Algorithm 1).

    Args:
        grad: (n,) gradient at the current parameters.
        state: ``AdamState`` from ``adam_init`` or a previous update.
        lr > 0, 0 <= b1 < 1, 0 <= b2 < 1, eps > 0: step size, moment decay rates and the
        denominator's floor (a zero eps would give 0/0 where a gradient entry stays zero).

    Returns:
        ``(delta, new_state)``: ``delta`` is (n,) and ``params + delta`` is the
        new point.  Neither ``grad`` nor ``state`` is modified.
    """
    check_vector(grad, "grad")
    if not isinstance(state, AdamState):
        raise TypeError(f"state must be an AdamState (from adam_init), got {type(state).__name__}")
    if state.m.shape != grad.shape:
        raise ValueError(f"grad has shape {tuple(grad.shape)} but state holds moments of shape "
                         f"{tuple(state.m.shape)}")
    # check_real returns Python floats: NumPy scalars would upcast float32 vectors
    lr = check_real(lr, "lr", above=0)
    b1 = check_real(b1, "b1", minimum=0, below=1)
    b2 = check_real(b2, "b2", minimum=0, below=1)
    eps = check_real(eps, "eps", above=0)
    return _adam_update(grad, state, lr, b1, b2, eps)


def _adam_update(grad, state, lr, b1, b2, eps):
    """adam_update without its checks (Python floats lr, b1, b2, eps)."""
    xp = array_module(grad)
    step = state.step + 1
    m = b1 * state.m + (1.0 - b1) * grad
    v = b2 * state.v + (1.0 - b2) * (grad * grad)
    m_hat = m / (1.0 - b1**step)
    v_hat = v / (1.0 - b2**step)
    delta = -lr * m_hat / (xp.sqrt(v_hat) + eps)
    return delta, AdamState(step=step, m=m, v=v)


@dataclass(frozen=True)
class Adam:
    """Adam (adam_update) with its options, checked once: update evaluates fun at params and
    takes one step; step.value is fun's answer at params (before the step)."""

    lr: float = 1e-2
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        # check_real returns Python floats: NumPy scalars would upcast float32 vectors
        object.__setattr__(self, "lr", check_lr(self.lr))
        object.__setattr__(self, "b1", check_real(self.b1, "b1", minimum=0, below=1))
        object.__setattr__(self, "b2", check_real(self.b2, "b2", minimum=0, below=1))
        object.__setattr__(self, "eps", check_real(self.eps, "eps", above=0))

    def init(self, params):
        return adam_init(params)

    def update(self, fun, params, state):
        _, grad, value = call(fun, params)
        delta, state = _adam_update(grad, state, self.lr, self.b1, self.b2, self.eps)
        return params + delta, state, Step(value, 1)

    def after_grid_update(self, state):
        return state  # the moments are per parameter and stay meaningful

    def save_state(self, state):
        """(JSON scalars, {name: host array}) of a state, for a checkpoint."""
        return {"step": state.step}, {"m": to_host(state.m), "v": to_host(state.v)}

    def load_state(self, scalars, arrays, params):
        """The state save_state wrote, on the device of params."""
        xp = array_module(params)
        return AdamState(step=int(scalars["step"]), m=xp.asarray(arrays["m"], dtype=params.dtype),
                         v=xp.asarray(arrays["v"], dtype=params.dtype))
