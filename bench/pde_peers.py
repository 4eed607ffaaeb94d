"""The peers of kanarray.fit_pde in bench/pde.py: the same PDE, points, loss and budget, trained by

- jaxkan: jaxKAN's PIKAN (the `jaxkan` package on Flax NNX + Optax). jaxkan.models.KAN.KAN with
  its default layer type "base" (jaxkan.layers.BaseLayer: pykan's B-spline edges, order k = 3 on
  spec["grid"] intervals over [-1, 1], plus a SiLU residual branch, spline scale and bias; its
  default initialisation; no grid updates). Adam is optax.adam stepped through nnx.Optimizer
  inside nnx.jit, the way jaxKAN's PIKAN tutorial trains; L-BFGS is jaxkan.models.utils.get_lbfgs
  (optax.lbfgs, memory 10) given optax's zoom line search (strong Wolfe conditions, at most 20
  evaluations) explicitly, since get_lbfgs's default passes none on to optax.lbfgs; run
  functionally on the split parameters (nnx.split / nnx.merge) because the line search needs the
  loss as a function of the parameters; optax.value_and_grad_from_state reuses the line
  search's last value and gradient. Derivatives as jaxKAN's pikan.pde residuals take them: a
  scalar u(z) of one point, nested jax.grad, jax.vmap over the points (spec["jax_derivatives"]
  = "batched" takes them for the whole batch at once instead: jax.grad of sum(u), jax.jvp
  along each axis for the second derivatives). spec["jaxkan_layer"] = "spline" picks jaxKAN's
  SplineLayer (efficient-KAN's layout of the same B-spline edges) instead of "base".
- mlp: a PINN in plain PyTorch (CPU): Linear + tanh layers of spec["mlp_width"] (default
  [2, 50, 50, 50, 1]), Xavier-normal weights and zero biases; derivatives by
  torch.autograd.grad(..., create_graph=True); torch.optim.Adam, then torch.optim.LBFGS
  (lr 1, strong Wolfe line search, history 10). Threads: torch's default (one per core) unless
  spec["torch_threads"] sets them for the run; on a loaded 2-core machine one thread was several
  times faster than two for the small smoke problems.

Dtype: float32 for both, each framework's default (jaxKAN creates its parameters in float32);
spec["dtype"] = "float64" runs either in float64 (for jaxKAN: jax_enable_x64, the parameters and
knots cast after construction). kanarray itself trains in float64.

Inputs: unless spec["normalize_inputs"] is False, each model sees its inputs mapped linearly
from the bounding box of all training points to [-1, 1] (t in [0, 1] -> [-1, 1], as bench/pde.py
does for kanarray); the derivatives go through that map by autodiff.

Loss, as kanarray's fit_pde computes it: mean(r^2) over the interior points plus, per
condition, weight * mean(e^2), with e = u - values for a Dirichlet condition and, for a
periodic one, the misfits [u(a) - u(b), grad u(a) - grad u(b)] (all inputs' derivatives,
kanarray's Periodic(derivative=True)) averaged over all their entries. Residuals r:
  poisson     u_xx + u_yy + 2 pi^2 sin(pi x) sin(pi y)
  helmholtz   u_xx + u_yy + k^2 u - q, q = (k^2 - (a1 pi)^2 - (a2 pi)^2) sin(a1 pi x) sin(a2 pi y)
              (a1, a2, k from the spec, default 1, 4, 1)
  allen_cahn  u_t - D u_xx + 5 u^3 - 5 u   (columns x, t)
  burgers     u_t + u u_x - nu u_xx        (columns x, t)

Budget: spec["adam_steps"] Adam steps at spec["lr"], then spec["lbfgs_steps"] L-BFGS steps of
spec.get("lbfgs_iters", 20) iterations each: one step is one torch LBFGS.step(closure) with its
default max_iter = 20, and kanarray's fit_pde L-BFGS step (lbfgs_iters = 20); for jaxKAN, 20
optax.lbfgs updates.

Timing (time.perf_counter, with block_until_ready on JAX's results so that its asynchronous
dispatch is inside the measured step): "seconds" is the whole training, Adam and L-BFGS,
compilation included, model construction and the final error excluded; "seconds_per_iter" is
the median of the Adam steps after the first (the first compiles the step under JAX, and is
left out under PyTorch too), or of the L-BFGS steps after the first when there is no Adam;
"lbfgs_seconds_per_step" the median L-BFGS step after the first, and "lbfgs_seconds_per_eval"
the time of the L-BFGS steps after the first over their loss-and-gradient evaluations (torch:
closure calls; optax: the line searches' steps, + 1 for the very first value), "lbfgs_evals"
all of them. "params": trainable parameters. Everything is seeded from
`seed` (jaxKAN's KAN(seed=...), torch.manual_seed). "first_step_seconds" and
"lbfgs_first_step_seconds" are the first steps, with JAX's compilation: on a loaded 2-core
machine about 20 s for jaxKAN's Adam step and minutes for its L-BFGS step (the line search
holds further copies of the loss), all of it inside "seconds".

    PEERS["jaxkan"](spec, seed) -> {"rel_l2", "seconds_per_iter", "iters", "seconds",
                                    "optimizer", "params", ...}

Versions this was written against: jax/jaxlib 0.10.2, jaxkan 0.3.7, flax 0.12.8, optax 0.2.8,
torch 2.13.0+cpu, numpy 2.4.6; versions() reports the ones in use.
"""
import math
import time
from importlib import metadata

