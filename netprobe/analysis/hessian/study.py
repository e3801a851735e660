"""Top eigenvalues and trace of the training-loss Hessian of a zoo model and/or its plain twin, as one table."""

from __future__ import annotations

import sys

import pandas as pd
import torch

from netprobe.analysis.hessian.hessian import top_eigenvalues, trace
from netprobe.analysis.variants import build_seeded, check_variants, checkpoint_meta, dataset_for, prepare_weights
from netprobe.errors import NetprobeError

COLUMNS = ["variant", "scope", "quantity", "value", "stderr", "iterations", "samples"]
ADVISED_SAMPLES = 4096  # PyHessian's maintainer: fewer samples give figures that vary with the subset


def study(name: str, *, variants=("residual",), options: dict | None = None, weights=(), train_epochs: int = 0,
          data: str | None = None, samples: int = 256, batch_size: int = 128, top: int = 1, iters: int = 100,
          tol: float = 1e-3, probes: int = 20, seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """Per variant: the `top` eigenvalues of largest magnitude (power iteration, relative tolerance `tol`,
    at most `iters` products each) and Hutchinson's trace from `probes` probes (0: none) of the Hessian of the
    mean cross-entropy over a seeded subset of `samples` training samples, one row per quantity (`COLUMNS`).

    Weights: one checkpoint per variant, else `train_epochs` epochs of SGD from `seed` (0: initialisation).
    """
    from netprobe.zoo import model_spec

    spec = model_spec(name)
    variants, weights, options = list(variants), list(weights), dict(options or {})
    _check(spec, variants, weights, options, samples, top, iters, tol, probes, batch_size, train_epochs)
    metas = [checkpoint_meta(spec.name, path) for path in weights] or [{} for _ in variants]
    for meta in metas:
        _check_classifier(spec, {**meta.get("options", {}), **options})
    data = data or metas[0].get("data", "synthetic")
    rows, loaded = [], {}
    for k, variant in enumerate(variants):
        meta = metas[k]
        dataset = dataset_for(meta, data, spec, seed, loaded)
        build = {**meta.get("options", {}), **options, **({"plain": variant == "plain"} if spec.plain else {})}
        if dataset.num_classes != spec.num_classes and "num_classes" in spec.options():
            build["num_classes"] = dataset.num_classes
        model = build_seeded(spec.name, build, int(meta.get("seed", seed)))
        prepare_weights(model, spec, variant, weights[k] if weights else None, dataset, train_epochs, seed, progress)
        if samples > len(dataset.train):
            raise NetprobeError(f"{samples} samples asked for: {data} has {len(dataset.train)} training samples")
        order = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(seed))[:samples]
        x, y = dataset.train.x[order], dataset.train.y[order]
        batches = list(zip(torch.split(x, batch_size), torch.split(y, batch_size)))
        rows += _measure(model, batches, variant, samples, top=top, iters=iters, tol=tol, probes=probes,
                         seed=seed, progress=progress, desc=f"{spec.name} {variant}")
    return pd.DataFrame(rows, columns=COLUMNS)


def _measure(model, batches, variant, samples, *, top, iters, tol, probes, seed, progress, desc) -> list[dict]:
    from tqdm.auto import tqdm

    loss = torch.nn.functional.cross_entropy
    for p in model.parameters():
        p.requires_grad_(True)
    rows = []
    with tqdm(total=top * iters + probes, desc=desc, unit="hvp", file=sys.stderr, disable=not progress,
              leave=False) as bar:
        eigen = top_eigenvalues(model, loss, batches, k=top, iters=iters, tol=tol, seed=seed, step=bar.update)
        for i, (value, its) in enumerate(zip(eigen.values, eigen.iterations), 1):
            rows.append({"variant": variant, "scope": "model", "quantity": f"eigenvalue_{i}", "value": value,
                         "stderr": float("nan"), "iterations": its, "samples": samples})
        if probes:
            bar.total = sum(eigen.iterations) + probes  # the searches that converged early free their budget
            bar.refresh()
            t = trace(model, loss, batches, probes=probes, seed=seed, step=bar.update)
            rows.append({"variant": variant, "scope": "model", "quantity": "trace", "value": t.value,
                         "stderr": t.stderr, "iterations": t.probes, "samples": samples})
    return rows


def _check_classifier(spec, options):
    """Refuse a model without one score per class (U-Net), from a forward pass on the meta device."""
    from netprobe.zoo.loading import load_model

    model = load_model(spec.name, {k: v for k, v in options.items() if k != "plain"}).model
    with torch.no_grad():
        out = tuple(model(torch.empty(2, *spec.input_size, device="meta")).shape)
    if out != (2, spec.num_classes):
        raise NetprobeError(f"{spec.name} is not a classifier (its output is {out}): the Hessian is of the "
                            "cross-entropy loss")


def _check(spec, variants, weights, options, samples, top, iters, tol, probes, batch_size, train_epochs):
    check_variants(spec, variants, weights, options, "the Hessian is of the cross-entropy loss")
    for label, value, least in (("samples", samples, 1), ("top", top, 1), ("iters", iters, 1),
                                ("probes", probes, 0), ("batch_size", batch_size, 1),
                                ("train_epochs", train_epochs, 0)):
        if value < least:
            raise NetprobeError(f"{label} must be >= {least}, got {value}")
    if not 0 < tol < 1:
        raise NetprobeError(f"tol must be between 0 and 1, got {tol}")
