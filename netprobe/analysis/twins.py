"""The plain-vs-residual pipeline every twin study shares (landscape, lesion, hessian, gradients, the report).

`Twins.plan` checks the variants and the checkpoints against a *resolved* `ModelSpec` (a model from a file
carries its own builder, so nothing is looked up by name again); `Twins.prepare` then yields each variant as a
`Twin`: its data (a checkpoint's own data set and normalisation), its model built from the seed the twins share,
brought to its weights (the checkpoint, or a brief SGD run); `subset` draws the seeded samples to measure on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import torch

from netprobe.errors import NetprobeError
from netprobe.zoo.registry import ModelSpec

VARIANTS = ("residual", "plain")
TRAIN_BATCH, TRAIN_LR = 128, 0.1  # the brief training without a checkpoint: He et al.'s CIFAR batch and rate


def resolve(model, options: dict | None = None, input_size=None) -> tuple[ModelSpec, dict]:
    """`model` as a spec and its build options: a `ModelSpec` passes through (its input following `input_size`);
    a MODEL string (zoo name, file.py:Name, module:Name) is resolved here, once."""
    if isinstance(model, ModelSpec):
        return (replace(model, input_size=tuple(input_size)) if input_size else model), dict(options or {})
    from netprobe.zoo.loading import model_for

    return model_for(model, dict(options or {}), input_size)


def variants_of(plain: bool, compare: bool) -> tuple[str, ...]:
    """The variants a --plain / --compare pair of flags asks for."""
    return VARIANTS if compare else ("plain",) if plain else ("residual",)


def check_scores(spec: ModelSpec, options: dict, what: str, grad: bool = True) -> None:
    """Refuse models without one floating-point score per class (U-Net, single blocks, integer outputs) and, with
    `grad`, models whose scores carry no gradient to a parameter, from a forward pass on the meta device."""
    from netprobe.zoo.loading import output_shape, score_problem

    classes = options.get("num_classes", spec.num_classes)
    out = output_shape(spec, options)
    if classes is None or out != (2, classes):
        raise NetprobeError(f"{spec.name} is not a classifier (its output is {out or 'not class scores'}): "
                            f"{what} needs one score per class")
    problem = score_problem(spec, options, grad)
    if problem:
        raise NetprobeError(f"{spec.name} cannot be used for {what}: {problem}")


def fit_classes(spec: ModelSpec, options: dict, dataset, data: str) -> dict:
    """`options` with num_classes set to the data's where the builder takes it and none was given; a class count
    given, or fixed by the model, that differs from the data's is refused in one line."""
    if dataset.num_classes == options.get("num_classes", spec.num_classes):
        return options
    if "num_classes" in options or "num_classes" not in spec.options():
        raise NetprobeError(f"{spec.name} has {options.get('num_classes', spec.num_classes)} outputs and cannot be "
                            f"built for the {dataset.num_classes} classes of {data}")
    return {**options, "num_classes": dataset.num_classes}


def checkpoint_meta(spec: ModelSpec, path) -> dict:
    """A checkpoint's meta; one trained for another model is refused by name."""
    from netprobe.train.checkpoint import describe, load_checkpoint

    _, meta = load_checkpoint(path)
    if meta.get("model", spec.name) != spec.name:
        raise NetprobeError(f"{path} holds weights of {describe(meta)}, not of {spec.name}")
    return meta


def load_for(meta: dict, data: str, spec: ModelSpec, seed: int, cache: dict):
    """The data set normalised as the checkpoint `meta` was trained (its mean and std), at the spec's input, loaded
    once per normalisation (`cache`)."""
    norm = (tuple(meta["mean"]), tuple(meta["std"])) if "mean" in meta and "std" in meta else (None, None)
    if norm not in cache:
        from netprobe.data import load_data

        cache[norm] = load_data(data, input_size=tuple(spec.input_size), seed=seed, mean=norm[0], std=norm[1])
    return cache[norm]


def build(spec, options: dict, seed: int) -> torch.nn.Module:
    """The model `spec` (a `ModelSpec`, or any builder taking keyword options) builds with `options`, its initial
    weights drawn from `seed`: twins built from one seed share them. The global RNG is left as it was."""
    builder = spec.build if isinstance(spec, ModelSpec) else spec
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder(**options)


