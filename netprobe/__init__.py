"""netprobe: see why CNN architectures behave as they do."""

import importlib

__version__ = "0.1.0"
MAX_SEED = 2**63 - 1  # seeds travel as int64 (torch's generators, tensors, numpy): larger ones overflow

# Public names resolve lazily so that `netprobe --help` never pays for importing torch.
_LAZY = {
    "NetprobeError": "netprobe.errors",
    "graph": "netprobe.analysis.graph",
    "UnknownModelError": "netprobe.errors",
    "count": "netprobe.analysis.counting.workload",
    "list_models": "netprobe.zoo",
    "load": "netprobe.zoo",
    "model_spec": "netprobe.zoo",
    "register_model": "netprobe.zoo",
    "summary": "netprobe.analysis.counting.summary",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'netprobe' has no attribute {name!r}")
