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

STUDY_ORDER = ("plain", "residual")  # the twins (twins.VARIANTS) in the study's table order
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
    warmup: float = 0.0  # this fraction of the steps ramps the learning rate up linearly
    warmup_lr: float = 0.0  # He et al.'s warm-up: this rate until the training error falls below 80% ...
    warmup_depth: int = 110  # ... for nets of this depth and deeper (their 110 layers)
    init: str = "he"  # "he": the paper's; "zero-last-bn": each residual block's last BatchNorm scale at 0
    augment: bool = False  # He et al.'s 4-pixel pad, random crop and horizontal flip
    snapshots: int = 10  # weights kept along the way for `landscape --trajectory`, besides the initial ones

    def as_dict(self) -> dict:
        """The recipe as plain types (for the checkpoint's meta and the study manifest)."""
        return asdict(self)


def pair_name(variant: str, depth: int) -> str:
    """'plain56' / 'residual56': the pair's file stem in the study directory."""
    return f"{variant}{depth}"


def pair_options(recipe: Recipe, variant: str, num_classes: int) -> dict:
    """Builder options as `netprobe train` writes them (`plain` only when set) plus the width and classes."""
    return {**({"plain": True} if variant == "plain" else {}), "width": recipe.width, "num_classes": num_classes}


def path_name(variant: str, depth: int) -> str:
    """'plain56.path.pt': the file of a pair's weight snapshots along training (Li et al. 2018, Sec. 7)."""
    return f"{pair_name(variant, depth)}.path.pt"


def snapshot_due(step: int, previous: int, recipe: Recipe) -> bool:
    """Whether the logged `step` (the one before it: `previous`) starts a new of `recipe.snapshots` equal stretches."""
    return step * recipe.snapshots // recipe.steps > previous * recipe.snapshots // recipe.steps


def epoch_steps(data: str, seed: int, batch_size: int) -> int:
    """SGD steps in one pass over `data`'s training split (an incomplete last batch is dropped)."""
    from netprobe.data import load_data

    return len(load_data(data, input_size=INPUT_SIZE, seed=seed).train.y) // batch_size


def train_pair(recipe: Recipe, variant: str, depth: int, path, *, resume: bool = False, progress: bool = False,
               position: int = 0, device="cpu") -> list[dict]:
    """Train resnet{depth} (or its plain twin) under `recipe` on `device` (the data moved there once),
    checkpointing to `path`; the curve rows."""
    import torch
    from tqdm.auto import tqdm

    from netprobe.analysis.evaluation import evaluate_fast
    from netprobe.data import load_data
    from netprobe.devices import resolve, to_device
    from netprobe.train import save_checkpoint, train_epoch
    from netprobe.train.loop import resume_block

    dataset = to_device(load_data(recipe.data, input_size=INPUT_SIZE, seed=recipe.seed), device := resolve(device))
    x, y = dataset.train.x, dataset.train.y
    per_epoch = len(y) // recipe.batch_size
    if per_epoch < 1:
        raise NetprobeError(f"batch size {recipe.batch_size} exceeds the {len(y)} training samples of {recipe.data}")
    model, optimizer, augment, meta = _setup(recipe, variant, depth, dataset, device)
    shuffle = torch.Generator().manual_seed(recipe.seed)
    trail = Path(path).with_name(path_name(variant, depth))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        done, history, order = 0, [], None
        if resume and Path(path).exists():
            done, history, order = _resume(path, recipe, meta, model, optimizer, shuffle, augment, len(y))
        snaps = _restore_snapshots(trail, done) if done else ([0], [_weights(model)]) if recipe.snapshots else None
        with tqdm(total=recipe.steps, initial=done, disable=not progress, file=sys.stderr, unit="step",
                  desc=f"{pair_name(variant, depth)} (w{recipe.width})", position=position, dynamic_ncols=True,
                  leave=True) as bar:
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
                                            lr=rate(recipe, depth, history), first_step=done,
                                            total_steps=recipe.steps, warmup=round(recipe.warmup * recipe.steps),
                                            augment=augment)
                    loss_sum, hits_sum, done = loss_sum + loss * n, hits_sum + acc * n, done + n
                    bar.update(n)
                steps = done - start
                test_loss, test_acc = evaluate_fast(model, dataset.test, batch_size=max(recipe.batch_size, 256))
                history.append({"step": done, "epoch": done / per_epoch, "train_loss": loss_sum / steps,
                                "train_acc": hits_sum / steps, "test_loss": test_loss, "test_acc": test_acc})
                bar.set_postfix(loss=f"{loss_sum / steps:.3f}", test_acc=f"{test_acc:.3f}")
                if snaps is not None and snapshot_due(done, start, recipe):
                    snaps[0].append(done)
                    snaps[1].append(_weights(model))
                    _save_snapshots(trail, snaps, meta)  # before the checkpoint: a resume drops any beyond it
                save_checkpoint(path, model, {
                    **meta, "data": dataset.spec, "seed": recipe.seed, "epoch": done // per_epoch, "step": done,
                    "train": recipe.as_dict(), "mean": list(dataset.mean), "std": list(dataset.std),
                    "history": history,
                    "resume": {**resume_block(optimizer, shuffle, augment), "order": order}})
    return history


