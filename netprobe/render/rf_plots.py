"""Plots of receptive fields: r against depth for several models, and effective-field heatmaps."""

from __future__ import annotations

from netprobe.render.figures import figure_bytes, layer_ticks, new_figure


def _leaves(names) -> dict:
    """name -> True for rows that are not the root or a container of later rows: a container's row sits at its entry
    in execution order but holds its output's field, which would draw a spike."""
    names = list(names)
    prefixes = {n.rsplit(".", i)[0] for n in names for i in range(1, n.count(".") + 1)}
    return {n: bool(n) and n not in prefixes for n in names}


def rf_by_depth(tables: dict, formats=("png",), inputs: dict | None = None) -> dict[str, bytes]:
    """Receptive field r (largest of its axes) against layer, one line per model (log scale); `inputs` gives each
    model's input shape for the legend. One model: its layers named; several: their index, as integers."""
    fig, ax = new_figure(8, 4.5)
    names = []
    for name, table in tables.items():
        spatial = table[table["output_shape"].map(lambda s: s is not None and len(s) > 2)
                        & table["name"].map(_leaves(table["name"]))]
        rf_cols = [c for c in ("rf_d", "rf_h", "rf_w") if c in spatial]
        r = spatial[rf_cols].max(axis=1)
        shape = (inputs or {}).get(name)
        label = f"{name}, input {'x'.join(str(d) for d in shape[-3:])}" if shape else name
        ax.plot(range(len(r)), r.to_numpy(), marker=".", markersize=3, linewidth=1.2, label=label)
        names.append(spatial["name"].tolist())
    if len(names) == 1:
        layer_ticks(ax, names[0])
        ax.set_xlabel("leaf layer (execution order, spatial outputs only)")
    else:
        from matplotlib.ticker import FuncFormatter, MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{int(v) + 1}"))
        ax.set_xlabel("leaf layer of each model (execution order, spatial outputs only, 1 = first)")
    ax.set_yscale("log")
    ax.set_ylabel("receptive field r (input pixels, log scale)")
    ax.set_title("Receptive field against depth")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    return figure_bytes(fig, formats)


def erf_heatmaps(fields, formats=("png",)) -> dict[str, bytes]:
    """One panel per effective field: the normalised mean |input gradient| with the theoretical window drawn and
    a colour bar of the share of the gradient each pixel holds."""
    fig, axes = new_figure(4.8, 4.2, panels=len(fields))
    axes = axes if len(fields) > 1 else [axes]
    for ax, erf in zip(axes, fields):
        heat = erf.heat if erf.heat.ndim == 2 else erf.heat.reshape(1, -1)
        image = ax.imshow(heat, cmap="viridis", interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of mean |d unit / d input|")
        if len(erf.window) == 2:
            from matplotlib.patches import Rectangle

            (top, bottom), (left, right) = erf.window
            ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left + 1, bottom - top + 1, fill=False,
                                   edgecolor="white", linestyle="--", linewidth=1))
        ax.set_title(f"{erf.model}: {erf.layer}\nstd {' x '.join(f'{s:.1f}' for s in erf.std)} px, "
                     f"95% mass in {erf.mass95:.1%} of r", fontsize=9)
        ax.set_xlabel("input column")
        ax.set_ylabel("input row")
    return figure_bytes(fig, formats)
