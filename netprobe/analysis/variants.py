"""What the plain-vs-residual studies (landscape, lesion, hessian) share: the variant checks and their data."""

from __future__ import annotations

from netprobe.errors import NetprobeError


def check_variants(spec, variants, weights, options, loss: str) -> None:
    """Refuse repeated or unknown variants, a plain twin of a family without shortcuts, a non-classifier, and a
    number of checkpoints other than one per variant; `loss` says why class scores are needed."""
    from netprobe.analysis.gradients.profile import VARIANTS

    if not variants or any(v not in VARIANTS for v in variants) or len(set(variants)) != len(variants):
        raise NetprobeError(f"variants must be distinct names from {', '.join(VARIANTS)}, got {variants}")
    if "plain" in options:
        raise NetprobeError("give the plain twin as a variant ('plain'), not as the option plain=")
    if "plain" in variants and not spec.plain:
        raise NetprobeError(f"{spec.name} ({spec.family}) has no shortcuts to remove: the plain twin applies to "
                            "residual families")
    if spec.num_classes is None:
        raise NetprobeError(f"{spec.name} is not a classifier: {loss}")
    if weights and len(weights) != len(variants):
        raise NetprobeError(f"{len(weights)} checkpoint(s) for {len(variants)} variant(s): give one per variant")


def dataset_for(meta: dict, data: str, spec, seed: int, cache: dict, input_size=None):
    """The data set normalised as the checkpoint `meta` was trained (its mean and std), loaded once per norm, at
    `input_size` (default: the model's)."""
    norm = (tuple(meta["mean"]), tuple(meta["std"])) if "mean" in meta and "std" in meta else (None, None)
    if norm not in cache:
        from netprobe.data import load_data

        cache[norm] = load_data(data, input_size=tuple(input_size or spec.input_size), seed=seed, mean=norm[0],
                                std=norm[1])
    return cache[norm]


def fit_classes(spec, build: dict, dataset, data: str) -> dict:
    """`build` with num_classes set to the data's where the model takes it; a model with other fixed classes
    (a file's model) is refused in one line."""
    if dataset.num_classes != spec.num_classes and "num_classes" in spec.options():
        build = {**build, "num_classes": dataset.num_classes}
    if dataset.num_classes != build.get("num_classes", spec.num_classes):
        raise NetprobeError(f"{spec.name} has {spec.num_classes} outputs and cannot be built for the "
                            f"{dataset.num_classes} classes of {data}")
    return build


TRAIN_BATCH, TRAIN_LR = 128, 0.1  # the brief training without a checkpoint: He et al.'s CIFAR batch and rate


def checkpoint_meta(name: str, path) -> dict:
    """A checkpoint's meta; one trained for another zoo model is refused by name."""
    from netprobe.train.checkpoint import describe, load_checkpoint

    _, meta = load_checkpoint(path)
    if meta.get("model", name) != name:
        raise NetprobeError(f"{path} holds weights of {describe(meta)}, not of {name}")
    return meta


def build_seeded(name: str, options: dict, seed: int):
    """Zoo model `name` built with `options`, its initial weights drawn from `seed` (global RNG untouched)."""
    import torch

    from netprobe.zoo import load

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return load(name, **options)


def prepare_weights(model, spec, variant, weights, dataset, train_epochs, seed, progress, device="cpu") -> str:
    """Load checkpoint `weights` into `model` in place, else train it `train_epochs` epochs (on `device`); words
    for its state."""
    from netprobe.train import fit, load_weights

    if weights is not None:
        load_weights(model, weights, plain=(variant == "plain") if spec.plain else None)
        return f"at {weights}"
    if train_epochs == 0:
        return "at initialisation"
    fit(model, dataset, epochs=train_epochs, batch_size=TRAIN_BATCH, lr=TRAIN_LR, seed=seed, progress=progress,
        device=device)
    return f"after {train_epochs} epoch{'s' * (train_epochs != 1)} on {dataset.spec}"
