"""The training columns `summary --training` adds to a summary's rows, from one traced training step."""

from __future__ import annotations

from netprobe.analysis.memory.cost import Settings, training_cost

TRAINING_COLUMNS = ["backward_flops", "saved_bytes", "grad_bytes", "optimizer_bytes"]


def _row_of(name: str, rows: list[str]) -> str | None:
    """The summary row a module's figures fold into: itself or its nearest listed ancestor."""
    while True:
        if name in rows:
            return name
        if not name:
            return None
        name = name.rpartition(".")[0]


def with_training(summary, model, input_size, settings: Settings = Settings()):
    """`summary` with TRAINING_COLUMNS added to its layers (each module's figures in its row or its nearest
    listed ancestor's; the loss belongs to no layer) and the step's totals in `layers.attrs['training']`."""
    cost = training_cost(model, input_size, settings, name=summary.model)
    layers = summary.layers
    rows = list(layers["name"])
    sums = {name: dict.fromkeys(TRAINING_COLUMNS, 0) for name in rows}
    for record in cost.layers.to_dict(orient="records"):
        target = _row_of(record["name"], rows) if record["name"] != "(loss)" else None
        if target is not None:
            for column in TRAINING_COLUMNS:
                sums[target][column] += record[column]
    for column in TRAINING_COLUMNS:
        # a module called twice has one row per call in the summary; its figures go to the first
        seen: set[str] = set()
        layers[column] = [0 if (n in seen or seen.add(n)) else sums[n][column] for n in rows]
    layers.attrs["training"] = cost.totals.as_dict()
    return summary
