"""`netprobe landscape`: loss-surface slices of a model, plain vs residual, resumable and torchrun-sharded."""

import re

import click

from netprobe.cli.data_options import data_option
from netprobe.cli.options import model_argument, plain_option, seed_option

TRAIN_BATCH = 128  # SGD settings of the brief training before a slice (He et al.'s CIFAR batch and learning rate)
TRAIN_LR = 0.1
RADIUS = 0.5  # roughness: the loss range within this distance of the trained weights


def _range_callback(ctx, param, value):
    match = re.fullmatch(r"\s*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*:\s*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*", value)
    if not match:
        raise click.BadParameter(f"expected START:END like -1:1, got {value!r}", param_hint="--range")
    start, stop = float(match.group(1)), float(match.group(2))
    if not start < stop:
        raise click.BadParameter(f"START must be below END, got {value!r}", param_hint="--range")
    return start, stop


@click.command("landscape")
@model_argument
@plain_option
@click.option("--compare", is_flag=True, help="The residual model and its plain twin, side by side.")
@click.option("--weights", multiple=True, type=click.Path(dir_okay=False), metavar="CKPT",
              help="Slice at these weights (with --compare: give it twice, residual then plain).")
@click.option("--train-epochs", type=click.IntRange(min=0), default=3, show_default=True,
              help="Without --weights: train this many epochs first (0: slice at initialisation).")
@click.option("--dim", type=click.IntRange(1, 2), default=2, show_default=True, help="1-D curve or 2-D surface.")
@click.option("--steps", type=click.IntRange(min=2), default=11, show_default=True,
              help="Points per axis (steps x steps for --dim 2).")
@click.option("--range", "span", default="-1:1", show_default=True, callback=_range_callback, metavar="A:B",
              help="Span of each axis in filter-normalised units (for --between: of alpha).")
@data_option
@click.option("--samples", type=click.IntRange(min=1), default=256, show_default=True,
              help="Training samples each point is evaluated on (a fixed seeded subset).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Evaluation batch size [default: 64 on cpu, 512 on cuda].")
@seed_option
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--include-bn", is_flag=True, help="Perturb biases and BatchNorm scales/shifts too.")
@click.option("--between", nargs=2, type=click.Path(dir_okay=False), default=None, metavar="A.pt B.pt",
              help="1-D: interpolate (1 - alpha) A + alpha B between two checkpoints (Goodfellow et al. 2015).")
