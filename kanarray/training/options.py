"""The options of a fit as small objects, each checked once when it is made.

    FitOptions(opt=LBFGS(history=30), steps=50, grid=GridSchedule(margin=0.5))

KAN.fit takes these objects (opt=, grid_schedule=, reg=) or pykan's flat keywords, which
`fit_options` turns into them (opt="lbfgs", "LBFGS", "adam" or "Adam" with lr, lbfgs_iters,
lbfgs_history; update_grid, grid_update_num, start_grid_update_step, stop_grid_update_step,
grid_margin). The training loop (kanarray.training.loop.fit) receives a FitOptions and checks
nothing again, restarts included.
"""
import numbers
from dataclasses import dataclass, field

import numpy as np

from .adam import Adam
from .lbfgs import HISTORY_SIZE, LBFGS
from ..core.checks import check_int, check_real

OPTIMIZERS = {"lbfgs": LBFGS, "adam": Adam}


@dataclass(frozen=True)
class GridSchedule:
    """When training moves the grids to the batch's activations: every stop // num steps while
    start <= step < stop (pykan's update_grid, grid_update_num, start_grid_update_step,
    stop_grid_update_step), with the knots spanning the samples' range widened by `margin`
    mean cells on each side (>= 0; 0: the end knots on the extreme samples, as in pykan)."""

    update: bool = True
    num: int = 10
    start: int = -1
    stop: int = 50
    margin: float = 0.0

    def __post_init__(self):
        if not isinstance(self.update, bool):
            raise TypeError(f"update_grid must be True or False, got {self.update!r}")
        check_int(self.num, "grid_update_num", 1)
        check_int(self.start, "start_grid_update_step", -1)
        check_int(self.stop, "stop_grid_update_step", 0)
        object.__setattr__(self, "margin", check_real(self.margin, "grid_margin", minimum=0))

    def due(self, step):
        """Whether the grids move before step `step` (0-based)."""
        every = max(1, self.stop // self.num)
        return self.update and step % every == 0 and self.start <= step < self.stop


@dataclass(frozen=True)
class FitOptions:
    """Everything the training loop does besides evaluating: the optimizer, the number of
    steps, the batch (rows drawn without replacement per step from `seed`; -1: all), the grid
    schedule, progress printing (`log`, kanarray.training.loop.Progress), a callback(step,
    model, results) after every step and a checkpoint path rewritten after every good step."""

    opt: object = field(default_factory=LBFGS)
    steps: int = 100
    batch: int = -1
    grid: GridSchedule = field(default_factory=GridSchedule)
    seed: int = 0
    log: object = None
    callback: object = None
    checkpoint: object = None

    def __post_init__(self):
        if not isinstance(self.opt, (LBFGS, Adam)):
            raise TypeError(f"opt must be one of {tuple(OPTIMIZERS)} or an LBFGS(...) or Adam(...), "
                            f"got {self.opt!r}")
        object.__setattr__(self, "steps", check_int(self.steps, "steps", 0))
        if self.batch != -1:
            check_int(self.batch, "batch", 1)
        if not isinstance(self.grid, GridSchedule):
            raise TypeError(f"grid_schedule must be a GridSchedule, got {type(self.grid).__name__}")
        check_int(self.seed, "seed", 0)
        if self.log is not None:
            check_int(self.log, "log", 0)
        if self.callback is not None and not callable(self.callback):
            raise TypeError(f"callback must be callable(step, model, results) or None, got "
                            f"{type(self.callback).__name__}")

    def agreed(self):
        """What every MPI rank must agree on: the options, with callables named only."""
        return (repr(self.opt), self.steps, self.batch, repr(self.grid), self.seed, self.log,
                None if self.callback is None else "callable", self.checkpoint is None)


def optimizer(opt, lr=None, lbfgs_iters=20, lbfgs_history=HISTORY_SIZE):
    """An LBFGS or Adam from pykan's flat keywords: opt "lbfgs"/"LBFGS" or "adam"/"Adam" (or an
    LBFGS(...)/Adam(...), returned as it is); lr None picks the optimizer's default (L-BFGS 1.0,
    Adam 1e-2)."""
    if isinstance(opt, (LBFGS, Adam)):
        return opt
    name = opt.lower() if isinstance(opt, str) else None
    if name not in OPTIMIZERS:
        raise ValueError(f"opt must be one of {tuple(OPTIMIZERS)} (any case) or an LBFGS(...) or "
                         f"Adam(...), got {opt!r}")
    if name == "adam":
        return Adam() if lr is None else Adam(lr=lr)
    check_int(lbfgs_history, "lbfgs_history", 1)
    return LBFGS(lr=1.0 if lr is None else lr, iters=lbfgs_iters, history=lbfgs_history)


def fit_options(opt="lbfgs", steps=100, lr=None, batch=-1, update_grid=True, grid_update_num=10,
                start_grid_update_step=-1, stop_grid_update_step=50, seed=0, log=None,
                callback=None, lbfgs_iters=20, checkpoint=None, grid_margin=0.0,
                lbfgs_history=HISTORY_SIZE, grid_schedule=None):
    """FitOptions from kanarray.KAN.fit's keywords (pykan's names), checked."""
    steps = check_int(steps, "steps", 0)
    check_int(lbfgs_iters, "lbfgs_iters", 1)
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, numbers.Real)):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if grid_schedule is None:
        if isinstance(update_grid, np.bool_):
            update_grid = bool(update_grid)
        grid_schedule = GridSchedule(update_grid, grid_update_num, start_grid_update_step,
                                     stop_grid_update_step, grid_margin)
    return FitOptions(optimizer(opt, lr, lbfgs_iters, lbfgs_history), steps, batch,
                      grid_schedule, seed, log, callback, checkpoint)
