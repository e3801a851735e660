"""A lesion study of one zoo model and/or its plain twin: bring each to its weights (a checkpoint of `netprobe
train` or of the depth study, or a brief training run), then delete its blocks one at a time and in random
sets, and measure each block's residual ratio and output variance at those weights and at initialisation.
"""

from __future__ import annotations

import statistics as stats
from dataclasses import dataclass, field

import pandas as pd
import torch

from netprobe.analysis.lesion import lesion as L
from netprobe.analysis.lesion.blocks import deletable_blocks, find_blocks
from netprobe.analysis.twins import Twins, resolve, subset
from netprobe.errors import NetprobeError

SAMPLES = 1000  # the default subset: all of the synthetic test split, a tenth of CIFAR's


@dataclass
class VariantLesion:
    """The lesion results of one variant at one state of its weights."""

    variant: str
    state: str
    accuracy: float  # intact, on the evaluated samples
    loss: float
    single: pd.DataFrame  # one row per deleted block (lesion.SINGLE_COLUMNS)
    blocks: pd.DataFrame  # per block: ratio and variances at the weights and at initialisation
    sets: pd.DataFrame | None = None  # random sets of deletions (lesion.SET_COLUMNS), when asked for


@dataclass
class LesionStudy:
    """The lesions of one model's variants, the settings that made them, and tables across variants."""

    model: str
    options: dict
    data: str
    samples: int
    seed: int
    num_classes: int
    results: list[VariantLesion] = field(default_factory=list)

    def _stack(self, attr: str) -> pd.DataFrame:
        frames = [getattr(r, attr).assign(variant=r.variant) for r in self.results if getattr(r, attr) is not None]
        if not frames:
            return pd.DataFrame()
        table = pd.concat(frames, ignore_index=True)
        return table[["variant", *[c for c in table.columns if c != "variant"]]]

    def single(self) -> pd.DataFrame:
        """Single deletions of every variant, a leading `variant` column."""
        return self._stack("single")

    def blocks(self) -> pd.DataFrame:
        """Per-block ratios and variances of every variant."""
        return self._stack("blocks")

    def sets(self) -> pd.DataFrame:
        """Random-set deletions of every variant (empty without them)."""
        return self._stack("sets")

    def curve(self) -> pd.DataFrame:
        """Accuracy against the number of blocks deleted at once, per variant (empty without random sets)."""
        frames = [L.set_curve(r.sets).assign(variant=r.variant) for r in self.results if r.sets is not None]
        if not frames:
            return pd.DataFrame()
        table = pd.concat(frames, ignore_index=True)
        return table[["variant", *[c for c in table.columns if c != "variant"]]]

    def summary(self) -> pd.DataFrame:
        """Per variant: intact accuracy, chance, and the median and worst accuracy after one deletion, for
        blocks that keep the shape and for downsampling blocks separately."""
        rows = []
        for r in self.results:
            row = {"variant": r.variant, "state": r.state, "intact_accuracy": r.accuracy, "intact_loss": r.loss,
                   "chance": 1 / self.num_classes}
            for label, rows_of in (("", r.single[~r.single["downsampling"]]),
                                   ("downsampling_", r.single[r.single["downsampling"]])):
                acc = list(rows_of["accuracy"])
                row[f"{label}blocks"] = len(acc)
                row[f"{label}median_accuracy"] = stats.median(acc) if acc else float("nan")
                row[f"{label}worst_accuracy"] = min(acc) if acc else float("nan")
            rows.append(row)
        return pd.DataFrame(rows)

    def caption(self) -> str:
        """Model, options, states and data in words, for plot titles."""
        opts = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        states = " / ".join(dict.fromkeys(r.state for r in self.results))
        return (f"{self.model}{f' ({opts})' if opts else ''} {states}\n"
                f"{self.samples} test samples of {self.data}, seed {self.seed}")