def _setup(recipe: Recipe, variant: str, depth: int, dataset, device):
    """The pair's model (seeded, initialised as `recipe.init`, on `device`), its SGD optimizer, augmentation and
    meta."""
    import torch

    from netprobe.train.augment import PadCropFlip, fill_for
    from netprobe.zoo import load

    name, options = f"resnet{depth}", pair_options(recipe, variant, dataset.num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)  # the initial weights depend on the seed only, as in `netprobe train`
        model = load(name, **options)
    initialise(model, recipe.init)
    model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay)
    augment = PadCropFlip(fill_for(dataset.mean, dataset.std), seed=recipe.seed) if recipe.augment else None
    return model, optimizer, augment, {"model": name, "options": options}


def _resume(path, recipe, meta, model, optimizer, shuffle, augment, samples):
    """Restore a pair from its checkpoint: (steps done, curve rows, the current epoch's permutation of the
    `samples` training samples); a resume block that cannot be continued is refused in one line."""
    import torch

    from netprobe.train.loop import restore

    saved = restore(path, {**recipe.as_dict(), **meta}, model, optimizer, shuffle, needs=("resume", "step"),
                    what="depth-study training state")
    order, rng = saved["resume"].get("order"), saved["resume"].get("augment_rng")
    if not (isinstance(order, torch.Tensor) and order.dtype == torch.int64 and order.dim() == 1
            and torch.equal(order.sort().values, torch.arange(samples))):
        raise NetprobeError(f"cannot resume {path}: its resume block holds no permutation of the {samples} "
                            "training samples")
    if augment is not None:
        if not (isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8):
            raise NetprobeError(f"cannot resume {path}: its resume block holds no augmentation state")
        augment.restore(rng)
    return saved["step"], list(saved["history"]), order


INITS = ("he", "zero-last-bn")
WARMUP_ERROR = 0.8  # He et al. warm up "until the training error is below 80%"


def initialise(model, init: str) -> None:
    """Apply `init` to a freshly built CIFAR ResNet: 'he' keeps the paper's; 'zero-last-bn' zeroes the scale of
    the last BatchNorm of each residual block whose shortcut is the identity (Goyal et al. 2017), so the block
    starts as its shortcut. Not in the downsampling blocks: their option-A shortcut zero-pads the new channels,
    which would then be exactly 0 before the ReLU, where it passes no gradient, and never train. A plain block
    has no shortcut to start as, so the plain twin keeps the paper's initialisation under either."""
    import torch

    from netprobe.zoo.cifar_resnet import BasicBlock

    if init not in INITS:
        raise NetprobeError(f"unknown initialisation {init!r} (known: {', '.join(INITS)})")
    if init == "zero-last-bn":
        for block in model.modules():
            identity = isinstance(block, BasicBlock) and not block.plain and block.pad is None
            if identity and isinstance(block.bn2, torch.nn.BatchNorm2d):
                torch.nn.init.zeros_(block.bn2.weight)


def rate(recipe: Recipe, depth: int, history: list[dict]) -> float:
    """The base learning rate of the next interval: He et al.'s warm-up rate while it applies, else `recipe.lr`."""
    warming = recipe.warmup_lr and depth >= recipe.warmup_depth
    if warming and all(1 - row["train_acc"] >= WARMUP_ERROR for row in history):
        return recipe.warmup_lr
    return recipe.lr


def _weights(model) -> dict:
    """A copy of the model's parameters (not its buffers: the trajectory is a path in parameter space)."""
    return {name: p.detach().to("cpu").contiguous().clone() for name, p in model.named_parameters()}


def _save_snapshots(path, snaps, meta) -> None:
    import io

    import torch

    from netprobe.files import write_atomic

    buffer = io.BytesIO()
    torch.save({"steps": list(snaps[0]), "states": list(snaps[1]), "meta": dict(meta)}, buffer)
    write_atomic(path, buffer.getvalue())


def load_snapshots(path) -> tuple[list[int], list[dict], dict]:
    """(steps, parameter states, meta) of a pair's snapshot file, loaded with weights_only=True."""
    import torch

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise NetprobeError(f"{path} does not exist: train the pair with snapshots above 0",
                            said={"with snapshots above": "with --snapshots above"}) from None
    except Exception as exc:  # noqa: BLE001 - any failure to unpickle foreign bytes means 'not a snapshot file'
        raise NetprobeError(f"{path} is not a snapshot file ({type(exc).__name__})") from None
    ok = (isinstance(saved, dict) and isinstance(saved.get("steps"), list) and isinstance(saved.get("states"), list)
          and len(saved["steps"]) == len(saved["states"]) and all(isinstance(s, int) for s in saved["steps"])
          and all(isinstance(d, dict) and all(isinstance(v, torch.Tensor) for v in d.values()) for d in saved["states"])
          and isinstance(saved.get("meta"), dict))
    if not ok:
        raise NetprobeError(f"{path} is not a snapshot file (steps, states and meta, as `netprobe depth` writes)")
    return saved["steps"], saved["states"], saved["meta"]


def _restore_snapshots(path, done: int):
    """The snapshots taken up to step `done` (a run killed after a snapshot but before its checkpoint took more)."""
    if not Path(path).exists():
        return None
    steps, states, _ = load_snapshots(path)
    keep = [i for i, step in enumerate(steps) if step <= done]
    return [steps[i] for i in keep], [states[i] for i in keep]
