"""Gradient-norm profiles and layer responses of a model, plain against residual twins.

He et al. 2016 ("Deep Residual Learning", Sec. 4.2 and Fig. 7) argue that deep plain networks are hard to
optimise although BatchNorm keeps the forward signals and backward gradients from vanishing, and that
shortcuts fix it. A profile measures, for every weighted layer (conv and linear weights, in the order
the forward pass first uses them), the L2 norm of the gradient of the mean cross-entropy loss with
respect to that layer's weight: one forward and one backward pass per batch, `torch.autograd.grad` on the
weights (the model's `.grad` fields are never touched), the norms of all layers in one `_foreach_norm`.
BatchNorm uses batch statistics (train mode) as during training; its running statistics are restored.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterable

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from netprobe.analysis.twins import VARIANTS
from netprobe.errors import NetprobeError
from netprobe.modes import model_mode

__all__ = ["GradientSweep", "NonFiniteLossError", "VARIANTS", "cifar_models", "compare_profiles", "depth_sweep",
           "first_to_last", "gradient_profile", "response_std", "sample_batches", "stack", "twins"]

WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
            nn.Linear)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class NonFiniteLossError(NetprobeError):
    """A finding, not a crash: the loss was NaN or infinite; names the first layer whose output was."""

    def __init__(self, message: str, *, batch: int, layer: str | None):
        super().__init__(message)
        self.batch = batch
        self.layer = layer


@contextlib.contextmanager
def in_mode_restoring_buffers(model: nn.Module, train: bool):
    """Run `model` in train/eval mode and give it back as it was: same mode, same buffers (BN statistics)."""
    saved = [(b, b.detach().clone()) for b in model.buffers()]  # buffers only, a few KB; not a model copy
    with model_mode(model, train):
        try:
            yield model
        finally:
            with torch.no_grad():
                for buffer, value in saved:
                    buffer.copy_(value)


@contextlib.contextmanager
def _call_order(model: nn.Module, types):
    """Collect (name, module) of the modules of `types` in the order the forward pass first calls them."""
    names = {m: n for n, m in model.named_modules() if isinstance(m, types)}
    order: list[tuple[str, nn.Module]] = []
    seen = set()

    def hook(module, args, output):
        if module not in seen:
            seen.add(module)
            order.append((names[module], module))

    handles = [m.register_forward_hook(hook) for m in names]
    try:
        yield order
    finally:
        for handle in handles:
            handle.remove()


def _nonfinite(output) -> bool:
    tensors = output if isinstance(output, (tuple, list)) else (output,)
    return any(isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all()
               for t in tensors)


def _where_nonfinite(model: nn.Module, x: torch.Tensor) -> tuple[str | None, str | None]:
    """Name and type of the first module (in call order) whose output is not finite; a diagnostic pass."""
    if _nonfinite(x):
        return "input", None
    found: list[tuple[str, str]] = []
    names = {m: n for n, m in model.named_modules() if not list(m.children())}

    def hook(module, args, output):
        if not found and _nonfinite(output):
            found.append((names[module], type(module).__name__))

    handles = [m.register_forward_hook(hook) for m in names]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return found[0] if found else (None, None)


def _finding(model, x, loss, batch: int) -> NonFiniteLossError:
    layer, kind = _where_nonfinite(model, x)
    if layer == "input":
        where = "the input batch itself is not finite"
    elif layer is None:
        where = "every layer's output is finite, so it started in the loss"
    else:
        where = f"it started at layer {layer!r} ({kind}), the first whose output is not finite"
    return NonFiniteLossError(f"finding: the loss is {loss.item()} on batch {batch}; {where}",
                              batch=batch, layer=layer)


def gradient_profile(model: nn.Module, batches: Iterable, *, loss_fn: Callable = F.cross_entropy,
                     train: bool = True, device="cpu") -> pd.DataFrame:
    """Per weighted layer in forward order: depth, layer, grad_norm (mean over batches), grad_to_weight, grad_norm_std.

    `device`: where the model (moved there, in place) and the batches (give them there: `sample_batches`) run."""
    from netprobe.devices import resolve

    device = resolve(device)
    model.to(device)
    norms = []
    with in_mode_restoring_buffers(model, train):
        layers = None
        for k, (x, y) in enumerate(batches):
            x, y = x.to(device), y.to(device)
            if layers is None:
                with _call_order(model, WEIGHTED) as layers:
                    out = model(x)
                if not layers:
                    raise NetprobeError(f"{type(model).__name__} has no conv or linear layer to profile")
                frozen = [name for name, m in layers if not m.weight.requires_grad]
                if frozen:
                    raise NetprobeError(f"layer {frozen[0]!r} is frozen (requires_grad=False): no gradient to profile")
                weights = [m.weight for _, m in layers]
            else:
                out = model(x)
            loss = loss_fn(out, y)
            if not torch.isfinite(loss):
                raise _finding(model, x, loss, k)
            grads = torch.autograd.grad(loss, weights)
            norms.append(torch.stack(torch._foreach_norm(grads)))
    if not norms:
        raise NetprobeError("no batches to profile")
    g = torch.stack(norms).double().cpu()  # (K batches, L layers)
    w = torch.stack(torch._foreach_norm([p.detach() for p in weights])).double().cpu()
    mean = g.mean(0)
    return pd.DataFrame({
        "depth": range(1, len(layers) + 1),
        "layer": [name for name, _ in layers],
        "grad_norm": mean.numpy(),
        "grad_to_weight": (mean / w).numpy(),
        "grad_norm_std": g.std(0, correction=0).numpy(),  # population std: 0 for a single batch
    })


def response_std(model: nn.Module, x: torch.Tensor, *, train: bool = False) -> pd.DataFrame:
    """Per BatchNorm layer (conv layers if there is none): the std of its output over the batch (He et al. Fig. 7).

    He et al. measure "the outputs of each 3x3 layer, after BN and before nonlinearity", on trained nets at
    test time: here the output of every BatchNorm module, in eval mode (running statistics) by default, std
    over all elements of the batch's output. At initialisation eval-mode BN is the identity (mean 0, var 1),
    so the figures are then the raw conv responses.
    """
    types = NORMS if any(isinstance(m, NORMS) for m in model.modules()) else WEIGHTED
    names = {m: n for n, m in model.named_modules() if isinstance(m, types)}
    layers, stds = [], []

    def hook(module, args, output):
        if names[module] not in layers:  # a module called twice counts once, at its first call
            layers.append(names[module])
            stds.append(output.detach().double().std(correction=0))

    handles = [m.register_forward_hook(hook) for m in names]
    try:
        with in_mode_restoring_buffers(model, train), torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return pd.DataFrame({
        "depth": range(1, len(layers) + 1),
        "layer": layers,
        "response_std": torch.stack(stds).cpu().numpy() if stds else [],
    })


def sample_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, count: int, seed: int, device="cpu") -> list:
    """`count` batches of `batch_size` samples drawn without replacement in a seeded order, moved to `device` once."""
    if batch_size * count > len(x):
        raise NetprobeError(f"batch size {batch_size} x {count} batches needs {batch_size * count} samples; "
                            f"the data has {len(x)}")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:batch_size * count]
    from netprobe.devices import resolve

    device = resolve(device)
    return [(x[idx].to(device), y[idx].to(device)) for idx in order.view(count, batch_size)]


def twins(build: Callable[..., nn.Module], *, variants: Iterable[str] = VARIANTS, seed: int = 0):
    """Yield (variant, model) built by `build(plain=...)` from the same seed: the twins share their weights.

    The global RNG is forked, so the caller's random state is left as it was.
    """
    from netprobe.analysis.twins import build as seeded

    for variant in variants:
        if variant not in VARIANTS:
            raise NetprobeError(f"unknown variant {variant!r} (expected one of {', '.join(VARIANTS)})")
        yield variant, seeded(build, {"plain": variant == "plain"}, seed)


def stack(runs: Iterable[tuple[dict, nn.Module]], analysis: Callable[[nn.Module], pd.DataFrame]) -> pd.DataFrame:
    """Run `analysis(model)` for each (labels, model) and stack the tables, labels as leading columns."""
    frames = []
    for labels, model in runs:
        table = analysis(model)
        for i, (key, value) in enumerate(labels.items()):
            table.insert(i, key, value)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def compare_profiles(build: Callable[..., nn.Module], batches: Iterable, *, seed: int = 0,
                     variants: Iterable[str] = VARIANTS, **profile_options) -> pd.DataFrame:
    """Gradient profiles of plain and residual twins from the same seed, stacked with a `variant` column."""
    batches = list(batches)
    runs = (({"variant": v}, m) for v, m in twins(build, variants=variants, seed=seed))
    return stack(runs, lambda model: gradient_profile(model, batches, **profile_options))


def first_to_last(profile: pd.DataFrame) -> pd.DataFrame:
    """Per model/variant: the first and last weighted layers' gradient norms and their ratio first/last."""
    keys = [c for c in ("model", "variant") if c in profile]
    groups = profile.groupby(keys, sort=False) if keys else [((), profile)]
    rows = []
    for key, table in groups:
        table = table.sort_values("depth")
        first, last = float(table["grad_norm"].iloc[0]), float(table["grad_norm"].iloc[-1])
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(keys, key)), "layers": len(table), "first_grad_norm": first,
                     "last_grad_norm": last, "first_to_last": first / last if last else float("inf")})
    return pd.DataFrame(rows)


