"""`netprobe hessian`: top eigenvalues and trace of the training-loss Hessian, plain vs residual."""

import click

from netprobe.cli.options import model_argument, output_option, plain_option, seed_option


@click.command("hessian")
@model_argument
@plain_option
@click.option("--compare", is_flag=True, help="The residual model and its plain twin.")
@click.option("--weights", multiple=True, type=click.Path(dir_okay=False), metavar="CKPT",
              help="A checkpoint of `netprobe train` or the depth study (with --compare: twice, residual then "
                   "plain).")
@click.option("--train-epochs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Without --weights: train this many epochs first (SGD, batch 128, lr 0.1); 0: at initialisation.")
@click.option("--data", "data_spec", default=None, metavar="SPEC",
              help="Data set: synthetic, cifar10:PATH, cifar100:PATH or folder:PATH [default: the checkpoint's "
                   "data, else synthetic].")
@click.option("--samples", type=click.IntRange(min=1), default=256, show_default=True,
              help="Training samples the loss is averaged over, a fixed seeded subset (PyHessian advises 4096).")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True,
              help="Samples per double-backward pass (memory only: the result does not depend on it).")
@click.option("--top", type=click.IntRange(min=1), default=1, show_default=True, metavar="K",
              help="Eigenvalues of largest magnitude, by power iteration with deflation.")
@click.option("--iters", type=click.IntRange(min=1), default=100, show_default=True,
              help="At most this many Hessian-vector products per eigenvalue.")
@click.option("--tol", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=1e-3,
              show_default=True, help="Stop an eigenvalue when it changes by less than this, relatively.")
@click.option("--probes", type=click.IntRange(min=0), default=20, show_default=True,
              help="Rademacher probes of Hutchinson's trace estimate (0: no trace).")
@seed_option
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
@output_option
def hessian_cmd(model, plain, compare, weights, train_epochs, data_spec, samples, batch_size, top, iters, tol,
                probes, seed, progress, output):
    """Top eigenvalues and trace of the Hessian of MODEL's training loss (PyHessian, Yao et al. 2020).

    \b
    The loss is the mean cross-entropy over --samples training samples, with
    BatchNorm in eval mode (running statistics), so it is a fixed function of
    the weights. Eigenvalues: power iteration on Hessian-vector products
    (double backward), each iterate orthogonalised against those found; rows
    report the products used. Trace: Hutchinson's estimator, mean of z'Hz over
    Rademacher probes z, with its standard error. A table goes to stdout;
    -o writes the CSV (variant, scope, quantity, value, stderr, iterations,
    samples). Same seed, same numbers.
    """
    if plain and compare:
        raise click.UsageError("--plain and --compare exclude each other (--compare measures both)")
    if weights and len(weights) != (2 if compare else 1):
        raise click.UsageError("--weights takes one checkpoint, or two with --compare (residual, plain)")
    if weights and train_epochs:
        raise click.UsageError("--train-epochs trains a fresh model: drop it with --weights")
    from netprobe.analysis.hessian.study import ADVISED_SAMPLES, study
    from netprobe.files import check_writable, write_atomic
    from netprobe.render.tables import render, to_csv

    if output is not None:
        check_writable(output)
    variants = ("residual", "plain") if compare else ("plain",) if plain else ("residual",)
    table = study(model, variants=variants, weights=weights, train_epochs=train_epochs, data=data_spec,
                  samples=samples, batch_size=batch_size, top=top, iters=iters, tol=tol, probes=probes, seed=seed,
                  progress=progress)
    if output is not None:
        write_atomic(output, to_csv(table))
        click.echo(f"wrote {output}", err=True)
    click.echo(render(table, "table"), nl=False)
    if samples < ADVISED_SAMPLES:
        click.echo(f"note: {samples} samples; below {ADVISED_SAMPLES} the figures may vary with the subset "
                   "(--samples, --seed)", err=True)
