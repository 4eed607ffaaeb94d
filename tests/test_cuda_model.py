"""The model on device="cuda": under Numba's CUDA simulator in CI, on a real GPU when there is one.

The simulator must be switched on before numba is imported, and other test files import numba
in this process, so the simulator checks run in a subprocess.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import kanarray
from cudasim_shared import PRELUDE

SIMULATED_MODEL = PRELUDE + textwrap.dedent("""
    import os, sys, numpy as np, kanarray
    assert os.environ["NUMBA_ENABLE_CUDASIM"] == "1"
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-1.1, 1.1, (37, 3)), rng.normal(size=(37, 2))
    for path in ("fused", "dense"):
        cpu = kanarray.KAN([3, 4, 2], grid=4, seed=1)
        gpu = kanarray.KAN([3, 4, 2], grid=4, seed=1, device="cuda", path=path)
        cpu.update_grid(x); gpu.update_grid(x)
        np.testing.assert_allclose(gpu(x), cpu(x), rtol=1e-12, atol=1e-12)
        loss_c, grad_c, dx_c = cpu.loss_and_grad(x, y, need_dx=True)
        loss_g, grad_g, dx_g = gpu.loss_and_grad(x, y, need_dx=True)
        assert abs(loss_g - loss_c) <= 1e-12 * loss_c
        np.testing.assert_allclose(grad_g, grad_c, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dx_g, dx_c, rtol=1e-10, atol=1e-12)
        again = gpu.loss_and_grad(x, y)[1]
        assert again.tobytes() == grad_g.tobytes(), "GPU gradients differ between runs"
    # training makes real progress on a smooth target: 2 L-BFGS steps of 4 iterations cut the
    # RMSE to 0.51-0.72 of its start over model seeds 1..8 (same arithmetic on the CPU). One
    # seed here: each simulated evaluation is slow, and the CPU's arithmetic is the GPU's (the
    # cross-entropy history below is held to the CPU's step by step)
    target = np.stack([np.sin(2 * x[:, 0]) * x[:, 1], x[:, 2] ** 2 - 0.5], axis=1)
    data = {"train_input": x, "train_label": target, "test_input": x[:9], "test_label": target[:9]}
    for seed in (1,):
        model = kanarray.KAN([3, 4, 2], grid=4, seed=seed, device="cuda", path="fused")
        start = float(np.sqrt(np.mean((model(x) - target) ** 2)))
        results = model.fit(data, steps=2, lbfgs_iters=4, update_grid=False)
        assert results["stopped"] is None, (seed, results["stopped"])
        assert results["train_loss"][-1] < 0.8 * start, (seed, start, results["train_loss"])
    # cross-entropy with raw-unit scaling and the regulariser: the same history as on the CPU
    labels = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.3).astype(int)
    classes = {"train_input": 5 * x + 3, "train_label": labels, "test_input": 5 * x[:9] + 3,
               "test_label": labels[:9]}
    runs = []
    for device in ("cpu", "cuda"):
        model = kanarray.KAN([3, 3, 3], grid=4, seed=4, device=device).set_scaling(classes["train_input"])
        runs.append(model.fit(classes, loss="ce", steps=1, lbfgs_iters=2, lamb=1e-3))
    np.testing.assert_allclose(runs[1]["train_loss"], runs[0]["train_loss"], rtol=1e-9)
    assert runs[1]["test_accuracy"] == runs[0]["test_accuracy"]
    gpu.update_grid(x)
    fine = gpu.refine(8)  # subdivides every cell: exact on the data the grid was fitted to
    np.testing.assert_allclose(fine(x), gpu(x), rtol=1e-8, atol=1e-8)
    gpu.save(sys.argv[1])
    on_cpu = kanarray.load(sys.argv[1], device="cpu")
    assert on_cpu.device == "cpu" and on_cpu.params.tobytes() == gpu.params.tobytes()
    np.testing.assert_allclose(on_cpu(x), gpu(x), rtol=1e-12, atol=1e-12)
    print("ok")
""")


def test_model_on_simulated_cuda_matches_cpu(tmp_path):
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    out = subprocess.run([sys.executable, "-c", SIMULATED_MODEL, str(tmp_path / "m.npz")], env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout + out.stderr


def test_cuda_device_without_cupy_names_the_extra():
    code = ("import sys; sys.modules['cupy'] = None\n"
            "import kanarray\n"
            "try:\n    kanarray.KAN([2, 1], device='cuda')\n"
            "except ImportError as e:\n    print(e)\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "pip install 'kanarray[cuda]'" in out.stdout, out.stdout + out.stderr


def test_cupy_array_given_to_a_cpu_model_is_refused():
    class FakeCupyArray:  # what the backend sees of a CuPy array: its module
        __module__ = "cupy._core.core"
        dtype = np.dtype(np.float64)
        ndim, shape = 2, (3, 2)

    with pytest.raises(TypeError, match="CuPy array for a model on device='cpu'"):
        kanarray.KAN([2, 1]).backend.asarray(FakeCupyArray(), np.float64)


def _gpu_available():
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


gpu = pytest.mark.skipif(not _gpu_available(), reason="needs an NVIDIA GPU with CuPy")


@pytest.mark.gpu
@gpu
def test_toy_trains_on_the_gpu_to_cpu_accuracy():
    import cupy

    from kanarray.pipelines.stages import grid_extension

    data = kanarray.create_dataset(lambda x: np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2), n_var=2)
    results = {}
    for device in ("cpu", "cuda"):
        model = kanarray.KAN([2, 5, 1], grid=3, seed=0, device=device)
        model, rows = grid_extension(model, data, [3, 5, 10, 20], steps=100)
        results[device] = rows[-1]["test_rmse"]
    assert results["cuda"] < 1e-4
    assert results["cuda"] < 3 * results["cpu"]
    x = cupy.asarray(data["test_input"])
    assert isinstance(model(x), cupy.ndarray)  # CuPy in, CuPy out
    assert isinstance(model(data["test_input"]), np.ndarray)  # NumPy in, NumPy out


@pytest.mark.gpu
@gpu
def test_model_saved_on_the_gpu_loads_on_the_cpu(tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, (500, 2))
    model = kanarray.KAN([2, 5, 1], grid=8, seed=0, device="cuda")
    model.update_grid(x)
    model.save(tmp_path / "m.npz")
    on_cpu = kanarray.load(tmp_path / "m.npz", device="cpu")
    np.testing.assert_allclose(on_cpu(x), model(x), rtol=1e-12, atol=1e-12)
    back = kanarray.load(tmp_path / "m.npz", device="cuda")
    np.testing.assert_allclose(back(x), model(x), rtol=0, atol=0)
