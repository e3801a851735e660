"""Model registry: builders register by name (like timm's `register_model`) and are built by `load`."""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from netprobe.errors import NetprobeError, UnknownModelError


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one architecture without building it."""

    name: str
    family: str
    builder: Callable
    input_size: tuple[int, int, int]  # (C, H, W) at the default input
    num_classes: int | None  # None for dense-prediction models (U-Net) and single blocks
    description: str
    plain: bool = False  # builder takes plain=True (shortcuts removed)
    preact: bool = False  # builder takes preact=True
    bound: tuple = ()  # (key, value) pairs bound into a user model's builder (its --kwargs), recorded by resumes

    def options(self) -> list[str]:
        """Keyword options the builder accepts."""
        return [p.name for p in inspect.signature(self.builder).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY]

    def build(self, **options):
        """The model built with keyword `options` (plain=, num_classes=, in_channels=, ...); unknown ones refused."""
        accepted = self.options()
        for key in options:
            if key not in accepted:
                raise NetprobeError(f"{self.name} does not take option {key!r} (it takes: "
                                    f"{', '.join(accepted) or 'none'})")
        return self.builder(**options)


_REGISTRY: dict[str, ModelSpec] = {}
# Every module of the zoo package is a family except these; importing a family registers its builders.
_NOT_FAMILIES = {"registry", "loading", "catalog"}
_families_imported = False


def _registered() -> dict[str, ModelSpec]:
    """The registry, after importing every family module (on first use: `netprobe list` never needs torch)."""
    global _families_imported
    if not _families_imported:
        for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
            if info.name not in _NOT_FAMILIES:
                importlib.import_module(f"{__package__}.{info.name}")
        _families_imported = True
    return _REGISTRY


def register_model(*, family: str, input_size, num_classes, description: str, name: str | None = None):
    """Decorator registering a builder under its function name; duplicate names are refused."""

    def decorate(builder):
        key = name or builder.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} is already registered")
        params = inspect.signature(builder).parameters
        _REGISTRY[key] = ModelSpec(key, family, builder, tuple(input_size), num_classes, description,
                                   plain="plain" in params, preact="preact" in params)
        return builder

    return decorate


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def select(family_of: dict[str, str], pattern: str | None = None, family: str | None = None) -> list[str]:
    """Names (keys of name -> family) matching a glob `pattern` and `family`, in natural order."""
    names = [n for n, f in family_of.items()
             if (pattern is None or fnmatch.fnmatch(n, pattern)) and (family is None or f == family)]
    return sorted(names, key=_natural_key)


def list_models(pattern: str | None = None, family: str | None = None) -> list[str]:
    """Registered names matching a glob `pattern` and `family`, in natural order (resnet18 before resnet101)."""
    return select({n: s.family for n, s in _registered().items()}, pattern, family)


def families() -> list[str]:
    """Names of the registered families, sorted."""
    return sorted({s.family for s in _registered().values()})


def model_spec(name: str) -> ModelSpec:
    """The spec registered under `name`; an unknown name raises with the closest matches."""
    registered = _registered()
    try:
        return registered[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(registered), n=3, cutoff=0.5)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        raise UnknownModelError(f"unknown architecture {name!r}{hint}") from None


def load(name: str, **options):
    """Build the registered model `name` with keyword `options` (plain=, num_classes=, in_channels=, ...)."""
    return model_spec(name).build(**options)
