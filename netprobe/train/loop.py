"""The training loop: SGD with momentum and weight decay and He et al.'s step schedule, shortened.

He et al. 2016 (Sec. 4.2) train the CIFAR ResNets with SGD, momentum 0.9, weight decay 1e-4, batch 128 and
learning rate 0.1, divided by 10 at 32k and 48k of 64k iterations: at 50% and 75% of training. The same
fractions are applied here per iteration to however many epochs are asked for. Data is in-memory tensors,
shuffled per epoch by a dedicated generator, so nothing waits on a loader. Resuming restores the weights,
the optimizer's momentum buffers, the shuffling generator and the global RNG (dropout), so a resumed run
ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from netprobe.devices import autocast, resolve, to_device
from netprobe.errors import NetprobeError
from netprobe.modes import model_mode

METRICS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc")
MILESTONES = (0.5, 0.75)  # fractions of all iterations where the learning rate drops 10x (He et al. 2016)


def learning_rate(lr: float, step: int, total: int, warmup: int = 0) -> float:
    """The learning rate at iteration `step` of `total`: `lr`, then /10 at 50% and /100 at 75%; over the first
    `warmup` iterations it rises linearly from lr / warmup to lr (Goyal et al. 2017's gradual warm-up)."""
    rate = lr * 0.1 ** sum(step >= fraction * total for fraction in MILESTONES)
    return rate * (step + 1) / warmup if step < warmup else rate


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               amp: bool = False):
    """One SGD step on a batch: (mean cross-entropy loss as a float, number of correct predictions); `amp`: the
    forward pass and loss under bf16 autocast (CUDA only, `devices.autocast`)."""
    with autocast(x.device, amp):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item(), int((logits.argmax(1) == y).sum())


def channels_last(model: nn.Module) -> None:
    """Store `model`'s 4-D parameters channels-last, in place (the same Parameter objects, so optimizers keep them)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 4 and not p.is_contiguous(memory_format=torch.channels_last):
                p.data = p.data.contiguous(memory_format=torch.channels_last)


def train_epoch(model, optimizer, x, y, *, batch_size: int, order: torch.Tensor, lr: float, first_step: int,
                total_steps: int, bar=None, warmup: int = 0, augment=None, amp: bool = False):
    """One pass over the batches of `order` (an incomplete last batch is dropped): (mean loss, accuracy).

    `warmup` as `learning_rate`'s; `augment` maps each image batch to an augmented one (`PadCropFlip`); `amp` as
    `train_step`'s. `order` is moved to the data's device once.
    Image batches and 4-D weights run channels-last: oneDNN trains the zoo's convolutions 15-20% faster so
    (benchmarks/README.md, "data and training")."""
    model.train()
    channels_last(model)
    steps = len(order) // batch_size
    order = order.to(x.device)
    loss_sum, correct = 0.0, 0
    for i in range(steps):
        idx = order[i * batch_size:(i + 1) * batch_size]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(lr, first_step + i, total_steps, warmup)
        batch = x[idx] if augment is None else augment(x[idx])
        if batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        loss, hits = train_step(model, optimizer, batch, y[idx], amp)
        if not math.isfinite(loss):
            raise NetprobeError(f"training diverged: loss {loss} at step {first_step + i + 1}; lower lr",
                                    said={"lower lr": "lower --lr"})
        loss_sum += loss * batch_size
        correct += hits
        if bar is not None:
            seen = (i + 1) * batch_size
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", refresh=False)
            bar.update(1)
    return loss_sum / (steps * batch_size), correct / (steps * batch_size)


@torch.no_grad()
def evaluate(model: nn.Module, split, batch_size: int = 256, forward=None) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` in eval mode over a split (anything with `x` and `y`);
    `forward(model)`, called after the switch to eval mode, returns what computes the logits instead."""
    if len(split.y) == 0:
        raise NetprobeError("cannot evaluate on an empty split")
    with model_mode(model, False):
        run = model if forward is None else forward(model)
        loss_sum, correct = 0.0, 0
        for start in range(0, len(split.y), batch_size):
            x, y = split.x[start:start + batch_size], split.y[start:start + batch_size]
            logits = run(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(1) == y).sum())
    return loss_sum / len(split.y), correct / len(split.y)


def _check(epochs, batch_size, lr, momentum, weight_decay, n):
    if epochs < 1:
        raise NetprobeError(f"epochs must be at least 1, got {epochs}")
    if not lr > 0 or not math.isfinite(lr):
        raise NetprobeError(f"learning rate must be positive, got {lr}")
    if momentum < 0 or weight_decay < 0:
        raise NetprobeError(f"momentum and weight decay must be >= 0, got {momentum} and {weight_decay}")
    if batch_size < 1 or n < 1:
        raise NetprobeError(f"training needs a batch size of at least 1 and samples, got {batch_size} and {n}")


def restore(path, settings: dict, model, optimizer, shuffle, *, needs=("resume",), what="training state") -> dict:
    """Restore a run from its checkpoint (weights, optimizer, shuffling generator, global RNG): its meta.

    Refused in one line if the checkpoint lacks a key of `needs` or was made with other `settings` (a value
    compared with the checkpoint's `train` entry, else its top-level key)."""
    from netprobe.train.checkpoint import load_checkpoint, mismatch

    state, saved = load_checkpoint(path)
    if any(key not in saved for key in needs):
        raise NetprobeError(f"{path} holds no {what} to resume from")
    from netprobe.runs import changed

    recorded = {key: saved.get("train", {}).get(key, saved.get(key)) for key in settings}
    change = changed(recorded, settings)
    if change:
        raise NetprobeError(f"cannot resume {path}: {change}")
    problem = mismatch(model, state)
    if problem is not None:
        raise NetprobeError(f"cannot resume {path}: {problem}")
    model.load_state_dict(state)
    try:  # the resume block's types are checked on load; its contents meet torch here
        optimizer.load_state_dict(saved["resume"]["optimizer"])
        shuffle.set_state(saved["resume"]["shuffle_rng"])
        torch.set_rng_state(saved["resume"]["rng"])
    except (RuntimeError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise NetprobeError(f"cannot resume {path}: its {what} is malformed ({type(exc).__name__}: "
                            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})") from None
    return saved


