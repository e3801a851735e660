"""Receptive fields measured with real gradients: the exactness check (`verify`) and the effective receptive
field of Luo et al., "Understanding the Effective Receptive Field in Deep CNNs", NeurIPS 2016 (`effective`).

`verify` makes accidental zeros impossible before it reads a gradient's support: a float64 copy of the
model with every weight positive (1 / fan-in, so magnitudes stay near 1), biases 0, max pooling replaced by
average pooling of the same geometry, normalisation layers and clamping or saturating activations (ReLU6,
Hardtanh, Hardswish, Tanh, GELU, SiLU, clamp) as identity, gates (Sigmoid, Hardsigmoid) as x / (1 + |x|)
(bounded like a gate, so stacked squeeze-excitation products stay finite, and nowhere flat), and an all-ones
input. The
input pixels with a non-zero gradient of one output unit are then exactly the pixels that unit reads.
Operators whose gradient is zero almost everywhere (rounding, sign, thresholds) are named in a warning.
"""

from __future__ import annotations

import copy
import inspect
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from netprobe.analysis.fields.bands import banded_conv2d
from netprobe.analysis.fields.receptive_field import call_outputs
from netprobe.analysis.fields.solve import BIG, solve
from netprobe.analysis.counting.trace import trace
from netprobe.errors import NetprobeError
from netprobe.modes import model_mode

VERIFY_COLUMNS = ["name", "axis", "unit", "lo", "hi", "grad_lo", "grad_hi", "interior", "match"]


def _targets(wrapper) -> list:
    """A functional and, for torch's boolean_dispatch wrappers (max_pool2d and friends), the two it calls."""
    closure = getattr(wrapper, "__closure__", None) or ()
    return [wrapper, *(c.cell_contents for c in closure if inspect.isfunction(c.cell_contents))]


def _swaps() -> dict:
    """Functional -> (average-pooling replacement, a signature naming its arguments)."""
    pairs = [(F.max_pool1d, F.avg_pool1d), (F.max_pool2d, F.avg_pool2d), (F.max_pool3d, F.avg_pool3d),
             (F.adaptive_max_pool1d, F.adaptive_avg_pool1d), (F.adaptive_max_pool2d, F.adaptive_avg_pool2d),
             (F.adaptive_max_pool3d, F.adaptive_avg_pool3d)]
    table = {}
    for wrapper, avg in pairs:
        funcs = _targets(wrapper)
        for fn in funcs:
            table[fn] = (avg, inspect.signature(funcs[-1]))
    return table


# Norms (their statistics are not part of the field) and activations that saturate at the values an all-ones
# input reaches through positive weights and shortcuts (ReLU6 past 6, clamp at its bound): a gradient of
# exactly 0 there would hide pixels the unit reads.
_IDENTITIES = {F.batch_norm, F.group_norm, F.layer_norm, F.instance_norm, F.relu6, F.hardtanh, F.hardswish,
               F.hardsigmoid, F.sigmoid, F.tanh, F.gelu, F.silu, torch.sigmoid, torch.tanh, torch.clamp,
               torch.clip, torch.clamp_min, torch.clamp_max, torch.Tensor.sigmoid, torch.Tensor.tanh,
               torch.Tensor.clamp, torch.Tensor.clip, torch.Tensor.clamp_min, torch.Tensor.clamp_max,
               torch.Tensor.sigmoid_, torch.Tensor.tanh_, torch.Tensor.clamp_, torch.Tensor.clip_,
               torch.Tensor.clamp_min_, torch.Tensor.clamp_max_, F.hardtanh_}
# Gates multiply features by a function of themselves: as identity, each squeeze-excitation block would square
# the magnitudes (torchvision's RegNet-Y reaches inf by its fourth stage, and inf gradients hide every pixel).
_GATES = {F.sigmoid, torch.sigmoid, torch.Tensor.sigmoid, F.hardsigmoid}
# Gradient zero almost everywhere, or exactly zero on part of the range: not replaced, but named.
_VANISHING = {torch.round, torch.floor, torch.ceil, torch.trunc, torch.sign, torch.heaviside, F.threshold,
              F.hardshrink, F.softshrink, torch.Tensor.round, torch.Tensor.floor, torch.Tensor.ceil,
              torch.Tensor.trunc, torch.Tensor.sign}


