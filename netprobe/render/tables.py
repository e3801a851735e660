"""Text renderings of DataFrames: aligned human tables, CSV, JSON records and markdown."""

from __future__ import annotations

import enum
import json


class Format(str, enum.Enum):
    """Output formats every tabular command shares."""

    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


_UNITS = ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K"))


def human(n) -> str:
    """An integer in K/M/G/T units with 2 decimals (1_234_567 -> '1.23M'); small numbers as they are."""
    if n is None:
        return "-"
    n = int(n)
    for scale, unit in _UNITS:
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def to_text_table(df, humanize=()) -> str:
    """An aligned plain-text table; columns in `humanize` are shown in K/M/G units."""
    shown = df.copy()
    for col in humanize:
        if col in shown:
            shown[col] = shown[col].map(human)
    return shown.to_string(index=False)


def to_csv(df) -> str:
    """CSV with exact values, '\\n' line ends and no index (byte-stable across runs)."""
    return df.to_csv(index=False, lineterminator="\n")


def to_json(obj) -> str:
    """Indented JSON with a trailing newline; DataFrames become lists of records."""
    if hasattr(obj, "to_dict"):
        obj = obj.to_dict(orient="records")
    return json.dumps(obj, indent=2, default=_jsonable) + "\n"


def _jsonable(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_markdown(df, humanize=()) -> str:
    """A GitHub markdown table (no tabulate dependency)."""
    shown = df.copy()
    for col in humanize:
        if col in shown:
            shown[col] = shown[col].map(human)
    cols = [str(c) for c in shown.columns]
    rows = [" | ".join(str(v) for v in row) for row in shown.itertuples(index=False)]
    lines = [" | ".join(cols), " | ".join("---" for _ in cols), *rows]
    return "\n".join(f"| {line} |" for line in lines) + "\n"


def render(df, fmt: Format | str, humanize=()) -> str:
    """Render a DataFrame in one of the shared formats."""
    fmt = Format(fmt)
    if fmt is Format.csv:
        return to_csv(df)
    if fmt is Format.json:
        return to_json(df)
    if fmt is Format.markdown:
        return to_markdown(df, humanize)
    return to_text_table(df, humanize) + "\n"
