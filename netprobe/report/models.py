"""The report's models, built once on the meta device from their config entries."""

from __future__ import annotations


def meta_model(entry):
    """(model built on meta, its input size (C, H, W)) for a report config entry."""
    from netprobe.zoo.loading import load_model

    loaded = load_model(entry.name, {k: v for k, v in entry.options.items() if k not in ("plain", "preact")},
                        plain=bool(entry.options.get("plain")), preact=bool(entry.options.get("preact")))
    return loaded.model, tuple(entry.input_size or loaded.input_size)
