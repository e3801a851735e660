"""One traced forward pass on the meta device: every aten operator, its shapes and the module running it.

The model is never run for real. A meta copy (shapes and dtypes, no storage) goes through `forward` under a
`TorchDispatchMode`, as `torch.utils.flop_counter` does, so the cost does not depend on batch size or
resolution, and functional calls (`F.conv2d`, `x + y`, `torch.cat`) are seen like module calls.

The result is an operator graph, a `Trace` (see `netprobe.analysis.counting.opgraph`).
"""

from __future__ import annotations

import contextlib
import copy
import itertools

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from netprobe.analysis.counting import fastmeta
from netprobe.analysis.counting.opgraph import ModuleCall, OpCall, TensorRef, Trace, tensors_in
from netprobe.errors import NetprobeError
from netprobe.modes import model_mode

__all__ = ["ModuleCall", "OpCall", "TensorRef", "Trace", "call_inputs", "example_inputs", "example_tree", "trace"]


class OpFailed(Exception):
    """An operator raised during the trace; carries what is needed to explain it to the user."""

    def __init__(self, op, args, call, error):
        super().__init__(str(error))
        self.op, self.args, self.call, self.error = op, args, call, error


# Operators whose output has a spatial extent computed from a window; a zero there means the input is too small.
WINDOW_OPS = {"convolution", "max_pool2d_with_indices", "max_pool3d_with_indices", "max_pool1d", "max_pool2d",
              "avg_pool1d", "avg_pool2d", "avg_pool3d", "_convolution", "max_pool1d_with_indices"}


class _Tracer(TorchDispatchMode):
    """Records operators; module hooks keep the stack of running module calls."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # Nothing is compiled under this mode; wrapping it for dynamo would import torch._dynamo (~2 s).
        return False

    def __init__(self, names: dict[int, str]):
        super().__init__()
        self.names = names  # id(parameter or buffer) -> qualified name
        self.ops: list[OpCall] = []
        self.modules: list[ModuleCall] = []
        self.stack: list[int] = []
        self.refs: dict[int, TensorRef] = {}
        self.alive: list[torch.Tensor] = []  # keeps traced tensors alive so Python ids are not reused
        self.ids = itertools.count()
        self.params: dict[str, TensorRef] = {}
        self.pure: dict = {}  # operator -> returns fresh tensors and mutates nothing
        self.cache: dict = {}  # (operator, argument metadata) -> output metadata, for this trace only

    def new_ref(self, t: torch.Tensor) -> TensorRef:
        name = self.names.get(id(t))
        if name is None and id(t) in self.refs:
            name = self.refs[id(t)].name  # a new version of a parameter or buffer keeps its name
        ref = TensorRef(next(self.ids), tuple(t.shape), t.dtype, name)
        if id(t) not in self.refs:
            self.alive.append(t)
        self.refs[id(t)] = ref
        if name is not None and name not in self.params:
            self.params[name] = ref
        return ref

    def ref(self, value):
        if not isinstance(value, torch.Tensor):
            return value
        return self.refs.get(id(value)) or self.new_ref(value)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        call = self.stack[-1] if self.stack else -1
        try:
            out = self.run(func, args, kwargs)
        except Exception as exc:
            raise OpFailed(func, _map(self.ref, args), call, exc) from exc
        ins = _map(self.ref, (args, kwargs))
        outs = tuple(self.new_ref(t) for t in tensors_in(out))
        name = self.modules[call].name if call >= 0 else ""
        self.ops.append(OpCall(func, ins[0], ins[1], outs, call, name))
        if func._opname in WINDOW_OPS and outs and 0 in outs[0].shape[2:]:
            raise OpFailed(func, ins[0], call, RuntimeError("Output size is too small"))
        return out

    def run(self, func, args, kwargs):
        """Call `func` on meta tensors: a direct rule (see fastmeta) when one applies, else the real kernel,
        reusing the outputs' metadata from an earlier call with the same signature.

        Meta kernels of elementwise ops and batch norm are Python decompositions (~1 ms each); the result of a
        functional operator depends only on its arguments' metadata, and deep networks repeat signatures.
        """
        fast = fastmeta.outputs(func, args, kwargs)
        if fast is not None:
            return fast
        pure = self.pure.get(func)
        if pure is None:
            schema = func._schema
            pure = self.pure[func] = not schema.is_mutable and all(r.alias_info is None for r in schema.returns)
        if not pure:
            return func(*args, **kwargs)
        key = (func, _signature(args), _signature(kwargs))
        try:
            template = self.cache.get(key)
        except TypeError:  # an unhashable argument: no reuse
            return func(*args, **kwargs)
        if template is None:
            out = func(*args, **kwargs)
            self.cache[key] = _signature(out)
            return out
        return _build(template)

    def pre_hook(self, name, module, args, kwargs):
        shapes = _shapes((args, kwargs))
        parent = self.stack[-1] if self.stack else None
        self.modules.append(ModuleCall(name, type(module).__name__, len(self.stack), parent, shapes,
                                       start=len(self.ops)))
        self.stack.append(len(self.modules) - 1)

    def post_hook(self, module, args, kwargs, output):
        call = self.modules[self.stack.pop()]
        call.output_shapes = _shapes(output)
        call.stop = len(self.ops)


class _Meta(tuple):
    """Signature of a tensor: (shape, stride, dtype, device)."""


def _signature(value):
    """A hashable description of operator arguments or outputs, tensors reduced to their metadata."""
    if isinstance(value, torch.Tensor):
        return _Meta((value.shape, value.stride(), value.dtype, value.device))
    if isinstance(value, (tuple, list)):
        return type(value), tuple(_signature(v) for v in value)
    if isinstance(value, dict):
        return dict, tuple((k, _signature(v)) for k, v in value.items())
    return value


def _build(template):
    """Fresh meta tensors with the metadata recorded by `_signature`."""
    if isinstance(template, _Meta):
        shape, stride, dtype, device = template
        return torch.empty_strided(shape, stride, dtype=dtype, device=device)
    if isinstance(template, tuple) and len(template) == 2 and template[0] in (tuple, list):
        return template[0](_build(v) for v in template[1])
    return template


def _map(fn, value):
    """`value` with every tensor replaced by fn(tensor), keeping tuples, lists and dicts."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if type(value) is tuple:
        return tuple([_map(fn, v) for v in value])
    if type(value) is list:
        return [_map(fn, v) for v in value]
    if isinstance(value, dict):
        return {k: _map(fn, v) for k, v in value.items()}
    return value


