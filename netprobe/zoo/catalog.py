"""The zoo as a table: one row per registered architecture, parameters counted on the meta device."""

from __future__ import annotations

import torch

from netprobe.zoo import list_models, load, model_spec


def count_params_meta(name: str, **options) -> int:
    """Parameter count of a zoo model, built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        model = load(name, **options)
    return sum(p.numel() for p in model.parameters())


def catalog(pattern: str | None = None, family: str | None = None):
    """DataFrame of registered models: name, family, input (C,H,W), classes, params, plain, description."""
    import pandas as pd

    rows = []
    for name in list_models(pattern, family):
        spec = model_spec(name)
        rows.append({
            "name": name,
            "family": spec.family,
            "input": "x".join(str(d) for d in spec.input_size),
            "classes": spec.num_classes,
            "params": count_params_meta(name),
            "plain": spec.plain,
            "description": spec.description,
        })
    columns = ["name", "family", "input", "classes", "params", "plain", "description"]
    return pd.DataFrame(rows, columns=columns).astype({"classes": "Int64"})
