"""What a report is made of: sections holding tables, plots, prose and key figures."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Table:
    """A table written as `<name>.csv`."""

    name: str
    caption: str
    frame: object  # pandas.DataFrame


@dataclass
class Plot:
    """A plot written as `<name>.png` (and `<name>.svg` when the report asks for SVG)."""

    name: str
    caption: str
    images: dict[str, bytes]


@dataclass
class Diagram:
    """An architecture drawing: Mermaid text for index.md, `<name>.svg` for index.html."""

    name: str
    caption: str
    mermaid: str
    svg: str


@dataclass
class Section:
    """One part of the report: a heading, paragraphs, key figures (for report.json), tables and plots."""

    key: str
    title: str
    text: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)
    highlights: list[tuple[str, str]] = field(default_factory=list)  # (label, value) shown on the page
    tables: list[Table] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    diagrams: list[Diagram] = field(default_factory=list)
