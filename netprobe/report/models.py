"""The report's models, built once on the meta device from their config entries, and traced once per run."""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

_TRACES: ContextVar[dict | None] = ContextVar("netprobe_report_traces", default=None)


def meta_model(entry):
    """(model built on meta, its input size (C, H, W)) for a report config entry."""
    from netprobe.zoo.loading import load_model

    loaded = load_model(entry.name, {k: v for k, v in entry.options.items() if k not in ("plain", "preact")},
                        plain=bool(entry.options.get("plain")), preact=bool(entry.options.get("preact")))
    return loaded.model, tuple(entry.input_size or loaded.input_size)


@contextmanager
def one_trace_per_model():
    """Within the block (one report run), each entry's model is built and traced once: its summary and its
    receptive fields come from the same trace."""
    token = _TRACES.set({})
    try:
        yield
    finally:
        _TRACES.reset(token)


def traced(entry):
    """(the summary of the entry's model at batch 1 with its receptive-field columns, its input (C, H, W)), from
    the run's one trace of it when inside `one_trace_per_model`."""
    summary, size, _ = _trace(entry)
    return summary, size


def operator_trace(entry):
    """(the meta model, the operator trace `traced` summarised, its input (C, H, W)): the diagrams' source."""
    _, size, (model, tr) = _trace(entry)
    return model, tr, size


def _trace(entry):
    """(summary with fields, input size, (meta model, trace)) of an entry, traced once per report run."""
    from netprobe.analysis.fields.receptive_field import summary_and_trace

    cache, key = _TRACES.get(), (entry.label, entry.input_size)
    if cache is not None and key in cache:
        return cache[key]
    model, size = meta_model(entry)
    summary, tr = summary_and_trace(model, (1, *size), name=entry.label)
    found = (summary, size, (model, tr))
    if cache is not None:
        cache[key] = found
    return found
