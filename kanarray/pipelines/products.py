"""The multiplicative route of kanarray.discover: products and ratios as sums of logarithms.

    logged = log_dataset(dataset)            # None when the labels do not keep one sign
    ... discover's stages on logged.data ...
    values = logged.labels(predictions)      # back in the labels' units
    formula = logged.read_back(log_formula)  # sign * exp(...), logged inputs as log(x_i)

A law y = C x_1^a_1 x_2^a_2 ... (43 of the 100 Feynman equations) is a sum after taking logs,
log|y| = log|C| + a_1 log x_1 + a_2 log x_2 + ..., one straight line per input, which a KAN
and its library fit exactly; y itself is a product, which one hidden layer of sums writes only
the long way (x y as a difference of two squares). So when the labels keep one sign (and none
is 0) on every row, discover also fits log|y| as a sum of one-variable functions, one edge per
input (width [inputs, 1]), with every input that is positive on every row taken as its
logarithm and the others as they are: a power of a positive input is then a straight line, and
exp(-x^2/2) the exponential exp(2 log x) times -1/2. Without a hidden layer no two edges compose,
so nothing trades one edge's shape against another's. A formula g found
for log|y| reads sign * exp(g), with log(x_i) in place of every logged input; sympy writes
exp(a*log(x)) as x**a, and snapping a to a small rational (kanarray.symbolic.snap) makes x_1*x_2
and x_1/x_2**2 out of exp(1.0*log(x_1) + 1.0*log(x_2)) and exp(log(x_1) - 2.0*log(x_2)).

The logged inputs' symbols are declared positive, so that simplification may use it.
"""
from typing import NamedTuple

import numpy as np

from ..funcs import library as slib


class Logged(NamedTuple):
    """The log|y| problem beside a dataset."""

    data: dict          # the dataset discover runs on: logged inputs, log|y|
    sign: float         # the labels' sign, +1.0 or -1.0
    logged: np.ndarray  # (n_inputs,) bool: which inputs enter as their logarithm

    def inputs(self, x):
        """Rows of the original inputs as the log|y| problem takes them."""
        x = np.asarray(x, dtype=np.float64)
        return np.where(self.logged, np.log(np.where(self.logged, x, 1.0)), x)

    def labels(self, log_values):
        """Values of log|y| back in the labels' units: sign * exp(log_values)."""
        with np.errstate(over="ignore"):
            return self.sign * np.exp(np.asarray(log_values, dtype=np.float64))

    def read_back(self, formula, names):
        """sign * exp(formula), a sympy formula for log|y| in the inputs `names`, with log(x_i)
        in place of every logged input (a positive symbol of the same name)."""
        sp = slib.optional_sympy()
        if sp is None:
            raise ImportError("the multiplicative route needs sympy: pip install "
                              "'kanarray[symbolic]'")
        if len(names) != self.logged.shape[0]:
            raise ValueError(f"names must name the {self.logged.shape[0]} inputs, got {names!r}")
        swap = {sp.Symbol(name): sp.log(sp.Symbol(name, positive=True))
                for name, logged in zip(names, self.logged) if logged}
        # distribute the constants over the sums (no powers expanded), so that exp meets the
        # terms a*log(x) one by one and writes each as x**a
        inner = sp.expand(formula.xreplace(swap), power_exp=False, power_base=False, log=False,
                          multinomial=False)
        return sp.Integer(int(self.sign)) * sp.exp(inner)


def log_dataset(dataset):
    """The Logged problem of a dataset with one output whose labels are all non-zero and of one
    sign, train and test rows alike; None otherwise."""
    y_train = np.asarray(dataset["train_label"], dtype=np.float64)
    y_test = np.asarray(dataset["test_label"], dtype=np.float64)
    labels = np.concatenate([y_train.reshape(-1), y_test.reshape(-1)])
    if not np.all(np.isfinite(labels)) or not (np.all(labels > 0) or np.all(labels < 0)):
        return None
    x_train = np.asarray(dataset["train_input"], dtype=np.float64)
    x_test = np.asarray(dataset["test_input"], dtype=np.float64)
    logged = np.all(x_train > 0, axis=0) & np.all(x_test > 0, axis=0)
    problem = Logged({}, 1.0 if labels[0] > 0 else -1.0, logged)
    problem.data.update(train_input=problem.inputs(x_train), test_input=problem.inputs(x_test),
                        train_label=np.log(np.abs(y_train)).reshape(y_train.shape[0], -1),
                        test_label=np.log(np.abs(y_test)).reshape(y_test.shape[0], -1))
    return problem
