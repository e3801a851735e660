"""Checkpoints: {'state_dict', 'meta'} written atomically, read back with `torch.load(weights_only=True)`."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch
from torch import nn

from netprobe.errors import NetprobeError


def save_checkpoint(path, model: nn.Module, meta: dict) -> Path:
    """Write the model's state dict and `meta` (plain types and tensors only) to `path` atomically."""
    from netprobe.files import write_atomic

    buffer = io.BytesIO()
    torch.save({"state_dict": model.state_dict(), "meta": meta}, buffer)
    return write_atomic(path, buffer.getvalue())


def load_checkpoint(path) -> tuple[dict, dict]:
    """(state_dict, meta) from a checkpoint, or from a bare state dict (meta then empty); never unpickles code."""
    path = Path(path)
    if not path.is_file():
        raise NetprobeError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NetprobeError(f"{path} is not a loadable checkpoint ({reason})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict) and isinstance(obj.get("meta"), dict):
        return obj["state_dict"], obj["meta"]
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, {}
    raise NetprobeError(f"{path} holds neither a netprobe checkpoint nor a state dict")


def describe(meta: dict) -> str:
    """'resnet20 (plain=True) on synthetic, epoch 3' from a checkpoint's meta; 'an unknown model' without it."""
    if "model" not in meta:
        return "an unknown model (a bare state dict)"
    options = ", ".join(f"{k}={v}" for k, v in sorted(meta.get("options", {}).items()))
    text = meta["model"] + (f" ({options})" if options else "")
    if "data" in meta:
        text += f" on {meta['data']}"
    if "epoch" in meta:
        text += f", epoch {meta['epoch']}"
    return text


def mismatch(model: nn.Module, state: dict) -> str | None:
    """The first difference between `model`'s state dict and `state` (missing, wrong shape, unexpected), or None."""
    own = model.state_dict()
    for key, value in own.items():
        if key not in state:
            return f"missing key {key!r}"
        if tuple(state[key].shape) != tuple(value.shape):
            return (f"key {key!r} has shape {tuple(state[key].shape)} in the checkpoint, "
                    f"{tuple(value.shape)} in the model")
    for key in state:
        if key not in own:
            return f"unexpected key {key!r}"
    return None


def load_weights(model: nn.Module, path, *, plain: bool | None = None) -> dict:
    """Load a checkpoint's weights into `model`; a mismatch raises naming the key and the checkpoint's model.

    `plain` (the model's variant, for families with a plain twin) is checked against the checkpoint's options:
    the twins have the same keys and shapes, so only the metadata tells them apart.
    """
    state, meta = load_checkpoint(path)
    problem = mismatch(model, state)
    if problem is not None:
        raise NetprobeError(f"{path} does not fit this model: {problem} (it was trained for {describe(meta)})")
    trained_plain = bool(meta.get("options", {}).get("plain", False))
    if plain is not None and "options" in meta and trained_plain != plain:
        twin = "plain" if trained_plain else "residual"
        raise NetprobeError(f"{path} holds the {twin} twin's weights ({describe(meta)}) but this model is the "
                            f"{'plain' if plain else 'residual'} one: {'add' if trained_plain else 'drop'} --plain")
    model.load_state_dict(state)
    return meta
