"""The shared formats for plain row dicts, without pandas: the bytes `tables.render` writes for their DataFrame.

`netprobe list` renders through this so that it answers without importing pandas (about a second on a small machine).
"""

from __future__ import annotations

import csv
import io
import json

from netprobe.render.tables import Format, human


def _cell(value, humanized: bool) -> str:
    if value is None:
        return "<NA>"  # pandas' missing-value mark
    return human(value) if humanized else str(value)


def _cells(rows, columns, humanize) -> list[list[str]]:
    return [[_cell(row[c], c in humanize) for c in columns] for row in rows]


def to_text_table(rows, columns, humanize=()) -> str:
    """Right-aligned columns separated by one space, a header line first (pandas' to_string without the index)."""
    lines = [list(columns), *_cells(rows, columns, humanize)]
    # pandas keeps one more space in front of numeric and boolean columns (a sign's place)
    signed = [c not in humanize and any(not isinstance(row[c], str) for row in rows) for c in columns]
    widths = [max(len(line[i]) for line in lines) + signed[i] for i in range(len(columns))]
    return "\n".join(" ".join(v.rjust(w) for v, w in zip(line, widths)) for line in lines)


def to_csv(rows, columns) -> str:
    """CSV with exact values, '\\n' line ends, missing values empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if row[c] is None else row[c] for c in columns] for row in rows])
    return out.getvalue()


def to_markdown(rows, columns, humanize=()) -> str:
    """A GitHub markdown table."""
    lines = [" | ".join(columns), " | ".join("---" for _ in columns),
             *(" | ".join(line) for line in _cells(rows, columns, humanize))]
    return "\n".join(f"| {line} |" for line in lines) + "\n"


def render_rows(rows: list[dict], columns, fmt: Format | str, humanize=()) -> str:
    """Render row dicts (keys `columns`) in one of the shared formats."""
    fmt = Format(fmt)
    if fmt is Format.csv:
        return to_csv(rows, columns)
    if fmt is Format.json:
        return json.dumps([{c: row[c] for c in columns} for row in rows], indent=2) + "\n"
    if fmt is Format.markdown:
        return to_markdown(rows, columns, humanize)
    return to_text_table(rows, columns, humanize) + "\n"
