"""The model zoo: one module per architecture family, each registering its builders by name."""

import importlib
import pkgutil

from netprobe.zoo.registry import ModelSpec, families, list_models, load, model_spec, register_model

# Every module in this package except the registry is a family; importing it registers its builders.
for _info in pkgutil.iter_modules(__path__):
    if _info.name != "registry":
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["ModelSpec", "families", "list_models", "load", "model_spec", "register_model"]
