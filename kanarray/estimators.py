"""scikit-learn style estimators: KANRegressor and KANClassifier.

    from kanarray.estimators import KANRegressor
    reg = KANRegressor(hidden=(5,), grid=5, steps=20).fit(X, y)   # X (n_samples, n_features)
    reg.predict(X_new); reg.score(X_test, y_test)                 # R^2
    reg.formula_()                                                # [sympy expression per output]

They follow scikit-learn's conventions without importing it: hyper-parameters are the
constructor's arguments, stored as given and checked only by fit; get_params / set_params read
the constructor's signature; what fit learns ends in an underscore (model_, n_features_in_,
history_, classes_); predict before fit raises NotFittedError. With scikit-learn installed they
pass its check_estimator and work in Pipeline, GridSearchCV, cross_val_score and clone.

Training: the model maps inputs column by column onto the grid range [-1, 1] (min-max on the
training rows) and standardises regression targets (KAN.set_scaling), so model_ takes and gives
raw units. A KAN of widths [n_features, *hidden, n_outputs] is trained with kanarray's fit at
`grid`, then at each grid of `refine` in turn (grid extension). The classifier has one output
per class (its logits) and trains on softmax cross-entropy (fit's loss="ce").
"""
import inspect
import numbers
import sys
import time
import warnings

import numpy as np

from .core.metrics import r2_score, softmax
from .funcs.library import optional_sympy
from .model import KAN, from_state
from .pipelines.discover import discover
from .pipelines.stages import grid_extension
from .io.data import held_out_mask

OPTIMIZERS = ("lbfgs", "adam")
FORMULAS = ("network", "discover")
GRID_RANGE = (-1.0, 1.0)  # the range inputs are mapped onto: KAN's default grid_range


class NotFittedError(ValueError, AttributeError):
    """predict, predict_proba, score or formula_ was called before fit."""


class DataConversionWarning(UserWarning):
    """The classifier was given y as a column (n_samples, 1) and ravelled it."""


_TWINS = {}


def _like_sklearn(cls):
    """cls, or, when scikit-learn is loaded, a subclass of cls and of scikit-learn's class of the
    same name, so that handlers of either library catch it (scikit-learn's tools catch their
    own NotFittedError; kanarray users catch kanarray's)."""
    exceptions = sys.modules.get("sklearn.exceptions")
    if exceptions is None or not hasattr(exceptions, cls.__name__):
        return cls
    key = (cls, getattr(exceptions, cls.__name__))
    if key not in _TWINS:
        _TWINS[key] = type(cls.__name__, key, {"__module__": cls.__module__,
                                               "__doc__": cls.__doc__})
    return _TWINS[key]


# ---------------------------------------------------------------------------- checks
def _check_X(estimator, X):
    """X as a float64 (n_samples, n_features) array with finite values, or a clear error."""
    name = type(estimator).__name__
    if type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{name} does not accept sparse input; convert it with X.toarray()")
    if X is None:
        raise ValueError(f"{name} needs X (n_samples, n_features), got None")
    array = np.asarray(X)
    if array.dtype.kind == "c":
        raise ValueError("Complex data not supported: X must hold real numbers")
    if array.dtype.kind not in "biufO":
        raise ValueError(f"X must hold numbers, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"Expected a 2-D array X (n_samples, n_features), got shape "
                         f"{array.shape}. Reshape your data with X.reshape(-1, 1) for a single feature or "
                         "X.reshape(1, -1) for a single sample.")
    if array.shape[0] == 0 or array.shape[1] == 0:
        what = "sample" if array.shape[0] == 0 else "feature"
        raise ValueError(f"Found array with 0 {what}(s) (shape={array.shape}) while a minimum of 1 "
                         f"is required by {name}.")
    array = array.astype(np.float64)  # objects that are not numbers raise TypeError here
    if not np.isfinite(array).all():
        raise ValueError("Input X contains NaN or infinity")
    return array


def _check_features(estimator, X):
    """_check_X for a fitted estimator: also the number of features it was fitted on."""
    if not hasattr(estimator, "model_"):
        raise _like_sklearn(NotFittedError)(
            f"This {type(estimator).__name__} instance is not fitted yet; call fit first")
    X = _check_X(estimator, X)
    if X.shape[1] != estimator.n_features_in_:
        raise ValueError(f"X has {X.shape[1]} features, but {type(estimator).__name__} is "
                         f"expecting {estimator.n_features_in_} features as input.")
    return X


