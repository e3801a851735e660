"""The report's sections, each declared once beside its step: its [section] settings with their bounds and
defaults, the sections whose results it reads, its long part started before the others, whether it compares a zoo
model with its plain twin, and where it runs. The configuration's tables and the run plan are built from these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Declared:
    """One section: its step `step(entries, config, **kw) -> Section`, run position and declarations."""

    name: str
    step: Callable
    order: int  # run position among the sections (the summaries and design arithmetic come first)
    settings: dict = field(default_factory=dict)  # key -> (type, minimum, maximum, default)
    needs: tuple = ()  # sections whose files (in the run's work folder) it reads
    early: Callable | None = None  # (entries, config, work) -> something with result() and cancel()
    twins: bool = False  # compares a zoo model with its plain twin
    own_input: bool = False  # evaluates data at the model's own input size (an entry's input_size is refused)

    def defaults(self) -> dict:
        """The settings' defaults."""
        return {key: spec[3] for key, spec in self.settings.items()}


_SECTIONS: dict[str, Declared] = {}


def section(name: str, *, order: int, settings: dict | None = None, needs: tuple = (), early=None,
            twins: bool = False, own_input: bool = False):
    """Decorator declaring the step it decorates as report section `name`; a second declaration is refused."""

    def declare(step):
        if name in _SECTIONS:
            raise ValueError(f"report section {name!r} is already declared")
        _SECTIONS[name] = Declared(name, step, order, dict(settings or {}), tuple(needs), early, twins, own_input)
        return step

    return declare


def sections() -> list[Declared]:
    """Every declared section in run order: importing `steps` and every `*_step` module declares them."""
    import importlib
    import pkgutil
    from pathlib import Path

    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name == "steps" or info.name.endswith("_step"):
            importlib.import_module(f"{__package__}.{info.name}")
    ordered = sorted(_SECTIONS.values(), key=lambda s: s.order)
    for declared in ordered:
        for need in declared.needs:
            if need not in _SECTIONS or _SECTIONS[need].order >= declared.order:
                raise ValueError(f"report section {declared.name!r} needs {need!r}, which must be declared to run "
                                 "before it")
    return ordered


def needed() -> set[str]:
    """The sections another section reads from."""
    return {name for s in sections() for name in s.needs}
