"""Checkpoints: one .npz of plain arrays plus a JSON metadata record, never pickles.

Layout of the archive:
    meta        uint8 bytes of a JSON object: format, version, the model's config, and a
                SHA-256 of every other array (name, dtype, shape and bytes) to catch tampering
    params      the flat parameter vector
    knots_<l>   knot vectors of layer l
    mask_<l>    edge mask of layer l
    symbolic_mask_<l>, symbolic_fun_<l>
                symbolic edges of layer l (kanarray.symbolic): switch per edge and the library
                name of its function ("" = none, a fixed-width unicode array, no pickle); both
                are covered by the checksum. Their (a, b, c, d) are in params.
Files are written to a temporary name beside the target and renamed, so an interrupted save
never leaves a half-written checkpoint in place of a good one.
"""
import hashlib
import json
import os
import tempfile

import numpy as np

FORMAT = "kanarray"
VERSION = 1


def _digest(arrays):
    sha = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        sha.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()


def _arrays(model):
    host = model.backend.to_numpy
    arrays = {"params": host(model.params)}
    for l, layer in enumerate(model.layers):
        arrays[f"knots_{l}"] = host(layer.knots)
        arrays[f"mask_{l}"] = host(layer.mask)
        arrays[f"symbolic_mask_{l}"] = host(layer.symbolic_mask)
        arrays[f"symbolic_fun_{l}"] = np.asarray(layer.symbolic_fun, dtype=str)
    return arrays


def save(model, path):
    """Write `model` to `path` atomically (temporary file in the same folder, then rename)."""
    path = os.fspath(path)
    arrays = _arrays(model)
    meta = {"format": FORMAT, "version": VERSION, "config": model.config(), "sha256": _digest(arrays)}
    folder = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(prefix=".kanarray-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(out, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read(path):
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (OSError, ValueError, KeyError, EOFError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path!r} is not a readable kanarray checkpoint: {exc}") from None
    except Exception as exc:  # zipfile.BadZipFile and friends from a corrupt archive
        raise ValueError(f"{path!r} is not a readable kanarray checkpoint: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a kanarray checkpoint (no kanarray metadata)")
    if meta.get("version") != VERSION:
        raise ValueError(f"{path!r} has checkpoint version {meta.get('version')!r}; this kanarray "
                         f"reads version {VERSION}")
    if meta.get("sha256") != _digest(arrays):
        raise ValueError(f"{path!r} failed its checksum: the file was modified or corrupted")
    return meta, arrays


def _load_symbolic(layer, l, symbolic_mask, symbolic_fun):
    from .symbolic_lib import LIBRARY

    shape = tuple(layer.mask.shape)
    if symbolic_mask.shape != shape or symbolic_fun.shape != shape or symbolic_fun.dtype.kind != "U":
        raise ValueError(f"layer {l} symbolic arrays have shapes {symbolic_mask.shape}, "
                         f"{symbolic_fun.shape} (dtype {symbolic_fun.dtype}); expected {shape}")
    unknown = sorted({str(n) for n in symbolic_fun.ravel() if n and n not in LIBRARY})
    if unknown:
        raise ValueError(f"layer {l} uses symbolic functions {unknown} that are not in the library; "
                         "register them with kanarray.symbolic_lib.add_symbolic before loading")
    layer.symbolic_mask[...] = layer.backend.asarray(symbolic_mask, layer.dtype)
    layer.symbolic_fun = symbolic_fun.copy()


def load(path, device=None):
    """Load a model saved by KAN.save; device overrides the saved device ("cpu" or "cuda")."""
    from .model import KAN

    meta, arrays = _read(os.fspath(path))
    config = dict(meta["config"])
    if device is not None:
        config["device"] = device
    try:
        model = KAN(**config)
        model.params = arrays["params"]
        for l, layer in enumerate(model.layers):
            knots, mask = arrays[f"knots_{l}"], arrays[f"mask_{l}"]
            if knots.shape != tuple(layer.knots.shape) or mask.shape != tuple(layer.mask.shape):
                raise ValueError(f"layer {l} arrays have shapes {knots.shape}, {mask.shape}")
            layer.knots[...] = layer.backend.asarray(knots, layer.dtype)
            layer.mask[...] = layer.backend.asarray(mask, layer.dtype)
            if f"symbolic_fun_{l}" in arrays:
                _load_symbolic(layer, l, arrays[f"symbolic_mask_{l}"], arrays[f"symbolic_fun_{l}"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path!r} does not describe a consistent model: {exc}") from None
    return model