class _PositiveGeometry(TorchFunctionMode):
    """Max pooling as average pooling of the same window (every pixel read gets gradient); norms and saturating
    activations as identity; operators whose gradient can vanish exactly are recorded in `vanishing`."""

    def __init__(self):
        super().__init__()
        self.swaps = _swaps()
        self.vanishing: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.swaps:
            avg, signature = self.swaps[func]
            a = signature.bind(*args, **kwargs)
            a.apply_defaults()
            a = a.arguments
            if "kernel_size" in a:
                if any(d != 1 for d in _as_tuple(a["dilation"])):
                    raise NetprobeError("verify cannot replace a dilated max pooling by average pooling")
                out = avg(a["input"], a["kernel_size"], a["stride"], a["padding"], a["ceil_mode"])
            else:
                out = avg(a["input"], a["output_size"])
            return (out, torch.zeros_like(out, dtype=torch.long)) if a["return_indices"] else out
        if func is F.conv2d:
            return banded_conv2d(*args, **kwargs)
        if func in _GATES and not kwargs.get("inplace") and not (len(args) > 1 and args[1] is True):
            x = args[0] if args else kwargs["input"]
            return x / (1 + x.abs())
        if func in _IDENTITIES:
            return args[0] if args else kwargs["input"]
        if func in _VANISHING:
            self.vanishing.add(getattr(func, "__name__", str(func)))
        return func(*args, **kwargs)


def _as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def positive_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A float64 CPU copy with weights 1 / fan-in, biases 0, running statistics 0 and 1, in eval mode."""
    on_meta = any(t.is_meta for t in (*model.parameters(), *model.buffers()))
    twin = copy.deepcopy(model)
    if on_meta:
        twin = twin.to_empty(device="cpu")
    twin = twin.to(torch.float64).eval()
    with torch.no_grad():
        for name, p in twin.named_parameters():
            if p.ndim >= 2:
                p.fill_(1.0 / math.prod(p.shape[1:]))
            else:
                p.fill_(0.0 if name.endswith("bias") else 1.0)
        for name, b in twin.named_buffers():
            b.fill_(1 if name.endswith("running_var") else 0)
    return twin


def _keep_first(store: dict, key: str):
    """A forward hook keeping the first output of a module (later calls of a shared module are left alone)."""
    def hook(module, args, out):
        if key not in store:
            store[key] = out if torch.is_tensor(out) else out[0]
        # returning None keeps the module's output as it is
    return hook


def _layers(tr, graph, depth: int) -> list[tuple[str, object]]:
    """(name, field) of the first call of each module at `depth` whose output keeps every spatial axis."""
    outputs = call_outputs(tr)
    chosen, seen = [], set()
    for i, call in enumerate(tr.modules):
        if call.depth != depth or call.name in seen:
            continue
        seen.add(call.name)
        fld = next((graph.fields[r] for r in outputs[i] if r in graph.fields), None)
        if fld and all(ax.dim is not None for ax in fld.values()):
            chosen.append((call.name, fld))
    return chosen


def verify(model: torch.nn.Module, input_size, *, depth: int = 1):
    """Check the analytic window of the central output unit of each layer at `depth` (the root is 0) against
    the support of its input gradient; one row per layer and axis, `match` True where they agree exactly."""
    import pandas as pd

    tr = trace(model, input_size)
    graph = solve(tr)
    layers = _layers(tr, graph, depth)
    if not layers:
        raise NetprobeError(f"no layer at depth {depth} has a spatial output to check")
    twin = positive_copy(model).requires_grad_(False)  # gradients w.r.t. the input only
    modules = dict(twin.named_modules())
    captured: dict[str, torch.Tensor] = {}
    handles = [modules[name].register_forward_hook(_keep_first(captured, name)) for name, _ in layers]
    x = torch.ones(tuple(input_size), dtype=torch.float64, requires_grad=True)
    geometry = _PositiveGeometry()
    try:
        with geometry:
            twin(x)
    except NetprobeError:
        raise
    except Exception as exc:
        raise NetprobeError(f"verify: the float64 forward pass failed: {type(exc).__name__}: "
                            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from None
    finally:
        for handle in handles:
            handle.remove()
    rows = []
    for name, fld in layers:
        out = captured.pop(name)
        units = {axis: ax.n // 2 for axis, ax in fld.items()}
        # sample 0, every feature of the unit: dims that hold no spatial axis (channels wherever they sit)
        index = [0] + [slice(None)] * (out.ndim - 1)
        for axis, ax in fld.items():
            index[ax.dim] = units[axis]
        (grad,) = torch.autograd.grad(out[tuple(index)].sum(), x, retain_graph=bool(captured))
        del out
        support = grad[0].abs().sum(0) > 0  # (H, W): pixels that reach this unit
        for k, (axis, ax) in enumerate(fld.items()):
            other = tuple(d for d in range(support.ndim) if d != k)
            hit = np.flatnonzero(support.any(dim=other).numpy() if other else support.numpy())
            lo, hi = ax.window(units[axis], real=True)
            vlo, vhi = ax.window(units[axis])
            glo, ghi = (int(hit[0]), int(hit[-1])) if hit.size else (BIG, -BIG)
            rows.append({"name": name, "axis": axis, "unit": units[axis], "lo": lo, "hi": hi, "grad_lo": glo,
                         "grad_hi": ghi, "interior": (lo, hi) == (vlo, vhi), "match": (lo, hi) == (glo, ghi)})
    table = pd.DataFrame(rows, columns=VERIFY_COLUMNS)
    table.attrs["warnings"] = [f"{fn} has a gradient that is zero almost everywhere: the check may miss pixels "
                               "this model reads" for fn in sorted(geometry.vanishing)]
    return table


@dataclass
class EffectiveField:
    """Luo et al.'s effective receptive field of one output unit: the mean |input gradient| map and its spread."""

    model: str
    layer: str
    unit: tuple[int, ...]
    heat: np.ndarray  # mean over samples of |d unit / d input|, summed over input channels, normalised to sum 1
    std: tuple[float, ...]  # standard deviation of the heat along each axis, in input pixels
    window: tuple[tuple[int, int], ...]  # theoretical [lo, hi] window of the unit per axis, clipped to the input
    rf: tuple[int, ...]  # its size
    mass95: float  # fewest pixels holding 95% of the heat, as a fraction of the theoretical (clipped) field

    def as_row(self, axes) -> dict:
        """A flat table row."""
        row = {"model": self.model, "layer": self.layer}
        row.update({f"rf_{a}": r for a, r in zip(axes, self.rf)})
        row.update({f"erf_std_{a}": round(s, 3) for a, s in zip(axes, self.std)})
        row["mass95_fraction"] = round(self.mass95, 4)
        return row