@dataclass
class GradientSweep:
    """A depth sweep: per-layer profiles of every (model, variant) and the first/last summary."""

    layers: pd.DataFrame
    summary: pd.DataFrame


def cifar_models(depths: Iterable[int], *, variants: Iterable[str] = VARIANTS, seed: int = 0, **options):
    """Yield ({'model', 'variant'}, model) for the CIFAR ResNets of `depths` (6n+2), twins from the same seed."""
    from netprobe.zoo.cifar_resnet import cifar_resnet

    variants = tuple(variants)
    for depth in depths:
        build = lambda plain, depth=depth: cifar_resnet(depth, plain=plain, **options)  # noqa: E731
        for variant, model in twins(build, variants=variants, seed=seed):
            yield {"model": f"resnet{depth}", "variant": variant}, model


def depth_sweep(depths: Iterable[int], batches: Iterable, *, seed: int = 0, variants: Iterable[str] = VARIANTS,
                **profile_options) -> GradientSweep:
    """Gradient profiles of the CIFAR ResNets (and plain twins) of each depth, with the first/last summary."""
    batches = list(batches)
    layers = stack(cifar_models(depths, variants=variants, seed=seed),
                   lambda model: gradient_profile(model, batches, **profile_options))
    return GradientSweep(layers, first_to_last(layers))
