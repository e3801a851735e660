"""Resolve a MODEL spec: a zoo name, `path/to/file.py:Name` or `package.module:Name` (a class or a factory)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from netprobe.errors import NetprobeError
from netprobe.zoo import model_spec
from netprobe.zoo.registry import ModelSpec


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
            raise NetprobeError(f"expected kwargs KEY=VALUE, got {item!r}", said={"expected kwargs KEY": "expected --kwargs KEY"})
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = text
        kwargs[key.strip()] = value
    return kwargs


def load_model(spec: str, kwargs: dict | None = None, *, plain: bool = False, preact: bool = False,
               real: bool = False) -> LoadedModel:
    """Build the model named by `spec` on the meta device (no weights, no init cost); a model from a file or
    module whose construction reads values, or any with `real` (to run it), is built on the CPU."""
    kwargs = dict(kwargs or {})
    if ":" not in spec:
        registered = _zoo_spec(spec)
        options = {**kwargs, **({"plain": True} if plain else {}), **({"preact": True} if preact else {})}
        model = built(registered, options)
        c, h, w = registered.input_size
        return LoadedModel(model, spec, (options.get("in_channels", c), h, w))
    if plain or preact:
        raise NetprobeError("plain and preact apply to zoo models only", said={"plain and preact apply": "--plain and --preact apply"})
    attr, obj = _resolve(spec)
    if not real:
        try:
            with torch.device("meta"), _SkipFills():
                return LoadedModel(_module(spec, _call(obj, attr, kwargs)), attr, None)
        except NetprobeError:
            pass  # its construction needs values: built for real, where its errors are its own
    return LoadedModel(_module(spec, _call(obj, attr, kwargs)), attr, None)


def built(spec: ModelSpec, options: dict) -> torch.nn.Module:
    """The registered `spec` built with `options` on the meta device (no weights, no init cost); a model from a
    file or module (its --kwargs bound by `model_for`) whose construction needs values is built on the CPU, from
    a forked RNG, and moved to meta."""
    try:
        with torch.device("meta"), _SkipFills():
            return _call(spec.build, spec.name, options)
    except NetprobeError:
        if spec.family != "custom":
            raise
    with torch.random.fork_rng(devices=[]):
        return _call(spec.build, spec.name, options).to("meta")


def model_for(spec: str, kwargs: dict | None = None, input_size=None) -> tuple[ModelSpec, dict]:
    """MODEL as a registry spec and the options to build it with, for the commands that build it from a seed.

    A zoo name keeps its spec, its input and classes following `input_size` and the kwargs in_channels= and
    num_classes=; the options are `kwargs`. path/to/file.py:Name or package.module:Name is registered under
    a spec of its own (the registry is not touched) with `kwargs` bound into its builder (and kept in `bound`),
    `input_size` as its input and the classes its output has there; its options are none.
    """
    kwargs = dict(kwargs or {})
    if ":" not in spec:
        registered = _zoo_spec(spec)
        for key in kwargs:
            if key not in registered.options():
                raise NetprobeError(f"{spec} does not take option {key!r} (it takes: "
                                    f"{', '.join(registered.options()) or 'none'})")
        c, h, w = registered.input_size
        return replace(registered, input_size=tuple(input_size or (kwargs.get("in_channels", c), h, w)),
                       num_classes=kwargs.get("num_classes", registered.num_classes)), kwargs
    if input_size is None:
        raise NetprobeError(f"{spec} is not a zoo model: give its input with input_size CxHxW",
                            said={"input with input_size": "input with --input-size"})
    attr, obj = _resolve(spec)

    def builder(**options):
        model = _module(spec, _call(obj, attr, {**kwargs, **options}))
        if torch.get_default_device().type != "meta" and _on_meta(model):  # netprobe's own meta builds pass
            raise NetprobeError(f"{spec} was built on the meta device, which holds no values: build it on the CPU "
                                "to load weights or to compute (summary and rf take it as it is)")
        return model

    user = ModelSpec(spec, "custom", builder, tuple(input_size), None, f"{attr} ({spec})",
                     bound=tuple(kwargs.items()))
    out = output_shape(user, {})
    return replace(user, num_classes=out[1] if out is not None and len(out) == 2 else None), {}


def _on_meta(model: torch.nn.Module) -> bool:
    """Whether any parameter or buffer of `model` is on the meta device."""
    return any(t.is_meta for t in (*model.parameters(), *model.buffers()))


def output_shape(spec: ModelSpec, options: dict) -> tuple[int, ...] | None:
    """The output shape for a batch of 2 at the spec's input (None if not a tensor): on the meta device, or on
    the CPU for a model whose construction or forward pass needs values."""
    size = (2, *spec.input_size)
    try:
        with torch.device("meta"), _SkipFills(), torch.no_grad():
            out = spec.builder(**options)(torch.empty(size))
    except Exception:  # noqa: BLE001 - any failure on meta is retried for real, where errors are the model's own
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            model = _call(spec.builder, spec.name, options)
            try:
                out = model(torch.zeros(size))
            except Exception as exc:
                raise NetprobeError(f"{spec.name} fails on an input of {'x'.join(map(str, size))}: "
                                    f"{type(exc).__name__}: {_first(exc)}") from None
    return tuple(out.shape) if isinstance(out, torch.Tensor) else None


def source_file(spec: str) -> str | None:
    """The file that MODEL `path/to/file.py:Name` imports, else None (zoo names, modules)."""
    target = spec.rpartition(":")[0]
    return target if target.endswith(".py") or "/" in target or "\\" in target else None


def score_problem(spec: ModelSpec, options: dict, grad: bool) -> str | None:
    """Why the spec's output cannot be a loss's class scores (integers; with `grad`, no parameter to train or no
    gradient reaching one), else None: from a forward pass with autograd on, on the meta device if it runs."""
    size = (2, *spec.input_size)
    try:
        with torch.device("meta"), _SkipFills():
            model = spec.builder(**options)
            out = model(torch.empty(size))
    except Exception:  # noqa: BLE001 - as output_shape: retried for real, whose errors are the model's own
        with torch.random.fork_rng(devices=[]):
            model = _call(spec.builder, spec.name, options)
            out = model(torch.zeros(size))
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        return f"its output is {getattr(out, 'dtype', type(out).__name__)}, not floating-point scores"
    if grad and not any(p.requires_grad for p in model.parameters()):
        return "it has no trainable parameters"
    if grad and not out.requires_grad:
        return "its output carries no gradient to its parameters (detached, or computed under no_grad)"
    return None


def _zoo_spec(name: str) -> ModelSpec:
    """The zoo spec of `name`; a file named without `:Name` is told the form, an unknown name the closest ones."""
    if name.endswith(".py"):
        defined = _defined(_import(name)) if Path(name).is_file() else []
        raise NetprobeError(f"{name} is a file: name the model in it as {name}:{defined[0] if defined else 'Name'}"
                            + (f" (it defines: {', '.join(defined)})" if defined else ""))
    return model_spec(name)


def _resolve(spec: str):
    """The attribute path and the callable that `file.py:Name` or `module:Name` names."""
    target, _, attr = spec.rpartition(":")
    module = _import(target)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise NetprobeError(f"{target} has no attribute {attr!r} (it defines: "
                                f"{', '.join(_defined(module)) or 'nothing'})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise NetprobeError(f"{spec} is not a class or a factory")
    return attr, obj


def _defined(module) -> list[str]:
    return sorted(n for n, v in vars(module).items() if not n.startswith("_") and callable(v))


def _module(spec: str, model):
    if not isinstance(model, torch.nn.Module):
        raise NetprobeError(f"{spec} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


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
    if source_file(f"{target}:"):
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
