"""Checkpoint files: one .npz of plain arrays plus a JSON metadata record, never pickles.

This module reads and writes named arrays and a JSON config; building a model from them is
kanarray.model's job. Layout of the archive:
    meta        uint8 bytes of a JSON object: format, version, the config, free-form metadata
                (column names, the task: whatever the writer keeps beside the model), for a
                fit still running the JSON part of its state ("training"), and a SHA-256 over
                config, metadata and training (canonical JSON) and every other array (name,
                dtype, shape and bytes)
    <name>      the arrays, host NumPy, plain dtypes (numbers, fixed-width unicode); those of a
                running fit's state are named "training/<name>"

The digest catches corruption and careless edits; it is not a signature (anyone can recompute
it), so readers must still validate every value (kanarray.model.load does). Files are written
to a temporary name beside the target and renamed, so an interrupted save never leaves a
half-written checkpoint in place of a good one, and they get the permissions of a normal file
(the user's umask). Archives are read with allow_pickle=False.
"""
import hashlib
import json
import os
import tempfile

import numpy as np

FORMAT = "kanarray"
VERSION = 2
TRAINING = "training/"  # names of the arrays of a running fit's state


class CheckpointError(ValueError):
    """A file that is not a readable, consistent kanarray checkpoint."""


def _digest(config, metadata, arrays, training=None):
    records = [config, metadata] if training is None else [config, metadata, training]
    sha = hashlib.sha256(json.dumps(records, sort_keys=True).encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        sha.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write(path, config, arrays, metadata=None, training=None):
    """Write `config` and `metadata` (JSON-serialisable dicts) and `arrays` (name -> host array)
    to `path` atomically; training: None, or (JSON dict, {name: host array}) of a fit still
    running. OSErrors name `path`, not the temporary file."""
    path = os.fspath(path)
    metadata = {} if metadata is None else metadata
    record = None
    if training is not None:
        record, training_arrays = training
        arrays = {**arrays, **{f"{TRAINING}{name}": value for name, value in training_arrays.items()}}
    meta = {"format": FORMAT, "version": VERSION, "config": config, "metadata": metadata,
            "sha256": _digest(config, metadata, arrays, record)}
    if record is not None:
        meta["training"] = record
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        handle, tmp = tempfile.mkstemp(prefix=".kanarray-", suffix=".tmp", dir=folder)
        with os.fdopen(handle, "wb") as out:
            np.savez(out, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        raise type(exc)(exc.errno, f"could not write the checkpoint: {exc.strerror}", path) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def read(path):
    """-> (config dict, {name: array}, metadata dict, training) of a checkpoint whose digest
    matches; training is None, or (JSON dict, {name: array}) of the fit still running that
    wrote it (write's `training`), and its arrays are not among the others.

    Raises FileNotFoundError for a missing file and CheckpointError (a ValueError) for anything
    that is not a readable kanarray checkpoint.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(2, "no such checkpoint file", path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except Exception as exc:  # noqa: BLE001 - zip, npy, pickle and JSON errors alike
        raise CheckpointError(f"{path!r} is not a readable kanarray checkpoint: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not a readable kanarray checkpoint: no kanarray metadata")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path!r} is not a readable kanarray checkpoint: version "
                              f"{meta.get('version')!r}, this kanarray reads version {VERSION}")
    config = meta.get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path!r} is not a readable kanarray checkpoint: its config is "
                              f"{type(config).__name__}, not a JSON object")
    metadata = meta.get("metadata")
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path!r} is not a readable kanarray checkpoint: its metadata is "
                              f"{type(metadata).__name__}, not a JSON object")
    record = meta.get("training")
    if record is not None and not isinstance(record, dict):
        raise CheckpointError(f"{path!r} is not a readable kanarray checkpoint: its training "
                              f"record is {type(record).__name__}, not a JSON object")
    if meta.get("sha256") != _digest(config, metadata, arrays, record):
        raise CheckpointError(f"{path!r} failed its checksum: the file was modified or corrupted")
    training = {name[len(TRAINING):]: arrays.pop(name) for name in list(arrays)
                if name.startswith(TRAINING)}
    return config, arrays, metadata, None if record is None else (record, training)