@click.option("--resume", is_flag=True, help="Keep the points already computed in DIR; compute the rest.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
@click.option("-o", "--output", "directory", type=click.Path(file_okay=False), required=True, metavar="DIR",
              help="Directory for surface.csv, summary.csv, the directions and the plots (created if missing).")
def landscape_cmd(model, plain, compare, weights, train_epochs, dim, steps, span, data_spec, samples, batch_size,
                  seed, device, include_bn, between, resume, progress, directory):
    """Loss and accuracy of MODEL around its weights: w + a d1 + b d2 over a grid (Li et al. 2018).

    \b
    d1, d2: Gaussian directions (from --seed), each output filter scaled to the
    norm of the same filter of the weights; biases and BatchNorm parameters stay
    fixed unless --include-bn. BatchNorm uses its running statistics. Each point:
    mean cross-entropy and accuracy over --samples training samples.
    Without --weights, the model trains --train-epochs epochs (SGD, batch 128,
    lr 0.1, cosine) and its BatchNorm statistics are re-estimated; with
    --train-epochs 0 the slice is at initialisation.
    Writes DIR/surface.csv, summary.csv (roughness per surface), directions*.pt,
    and contour.png + surface3d.png (--dim 2) or curves.png (--dim 1).
    Under torchrun --nproc-per-node N the points are shared across the ranks.
    """
    from netprobe.errors import NetprobeError
    from netprobe.zoo import model_spec

    if plain and compare:
        raise click.UsageError("--plain and --compare exclude each other (--compare slices both)")
    if between and (dim != 1 or compare or weights):
        raise click.UsageError("--between is a 1-D slice of one model: use it with --dim 1, without --compare "
                               "and --weights")
    if weights and len(weights) != (2 if compare else 1):
        raise click.UsageError("--weights takes one checkpoint, or two with --compare (residual, plain)")
    spec = model_spec(model)
    if (plain or compare) and not spec.plain:
        raise NetprobeError(f"{model} ({spec.family}) has no shortcuts to remove: --plain and --compare apply to "
                            "residual families")
    if spec.num_classes is None:
        raise NetprobeError(f"{model} is not a classifier: the landscape needs a cross-entropy loss")
    _run(spec, variants=("residual", "plain") if compare else ("plain",) if plain else ("residual",),
         weights=list(weights), train_epochs=train_epochs, dim=dim, steps=steps, span=span, data_spec=data_spec,
         samples=samples, batch_size=batch_size, seed=seed, device=device, include_bn=include_bn,
         between=between, resume=resume, progress=progress, directory=directory)


def _run(spec, *, variants, weights, train_epochs, dim, steps, span, data_spec, samples, batch_size, seed, device,
         include_bn, between, resume, progress, directory):
    import os
    from pathlib import Path

    import torch.distributed as dist

    from netprobe.errors import NetprobeError

    out = Path(directory)
    try:
        out.mkdir(exist_ok=True)
    except OSError as exc:
        raise NetprobeError(f"cannot create {out}: {exc.strerror}") from None
    from netprobe.render.files import check_writable

    check_writable(out / "surface.csv")
    dev = _device(device)
    started = False
    # torchrun sets WORLD_SIZE; one group per run, gloo on the CPU and nccl on CUDA.
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        started = True
    try:
        settings = dict(model=spec.name, variants=list(variants), weights=weights, train_epochs=train_epochs,
                        dim=dim, steps=steps, range=list(span), data=data_spec, samples=samples,
                        batch_size=batch_size or (512 if dev.type == "cuda" else 64), seed=seed, device=device,
                        include_bn=include_bn, between=list(between or []))
        _settings(out, settings, resume)
        try:
            _slices(spec, out, dev, settings, resume, progress)
        except OSError as exc:
            raise NetprobeError(f"cannot write in {out}: {exc.strerror or exc}; the points computed so far are "
                                "kept there, rerun with --resume") from None
    finally:
        if started:
            dist.destroy_process_group()


def _device(name):
    import os

    import torch

    from netprobe.errors import NetprobeError

    if name == "cuda":
        if not torch.cuda.is_available():
            raise NetprobeError("--device cuda: no CUDA device is available")
        index = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")


SETTINGS = ".landscape-settings.json"


def _settings(out, settings, resume):
    """Record the run's settings; with --resume, refuse a directory holding a run with other settings."""
    import json

    from netprobe.analysis.landscape import world
    from netprobe.errors import NetprobeError
    from netprobe.render.files import write_atomic

    path = out / SETTINGS
    if resume and path.exists():
        before = json.loads(path.read_text(encoding="utf-8"))
        changed = [k for k in settings if before.get(k) != settings[k]]
        if changed:
            k = changed[0]
            raise NetprobeError(f"--resume: {out} holds a run with {k}={before.get(k)!r}, this one has "
                                f"{k}={settings[k]!r} (use another DIR or drop --resume)")
    _barrier()  # every rank has read the old settings before rank 0 replaces them
    if world()[0] == 0:
        write_atomic(path, json.dumps(settings, indent=1, sort_keys=True) + "\n")


def _build(spec, variant, options, seed):
    import torch

    from netprobe.zoo import load

    if spec.plain:
        options = {**options, "plain": variant == "plain"}
    # The twins start from the same seed, so they share their initial weights.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return load(spec.name, **options), options


def _barrier():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _prepare(spec, variant, k, out, dataset, options, s, resume, progress):
    """The model of `variant` at the state to slice, and the words for that state."""
    from netprobe.analysis.landscape import world
    from netprobe.train import fit, load_weights, recalibrate_bn

    model, options = _build(spec, variant, options, s["seed"])
    if s["weights"]:
        load_weights(model, s["weights"][k])
        return model, f"at {s['weights'][k]}"
    if s["train_epochs"] == 0:
        return model, "at initialisation"
    checkpoint = out / f"train-{variant}.pt"
    # Rank 0 trains (or, with --resume, continues from its checkpoint); the others load its result.
    if world()[0] == 0:
        fit(model, dataset, epochs=s["train_epochs"], batch_size=TRAIN_BATCH, lr=TRAIN_LR, seed=s["seed"],
            checkpoint=checkpoint, resume=resume, progress=progress,
            meta={"model": spec.name, "options": options})
    _barrier()
    if world()[0] != 0:
        load_weights(model, checkpoint)
    # The running statistics of training lag the final weights; re-estimate them on the final weights.
    recalibrate_bn(model, dataset.train.x, 256)
    epochs = s["train_epochs"]
    return model, f"after {epochs} epoch{'s' * (epochs != 1)} on {dataset.spec} (BN statistics re-estimated)"


def _between(spec, model_options, s):
    from netprobe.errors import NetprobeError
    from netprobe.train.checkpoint import describe, load_checkpoint, mismatch

    model, _ = _build(spec, s["variants"][0], model_options, s["seed"])
    states = []
    for path in s["between"]:
        state, meta = load_checkpoint(path)
        problem = mismatch(model, state)
        if problem is not None:
            raise NetprobeError(f"--between: {path} does not fit {spec.name} ({s['variants'][0]}): {problem} "
                                f"(it was trained for {describe(meta)})")
        states.append(state)
    model.load_state_dict(states[0])
    return model, states


def _slices(spec, out, dev, s, resume, progress):
    import click
    import torch

    from netprobe.analysis import landscape as ls
    from netprobe.analysis.directions import directions_bytes, random_directions
    from netprobe.data import load_data
    from netprobe.errors import NetprobeError
    from netprobe.render.files import write_atomic

    rank = ls.world()[0]
    dataset = load_data(s["data"], input_size=spec.input_size, seed=s["seed"])
    if s["samples"] > len(dataset.train):
        raise NetprobeError(f"--samples {s['samples']}: the data has {len(dataset.train)} training samples")
    order = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(s["seed"]))[:s["samples"]]
    x, y = dataset.train.x[order], dataset.train.y[order]
    options = {}
    if dataset.num_classes != spec.num_classes and "num_classes" in spec.options():
        options["num_classes"] = dataset.num_classes

    xs = ls.axis(*s["range"], s["steps"])
    ys = ls.axis(*s["range"], s["steps"]) if s["dim"] == 2 else None
    coords = ls.grid(xs, ys)
    surfaces = []
    for k, variant in enumerate(s["variants"]):
        name = f"surface-{variant}"
        if s["between"]:
            model, states = _between(spec, options, s)
            state = f"between {s['between'][0]} (0) and {s['between'][1]} (1)"
        else:
            model, state = _prepare(spec, variant, k, out, dataset, options, s, resume, progress)
            directions = random_directions(model, s["dim"], seed=s["seed"], include_bn=s["include_bn"])
            if rank == 0:
                file = out / ("directions.pt" if len(s["variants"]) == 1 else f"directions-{variant}.pt")
                write_atomic(file, directions_bytes(directions, {
                    "model": spec.name, "variant": variant, "seed": s["seed"], "include_bn": s["include_bn"],
                    "state": state}))
        model.to(dev)
        done, log = ls.open_log(out, name, coords, resume=resume)
        common = dict(batch_size=s["batch_size"], progress=progress and rank == 0, done=done, on_point=log.append,
                      desc=f"{spec.name} {variant}")
        try:
            if s["between"]:
                table = ls.interpolate(model, states[0], states[1], xs, x, y, **common)
            else:
                table = ls.surface(model, x, y, directions, xs, ys, **common)
        finally:
            log.close()
        if rank == 0:
            click.echo(f"{spec.name} {variant} {state}: {len(coords) - len(done)} points computed, "
                       f"{len(done)} resumed", err=True)
        surfaces.append((variant, state, table))
    if rank == 0:
        _write(spec, out, s, surfaces)
        for variant in s["variants"]:
            ls.clear_logs(out, f"surface-{variant}")
    _barrier()


