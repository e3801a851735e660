"""Filter-normalised random directions in weight space (Li et al., "Visualizing the Loss Landscape of Neural
Nets", NeurIPS 2018, section 4).

A direction is a dict {parameter name: tensor} over all of a model's parameters, in `named_parameters` order.
Each entry is drawn from N(0, 1) and then every output filter (every slice along dim 0: a conv's output
channel, a linear layer's output row) is rescaled to the norm of the same filter of the weights:
d_i <- d_i / ||d_i|| * ||w_i||. Parameters with one dimension (biases, BatchNorm scales and shifts) get a zero
direction, as Li et al.'s `ignore='biasbn'`; with `include_bn=True` they are normalised by the same rule,
where each element is its own filter (so d_i = +-|w_i|). BatchNorm running statistics are buffers, not
parameters, and are never perturbed.
"""

from __future__ import annotations

import io

import torch
from torch import nn

from netprobe.errors import NetprobeError

# Li et al.'s code adds 1e-10 to the direction's filter norm so an all-zero draw cannot divide by zero.
_EPS = 1e-10


def filter_normalize(direction: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`direction` with each slice along dim 0 rescaled to the norm of the same slice of `weight`."""
    d = direction.reshape(len(direction), -1) if direction.dim() else direction.reshape(1, 1)
    w = weight.reshape(len(weight), -1) if weight.dim() else weight.reshape(1, 1)
    scale = w.norm(dim=1, keepdim=True) / (d.norm(dim=1, keepdim=True) + _EPS)
    return (d * scale).reshape(direction.shape)


def random_directions(model: nn.Module, count: int = 2, *, seed: int = 0,
                      include_bn: bool = False) -> list[dict[str, torch.Tensor]]:
    """`count` filter-normalised Gaussian directions for `model`'s parameters, drawn on the CPU from `seed`."""
    if count < 1:
        raise NetprobeError(f"need at least one direction, got {count}")
    generator = torch.Generator().manual_seed(seed)
    directions = []
    for _ in range(count):
        direction = {}
        for name, p in model.named_parameters():
            weight = p.detach().to("cpu", torch.float32)
            if weight.dim() <= 1 and not include_bn:
                direction[name] = torch.zeros_like(weight)
                continue
            # Drawn on the CPU in a fixed order so the same seed gives the same directions on any device.
            noise = torch.randn(weight.shape, generator=generator, dtype=torch.float32)
            direction[name] = filter_normalize(noise, weight)
        directions.append(direction)
    return directions


def check_directions(model: nn.Module, directions: list[dict[str, torch.Tensor]]) -> None:
    """Raise NetprobeError unless every direction has exactly `model`'s parameter names and shapes."""
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    for k, direction in enumerate(directions):
        got = {name: tuple(t.shape) for name, t in direction.items()}
        if got != shapes:
            missing = sorted(set(shapes) - set(got))
            extra = sorted(set(got) - set(shapes))
            wrong = sorted(n for n in set(got) & set(shapes) if got[n] != shapes[n])
            raise NetprobeError(f"direction {k + 1} does not fit the model: missing {missing[:3]}, "
                                f"unexpected {extra[:3]}, wrong shape {wrong[:3]}")


def directions_bytes(directions: list[dict[str, torch.Tensor]], meta: dict) -> bytes:
    """Serialise directions and their provenance (`meta`: plain str/int/float/bool values) with torch.save."""
    buf = io.BytesIO()
    torch.save({"directions": [{k: v.cpu() for k, v in d.items()} for d in directions], "meta": dict(meta)}, buf)
    return buf.getvalue()


def load_directions(path) -> tuple[list[dict[str, torch.Tensor]], dict]:
    """(directions, meta) from a file written with `directions_bytes`, loaded with weights_only=True."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise NetprobeError(f"cannot read directions from {path}: {exc.strerror}") from None
    except Exception as exc:  # noqa: BLE001 - any failure to unpickle foreign bytes means 'not a directions file'
        raise NetprobeError(f"{path} is not a file torch.load reads with weights_only=True "
                            f"({type(exc).__name__})") from None
    directions = payload.get("directions") if isinstance(payload, dict) else None
    meta = payload.get("meta") if isinstance(payload, dict) else None
    if not (isinstance(directions, list) and isinstance(meta, dict) and directions and all(
            isinstance(d, dict) and d and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())
            for d in directions)):
        raise NetprobeError(f"{path} is not a directions file (a dict of 'directions', a list of "
                            "{parameter name: tensor}, and 'meta', as `netprobe landscape` and `hessian` save)")
    return directions, meta


def directions_for(path, model: str, count: int) -> list[dict[str, torch.Tensor]]:
    """The first `count` directions saved in `path` (by the landscape or `netprobe hessian`); a file made for
    another zoo model, or holding fewer, is refused in one line."""
    directions, meta = load_directions(path)
    if meta.get("model", model) != model:
        raise NetprobeError(f"{path} holds directions for {meta['model']}, not for {model}")
    if len(directions) < count:
        raise NetprobeError(f"{path} holds {len(directions)} direction(s): a {count}-D slice needs {count}")
    return directions[:count]
