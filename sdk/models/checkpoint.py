"""avsdk checkpoints: one file holding the config, the weights and free-form metadata.

    {"format": "avsdk.checkpoint", "version": 1,
     "model_config": dataclasses.asdict(config), "state_dict": {...}, "meta": {...}}

Written atomically (temporary file in the same folder, then os.replace), so a crash never
leaves a half-written checkpoint under the final name. Read with ``weights_only=True``:
loading a checkpoint never runs code from the file.
"""
from __future__ import annotations

import dataclasses
import json
import os

import torch

from avsdk._atomic import write_atomic
from avsdk.errors import CheckpointError, bad_input

from .avnet import AVNet
from .config import ModelConfig
from .weights import load_strict, load_torch_file

FORMAT = "avsdk.checkpoint"
VERSION = 1


def save_checkpoint(path, model: AVNet, **meta) -> None:
    """Write ``model`` and ``meta`` to ``path`` atomically; creates missing parent folders.

    Args:
        path: destination file (conventionally ``.pt``).
        model: an AVNet.
        **meta: JSON-like values (str, int, float, bool, None, lists and dicts of them),
            e.g. ``epoch=3, val_ciou=0.61``.

    Raises:
        InputError: ``model`` is not an AVNet or ``meta`` is not JSON-like.
    """
    if not isinstance(model, AVNet):
        raise bad_input("model", "an avsdk.models.AVNet", model)
    try:
        # as plain Python values: numpy scalars (float and str subclasses) would pickle as
        # numpy objects, which load_checkpoint's weights-only load refuses
        meta = json.loads(json.dumps(meta, allow_nan=True))
    except (TypeError, ValueError) as exc:
        raise bad_input("meta", "JSON-like values (str, int, float, bool, None, list, dict)",
                        f"{exc}", described=True) from exc
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": dataclasses.asdict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta,
    }
    write_atomic(os.path.abspath(os.fspath(path)), lambda handle: torch.save(payload, handle))


def load_checkpoint(path, map_location="cpu") -> tuple[AVNet, dict]:
    """Read a checkpoint written by save_checkpoint -> (AVNet in eval mode, meta).

    Raises:
        CheckpointError: missing or unreadable file, another kind of file (e.g. a bare
            state_dict: use the loaders in avsdk.models.weights for those), a newer
            format version, or weights that do not match the stored config.
    """
    payload = load_torch_file(path, "checkpoint", map_location)
    path = os.fspath(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path!r} is not an avsdk checkpoint (no 'format': {FORMAT!r}); released SACL / "
            "SSPL weights and torchvision files load with avsdk.models.weights")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {path!r} has format version {payload.get('version')!r}; this avsdk "
            f"reads version {VERSION}")
    try:
        fields = dict(payload["model_config"])
        # checkpoints written before the field existed hold linear-head models
        fields.setdefault("nonnegative", False)
        config = ModelConfig(**fields)
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path!r} holds an invalid model_config: {exc}") from exc
    model = AVNet(config)
    load_strict(model, payload.get("state_dict", {}), f"checkpoint {path!r}")
    return model.eval(), dict(payload.get("meta", {}))
