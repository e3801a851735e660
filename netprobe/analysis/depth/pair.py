"""Training one (depth, variant) pair with `netprobe train`'s recipe, logged and checkpointed every few steps.

The loop is `netprobe.train`'s: the same SGD settings, `learning_rate` schedule (10x drops at 50% and 75%
of all steps) and `train_epoch`, called on slices of each epoch's permutation so the curves have a point
every `every` steps rather than one per epoch. The checkpoint is `save_checkpoint`'s format with
`netprobe train`'s meta keys, so `--weights` loads it anywhere; its `resume` entry also holds the current
epoch's permutation, so a run resumed at a logged step ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from netprobe.errors import NetprobeError

VARIANTS = ("plain", "residual")
INPUT_SIZE = (3, 32, 32)
CURVE_COLUMNS = ("step", "epoch", "train_loss", "train_acc", "test_loss", "test_acc")


@dataclass(frozen=True)
class Recipe:
    """What every pair of a study shares: data, budget (SGD steps), width, seed and SGD settings."""

    data: str = "synthetic"
    steps: int = 400
    width: int = 16
    seed: int = 0
    every: int = 20
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4

    def as_dict(self) -> dict:
        """The recipe as plain types (for the checkpoint's meta and the study manifest)."""
        return asdict(self)


def pair_name(variant: str, depth: int) -> str:
    """'plain56' / 'residual56': the pair's file stem in the study directory."""
    return f"{variant}{depth}"


def pair_options(recipe: Recipe, variant: str, num_classes: int) -> dict:
    """Builder options as `netprobe train` writes them (`plain` only when set) plus the width and classes."""
    return {**({"plain": True} if variant == "plain" else {}), "width": recipe.width, "num_classes": num_classes}


def epoch_steps(data: str, seed: int, batch_size: int) -> int:
    """SGD steps in one pass over `data`'s training split (an incomplete last batch is dropped)."""
    from netprobe.data import load_data

    return len(load_data(data, input_size=INPUT_SIZE, seed=seed).train.y) // batch_size


def train_pair(recipe: Recipe, variant: str, depth: int, path, *, resume: bool = False, progress: bool = False,
               position: int = 0) -> list[dict]:
    """Train resnet{depth} (or its plain twin) under `recipe`, checkpointing to `path`; the curve rows."""
    import torch
    from tqdm.auto import tqdm

    from netprobe.data import load_data
    from netprobe.analysis.evaluation import evaluate
    from netprobe.train import save_checkpoint, train_epoch
    from netprobe.zoo import load

    dataset = load_data(recipe.data, input_size=INPUT_SIZE, seed=recipe.seed)
    x, y = dataset.train.x, dataset.train.y
    per_epoch = len(y) // recipe.batch_size
    if per_epoch < 1:
        raise NetprobeError(f"batch size {recipe.batch_size} exceeds the {len(y)} training samples of {recipe.data}")
    name, options = f"resnet{depth}", pair_options(recipe, variant, dataset.num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)  # the initial weights depend on the seed only, as in `netprobe train`
        model = load(name, **options)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay)
    shuffle = torch.Generator().manual_seed(recipe.seed)
    meta = {"model": name, "options": options}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        done, history, order = 0, [], None
        if resume and Path(path).exists():
            done, history, order = _resume(path, recipe, meta, model, optimizer, shuffle)
        label = f"{pair_name(variant, depth)} (w{recipe.width})"
        with tqdm(total=recipe.steps, initial=done, disable=not progress, file=sys.stderr, unit="step",
                  desc=label, position=position, dynamic_ncols=True, leave=True) as bar:
            while done < recipe.steps:
                stop = min(recipe.steps, (done // recipe.every + 1) * recipe.every)
                start, loss_sum, hits_sum = done, 0.0, 0.0
                while done < stop:  # an epoch boundary may fall inside an interval
                    if done % per_epoch == 0:
                        order = torch.randperm(len(y), generator=shuffle)
                    at = done % per_epoch
                    n = min(stop - done, per_epoch - at)
                    loss, acc = train_epoch(model, optimizer, x, y, batch_size=recipe.batch_size,
                                            order=order[at * recipe.batch_size:(at + n) * recipe.batch_size],
                                            lr=recipe.lr, first_step=done, total_steps=recipe.steps)
                    loss_sum, hits_sum, done = loss_sum + loss * n, hits_sum + acc * n, done + n
                    bar.update(n)
                steps = done - start
                test_loss, test_acc = evaluate(model, dataset.test, batch_size=max(recipe.batch_size, 256))
                history.append({"step": done, "epoch": done / per_epoch, "train_loss": loss_sum / steps,
                                "train_acc": hits_sum / steps, "test_loss": test_loss, "test_acc": test_acc})
                bar.set_postfix(loss=f"{loss_sum / steps:.3f}", test_acc=f"{test_acc:.3f}")
                save_checkpoint(path, model, {
                    **meta, "data": dataset.spec, "seed": recipe.seed, "epoch": done // per_epoch, "step": done,
                    "train": recipe.as_dict(), "mean": list(dataset.mean), "std": list(dataset.std),
                    "history": history,
                    "resume": {"optimizer": optimizer.state_dict(), "shuffle_rng": shuffle.get_state(),
                               "rng": torch.get_rng_state(), "order": order}})
    return history


def _resume(path, recipe, meta, model, optimizer, shuffle):
    """Restore a pair from its checkpoint: (steps done, curve rows, the current epoch's permutation)."""
    from netprobe.train.loop import restore

    saved = restore(path, {**recipe.as_dict(), **meta}, model, optimizer, shuffle, needs=("resume", "step"),
                    what="depth-study training state")
    return saved["step"], list(saved["history"]), saved["resume"]["order"]
