"""The report's lesion section: delete each block of a residual net and of its plain twin (Veit et al. 2016)."""

from __future__ import annotations

from netprobe.report.depth_step import checkpoint_state, depth_checkpoints
from netprobe.report.registry import section
from netprobe.report.sections import Plot, Section, Table

FORMATS = ("png", "svg")


def _pool(entry, options) -> int:
    """How many blocks of the entry's residual net keep the shape (the random sets draw from these; width and
    BatchNorm do not change the count)."""
    import torch

    from netprobe.analysis.lesion.blocks import deletable_blocks
    from netprobe.zoo import model_spec
    from netprobe.zoo.loading import load_model

    spec = model_spec(entry.name)
    model = load_model(entry.name, options).model
    return sum(not b.downsampling for b in deletable_blocks(model, torch.empty(1, *spec.input_size, device="meta")))


@section("lesion", order=40, twins=True, needs=("depth",), own_input=True,
         settings={"samples": (int, 1, 50000, None), "random_sets": (int, 0, 100, 3), "blocks": (int, 1, 10000, None),
                   "train_epochs": (int, 0, 1000, 1)})
def lesion_step(entries, config, work=None) -> Section:
    """Single deletions and random sets of deletions for each entry's residual net and plain twin, at the
    depth study's checkpoints when this report trained them, else after a brief training run."""
    import pandas as pd

    from netprobe.analysis.lesion.study import study
    from netprobe.report.config import ModelEntry

    s = config.settings["lesion"]
    section = Section("lesion", "Lesion: deleting one block, residual against plain", text=[
        "Veit et al. (2016): deleting any single block of a trained ResNet barely changes its test error (except "
        "the downsampling blocks), while deleting any layer of a plain net drops it to chance. Below: each block "
        "deleted in turn, in place and restored after: a residual block keeps its shortcut (the identity, or the "
        "option-A shortcut of a downsampling block, marked by an open ring); a block of the plain twin becomes the "
        "identity (its downsampling blocks cannot be). Test accuracy on a seeded subset of the test split, "
        "BatchNorm in eval mode on the running statistics as trained."
        + (f" Random sets: {s['random_sets']} distinct draw{'s' * (s['random_sets'] != 1)} (every set when fewer "
           f"exist) of k = 1, 2, ... up to "
           f"{s['blocks'] or 'all'} of the blocks that keep the shape, deleted at once (Veit et al.'s Fig. 4)."
           if s["random_sets"] else "")])
    summaries = []
    for entry in entries:
        options = {k: v for k, v in entry.options.items() if k != "plain"}
        twin = ModelEntry(entry.name, options, entry.input_size, entry.analyses)  # labels without plain=
        weights = depth_checkpoints(entry, work)
        pool = _pool(entry, options)
        blocks = min(s["blocks"], pool) if s["blocks"] else pool  # "up to K": a smaller net deletes all it has
        result = study(entry.name, variants=("residual", "plain"), options={} if weights else options,
                       weights=weights or (), train_epochs=0 if weights else s["train_epochs"], samples=s["samples"],
                       seed=config.seed, random_sets=s["random_sets"], max_deleted=blocks if s["random_sets"] else None,
                       device=config.device,
                       # words, not the run's temporary checkpoint paths, so reruns give equal bytes
                       weights_state=checkpoint_state(weights[0]) if weights else None)
        state = result.results[0].state
        summary = result.summary()
        summaries.append(summary.assign(model=twin.label)[["model", *summary.columns]])
        _tables_and_plots(section, twin, result, summary, s["random_sets"])
        rows = {r["variant"]: r for r in summary.to_dict(orient="records")}
        if not weights:  # the dependency is stated, not silently replaced
            section.text.append(f"{twin.label}: the depth section did not train these twins in this report, so "
                                f"they are measured {state}.")
        section.text.append(_words(twin.label, state, result.samples, rows["residual"], rows["plain"]))
        section.text.append(_finding(rows["residual"], rows["plain"]))
        keys = ("intact_accuracy", "median_accuracy", "worst_accuracy", "downsampling_median_accuracy")
        section.figures[twin.label] = {"state": state, "chance": rows["residual"]["chance"],
                                       **{v: {k: _number(r[k]) for k in keys} for v, r in rows.items()}}
        section.highlights += [(f"{twin.label} {v}: median (worst) accuracy after one deletion, intact",
                                f"{r['median_accuracy']:.3f} ({r['worst_accuracy']:.3f}), {r['intact_accuracy']:.3f}")
                               for v, r in rows.items()]
    section.tables.insert(0, Table("lesion_summary", "Median and worst accuracy after one deletion",
                                   pd.concat(summaries, ignore_index=True)))
    return section