def _check_y(estimator, y, n_rows):
    if y is None:
        raise ValueError(f"{type(estimator).__name__} requires y to be passed, but the target y is "
                         "None")
    y = np.asarray(y)
    if y.dtype.kind == "c":
        raise ValueError("Complex data not supported: y must hold real numbers")
    if y.ndim not in (1, 2) or y.shape[0] != n_rows:
        raise ValueError(f"y must have one entry (or row) per sample of X ({n_rows}), got shape "
                         f"{y.shape}")
    return y


def _check_int_param(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _model_copy(model):
    """An independent copy of a KAN (config and state arrays: no pickle involved)."""
    return from_state(model.config(), model.state_arrays())


# ---------------------------------------------------------------------------- estimators
class _BaseKAN:
    """What KANRegressor and KANClassifier share; see the module doc."""

    _estimator_type = None  # "regressor" or "classifier"

    def __init__(self, hidden=(5,), grid=5, k=3, steps=20, refine=(), opt="lbfgs", lr=None,
                 batch=None, lamb=0.0, test_frac=0.0, seed=0, dtype="float64", device="cpu"):
        self.hidden = hidden
        self.grid = grid
        self.k = k
        self.steps = steps
        self.refine = refine
        self.opt = opt
        self.lr = lr
        self.batch = batch
        self.lamb = lamb
        self.test_frac = test_frac
        self.seed = seed
        self.dtype = dtype
        self.device = device

    # ------------------------------------------------------------------ parameters
    @classmethod
    def _param_names(cls):
        return [p.name for p in inspect.signature(cls.__init__).parameters.values()
                if p.name != "self"]

    def get_params(self, deep=True):
        """The constructor's arguments as {name: value} (deep is accepted and has no effect:
        no parameter is an estimator)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set constructor arguments by name (checked by the next fit); returns self."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for estimator "
                                 f"{type(self).__name__}. Valid parameters are: {valid}.")
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = inspect.signature(type(self).__init__).parameters
        changed = [f"{name}={value!r}" for name, value in self.get_params().items()
                   if not _same(value, defaults[name].default)]
        return f"{type(self).__name__}({', '.join(changed)})"

    def _checked_params(self):
        """The hyper-parameters, validated: a bad one is named in a ValueError."""
        hidden = (self.hidden,) if isinstance(self.hidden, numbers.Integral) else self.hidden
        if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
            raise ValueError(f"hidden must be a tuple of hidden-layer widths such as (5,), got "
                             f"{self.hidden!r}")
        hidden = tuple(_check_int_param(w, "hidden widths", 1) for w in hidden)
        grid = _check_int_param(self.grid, "grid", 1)
        refine = (self.refine,) if isinstance(self.refine, numbers.Integral) else self.refine
        if isinstance(refine, (str, bytes)) or not hasattr(refine, "__iter__"):
            raise ValueError(f"refine must be a tuple of finer grids such as (10, 20), or (), got "
                             f"{self.refine!r}")
        refine = tuple(_check_int_param(g, "refine grids", 1) for g in refine)
        _check_int_param(self.k, "k", 1)
        _check_int_param(self.steps, "steps", 1)
        _check_int_param(self.seed, "seed", 0)
        if self.opt not in OPTIMIZERS:
            raise ValueError(f"opt must be one of {OPTIMIZERS}, got {self.opt!r}")
        if self.lr is not None and not (isinstance(self.lr, numbers.Real) and self.lr > 0):
            raise ValueError(f"lr must be None or a positive number, got {self.lr!r}")
        if self.batch is not None:
            _check_int_param(self.batch, "batch", 1)
        if not (isinstance(self.lamb, numbers.Real) and self.lamb >= 0):
            raise ValueError(f"lamb must be a number >= 0, got {self.lamb!r}")
        if not (isinstance(self.test_frac, numbers.Real) and 0 <= self.test_frac < 1):
            raise ValueError(f"test_frac must be a number in [0, 1), got {self.test_frac!r}")
        return hidden, grid, refine

    # ------------------------------------------------------------------ training
    def _train(self, X, Y, loss):
        """Train a fresh KAN on X (n, n_features) and targets Y (n, n_out) or class ids (n,);
        set the learned state. The model maps raw units itself (KAN.set_scaling: inputs onto
        the grid range, regression targets standardised). Everything is computed before any
        attribute is set, so a failed fit leaves the estimator as it was.
        """
        hidden, grid, refine = self._checked_params()
        if X.shape[0] < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 samples to fit, got "
                             f"n_samples={X.shape[0]}")
        if self.test_frac > 0:
            is_test = held_out_mask(X.shape[0], self.test_frac, self.seed)
            is_train = ~is_test
        else:  # no hold-out: the history's test columns are measured on the training rows
            is_train = is_test = np.ones(X.shape[0], dtype=bool)
        dataset = {"train_input": X[is_train], "train_label": Y[is_train],
                   "test_input": X[is_test], "test_label": Y[is_test]}
        n_out = Y.shape[1] if loss == "mse" else int(Y.max()) + 1
        model = KAN(width=[X.shape[1], *hidden, n_out], grid=grid, k=self.k,
                    grid_range=GRID_RANGE, seed=self.seed, dtype=self.dtype, device=self.device)
        model.set_scaling(X[is_train], Y[is_train] if loss == "mse" else None)
        batch = -1 if self.batch is None else min(self.batch, int(is_train.sum()))
        model, rows = grid_extension(model, dataset, (grid, *refine), steps=self.steps,
                                     opt=self.opt, lr=self.lr, batch=batch, log=0,
                                     lamb=self.lamb, seed=self.seed, loss=loss)
        history = [{"grid": row["grid"], **row["history"]} for row in rows]
        self.model_ = model
        self.n_features_in_ = X.shape[1]
        self.history_ = history

    def _raw_outputs(self, X):
        """The model's outputs for raw inputs X, in the user's units: (n, n_out) float64."""
        with warnings.catch_warnings():  # off-grid inputs are legal here and need no advice
            warnings.simplefilter("ignore", UserWarning)
            return np.asarray(self.model_(X), dtype=np.float64)

    # ------------------------------------------------------------------ formula and pickling
    def formula_(self, var_names=None, lib=None, r2_threshold=0.0, weight_simple=0.8):
        """The fitted network as formulas in the raw input variables, one per output (with
        formula="discover": the formula discover found and checked, as one entry; lib,
        r2_threshold and weight_simple are then discover's).

        A copy of model_ has every edge fixed to its best library function (KAN.auto_symbolic,
        fitted where the training inputs fell; on a sweep of each edge's grid range after
        unpickling) and its symbolic formula is read with the input scaling folded in; model_ is
        not changed. For the classifier the outputs are the class logits (predict_proba is their
        softmax). var_names default to x_1, x_2, ... -> list of sympy expressions (plain strings
        without sympy). Raises ValueError naming the edges when some edge's best function fits
        worse than r2_threshold (those edges stay splines and have no formula).
        """
        if not hasattr(self, "model_"):
            raise _like_sklearn(NotFittedError)(
                f"This {type(self).__name__} instance is not fitted yet; call fit first")
        names = [f"x_{i + 1}" for i in range(self.n_features_in_)] if var_names is None else [
            str(v) for v in var_names]
        if len(names) != self.n_features_in_:
            raise ValueError(f"var_names must have {self.n_features_in_} names, got {len(names)}")
        discovery = getattr(self, "discovery_", None)
        if discovery is not None and getattr(self, "formula", "network") == "discover":
            if discovery["stopped"]:
                raise ValueError(f"discover found no formula: {discovery['stopped']} (model_ is "
                                 f"the trained network; formula='network' reads it)")
            sp = optional_sympy()
            if sp is None:  # discover's formula is then the symbolic network's own
                return self.model_.symbolic_formula(var_names=names)
            found = discovery["formula"]
            return [found.subs({s: sp.Symbol(names[int(s.name[2:]) - 1])
                                for s in found.free_symbols})]
        model = _model_copy(self.model_)
        model.auto_symbolic(lib=lib, r2_threshold=r2_threshold, weight_simple=weight_simple,
                            x=self.model_.cache_data_, verbose=0)
        return model.symbolic_formula(var_names=names)

    def __getstate__(self):
        state = dict(self.__dict__)
        if "model_" in state:  # a KAN holds modules and device arrays: store its plain state
            state["model_"] = (state["model_"].config(), state["model_"].state_arrays())
        return state

    def __setstate__(self, state):
        if isinstance(state.get("model_"), tuple):
            state = {**state, "model_": from_state(*state["model_"])}
        self.__dict__.update(state)

    # ------------------------------------------------------------------ scikit-learn hooks
    def __sklearn_is_fitted__(self):
        return hasattr(self, "model_")

    def __sklearn_tags__(self):
        """Estimator tags for scikit-learn (called by scikit-learn only, so it may import it)."""
        from sklearn.utils import ClassifierTags, InputTags, RegressorTags, Tags, TargetTags

        regressor = self._estimator_type == "regressor"
        return Tags(estimator_type=self._estimator_type,
                    target_tags=TargetTags(required=True, multi_output=regressor),
                    classifier_tags=None if regressor else ClassifierTags(),
                    regressor_tags=RegressorTags() if regressor else None,
                    input_tags=InputTags())


def _same(a, b):
    try:
        return bool(a == b) and type(a) is type(b)
    except (ValueError, TypeError):
        return False


class KANRegressor(_BaseKAN):
    """A KAN regressor with scikit-learn's interface (see the module doc).

    hidden      widths of the hidden layers: (5,) gives a [n_features, 5, n_outputs] KAN
    grid, k     grid intervals and spline order of every edge
    steps       training steps per grid (kanarray.training.loop.fit; an L-BFGS step runs up to 20
                iterations)
    refine      grids to extend to after the first, e.g. (10, 20), training `steps` at each
    opt, lr     "lbfgs" or "adam", and the step scale / learning rate (None: fit's default)
    batch       rows drawn for each step (None: all training rows; larger than the training
                set: all of them); on the 8x8 digits Adam on batches of 64 generalised
                better than full-batch L-BFGS (bench/classify_digits.py)
    lamb        sparsity regularisation weight
    test_frac   share of the rows held out to measure history_'s test columns (0: none held
                out; the test columns are then measured on the training rows)
    seed        initial parameters, hold-out and batch draws: the same seed gives the same model
    dtype, device  "float64"/"float32", "cpu"/"cuda"

    formula     "network": formula_() reads the trained network (auto_symbolic on a copy);
                "discover": fit runs kanarray.discover on the train/test split (one target,
                one hidden layer, test_frac > 0, float64 on the CPU; grid, steps, seed, lamb
                when > 0 and the last refine grid carried over), and model_ is the symbolic
                network of the formula that passed discover's held-out check; when none
                passed, fit trains the network as with "network" and formula_() says why

    Learned: model_ (the kanarray.KAN, taking raw inputs: it maps them onto [-1, 1] and its
    outputs from standardised targets itself), n_features_in_, history_ (one dict of kanarray.training.loop.fit's results per grid, with "grid"; with
    formula="discover", one per stage of discover: "stage", "grid", "seconds"), discovery_
    (formula="discover": {"formula", "stopped", "check", "front"} as discover returns them).
    y may be (n_samples,) or (n_samples, n_outputs); predict returns the same shape.
    """

    _estimator_type = "regressor"

    def __init__(self, hidden=(5,), grid=5, k=3, steps=20, refine=(), opt="lbfgs", lr=None,
                 batch=None, lamb=0.0, test_frac=0.0, seed=0, dtype="float64", device="cpu",
                 formula="network"):
        super().__init__(hidden, grid, k, steps, refine, opt, lr, batch, lamb, test_frac, seed,
                         dtype, device)
        self.formula = formula

    def fit(self, X, y):
        X = _check_X(self, X)
        y = _check_y(self, y, X.shape[0])
        try:
            Y = y.astype(np.float64).reshape(X.shape[0], -1)
        except (TypeError, ValueError):
            raise ValueError(f"y must hold numbers, got dtype {y.dtype}") from None
        if not np.isfinite(Y).all():
            raise ValueError("Input y contains NaN or infinity")
        if self.formula not in FORMULAS:
            raise ValueError(f"formula must be one of {FORMULAS}, got {self.formula!r}")
        found, stages = self._discover(X, Y) if self.formula == "discover" else (None, None)
        if found is None or found["stopped"]:
            self._train(X, Y, "mse")
        else:
            self.model_, self.n_features_in_, self.history_ = found["model"], X.shape[1], stages
        if found is not None:
            self.discovery_ = {key: found[key] for key in ("formula", "stopped", "check", "front")}
        self._single_target = y.ndim == 1
        return self

    def _discover(self, X, Y):
        """kanarray.discover on the estimator's split -> (its result, its stage rows)."""
        hidden, grid, refine = self._checked_params()
        for wrong, need in ((Y.shape[1] != 1, "one target"), (len(hidden) != 1, "one hidden layer"),
                            (self.test_frac == 0, "test_frac > 0 (rows for the held-out check)"),
                            ((self.dtype, self.device) != ("float64", "cpu"),
                             "dtype='float64' on device='cpu'")):
            if wrong:
                raise ValueError(f"formula='discover' needs {need}")
        is_test = held_out_mask(X.shape[0], self.test_frac, self.seed)
        dataset = {"train_input": X[~is_test], "train_label": Y[~is_test],
                   "test_input": X[is_test], "test_label": Y[is_test]}
        stages = []
        options = {"seed": self.seed, "grid": grid, "steps": self.steps,
                   "refine_grid": refine[-1] if refine else max(20, grid + 1)}
        if self.lamb > 0:
            options["lamb"] = self.lamb
        found = discover(dataset, [X.shape[1], hidden[0], 1], products=False, scale=True,
                         on_stage=lambda name, model, t0: stages.append(
                             {"stage": name, "grid": model.grid,
                              "seconds": time.perf_counter() - t0}), **options)
        return found, stages

    def predict(self, X):
        """Predictions (n_samples,) or (n_samples, n_outputs), as y was at fit."""
        out = self._raw_outputs(_check_features(self, X))
        return out[:, 0] if self._single_target else out

    def score(self, X, y):
        """Coefficient of determination R^2, averaged over the outputs."""
        pred = self.predict(X).reshape(len(X), -1)
        y = self.model_.as_labels(y, pred.shape[0], "y").astype(np.float64)
        return r2_score(pred, self.model_.backend.to_numpy(y), average=True)


def _class_labels(estimator, y, n_rows):
    """y as a 1-D array of labels, or the error scikit-learn's tools expect."""
    y = _check_y(estimator, y, n_rows)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn("A column-vector y was passed when a 1d array was expected; it was "
                      "ravelled to shape (n_samples,)", _like_sklearn(DataConversionWarning),
                      stacklevel=3)
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"{type(estimator).__name__} takes one label per sample: y must be 1-D, "
                         f"got shape {y.shape}")
    try:
        values = y.astype(np.float64)
    except (TypeError, ValueError):
        return y  # labels that are not numbers (strings): any distinct values are classes
    if not np.isfinite(values).all():
        raise ValueError("Input y contains NaN or infinity")
    if np.any(values != np.round(values)) and y.dtype.kind != "b":
        raise ValueError("Unknown label type: continuous (y holds non-integer numbers); "
                         "KANClassifier needs class labels, use KANRegressor for a continuous "
                         "target")
    return y


class KANClassifier(_BaseKAN):
    """A KAN classifier with scikit-learn's interface: one output (logit) per class, trained on
    softmax cross-entropy. Parameters as KANRegressor's.

    Learned: model_, n_features_in_, classes_ (the sorted distinct labels; output j is
    classes_[j]), history_ (as KANRegressor's, each stage with "test_accuracy" per step: the
    accuracy on the held-out rows, or on the training rows when test_frac=0).
    """

    _estimator_type = "classifier"

    def fit(self, X, y):
        X = _check_X(self, X)
        y = _class_labels(self, y, X.shape[0])
        try:
            classes, encoded = np.unique(y, return_inverse=True)
        except TypeError:
            raise ValueError("Unknown label type: y mixes labels that cannot be ordered "
                             "(e.g. strings and numbers)") from None
        if len(classes) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes in y, got 1 class "
                             f"({classes[0]!r})")
        self._train(X, encoded.astype(np.int64), "ce")
        self.classes_ = classes
        return self

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes): the softmax of the logits."""
        return softmax(self._raw_outputs(_check_features(self, X)))

    def predict(self, X):
        """The most probable class of every sample (n_samples,)."""
        logits = self._raw_outputs(_check_features(self, X))
        return self.classes_[logits.argmax(axis=1)]

    def score(self, X, y):
        """Accuracy: the share of samples whose predicted class is y."""
        pred = self.predict(X)
        y = np.asarray(y)
        return float(np.mean(pred == (y.ravel() if y.ndim == 2 and y.shape[1] == 1 else y)))