def last_spatial_layer(tr, graph) -> str:
    """The module that finishes last among those whose output keeps every spatial axis (outermost on ties)."""
    outputs = call_outputs(tr)
    best = None
    for i, call in enumerate(tr.modules):
        fld = next((graph.fields[r] for r in outputs[i] if r in graph.fields), None)
        if call.depth and fld and all(ax.dim is not None and ax.n > 1 for ax in fld.values()):
            key = (call.stop, -call.depth)
            best = max(best, (key, call.name)) if best else (key, call.name)
    if best is None:
        raise NetprobeError("no layer keeps a spatial output: nothing to measure an effective field on")
    return best[1]


def effective(model: torch.nn.Module, input_size, *, samples: int = 16, seed: int = 0, layer: str | None = None,
              name: str | None = None, device="cpu") -> EffectiveField:
    """The effective receptive field of the central unit of `layer` (default: the last spatial layer), from
    `samples` standard-normal inputs drawn with `seed` (on the CPU, so every device sees the same), the model as
    it is (in eval mode), moved to `device` for the gradients."""
    from netprobe.devices import resolve

    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        raise NetprobeError("the model is on the meta device: it has no weights to take gradients through; "
                            "build it on the CPU")
    tr = trace(model, input_size)
    graph = solve(tr)
    layer = layer or last_spatial_layer(tr, graph)
    outputs = call_outputs(tr)
    idx = next((i for i, c in enumerate(tr.modules) if c.name == layer), None)
    fld = next((graph.fields[r] for r in outputs[idx] if r in graph.fields), None) if idx is not None else None
    if fld is None or not all(ax.dim is not None for ax in fld.values()):
        raise NetprobeError(f"layer {layer!r} has no spatial output")
    captured = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(_keep_first(captured, "out"))
    generator = torch.Generator().manual_seed(seed)
    device = resolve(device)
    x = torch.randn((samples, *tuple(input_size)[1:]), generator=generator).to(device).requires_grad_(True)
    model.to(device)
    try:
        with model_mode(model, False):
            model(x)
    finally:
        handle.remove()
    out = captured["out"]
    unit = tuple(ax.n // 2 for ax in fld.values())
    index = [slice(None)] * out.ndim
    for k, ax in zip(unit, fld.values()):
        index[ax.dim] = k
    (grad,) = torch.autograd.grad(out[tuple(index)].sum(), x)  # samples are independent in eval mode
    heat = grad.detach().abs().sum(1).mean(0).double().cpu().numpy()
    heat = heat / heat.sum() if heat.sum() > 0 else heat
    stds = []
    for k in range(heat.ndim):
        marginal = heat.sum(axis=tuple(d for d in range(heat.ndim) if d != k))
        pos = np.arange(marginal.size)
        mean = (marginal * pos).sum()
        stds.append(float(np.sqrt((marginal * (pos - mean) ** 2).sum())))
    windows = [ax.window(q, real=True) for q, ax in zip(unit, fld.values())]
    rf = tuple(max(hi - lo + 1, 0) for lo, hi in windows)
    ordered = np.sort(heat.ravel())[::-1]
    count = int(np.searchsorted(np.cumsum(ordered), 0.95) + 1)
    return EffectiveField(name or type(model).__name__, layer, unit, heat, tuple(stds), tuple(windows), rf,
                          count / max(math.prod(rf), 1))