def subset(split, samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `samples` of a split in a seeded order: the same indices for every variant."""
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:samples]
    return split.x[order], split.y[order]


@dataclass
class Twin:
    """One variant ready to measure: its model at its weights, words for that state, its data, the checkpoint's
    meta ({} without one), the options it was built with and, when asked for, a copy at its initial weights."""

    variant: str
    model: torch.nn.Module
    state: str
    dataset: object
    meta: dict
    options: dict
    initial: torch.nn.Module | None = None

    @property
    def model_device(self) -> torch.device:
        """Where the model's parameters are (its samples go there)."""
        return next(self.model.parameters(), torch.empty(0)).device


@dataclass
class Twins:
    """The twins of one study: the spec, the variants, the build options, one checkpoint per variant (or none),
    the data set's name (default: the first checkpoint's, else synthetic) and the seed."""

    spec: ModelSpec
    variants: list
    options: dict
    weights: list
    data: str
    seed: int
    metas: list = field(default_factory=list)
    weights_state: str | None = None  # words for the checkpoints' state in place of "at PATH"
    _loaded: dict = field(default_factory=dict, repr=False)  # data sets by normalisation, loaded once

    @classmethod
    def plan(cls, spec: ModelSpec, variants, *, options=None, weights=(), data=None, seed: int = 0,
             loss: str | None = "it needs class scores", weights_state: str | None = None) -> "Twins":
        """Check the variants and the checkpoints (one per variant, of this model, saved with options it takes)
        before anything is loaded; `loss` says why a non-classifier is refused (None: any output will do);
        `weights_state`: words for the checkpoints' state (default: "at PATH")."""
        variants, weights, options = list(variants), list(weights), dict(options or {})
        if not variants or any(v not in VARIANTS for v in variants) or len(set(variants)) != len(variants):
            raise NetprobeError(f"variants must be distinct names from {', '.join(VARIANTS)}, got {variants}")
        if "plain" in options:
            raise NetprobeError("give the plain twin as a variant ('plain'), not as the option plain=")
        if "plain" in variants and not spec.plain:
            kind = "a model from a file or module" if spec.family == "custom" else spec.family
            raise NetprobeError(f"{spec.name} ({kind}) has no shortcuts to remove: the plain twin applies to the "
                                "zoo's residual families")
        if loss is not None and spec.num_classes is None:
            raise NetprobeError(f"{spec.name} is not a classifier: {loss}")
        if weights and len(weights) != len(variants):
            raise NetprobeError(f"{len(weights)} checkpoint(s) for {len(variants)} variant(s): give one per variant")
        metas = [checkpoint_meta(spec, path) for path in weights] or [{} for _ in variants]
        if weights:
            from netprobe.train.checkpoint import check_saved_options

            for path, meta in zip(weights, metas):
                check_saved_options(path, spec, meta.get("options", {}))
        data = data or metas[0].get("data") or "synthetic"
        return cls(spec, variants, options, weights, data, seed, metas, weights_state)

    def dataset(self, k: int = 0):
        """Variant `k`'s data set, normalised as its checkpoint was trained (loaded once per normalisation)."""
        return load_for(self.metas[k], self.data, self.spec, self.seed, self._loaded)

    def build_options(self, k: int) -> dict:
        """The options variant `k` is built with: the checkpoint's (it was trained with them), the study's over them
        (a checkpoint that does not fit them is refused when loaded), and the twin flag."""
        trained = self.metas[k].get("options", {}) if self.weights else {}
        trained = {key: v for key, v in trained.items() if key != "plain"}
        return {**trained, **self.options, **({"plain": self.variants[k] == "plain"} if self.spec.plain else {})}

    def recorded_options(self) -> dict:
        """The options as a run's manifest records them: a user model's bound --kwargs and the study's options."""
        return {**dict(self.spec.bound), **self.options}

    def prepare(self, *, train_epochs: int = 0, progress: bool = False, initial: bool = False, fit_options=None,
                checkpoints=None, device="cpu") -> Iterator[Twin]:
        """Each variant at its weights, on `device`: the checkpoint, else `train_epochs` epochs of SGD (0:
        initialisation). `initial`: keep a second copy at the initial weights. `fit_options`: extra keywords of
        the brief training (`train_briefly`); `checkpoints`: a folder where it keeps train-VARIANT.pt every epoch.
        The twin's data set stays on the CPU (the studies move the samples they take)."""
        from netprobe.devices import resolve

        device = resolve(device)
        for k, variant in enumerate(self.variants):
            meta, dataset = self.metas[k], self.dataset(k)
            options = fit_classes(self.spec, self.build_options(k), dataset, self.data)
            init_seed = int(meta.get("seed", self.seed))  # netprobe train seeds the initial weights with its --seed
            start = build(self.spec, options, init_seed) if initial else None
            model = build(self.spec, options, init_seed)
            if self.weights:
                from netprobe.train import load_weights

                load_weights(model, self.weights[k], plain=(variant == "plain") if self.spec.plain else None)
                state = self.weights_state or f"at {self.weights[k]}"
            else:
                path = None if checkpoints is None else Path(checkpoints) / f"train-{variant}.pt"
                state = train_briefly(model, dataset, train_epochs, seed=self.seed, progress=progress,
                                      meta={"model": self.spec.name, "options": options}, checkpoint=path,
                                      device=device, **(fit_options or {}))
            yield Twin(variant, model.to(device), state, dataset, meta, options,
                       None if start is None else start.to(device))


def train_briefly(model, dataset, epochs: int, *, seed: int, progress: bool, meta: dict, checkpoint=None,
                  resume: bool = False, recalibrate: int = 0, device="cpu") -> str:
    """Train `model` in place `epochs` epochs of SGD (batch `TRAIN_BATCH`, lr `TRAIN_LR`, He et al.'s schedule),
    checkpointed to `checkpoint` when given; words for the state reached (0 epochs: initialisation).

    `recalibrate` > 0: re-estimate the BatchNorm statistics at the final weights on that many training samples.
    Under torchrun, rank 0 trains and the other ranks take its weights, so every rank measures one model.
    """
    if epochs == 0:
        return "at initialisation"
    from netprobe.ranks import is_main, share_state
    from netprobe.train import fit, recalibrate_bn

    if is_main():
        fit(model, dataset, epochs=epochs, batch_size=TRAIN_BATCH, lr=TRAIN_LR, seed=seed, checkpoint=checkpoint,
            resume=resume, progress=progress, device=device, **({"meta": meta} if checkpoint is not None else {}))
        if recalibrate:  # the running statistics of training lag the final weights
            x, _ = subset(dataset.train, recalibrate, seed)
            recalibrate_bn(model, x.to(device), 256)
    share_state(model)
    state = f"after {epochs} epoch{'s' * (epochs != 1)} on {dataset.spec}"
    return state + " (BN statistics re-estimated)" if recalibrate else state