def study(model, *, variants=("residual",), options: dict | None = None, weights=(), train_epochs: int = 0,
          data: str | None = None, samples: int | None = None, batch_size: int = 256, seed: int = 0,
          random_sets: int = 0, max_deleted: int | None = None, progress: bool = False,
          input_size=None, weights_state: str | None = None, device="cpu") -> LesionStudy:
    """Lesion `model` (a resolved `ModelSpec`, or a MODEL string resolved once) for each of `variants` at
    `weights` (one checkpoint per variant), else after `train_epochs` epochs of SGD from `seed` (0: at
    initialisation). `data` defaults to the checkpoint's data.

    `samples` test samples (a seeded subset; default: up to `SAMPLES`) are evaluated; `random_sets` draws
    per k of k = 1..`max_deleted` (default: all) blocks deleted at once, from the blocks that keep the shape.
    `input_size` (C, H, W): the data's and the model's input instead of the spec's. `weights_state`: words for
    the checkpoints' state in the results (default: "at PATH"). `device`: where the models and the samples are
    evaluated (`devices.resolve`); under torchrun the deletions are shared out (`ranks.share`).
    """
    spec, options = resolve(model, options, input_size)
    twins = Twins.plan(spec, variants, options=options, weights=weights, data=data, seed=seed,
                       loss="the lesion study measures test accuracy", weights_state=weights_state)
    if train_epochs < 0:
        raise NetprobeError(f"train_epochs must be >= 0, got {train_epochs}")
    for k, variant in enumerate(twins.variants):  # on the meta device, before any data is loaded
        meta_model = _check_blocks(spec, twins.build_options(k), variant, random_sets, max_deleted)
        if twins.weights:
            _check_fits(meta_model, spec, variant, twins.weights[k])
    shown = {k: v for k, v in twins.build_options(0).items() if k not in ("plain", "num_classes")}
    result = LesionStudy(spec.name, shown, twins.data, 0, seed, 0)
    for k in range(len(twins.variants)):
        dataset = twins.dataset(k)
        samples = min(SAMPLES, len(dataset.test)) if samples is None else samples
        if samples > len(dataset.test):
            raise NetprobeError(f"{samples} samples asked for: {twins.data} has {len(dataset.test)} test samples")
    for twin in twins.prepare(train_epochs=train_epochs, progress=progress, initial=True, device=device):
        result.num_classes, result.samples = twin.dataset.num_classes, samples
        x, y = (t.to(twin.model_device) for t in subset(twin.dataset.test, samples, seed))
        result.results.append(_lesion(twin.model, twin.initial, twin.variant, twin.state, x, y,
                                      batch_size=batch_size, seed=seed, random_sets=random_sets,
                                      max_deleted=max_deleted, progress=progress,
                                      desc=f"{spec.name} {twin.variant}"))
    return result


def _lesion(model, initial, variant, state, x, y, *, batch_size, seed, random_sets, max_deleted, progress,
            desc) -> VariantLesion:
    every = find_blocks(model, x)
    blocks = deletable_blocks(model, x)
    accuracy, loss = L.score(model, x, y, batch_size)
    single = L.single_deletions(model, blocks, x, y, intact=(accuracy, loss), batch_size=batch_size,
                                progress=progress, desc=desc)
    now = L.block_statistics(model, every, x, batch_size=batch_size)
    # At initialisation the running statistics are still 0 and 1: BatchNorm uses batch statistics, as in training.
    before = L.block_statistics(initial, every, x, train=True, batch_size=batch_size)
    table = now.assign(ratio_init=before["ratio"], input_var_init=before["input_var"],
                       output_var_init=before["output_var"])
    sets = None
    if random_sets:
        pool = [b for b in blocks if not b.downsampling]
        sets = L.set_deletions(model, pool, x, y, max_deleted=max_deleted or len(pool), draws=random_sets,
                               seed=seed, batch_size=batch_size, progress=progress, desc=f"{desc} sets")
    return VariantLesion(variant, state, accuracy, loss, single, table, sets)


def _check_blocks(spec, options, variant, random_sets, max_deleted):
    """The variant's model on the meta device; refuse it without deletable blocks, or random sets larger than
    its blocks allow."""
    from netprobe.zoo.loading import built

    options = {k: v for k, v in options.items() if k != "plain"}
    options.update({"plain": True} if variant == "plain" else {})
    model = built(spec, options)  # a file's model through its own builder, its --kwargs bound
    blocks = deletable_blocks(model, torch.empty(1, *spec.input_size, device="meta"))
    pool = sum(not b.downsampling for b in blocks)
    if random_sets and max_deleted is not None and max_deleted > pool:
        raise NetprobeError(f"cannot delete up to {max_deleted} blocks at once: the {variant} {spec.name} has "
                            f"{pool} blocks that keep the shape")
    return model


def _check_fits(model, spec, variant, path) -> None:
    """Refuse a checkpoint of the other twin, or one whose keys or shapes do not fit the meta-device `model`,
    before any data is loaded (`load_weights` checks again when the weights go in)."""
    from netprobe.train.checkpoint import describe, load_checkpoint, mismatch

    state, meta = load_checkpoint(path)
    trained_plain = bool(meta.get("options", {}).get("plain", False))
    if spec.plain and "options" in meta and trained_plain != (variant == "plain"):
        raise NetprobeError(f"{path} holds the {'plain' if trained_plain else 'residual'} twin's weights "
                            f"({describe(meta)}), given for the {variant} variant: "
                            f"{'add' if trained_plain else 'drop'} --plain (--compare: residual first, plain second)")
    if meta:
        problem = mismatch(model, state)
    else:  # a bare state dict: its class count may follow the data set, known once loaded; compare keys only
        own = model.state_dict()
        problem = next((f"missing key {k!r}" for k in own if k not in state), None) or next(
            (f"unexpected key {k!r}" for k in state if k not in own), None)
    if problem is not None:
        raise NetprobeError(f"{path} does not fit the {variant} {spec.name}: {problem} (it was trained for "
                            f"{describe(meta)})")