import numpy as np

PI = math.pi
LBFGS_ITERS = 20  # iterations per L-BFGS step: torch's max_iter default, kanarray's lbfgs_iters
LBFGS_HISTORY = 10  # curvature pairs kept: jaxKAN's get_lbfgs and kanarray default to 10


def versions():
    """Installed versions of the peers' packages (None where one is missing)."""
    out = {}
    for name in ("jax", "jaxlib", "jaxkan", "flax", "optax", "torch", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


# ---------------------------------------------------------------- what both peers share
def _problem(spec):
    """The spec's residual as (needs, residual): needs the second-derivative axes it reads;
    residual(u, grad, second, source) with grad (N, 2) and second {axis: (N,)} arrays of either
    framework, source a precomputed array of the points (or None)."""
    name = spec["name"]
    if name == "poisson":
        return (0, 1), lambda u, g, s, f: s[0] + s[1] + f
    if name == "helmholtz":
        k = float(spec.get("k", 1.0))
        return (0, 1), lambda u, g, s, f: s[0] + s[1] + k ** 2 * u - f
    if name == "allen_cahn":
        D = float(spec["D"])
        return (0,), lambda u, g, s, f: g[:, 1] - D * s[0] + 5 * u ** 3 - 5 * u
    if name == "burgers":
        nu = float(spec["nu"])
        return (0,), lambda u, g, s, f: g[:, 1] + u * g[:, 0] - nu * s[0]
    raise ValueError(f"unknown residual {name!r}: poisson, helmholtz, allen_cahn or burgers")


def _source(spec):
    """The residual's source term at the interior points, float64 (None when it has none)."""
    x, y = spec["interior"][:, 0], spec["interior"][:, 1]
    if spec["name"] == "poisson":
        return 2 * PI ** 2 * np.sin(PI * x) * np.sin(PI * y)
    if spec["name"] == "helmholtz":
        a1, a2, k = (float(spec.get(key, default)) for key, default in (("a1", 1.0), ("a2", 4.0), ("k", 1.0)))
        return (k ** 2 - (a1 * PI) ** 2 - (a2 * PI) ** 2) * np.sin(a1 * PI * x) * np.sin(a2 * PI * y)
    return None


def _input_map(spec):
    """(center, scale): z = (x - center) * scale takes the training points' box to [-1, 1]."""
    n = spec["interior"].shape[1]
    if spec.get("normalize_inputs", True) is False:
        return np.zeros(n), np.ones(n)
    points = [spec["interior"]] + [c[key] for c in spec["conditions"] for key in ("points", "partners") if key in c]
    points = np.concatenate(points)
    lo, hi = points.min(axis=0), points.max(axis=0)
    return (lo + hi) / 2, 2 / np.where(hi > lo, hi - lo, 2.0)


def _rel_l2(u, spec):
    u = np.asarray(u, dtype=np.float64).reshape(-1)
    ref = np.asarray(spec["test_values"], dtype=np.float64).reshape(-1)
    return float(np.linalg.norm(u - ref) / np.linalg.norm(ref))


def _budget(spec):
    return (int(spec["adam_steps"]), float(spec["lr"]), int(spec.get("lbfgs_steps", 0)),
            int(spec.get("lbfgs_iters", LBFGS_ITERS)), int(spec.get("lbfgs_history", LBFGS_HISTORY)))


def _median_after_first(times):
    return float(np.median(times[1:])) if len(times) > 1 else (float(times[0]) if times else float("nan"))


def _per_eval(times, evals):
    """L-BFGS seconds per loss-and-gradient evaluation over the steps after the first (the
    first compiles under JAX), or over the one step there is."""
    if len(times) > 1 and sum(evals[1:]):
        return sum(times[1:]) / sum(evals[1:])
    return times[0] / evals[0] if times and evals[0] else None


def _summary(spec, adam_times, lbfgs_times, lbfgs_evals, total, optimizer, params, u_test, dtype, extra):
    adam = _median_after_first(adam_times)
    lbfgs = _median_after_first(lbfgs_times)
    out = {"rel_l2": _rel_l2(u_test, spec),
           "seconds_per_iter": adam if adam_times else lbfgs,
           "iters": len(adam_times) + len(lbfgs_times), "seconds": total, "optimizer": optimizer,
           "params": int(params), "dtype": dtype,
           "adam_seconds_per_iter": adam if adam_times else None,
           "lbfgs_seconds_per_step": lbfgs if lbfgs_times else None,
           "lbfgs_seconds_per_eval": _per_eval(lbfgs_times, lbfgs_evals),
           "lbfgs_evals": int(sum(lbfgs_evals)),
           "first_step_seconds": adam_times[0] if adam_times else None,
           "lbfgs_first_step_seconds": lbfgs_times[0] if lbfgs_times else None}
    out.update(extra)
    return out


def _optimizer_text(adam_steps, lr, lbfgs_steps, lbfgs_iters, adam_name, lbfgs_name):
    parts = [f"{adam_name} {adam_steps} steps (lr {lr:g})"] if adam_steps else []
    if lbfgs_steps:
        parts.append(f"{lbfgs_name} {lbfgs_steps} steps x {lbfgs_iters} iterations")
    return ", then ".join(parts) or "none"


# ---------------------------------------------------------------- jaxKAN's PIKAN
def run_jaxkan(spec, seed):
    """jaxKAN's PIKAN on `spec` from `seed` -> the result row (the module docstring)."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx
    from jaxkan.models.KAN import KAN
    from jaxkan.models.utils import get_lbfgs

    dtype_name = spec.get("dtype", "float32")
    if dtype_name not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype_name!r}")
    x64_before = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", dtype_name == "float64")
    try:
        return _run_jaxkan(spec, seed, dtype_name, jax, jnp, optax, nnx, KAN, get_lbfgs)
    finally:
        jax.config.update("jax_enable_x64", x64_before)


def _run_jaxkan(spec, seed, dtype_name, jax, jnp, optax, nnx, KAN, get_lbfgs):
    dtype = jnp.float64 if dtype_name == "float64" else jnp.float32
    adam_steps, lr, lbfgs_steps, lbfgs_iters, history = _budget(spec)
    layer = spec.get("jaxkan_layer", "base")
    mode = spec.get("jax_derivatives", "pointwise")
    if mode not in ("pointwise", "batched"):
        raise ValueError(f"jax_derivatives must be 'pointwise' or 'batched', got {mode!r}")

    kan = KAN(layer_dims=list(spec["width"]), layer_type=layer,
              required_parameters={"k": 3, "G": int(spec["grid"])}, seed=int(seed))
    if dtype_name == "float64":  # jaxKAN builds its parameters and knots in float32
        nnx.update(kan, jax.tree.map(lambda a: a.astype(dtype), nnx.state(kan, nnx.Param)))
        for lay in kan.layers:
            lay.grid.item = jnp.asarray(lay.grid.item, dtype)

    center, scale = (jnp.asarray(a, dtype) for a in _input_map(spec))
    needs, residual = _problem(spec)
    source = _source(spec)
    data = {"interior": jnp.asarray(spec["interior"], dtype),
            "source": None if source is None else jnp.asarray(source, dtype),
            "conditions": [{key: jnp.asarray(c[key], dtype) for key in ("points", "values", "partners") if key in c}
                           for c in spec["conditions"]]}
    kinds = [(c["kind"], float(c["weight"])) for c in spec["conditions"]]
    for kind, _ in kinds:
        if kind not in ("dirichlet", "periodic"):
            raise ValueError(f"unknown condition kind {kind!r}")

    def net(model, points):  # u (N,) at points (N, 2), through the input map
        return model((points - center) * scale)[:, 0]

    def derivatives(model, points, axes):
        """u (N,), grad (N, 2) and {axis: d2u/dx_axis^2 (N,)} at points."""
        if mode == "pointwise":
            def u_one(z):
                return net(model, z[None, :])[0]

            def second_one(z, a):
                return jax.grad(lambda w: jax.grad(u_one)(w)[a])(z)[a]

            u, g = jax.vmap(jax.value_and_grad(u_one))(points)
            return u, g, {a: jax.vmap(lambda z, a=a: second_one(z, a))(points) for a in axes}

        def grad_all(p):  # the rows do not mix: the gradient of the sum is each row's gradient
            return jax.grad(lambda q: net(model, q).sum())(p)

        u, g = net(model, points), grad_all(points)
        second = {}
        for a in axes:
            tangent = jnp.zeros_like(points).at[:, a].set(1)
            second[a] = jax.jvp(grad_all, (points,), (tangent,))[1][:, a]
        return u, g, second

    def loss_fn(model, data):
        u, g, s = derivatives(model, data["interior"], needs)
        loss = jnp.mean(residual(u, g, s, data["source"]) ** 2)
        for (kind, weight), c in zip(kinds, data["conditions"]):
            if kind == "dirichlet":
                e = net(model, c["points"]) - c["values"]
            else:
                ua, ga, _ = derivatives(model, c["points"], ())
                ub, gb, _ = derivatives(model, c["partners"], ())
                e = jnp.concatenate([(ua - ub)[:, None], ga - gb], axis=1)
            loss = loss + weight * jnp.mean(e ** 2)
        return loss

    adam_times, lbfgs_times, lbfgs_evals = [], [], []
    start = time.perf_counter()
    if adam_steps:
        optimizer = nnx.Optimizer(kan, optax.adam(lr), wrt=nnx.Param)

        @nnx.jit
        def adam_step(model, optimizer, data):
            loss, grads = nnx.value_and_grad(loss_fn)(model, data)
            optimizer.update(model, grads)
            return loss

        for _ in range(adam_steps):
            t0 = time.perf_counter()
            adam_step(kan, optimizer, data).block_until_ready()
            adam_times.append(time.perf_counter() - t0)

    if lbfgs_steps:
        graph, params, rest = nnx.split(kan, nnx.Param, ...)
        # get_lbfgs passes linesearch=None on to optax.lbfgs, which then takes unit steps with no
        # line search: hand it optax.lbfgs's own default, the zoom line search, explicitly
        lbfgs = get_lbfgs(memory_size=history, linesearch=optax.scale_by_zoom_linesearch(
            max_linesearch_steps=20, initial_guess_strategy="one"))
        state = lbfgs.init(params)

        @jax.jit
        def lbfgs_iteration(params, state, data):
            def value_fn(p):
                return loss_fn(nnx.merge(graph, p, rest), data)

            value, grad = optax.value_and_grad_from_state(value_fn)(params, state=state)
            updates, state = lbfgs.update(grad, state, params, value=value, grad=grad, value_fn=value_fn)
            searched = optax.tree_utils.tree_get(state, "num_linesearch_steps")
            return optax.apply_updates(params, updates), state, searched

        for step in range(lbfgs_steps):
            t0 = time.perf_counter()
            searched = []
            for _ in range(lbfgs_iters):
                params, state, n = lbfgs_iteration(params, state, data)
                searched.append(n)
            jax.block_until_ready(params)
            lbfgs_times.append(time.perf_counter() - t0)
            lbfgs_evals.append(sum(int(n) for n in searched) + (step == 0))
        nnx.update(kan, params)
    total = time.perf_counter() - start

    u_test = np.asarray(net(kan, jnp.asarray(spec["test_points"], dtype)))
    n_params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(nnx.state(kan, nnx.Param)))
    text = _optimizer_text(adam_steps, lr, lbfgs_steps, lbfgs_iters, "optax.adam",
                           f"optax.lbfgs (jaxkan get_lbfgs, memory {history}, zoom line search)")
    return _summary(spec, adam_times, lbfgs_times, lbfgs_evals, total, text, n_params, u_test, dtype_name,
                    {"layer": f"jaxkan {layer}, k 3, G {int(spec['grid'])}", "derivatives": mode})


# ---------------------------------------------------------------- MLP PINN in PyTorch
def run_mlp(spec, seed):
    """An MLP PINN in PyTorch (CPU) on `spec` from `seed` -> the result row (the module docstring)."""
    import torch

    dtype_name = spec.get("dtype", "float32")
    dtype = {"float32": torch.float32, "float64": torch.float64}.get(dtype_name)
    if dtype is None:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype_name!r}")
    adam_steps, lr, lbfgs_steps, lbfgs_iters, history = _budget(spec)
    threads_before = torch.get_num_threads()
    if spec.get("torch_threads"):
        torch.set_num_threads(int(spec["torch_threads"]))
    try:
        return _run_mlp(spec, seed, dtype_name, dtype, torch, adam_steps, lr, lbfgs_steps, lbfgs_iters, history)
    finally:
        torch.set_num_threads(threads_before)


def _run_mlp(spec, seed, dtype_name, dtype, torch, adam_steps, lr, lbfgs_steps, lbfgs_iters, history):
    torch.manual_seed(int(seed))

    width = list(spec.get("mlp_width", [2, 50, 50, 50, 1]))
    layers = []
    for i, (n_in, n_out) in enumerate(zip(width[:-1], width[1:])):
        linear = torch.nn.Linear(n_in, n_out, dtype=dtype)
        torch.nn.init.xavier_normal_(linear.weight)
        torch.nn.init.zeros_(linear.bias)
        layers.append(linear)
        if i < len(width) - 2:
            layers.append(torch.nn.Tanh())
    model = torch.nn.Sequential(*layers)

    def tensor(a, grad=False):
        return torch.tensor(np.asarray(a), dtype=dtype, requires_grad=grad)

    center, scale = (tensor(a) for a in _input_map(spec))
    needs, residual = _problem(spec)
    source = _source(spec)
    source = None if source is None else tensor(source)
    interior = tensor(spec["interior"], grad=True)
    conditions = []
    for c in spec["conditions"]:
        if c["kind"] == "dirichlet":
            conditions.append(("dirichlet", float(c["weight"]), tensor(c["points"]), tensor(c["values"])))
        elif c["kind"] == "periodic":
            conditions.append(("periodic", float(c["weight"]), tensor(c["points"], grad=True),
                               tensor(c["partners"], grad=True)))
        else:
            raise ValueError(f"unknown condition kind {c['kind']!r}")

    def net(points):
        return model((points - center) * scale)[:, 0]

    def derivatives(points, axes):
        u = net(points)
        (g,) = torch.autograd.grad(u.sum(), points, create_graph=True)
        second = {a: torch.autograd.grad(g[:, a].sum(), points, create_graph=True)[0][:, a] for a in axes}
        return u, g, second

    def loss_fn():
        u, g, s = derivatives(interior, needs)
        loss = torch.mean(residual(u, g, s, source) ** 2)
        for kind, weight, a, b in conditions:
            if kind == "dirichlet":
                e = net(a) - b
            else:
                ua, ga, _ = derivatives(a, ())
                ub, gb, _ = derivatives(b, ())
                e = torch.cat([(ua - ub)[:, None], ga - gb], dim=1)
            loss = loss + weight * torch.mean(e ** 2)
        return loss

    adam_times, lbfgs_times, lbfgs_evals = [], [], []
    start = time.perf_counter()
    if adam_steps:
        adam = torch.optim.Adam(model.parameters(), lr=lr)
        for _ in range(adam_steps):
            t0 = time.perf_counter()
            adam.zero_grad()
            loss_fn().backward()
            adam.step()
            adam_times.append(time.perf_counter() - t0)
    if lbfgs_steps:
        lbfgs = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=lbfgs_iters, history_size=history,
                                  line_search_fn="strong_wolfe")

        def closure():
            lbfgs_evals[-1] += 1
            lbfgs.zero_grad()
            loss = loss_fn()
            loss.backward()
            return loss

        for _ in range(lbfgs_steps):
            t0 = time.perf_counter()
            lbfgs_evals.append(0)
            lbfgs.step(closure)
            lbfgs_times.append(time.perf_counter() - t0)
    total = time.perf_counter() - start

    with torch.no_grad():
        u_test = net(tensor(spec["test_points"])).numpy()
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    text = _optimizer_text(adam_steps, lr, lbfgs_steps, lbfgs_iters, "torch Adam",
                           f"torch LBFGS (strong Wolfe, history {history})")
    return _summary(spec, adam_times, lbfgs_times, lbfgs_evals, total, text, n_params, u_test, dtype_name,
                    {"layer": f"MLP {width} tanh", "threads": torch.get_num_threads()})


PEERS = {"jaxkan": run_jaxkan, "mlp": run_mlp}