def _write(spec, out, s, surfaces):
    """Render every output first, then write them atomically; the summary goes to stdout."""
    import click
    import pandas as pd

    from netprobe.analysis.landscape import surface_csv
    from netprobe.analysis.roughness import roughness
    from netprobe.render import landscape_plots as plots
    from netprobe.render.files import write_atomic
    from netprobe.render.tables import render

    several = len(surfaces) > 1
    frames, rows = [], []
    for variant, state, table in surfaces:
        frames.append(table.assign(variant=variant)[["variant", *table.columns]] if several else table)
        rows.append({"model": spec.name, "variant": variant, "state": state, **roughness(table, RADIUS)})
    summary = pd.DataFrame(rows)
    states = sorted({state for _, state, _ in surfaces})
    grid = f"{s['steps']}x{s['steps']}" if s["dim"] == 2 else f"{s['steps']} points"
    title = (f"{spec.name} {' / '.join(states)}\n{grid}, {s['samples']} samples of {s['data']}, "
             f"seed {s['seed']}")
    labelled = [(variant if several else "", table) for variant, _, table in surfaces]
    files = {"surface.csv": surface_csv(pd.concat(frames, ignore_index=True)), "summary.csv": surface_csv(summary)}
    if s["dim"] == 2:
        files["contour.png"] = plots.plot_contours(labelled, title)["png"]
        files["surface3d.png"] = plots.plot_surfaces_3d(labelled, title)["png"]
    else:
        xlabel = "alpha: (1 - alpha) A + alpha B" if s["between"] else None
        files["curves.png"] = plots.plot_curves(labelled, title, **({"xlabel": xlabel} if xlabel else {}))["png"]
    for name, data in files.items():
        write_atomic(out / name, data)
        click.echo(f"wrote {out / name}", err=True)
    click.echo(render(summary, "table"), nl=False)
