"""`netprobe train`: train a zoo model with its family's recipe (train/recipes.py), shortened; resumable."""

import click

from netprobe.cli.data_options import data_option
from netprobe.cli.options import (check_files, check_twin, device_option, merge_options, model_argument,
                                  model_inputs, model_options, plain_option, preact_option, resolve_model, seed_option,
                                  threads_option)

# Defaults: a few CPU minutes for resnet20 on the embedded synthetic set (5,000 images): measured 2 min 55 s
# and test accuracy 0.996 (README). Batch 128 is He et al.'s CIFAR setting (Sec. 4.2); the rest is per family.
EPOCHS = 6
BATCH_SIZE = 128


def _lr_callback(ctx, param, value):
    import math

    if value is None:
        return None
    if not (value > 0 and math.isfinite(value)):
        raise click.BadParameter(f"the learning rate must be positive, got {value}", param_hint="--lr")
    return value


@click.command("train")
@model_argument
@model_inputs
@plain_option
@preact_option
@data_option
@click.option("--epochs", type=click.IntRange(min=1), default=EPOCHS, show_default=True, help="Passes over the data.")
@click.option("--batch-size", type=click.IntRange(min=1), default=BATCH_SIZE, show_default=True,
              help="Samples per SGD step.")
@click.option("--lr", type=float, default=None, callback=_lr_callback,
              help="Initial learning rate (divided by 10 at 50% and again at 75% of the steps) [default: the "
                   "family's recipe: 0.1 for ResNets (He et al.), 0.01 for VGG/AlexNet, Adam 3e-3 for LeNet].")
@click.option("--augment", is_flag=True,
              help="He et al.'s augmentation: pad 4 pixels, random crop back to size, random horizontal flip.")
@seed_option
@device_option
@click.option("--amp", is_flag=True, help="bf16 autocast of the forward pass and loss (--device cuda only; off by "
                                          "default: it changes the losses, accuracies and trained weights).")
@click.option("--resume", is_flag=True,
              help="Continue from the checkpoint at -o (it must come from the same settings); start afresh if "
                   "there is none.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, metavar="CKPT",
              help="Checkpoint to write after every epoch (atomically); the metrics go to CKPT with suffix .csv.")
@threads_option
def train_cmd(model, kwargs, input_size, plain, preact, data_spec, epochs, batch_size, lr, augment, seed, device, amp,
              resume, progress, output):
    """Train MODEL with its family's recipe and He et al.'s step schedule.

    MODEL is a zoo name (see `netprobe list`), path/to/file.py:Name or package.module:Name (a class or a
    factory, called with the --kwargs given; give its --input-size; trained with He et al.'s recipe).

    \b
    Recipes: SGD momentum 0.9, weight decay 1e-4, lr 0.1 (He et al. 2016) for
    ResNets, DenseNets, GoogLeNet; lr 0.01, weight decay 5e-4 for VGG and
    AlexNet (their papers); Adam lr 3e-3 for LeNet-5 (its paper's initialisation
    starves plain SGD). A batch larger than the data set is clamped to it.
    The learning rate drops 10x at 50% and at 75% of all steps (He et al. 2016,
    32k and 48k of 64k iterations, applied to however many epochs are asked).
    After every epoch the checkpoint CKPT is replaced atomically: the state dict
    plus meta (model, options, data, seed, epoch, settings, metrics, and the
    optimizer and RNG states --resume needs). It loads with
    torch.load(CKPT, weights_only=True) and with --weights in gradients,
    landscape, lesion, hessian and rf --effective. Without --resume an existing CKPT is replaced
    when the first epoch ends. The per-epoch metrics (epoch, train_loss,
    train_acc, test_loss, test_acc; accuracies as fractions) go to CKPT with
    suffix .csv when training ends.
    """
    from netprobe.errors import NetprobeError
    from netprobe.files import check_writable

    ckpt = check_writable(output)  # first: an empty name or a device must fail before with_suffix sees it
    metrics = ckpt.with_suffix(".csv")
    if metrics == ckpt:
        raise click.BadParameter("the checkpoint must not end in .csv (the metrics go there)", param_hint="-o")
    check_files([("-o", ckpt), ("the metrics", metrics)], [model])
    if metrics.exists() and not _is_metrics(metrics):
        raise NetprobeError(f"{metrics} exists and holds no netprobe training metrics: the metrics of -o {output} "
                            "would replace it (move it, or name the checkpoint otherwise)")
    from netprobe.analysis.twins import check_scores

    spec, options = resolve_model(model, kwargs, input_size)
    if plain:
        check_twin(spec, "--plain")
    if preact and not spec.preact:
        raise NetprobeError(f"{model} ({spec.family}) has no pre-activation variant")
    flags = model_options(plain, preact)
    options = merge_options(options, {key: (f"--{key}", value) for key, value in flags.items()})
    check_scores(spec, options, "training")
    if resume and ckpt.exists():
        from netprobe.train.checkpoint import load_checkpoint

        load_checkpoint(ckpt)  # an unreadable checkpoint is refused before the data is loaded
    history = _run(spec, options, data_spec, epochs, batch_size, lr, seed, resume,
                   progress, ckpt, metrics, augment, device, amp)
    last = history.iloc[-1]
    click.echo(f"{model}: test accuracy {last.test_acc:.4f} (loss {last.test_loss:.4f}), train accuracy "
               f"{last.train_acc:.4f} after {int(last.epoch)} epochs on {data_spec}; wrote {ckpt} and {metrics}")


def _is_metrics(path) -> bool:
    """Whether `path` starts with the header of the metrics CSV that `train` writes."""
    from netprobe.train.loop import METRICS

    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().rstrip("\r\n") == ",".join(METRICS)
    except (OSError, UnicodeDecodeError):
        return False


def _run(spec, options, data_spec, epochs, batch_size, lr, seed, resume, progress, ckpt, metrics, augment=False,
         device="cpu", amp=False):
    """Build the model from `seed`, train it, write the metrics CSV; the metrics as a DataFrame."""
    from netprobe.analysis.twins import build, fit_classes
    from netprobe.data import load_data
    from netprobe.files import write_atomic
    from netprobe.render.tables import to_csv
    from netprobe.train import fit
    from netprobe.train.recipes import recipe

    dataset = load_data(data_spec, input_size=spec.input_size, seed=seed)
    if batch_size > len(dataset.train):
        click.echo(f"note: {data_spec} has {len(dataset.train)} training samples; batch size {batch_size} "
                   f"clamped to {len(dataset.train)}", err=True)
    plan = recipe(spec.family)
    options = fit_classes(spec, options, dataset, data_spec)
    model = build(spec, options, seed)  # the initial weights depend on the seed only
    try:
        history = fit(model, dataset, epochs=epochs, batch_size=batch_size, lr=plan.lr if lr is None else lr,
                      momentum=plan.momentum, weight_decay=plan.weight_decay, optimizer=plan.optimizer, seed=seed,
                      checkpoint=ckpt, resume=resume, progress=progress, augment=augment,
                      meta={"model": spec.name, "options": options}, device=device, amp=amp)
    except KeyboardInterrupt:
        # The checkpoint of the last finished epoch is intact (each one replaces the previous atomically).
        raise click.ClickException(f"interrupted; {ckpt} holds the last finished epoch: rerun with --resume "
                                   "to continue") from None
    write_atomic(metrics, to_csv(history))
    return history
