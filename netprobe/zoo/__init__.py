"""The model zoo: one module per architecture family, each registering its builders by name."""

import importlib
import pkgutil

from netprobe.zoo.registry import ModelSpec, families, list_models, load, model_spec, register_model

# Every module in this package is a family, except the registry and the loaders built on the registry;
# importing a family registers its builders.
_NOT_FAMILIES = {"registry", "loading", "catalog"}
for _info in pkgutil.iter_modules(__path__):
    if _info.name not in _NOT_FAMILIES:
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["ModelSpec", "families", "list_models", "load", "model_spec", "register_model"]
