"""The model zoo: one module per architecture family, each registering its builders by name.

The families (and torch) are imported on the registry's first use, so `netprobe list` reads the catalog without them.
"""

from netprobe.zoo.registry import ModelSpec, families, list_models, load, model_spec, register_model

__all__ = ["ModelSpec", "families", "list_models", "load", "model_spec", "register_model"]