def _optimizer(model: nn.Module, name: str, lr: float, momentum: float, weight_decay: float):
    if name not in ("sgd", "adam"):
        raise NetprobeError(f"optimizer must be sgd or adam, got {name!r}")
    if name == "adam":  # momentum is Adam's beta1
        return torch.optim.Adam(model.parameters(), lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def _augmenter(dataset, seed: int):
    from netprobe.train.augment import PadCropFlip, fill_for

    return PadCropFlip(fill_for(dataset.mean, dataset.std), seed=seed)


def _recorded(optimizer: str, augment: bool, **settings) -> dict:
    """The training settings a checkpoint records (and a resume must match)."""
    config = {"optimizer": optimizer} if optimizer != "sgd" else {}  # SGD checkpoints stay resumable as before
    return config | settings | ({"augment": True} if augment else {})  # so do unaugmented ones


def resume_block(optimizer, shuffle, crop) -> dict:
    """What a resumed run restores: the optimizer, the shuffling generator, the global and augmentation RNGs."""
    return {"optimizer": optimizer.state_dict(), "shuffle_rng": shuffle.get_state(), "rng": torch.get_rng_state(),
            **({"augment_rng": crop.state()} if crop else {})}


def fit(model: nn.Module, dataset, *, epochs: int, batch_size: int, lr: float, momentum: float = 0.9,
        weight_decay: float = 1e-4, seed: int, checkpoint=None, resume: bool = False, progress: bool = True,
        meta: dict | None = None, optimizer: str = "sgd", augment: bool = False, device="cpu",
        amp: bool = False) -> pd.DataFrame:
    """Train `model` on `dataset` in place; per-epoch metrics. With `checkpoint`, save every epoch (atomically).

    `meta` (model name, options) goes into the checkpoint; `resume=True` continues from `checkpoint` when it
    exists (it must come from the same settings) and starts afresh when it does not. A batch size above the
    training set's size is clamped to it (one full batch per step). `optimizer`: "sgd" or "adam" (momentum
    is Adam's beta1). `augment`: He et al.'s pad-crop-flip on every training batch (`netprobe.train.augment`).
    `device` ('cpu', 'cuda', 'auto'): the model and the data move there once, and stay; `amp`: bf16 autocast on
    CUDA (`train_step`). The shuffling and augmentation generators stay on the CPU, so the order is the same.
    """
    from tqdm.auto import tqdm

    from netprobe.train.checkpoint import save_checkpoint

    autocast(device := resolve(device), amp)  # refused before any work when asked for on the CPU
    model.to(device)
    dataset = to_device(dataset, device)
    x, y = dataset.train.x, dataset.train.y
    _check(epochs, batch_size, lr, momentum, weight_decay, len(y))
    batch_size = min(batch_size, len(y))
    config = _recorded(optimizer, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                       weight_decay=weight_decay, seed=seed, data=dataset.spec, augment=augment)
    meta = dict(meta or {})
    optimizer = _optimizer(model, optimizer, lr, momentum, weight_decay)
    steps = len(y) // batch_size
    shuffle = torch.Generator().manual_seed(seed)
    crop = _augmenter(dataset, seed) if augment else None
    # The global RNG (dropout) is seeded here and given back afterwards: fit has no side effect on it.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        done, history = 0, []
        if resume and checkpoint is not None and Path(checkpoint).exists():
            saved = restore(checkpoint, {**config, **meta}, model, optimizer, shuffle)
            done, history = saved["epoch"], list(saved["history"])
            if crop is not None:
                crop.restore(saved["resume"]["augment_rng"])
        # The layout training leaves, even when no epoch is left to run: a resumed model then computes the
        # same bits as the one that trained straight through (convolution kernels differ by layout).
        channels_last(model)
        with tqdm(total=epochs * steps, initial=done * steps, disable=not progress, file=sys.stderr,
                  unit="batch", desc=meta.get("model", "train"), dynamic_ncols=True, leave=True) as bar:
            for epoch in range(done, epochs):
                bar.set_description(f"{meta.get('model', 'train')} epoch {epoch + 1}/{epochs}")
                order = torch.randperm(len(y), generator=shuffle)
                train_loss, train_acc = train_epoch(model, optimizer, x, y, batch_size=batch_size, order=order,
                                                    lr=lr, first_step=epoch * steps, total_steps=epochs * steps,
                                                    bar=bar if progress else None, augment=crop, amp=amp)
                test_loss, test_acc = evaluate(model, dataset.test, batch_size=max(batch_size, 256))
                history.append({"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc,
                                "test_loss": test_loss, "test_acc": test_acc})
                bar.set_postfix(loss=f"{train_loss:.3f}", acc=f"{train_acc:.3f}", test_acc=f"{test_acc:.3f}")
                if checkpoint is not None:
                    save_checkpoint(checkpoint, model, {
                        **meta, "data": dataset.spec, "seed": seed, "epoch": epoch + 1, "train": config,
                        "mean": list(dataset.mean), "std": list(dataset.std), "history": history,
                        "resume": resume_block(optimizer, shuffle, crop)})
    return pd.DataFrame(history, columns=list(METRICS))
