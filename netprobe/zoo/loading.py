"""Resolve a MODEL spec: a zoo name, `path/to/file.py:Name` or `package.module:Name` (a class or a factory)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from netprobe.errors import NetprobeError
from netprobe.zoo import load, model_spec


@dataclass
class LoadedModel:
    """A built model, the name to show for it, and its default input (C, H, W) when the zoo knows one."""

    model: torch.nn.Module
    name: str
    input_size: tuple[int, ...] | None


def parse_kwargs(items) -> dict:
    """'key=value' strings to a dict; values are Python literals when they parse as one, else strings."""
    kwargs = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise NetprobeError(f"expected --kwargs KEY=VALUE, got {item!r}")
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = text
        kwargs[key.strip()] = value
    return kwargs


def load_model(spec: str, kwargs: dict | None = None, *, plain: bool = False, preact: bool = False) -> LoadedModel:
    """Build the model named by `spec`; zoo models are built on the meta device (no weights, no init cost)."""
    kwargs = dict(kwargs or {})
    if ":" not in spec:
        registered = model_spec(spec)  # an unknown name raises with the closest matches
        options = {**kwargs, **({"plain": True} if plain else {}), **({"preact": True} if preact else {})}
        with torch.device("meta"), _SkipFills():
            model = _call(lambda **kw: load(spec, **kw), spec, options)
        c, h, w = registered.input_size
        return LoadedModel(model, spec, (options.get("in_channels", c), h, w))
    if plain or preact:
        raise NetprobeError("--plain and --preact apply to zoo models only")
    target, _, attr = spec.rpartition(":")
    module = _import(target)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            defined = sorted(n for n, v in vars(module).items() if not n.startswith("_") and callable(v))
            raise NetprobeError(f"{target} has no attribute {attr!r} (it defines: {', '.join(defined) or 'nothing'})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise NetprobeError(f"{spec} is not a class or a factory")
    model = _call(obj, attr, kwargs)
    if not isinstance(model, torch.nn.Module):
        raise NetprobeError(f"{spec} returned a {type(model).__name__}, not a torch.nn.Module")
    return LoadedModel(model, attr, None)


class _SkipFills(TorchDispatchMode):
    """Skips in-place writes (weight initialisation) into meta tensors: they hold no values to write.

    torch runs several initialisers (normal_) through Python kernels whose first call imports torch._dynamo.
    """

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # nothing is compiled here; the wrapper itself would import torch._dynamo

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        returns = func._schema.returns
        if (func._opname.endswith("_") and func._schema.is_mutable and len(returns) == 1 and returns[0].alias_info is not None and args
                and isinstance(args[0], torch.Tensor) and args[0].is_meta):
            return args[0]
        return func(*args, **kwargs)


def _call(fn, label: str, kwargs: dict):
    try:
        return fn(**kwargs)
    except NetprobeError:
        raise
    except Exception as exc:
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        lines = str(exc).strip().splitlines()
        # torchvision's RegNet computes its widths with tensors and .tolist(): on meta there are no values to read
        hint = ("; its construction reads tensor values, which the meta device does not hold: build it on the CPU "
                "(netprobe traces a meta copy) or move it after building (model.to('meta'))"
                if lines and "meta tensor" in lines[0] else "")
        raise NetprobeError(f"{label}({args}) raised {type(exc).__name__}"
                            + (f": {lines[0]}" if lines else "") + hint) from None


def _import(target: str):
    """Import a .py file (its folder first on sys.path while it runs) or a dotted module."""
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_file():
            raise NetprobeError(f"no such file: {target}")
        name = f"_netprobe_user_{path.stem}"
        loader_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module  # dataclasses and pickling look the module up by name
        sys.path.insert(0, str(path.resolve().parent))
        try:
            loader_spec.loader.exec_module(module)
        except SystemExit as exc:  # the model's own code ended the process: say so instead of exiting silently
            del sys.modules[name]
            raise NetprobeError(f"cannot import {target}: its code called sys.exit({exc.code!r})") from None
        except Exception as exc:
            del sys.modules[name]
            raise NetprobeError(f"cannot import {target}: {type(exc).__name__}: {_first(exc)}") from None
        finally:
            sys.path.remove(str(path.resolve().parent))
        return module
    try:
        return importlib.import_module(target)
    except SystemExit as exc:
        raise NetprobeError(f"cannot import {target}: its code called sys.exit({exc.code!r})") from None
    except Exception as exc:
        raise NetprobeError(f"cannot import {target}: {type(exc).__name__}: {_first(exc)}") from None


def _first(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""
