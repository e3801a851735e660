"""Optimisation trajectories on the loss surface (Li et al., "Visualizing the Loss Landscape of Neural Nets",
NeurIPS 2018, Sec. 7 and Fig. 9).

The weights saved along training, w_0 ... w_n (a depth-study pair's snapshots), are taken relative to the
final ones, w_i - w_n. Li et al. fit a PCA to these vectors (centred, as sklearn's PCA) and slice the loss in
the plane of its first two components through w_n; the path is each w_i - w_n projected onto them, so the
plane is the one that holds as much of the path as any plane can. As in the landscape's random directions,
biases and BatchNorm parameters are left out unless `include_bn` (Li et al.'s `ignore='biasbn'`).
The components are unit vectors in parameter space, so the axes are in the parameters' own units.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from netprobe.errors import NetprobeError

MARGIN = 0.2  # the grid reaches this fraction of the path's extent beyond it on every side


@dataclass
class Plane:
    """Two PCA directions of a training path, the path's coordinates in them and their explained variance."""

    directions: list[dict[str, torch.Tensor]]
    path: pd.DataFrame  # step, x, y: each snapshot minus the final weights, projected
    explained: tuple[float, float]  # fraction of the path's (centred) variance along each direction

    def extent(self, steps: int) -> tuple[list[float], list[float]]:
        """Grid axes of `steps` points each that cover the path with a margin."""
        from netprobe.analysis.surfaces.landscape import axis

        axes = []
        for column in ("x", "y"):
            lo, hi = float(self.path[column].min()), float(self.path[column].max())
            pad = MARGIN * max(hi - lo, 1e-3)
            axes.append(axis(lo - pad, hi + pad, steps))
        return axes[0], axes[1]


def pca_plane(steps: list[int], states: list[dict[str, torch.Tensor]], *, include_bn: bool = False) -> Plane:
    """The PCA plane of a path of parameter `states` (in training order, the last one the final weights)."""
    if len(states) < 3:
        raise NetprobeError(f"a trajectory plane needs at least 3 snapshots of the weights, got {len(states)}")
    final = states[-1]
    names = [n for n, t in final.items() if include_bn or t.dim() > 1]
    if any(set(s) != set(final) for s in states):
        raise NetprobeError("the snapshots do not hold the same parameters")
    rows = torch.stack([torch.cat([(s[n] - final[n]).double().flatten() for n in names]) for s in states[:-1]])
    # Li et al. fit sklearn's PCA: components of the centred rows; the path is projected without centring.
    _, singular, vh = torch.linalg.svd(rows - rows.mean(0), full_matrices=False)
    components = vh[:2]
    coords = torch.cat([rows, torch.zeros(1, rows.shape[1], dtype=rows.dtype)]) @ components.T
    # Signs fixed so the path starts at negative x and y: the same weights always give the same picture.
    flip = torch.where(coords[0] > 0, -1.0, 1.0).to(coords.dtype)
    components, coords = components * flip[:, None], coords * flip
    variance = singular ** 2
    explained = tuple(float(v) for v in (variance[:2] / variance.sum()))
    directions = []
    for component in components:
        direction, at = {}, 0
        for name, tensor in final.items():
            if name in names:
                direction[name] = component[at:at + tensor.numel()].reshape(tensor.shape).float()
                at += tensor.numel()
            else:
                direction[name] = torch.zeros_like(tensor, dtype=torch.float32)
        directions.append(direction)
    path = pd.DataFrame({"step": steps, "x": coords[:, 0].numpy(), "y": coords[:, 1].numpy()})
    return Plane(directions, path, explained)


@dataclass
class Trajectory:
    """One variant's path and the loss surface of its PCA plane."""

    variant: str
    plane: Plane
    table: pd.DataFrame  # x, y, loss, accuracy over the plane through the final weights


def trajectory_study(name: str, directory, *, variants=("residual",), steps: int = 11, samples: int = 256,
                     seed: int = 0, batch_size: int = 64, include_bn: bool = False,
                     progress: bool = False) -> list[Trajectory]:
    """The training paths of zoo CIFAR ResNet `name` in depth-study folder `directory`, each on its PCA plane.

    Each variant's final checkpoint (DIR/<variant><depth>.pt) is the plane's origin; the loss is the mean
    cross-entropy over `samples` seeded training samples of the data it was trained on, BatchNorm in eval mode
    on its running statistics, at steps x steps points covering the path."""
    from pathlib import Path

    from netprobe.analysis.depth.pair import load_snapshots, pair_name, path_name
    from netprobe.analysis.surfaces.landscape import surface
    from netprobe.analysis.twins import build, checkpoint_meta, load_for, subset
    from netprobe.train import load_weights
    from netprobe.zoo import model_spec

    spec = model_spec(name)
    if spec.family != "cifar_resnet":
        raise NetprobeError(f"{name} is not a CIFAR ResNet of the depth study (resnet20, resnet32, ...)")
    depth, out, cache = int(spec.name.removeprefix("resnet")), Path(directory), {}
    result = []
    for variant in variants:
        checkpoint = out / f"{pair_name(variant, depth)}.pt"
        meta = checkpoint_meta(spec, checkpoint)
        snap_steps, states, _ = load_snapshots(out / path_name(variant, depth))
        if snap_steps[-1] != meta.get("step"):
            raise NetprobeError(f"{out / path_name(variant, depth)} ends at step {snap_steps[-1]}, its checkpoint "
                                f"at {meta.get('step')}: finish the study (netprobe depth --resume) first")
        plane = pca_plane(snap_steps, states, include_bn=include_bn)
        model = build(spec, dict(meta["options"]), seed)
        load_weights(model, checkpoint, plain=variant == "plain")
        dataset = load_for(meta, meta.get("data", "synthetic"), spec, seed, cache)
        if samples > len(dataset.train):
            raise NetprobeError(f"{samples} samples asked for: the data has {len(dataset.train)} training samples")
        x, y = subset(dataset.train, samples, seed)
        xs, ys = plane.extent(steps)
        table = surface(model, x, y, plane.directions, xs, ys,
                        batch_size=batch_size, progress=progress, desc=f"{spec.name} {variant} path")
        result.append(Trajectory(variant, plane, table))
    return result
