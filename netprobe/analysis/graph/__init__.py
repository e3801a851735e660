"""The architecture drawn from data: `graph` gives a model's dataflow (nodes and edges as DataFrames) from the
same meta-device trace the summary uses; `collapse_repeats` draws n identical consecutive blocks once.
Drawing is in `netprobe.render.graph_draw` and `netprobe.render.graph_text`."""

from netprobe.analysis.graph.dataflow import ArchGraph, from_trace, graph
from netprobe.analysis.graph.repeats import collapse_repeats

__all__ = ["ArchGraph", "collapse_repeats", "from_trace", "graph"]
