"""Checkpoints: {'state_dict', 'meta'} written atomically, read back with `torch.load(weights_only=True)`."""

from __future__ import annotations

import io
import math
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
    except Exception as exc:  # noqa: BLE001 - any failure to unpickle foreign bytes means 'not a checkpoint'
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NetprobeError(f"{path} is not a loadable checkpoint ({reason})") from None
    if isinstance(obj, dict) and "state_dict" in obj and "meta" in obj:
        state, meta = obj["state_dict"], obj["meta"]
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state, meta = obj, {}
    else:
        raise NetprobeError(f"{path} holds neither a netprobe checkpoint nor a state dict")
    problem = _state_problem(state) or _meta_problem(meta)
    if problem:
        raise NetprobeError(f"{path} is not a valid checkpoint: {problem}")
    return state, meta


# dtypes a trained CNN's state holds; anything else would be cast silently by load_state_dict
_DTYPES = {torch.float32, torch.float64, torch.int64, torch.int32, torch.uint8}
_META_TYPES = {"model": str, "data": str, "options": dict, "epoch": int, "step": int, "seed": int, "history": list,
               "train": dict, "resume": dict, "mean": (list, tuple), "std": (list, tuple)}


def _state_problem(state) -> str | None:
    """Why `state` is no usable state dict (non-tensor value, odd dtype, NaN or inf), or None."""
    if not isinstance(state, dict) or not state:
        return "state_dict is not a non-empty dict"
    for key, value in state.items():
        if not isinstance(key, str):
            return f"state_dict key {key!r} is not a string"
        if not isinstance(value, torch.Tensor):
            return f"state_dict[{key!r}] is a {type(value).__name__}, not a tensor"
        if value.layout != torch.strided or value.is_meta:
            return f"state_dict[{key!r}] is a {'meta' if value.is_meta else 'sparse'} tensor, which holds no weights"
        if value.dtype not in _DTYPES:
            return f"state_dict[{key!r}] has dtype {value.dtype} (expected float32, float64 or an integer type)"
        if value.is_floating_point() and not torch.isfinite(value).all():
            return f"state_dict[{key!r}] holds NaN or infinite values"
        if key.endswith("running_var") and (value < 0).any():
            return f"state_dict[{key!r}] holds a negative variance"
    return None


def _meta_problem(meta) -> str | None:
    """The first meta field of the wrong type or value (epoch < 0, options not a str-keyed dict), or None."""
    if not isinstance(meta, dict):
        return "meta is not a dict"
    for key, kind in _META_TYPES.items():
        if key in meta and (not isinstance(meta[key], kind) or isinstance(meta[key], bool)):
            return f"meta.{key} is a {type(meta[key]).__name__}"
    if not all(isinstance(k, str) for k in meta.get("options", {})):
        return "meta.options has a key that is not a string"
    if meta.get("epoch", 0) < 0:
        return f"meta.epoch is {meta['epoch']}, below 0"
    for key in ("mean", "std"):  # the data's normalisation: one finite number per channel, std above 0
        values = meta.get(key, [1.0])
        if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                 and (key == "mean" or v > 0) for v in values):
            return f"meta.{key} is not a list of {'finite' if key == 'mean' else 'positive'} numbers"
    if "resume" in meta:
        resume = meta["resume"]
        for key in ("rng", "shuffle_rng"):
            if not isinstance(resume.get(key), torch.Tensor) or resume[key].dtype != torch.uint8:
                return f"meta.resume.{key} is not a uint8 tensor"
        optimizer = resume.get("optimizer")
        if not (isinstance(optimizer, dict) and isinstance(optimizer.get("state"), dict)
                and isinstance(optimizer.get("param_groups"), list)):
            return "meta.resume.optimizer is not an optimizer state dict"
        if "epoch" not in meta and "step" not in meta:
            return "meta has a resume block but neither epoch nor step"
    return None


def trained_options(path, name: str) -> dict:
    """The build options a checkpoint of zoo model `name` was trained with (width, bn, ...), twin flags dropped.

    The depth study trains narrower CIFAR ResNets than the zoo default: every --weights reader builds from these.
    """
    _, meta = load_checkpoint(path)
    if meta.get("model", name) != name:
        raise NetprobeError(f"{path} holds weights of {describe(meta)}, not of {name}")
    options = {k: v for k, v in meta.get("options", {}).items() if k not in ("plain", "preact")}
    if ":" not in name:  # a file's model: its own builder says what it takes
        from netprobe.zoo import model_spec

        check_saved_options(path, model_spec(name), options)
    return options


def check_saved_options(path, spec, options: dict) -> None:
    """Refuse saved options the spec's builder would choke on: an unknown key, or a value of another type than the
    builder's default (a class count saved as text)."""
    import inspect

    builder, name = spec.builder, spec.name
    if spec.family == "custom":
        return  # the user's own builder says what it takes
    defaults = {p.name: p.default for p in inspect.signature(builder).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}
    for key, value in options.items():
        default = defaults.get(key, inspect.Parameter.empty)
        if default is inspect.Parameter.empty:
            raise NetprobeError(f"{path} was saved with option {key}={value!r}, which {name} does not take")
        kinds = _KINDS.get(type(default))
        if kinds and not (isinstance(value, kinds) and (isinstance(value, bool) == isinstance(default, bool))):
            raise NetprobeError(f"{path} was saved with {key}={value!r}: {name} takes a value of type "
                                f"{type(default).__name__} there")


# What a saved option may be, by the type of the builder's default (JSON and torch.save keep these apart).
_KINDS = {bool: bool, int: int, float: (int, float), str: str, tuple: (tuple, list), list: (tuple, list)}


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
        if state[key].is_floating_point() != value.is_floating_point():  # integer weights would be cast silently
            return f"key {key!r} has dtype {state[key].dtype} in the checkpoint, {value.dtype} in the model"
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
