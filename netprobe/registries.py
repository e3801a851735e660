"""The one way operator tables are filled: counting formulas, receptive-field rules, fast meta outputs, Taylor
rules."""

from __future__ import annotations


def registrar(table: dict, what: str):
    """A decorator factory `register(*keys)` that files the decorated function under each key in `table`; a
    second registration of a key is refused (every key is checked first, so a refused one leaves the table as it
    was)."""

    def register(*keys):
        def add(fn):
            for i, key in enumerate(keys):
                if key in table or key in keys[:i]:
                    raise ValueError(f"duplicate {what} for {key}")
            table.update(dict.fromkeys(keys, fn))
            return fn

        return add

    return register