def _shapes(tree) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(t.shape) for t in tensors_in(tree))


@contextlib.contextmanager
def module_hooks(model: torch.nn.Module, tracer):
    """`tracer.pre_hook(name, module, args, kwargs)` and `tracer.post_hook` on every module, removed on exit."""
    handles = []
    try:
        for name, module in model.named_modules():
            handles.append(module.register_forward_pre_hook(
                lambda m, a, k, name=name: tracer.pre_hook(name, m, a, k), with_kwargs=True))
            handles.append(module.register_forward_hook(tracer.post_hook, with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def _hooked(model: torch.nn.Module, tracer: _Tracer):
    """The tracer's hooks on every module and eval mode; both undone on exit, whatever happens."""
    with model_mode(model, False), module_hooks(model, tracer):
        yield


def _model_tensors(model: torch.nn.Module):
    """Parameters, buffers and plain tensor attributes (masks, anchors) of every module, repeats included: all must
    reach the meta device. Read from each module's dicts (this runs on every trace; parameters() and buffers()
    walk the modules again each)."""
    return (t for m in model.modules() for t in (*m._parameters.values(), *m._buffers.values(), *vars(m).values())
            if isinstance(t, torch.Tensor))


def meta_copy(model: torch.nn.Module, dtype: torch.dtype | None = None) -> torch.nn.Module:
    """A copy of `model` on the meta device (floating tensors cast to `dtype`); the model itself is untouched."""
    memo = {}
    for t in _model_tensors(model):
        if id(t) not in memo:
            meta = torch.empty_like(t, device="meta", dtype=dtype if dtype and t.is_floating_point() else None)
            if isinstance(t, torch.nn.Parameter):
                meta = torch.nn.Parameter(meta, requires_grad=t.requires_grad)
            memo[id(t)] = meta
    try:
        return copy.deepcopy(model, memo)
    except Exception as exc:
        raise NetprobeError(f"cannot copy {type(model).__name__} to the meta device: {_first_line(exc)}") from None


def example_inputs(inputs, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    """Meta tensors from a shape with the batch dimension, a list of shapes, a tensor, or a list of tensors."""
    if isinstance(inputs, torch.Tensor):
        return (torch.empty_like(inputs, device="meta"),)
    if isinstance(inputs, (tuple, list, torch.Size)) and inputs and all(isinstance(d, int) for d in inputs):
        if any(d <= 0 for d in inputs):
            raise NetprobeError(f"input sizes must be positive, got {tuple(inputs)}")
        return (torch.empty(tuple(inputs), device="meta", dtype=dtype),)
    if isinstance(inputs, (tuple, list)) and inputs:
        return tuple(t for item in inputs for t in example_inputs(item, dtype))
    raise NetprobeError(f"expected an input size such as (1, 3, 224, 224) or example tensors, got {inputs!r}")


def _is_shape(value) -> bool:
    return isinstance(value, (tuple, list)) and bool(value) and all(type(d) is int for d in value)


def example_tree(value, dtype: torch.dtype = torch.float32):
    """`value` with meta tensors in place of its tensors and shapes (a tuple or list of ints is a shape), through
    nested tuples, lists and dicts; None, numbers and strings pass as they are."""
    if isinstance(value, torch.Tensor) or _is_shape(value):
        return example_inputs(value, dtype)[0]
    if isinstance(value, (tuple, list)):
        return type(value)(example_tree(v, dtype) for v in value)
    if isinstance(value, dict):
        return {k: example_tree(v, dtype) for k, v in value.items()}
    return value


def call_inputs(inputs=None, args=None, kwargs=None, dtype: torch.dtype = torch.float32) -> tuple[tuple, dict]:
    """The (args, kwargs) of the traced forward: `inputs` as `example_inputs` reads it (default 1x3x224x224), or
    `args` and `kwargs` of any form (see `example_tree`)."""
    if args is None and kwargs is None:
        return example_inputs((1, 3, 224, 224) if inputs is None else inputs, dtype), {}
    if inputs is not None:
        raise NetprobeError("give the input as input_size or as args/kwargs, not both")
    args, kwargs = tuple(example_tree(a, dtype) for a in args or ()), example_tree(dict(kwargs or {}), dtype)
    if not tensors_in((args, kwargs)):
        raise NetprobeError("the inputs hold no tensor or shape: give at least one, e.g. args=((1, 3, 224, 224),)")
    return args, kwargs


def trace(model: torch.nn.Module, inputs=None, *, args=None, kwargs=None, dtype: torch.dtype = torch.float32) -> Trace:
    """Trace one forward pass of a meta copy of `model`, in eval mode, on meta inputs: `inputs` (see
    `example_inputs`) or `model(*args, **kwargs)` with shapes and tensors in any nesting (see `example_tree`)."""
    args, kwargs = call_inputs(inputs, args, kwargs, dtype)
    on_meta = all(t.is_meta and (t.dtype == dtype or not t.is_floating_point()) for t in _model_tensors(model))
    # A model already on meta (as the zoo builds them) is traced as it is: only hooks, removed afterwards.
    meta = model if on_meta else meta_copy(model, dtype)
    names = {id(t): n for n, t in itertools.chain(meta.named_parameters(), meta.named_buffers())}
    tracer = _Tracer(names)
    in_refs = tuple(tracer.new_ref(a) for a in tensors_in((args, kwargs)))
    try:
        with _hooked(meta, tracer), tracer, torch.no_grad():
            output = meta(*args, **kwargs)
    except OpFailed as failed:
        raise NetprobeError(explain(failed, tracer.modules, tensors_in((args, kwargs)))) from None
    except NetprobeError:
        raise
    except Exception as exc:
        where = _where(tracer.modules, tracer.stack[-1] if tracer.stack else -1)
        raise NetprobeError(f"forward pass failed{where}: {_first_line(exc)}") from None
    out_refs = tuple(tracer.ref(t) for t in tensors_in(output))
    return Trace(tracer.ops, tracer.modules, in_refs, out_refs, tracer.params)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _where(modules: list[ModuleCall], call: int) -> str:
    if call < 0:
        return ""
    m = modules[call]
    return f" at {m.name or '(root)'} ({m.type})"


def _dims(shape) -> str:
    return "x".join(str(d) for d in shape)


def explain(failed: OpFailed, modules: list[ModuleCall], args) -> str:
    """A one-line message for an operator that failed: too small an input, wrong channels, or the raw reason."""
    where = _where(modules, failed.call)
    op = failed.op._opname
    message = str(failed.error)
    given = ", ".join(_dims(a.shape) for a in args)
    tensors = [a for a in failed.args if isinstance(a, TensorRef)]
    if op in ("convolution", "_convolution") and len(tensors) >= 2:
        x, w = tensors[0].shape, tensors[1].shape
        groups, transposed = failed.args[8], failed.args[6]
        expected = w[0] if transposed else w[1] * groups
        if len(x) == len(w) and x[1] != expected:
            return f"wrong channel count{where}: it expects {expected} input channels, got {x[1]} (input {given})"
    if op in WINDOW_OPS and ("too small" in message or "greater than" in message or "size can't be" in message):
        spatial = _dims(tensors[0].shape[2:]) if tensors else "?"
        return f"input {given} is too small: the spatial size reaches zero{where} (its input is {spatial})"
    if op in ("addmm", "mm", "bmm", "baddbmm") and len(tensors) >= 2:
        a, b = tensors[-2].shape, tensors[-1].shape
        if a and len(b) >= 2 and a[-1] != b[-2]:
            return f"input {given} does not fit{where}: it expects {b[-2]} input features, got {a[-1]}"
    if isinstance(failed.error, NotImplementedError) and "Meta" in message:
        return f"operator {failed.op} has no meta-device implementation, so netprobe cannot trace it{where}"
    return f"forward pass failed{where} in {failed.op}: {_first_line(failed.error)}"