def _tables_and_plots(section, twin, result, summary, random_sets) -> None:
    """Add one entry's tables and plots to the section."""
    from netprobe.render import lesion_plots as plots

    title = result.caption()
    section.tables.append(Table(f"lesion_{twin.slug}", f"Accuracy after deleting each block of {twin.label} "
                                "and its plain twin", result.single()))
    section.tables.append(Table(f"lesion_blocks_{twin.slug}", f"Residual ratio and output variance per block "
                                f"of {twin.label}", result.blocks()))
    section.plots.append(Plot(f"lesion_{twin.slug}", f"Test accuracy after deleting each block of {twin.label}, "
                              "residual and plain", plots.plot_single(result.single(), summary, title, FORMATS)))
    section.plots.append(Plot(f"lesion_ratios_{twin.slug}", f"||F(x)|| / ||x|| and output variance per block "
                              f"of {twin.label}", plots.plot_blocks(result.blocks(), title, FORMATS)))
    if random_sets:
        section.tables.append(Table(f"lesion_curve_{twin.slug}", f"Accuracy against blocks deleted at once, "
                                    f"{twin.label}", result.curve()))
        section.plots.append(Plot(f"lesion_sets_{twin.slug}", f"Accuracy against the number of blocks deleted "
                                  f"at once, {twin.label}", plots.plot_curve(result.curve(), summary, title,
                                                                              FORMATS)))


def _number(value):
    """A float rounded to 6 significant digits for report.json; NaN (no such blocks) as None."""
    return None if value != value else float(f"{value:.6g}")


def _words(label: str, state: str, samples: int, residual: dict, plain: dict) -> str:
    """The single-deletion result of one model in a sentence, with the measured numbers."""
    return (f"{label}, measured {state} on {samples} test samples: intact test accuracy {residual['intact_accuracy']:.3f} with shortcuts, "
            f"{plain['intact_accuracy']:.3f} without (chance {residual['chance']:.3f}); after deleting one block "
            f"that keeps the shape, a median of {residual['median_accuracy']:.3f} (worst "
            f"{residual['worst_accuracy']:.3f}) with shortcuts and {plain['median_accuracy']:.3f} (worst "
            f"{plain['worst_accuracy']:.3f}) without; deleting a downsampling block's residual branch leaves a "
            f"median of {residual['downsampling_median_accuracy']:.3f}.")


def _finding(residual: dict, plain: dict) -> str:
    """What the deletions show beside Veit et al.'s finding, or why they show nothing at these weights."""
    from netprobe.report.verdicts import not_learned

    chance = residual["chance"]
    refused = not_learned([("residual", residual["intact_accuracy"]), ("plain", plain["intact_accuracy"])], chance,
                          "Veit et al.'s finding for that twin")
    drop = residual["intact_accuracy"] - residual["median_accuracy"]
    words = []
    if "residual twin" not in (refused or ""):
        share = drop / max(residual["intact_accuracy"] - chance, 1e-9)
        words.append(f"With shortcuts the median deletion costs {drop:.3f} of {residual['intact_accuracy']:.3f} "
                     f"({100 * share:.0f}% of the way to chance): "
                     + ("as Veit et al. find, the blocks behave like an ensemble of paths, each dispensable."
                        if share <= 0.25 else "more than Veit et al. find for a fully trained ResNet."))
    if "plain twin" not in (refused or ""):
        words.append(f"Without shortcuts the median deletion leaves {plain['median_accuracy']:.3f} of "
                     f"{plain['intact_accuracy']:.3f}: "
                     + ("each layer is needed, as Veit et al. find for plain nets."
                        if plain["median_accuracy"] < chance + 0.5 * (plain["intact_accuracy"] - chance)
                        else "less fragile than Veit et al. find for plain nets."))
    return " ".join([*words, *([refused] if refused else [])])
