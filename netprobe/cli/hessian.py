"""`netprobe hessian`: top eigenvalues, trace and density of the training-loss Hessian, plain vs residual."""

import click

from netprobe.cli.data_options import weights_data_option
from netprobe.cli.options import (batch_size_option, compare_option, device_option, model_argument,
                                  model_inputs, output_dir_option, plain_option, progress_option, samples_option,
                                  say_warnings, seed_option, threads_option, train_epochs_option, twin_preamble,
                                  weights_option, write_outputs)


@click.command("hessian")
@model_argument
@model_inputs
@plain_option
@compare_option
@weights_option()
@train_epochs_option(0)
@weights_data_option
@samples_option(256, "Training samples the loss is averaged over, a fixed seeded subset (PyHessian advises 4096).")
@batch_size_option(128, "Samples per double-backward pass (memory only: the result does not depend on it).")
@click.option("--top", type=click.IntRange(min=1), default=1, show_default=True, metavar="K",
              help="Eigenvalues of largest magnitude, by power iteration with deflation.")
@click.option("--iters", type=click.IntRange(min=1), default=100, show_default=True,
              help="At most this many Hessian-vector products per eigenvalue.")
@click.option("--tol", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=1e-3,
              show_default=True, help="Stop an eigenvalue when it changes by less than this, relatively.")
@click.option("--probes", type=click.IntRange(min=0), default=20, show_default=True,
              help="Rademacher probes of Hutchinson's trace estimate (0: no trace).")
@click.option("--per-block", is_flag=True,
              help="The same for each block's diagonal block of the Hessian (and the stem's and the head's).")
@click.option("--density", is_flag=True, help="Eigenvalue density by stochastic Lanczos quadrature (Ghorbani et "
                                              "al. 2019), and the extreme Ritz values.")
@click.option("--lanczos-steps", type=click.IntRange(min=1), default=100, show_default=True,
              help="Hessian-vector products per Lanczos run of --density (PyHessian: 100).")
@click.option("--density-runs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Lanczos runs averaged by --density, each from its own random start (PyHessian: 1).")
@click.option("--keep-graph", is_flag=True,
              help="Build each batch's gradient graph once and reuse it for every product: about 2x faster "
                   "(same numbers), but holds all --samples' graphs in memory (depth-study resnet56, width 8, "
                   "256 samples: 2.2 GB peak). The trace's Taylor mode keeps each batch's forward values.")
@click.option("--operator", type=click.Choice(["hessian", "ggn", "fisher"]), default="hessian", show_default=True,
              help="The matrix: the Hessian, the generalised Gauss-Newton J'H_zJ (positive semi-definite) or the "
                   "empirical Fisher (1/N) sum of per-sample gradient outer products.")
@click.option("--params", "param_filter", default=None, metavar="REGEX",
              help="Only the parameters whose names match REGEX in full (e.g. 'layer3.*'): that diagonal block; "
                   "the others are held fixed.")
@click.option("--method", type=click.Choice(["power", "lanczos"]), default="power", show_default=True,
              help="Top eigenvalues by power iteration with deflation, or from one Lanczos run of --iters products "
                   "(with residual norms).")
@click.option("--which", type=click.Choice(["magnitude", "largest", "smallest"]), default="magnitude",
              show_default=True, help="With --method lanczos: largest magnitude, largest or smallest algebraic.")
@click.option("--trace-method", type=click.Choice(["hutchinson", "hutch++"]), default="hutchinson",
              show_default=True, help="Trace estimator; Hutch++ (Meyer et al. 2021) uses --probes products in all.")
@click.option("--batch-probes", type=click.IntRange(min=1), default=1, show_default=True, metavar="K",
              help="Products computed K at a time (per-block trace probes, Hutch++, --density runs in lockstep): "
                   "one forward and backward per batch of data serves K vectors; K vectors' second backward held "
                   "at once. Without --per-block the Hessian's Hutchinson trace takes z'Hz by Taylor mode, one probe at "
                   "a time.")
@click.option("--resume", is_flag=True, help="Continue a killed run from the state it checkpointed in -o DIR.")
@seed_option
@device_option
@progress_option()
@output_dir_option("Directory for hessian.csv, the plots and eigenvectors-VARIANT.pt (created if missing).",
                   required=False, name="output")
@threads_option
def hessian_cmd(model, kwargs, input_size, plain, compare, weights, train_epochs, data_spec, samples, batch_size,
                top, iters, tol, probes, per_block, density, lanczos_steps, density_runs, keep_graph, operator,
                param_filter, method, which, trace_method, batch_probes, resume, seed, device, progress, output):
    """Top eigenvalues and trace of the Hessian of MODEL's training loss (PyHessian, Yao et al. 2020).

    MODEL is a zoo name (see `netprobe list`), path/to/file.py:Name or package.module:Name (a class or a
    factory, called with the --kwargs given; give its --input-size).

    \b
    The loss is the mean cross-entropy over --samples training samples, with
    BatchNorm in eval mode (running statistics), so it is a fixed function of
    the weights. Eigenvalues: power iteration on Hessian-vector products
    (double backward), each iterate orthogonalised against those found; rows
    report the products used. Trace: Hutchinson's estimator, mean of z'Hz over
    Rademacher probes z, with its standard error. --per-block: the same for
    each block's parameters alone (scope = block name; the traces come from
    the model's probes and add up to its trace). --density: Lanczos runs give
    the spectral density and the largest and smallest (algebraic) Ritz values
    (ritz_max, ritz_min). --operator, --params: of another matrix, over some
    parameters; --method lanczos adds residual_i rows. A table goes to stdout;
    -o DIR writes hessian.csv
    (variant, scope, quantity, value, stderr, iterations, samples),
    density.csv + density.png, blocks.png, and eigenvectors-VARIANT.pt: the top
    eigenvectors in the format of `netprobe landscape --directions`. With -o the
    iteration state is checkpointed in DIR (every 10 s and after each piece);
    --resume continues a killed run. Same seed, same bytes.
    """
    if weights and train_epochs:
        raise click.UsageError("--train-epochs trains a fresh model: drop it with --weights")
    if resume and output is None:
        raise click.UsageError("--resume continues from the state checkpointed in -o DIR: give -o")
    spec, options, variants = twin_preamble(model, kwargs, input_size, plain, compare, weights,
                                            what="the Hessian of the cross-entropy loss")
    from netprobe.analysis.hessian.measure import Curvature
    from netprobe.analysis.hessian.study import clear_state, study

    out = None if output is None else _directory(output)
    from netprobe.ranks import is_main, process_group

    try:
        with process_group(device) as dev:  # under torchrun the ranks share each product's batches; rank 0 writes
            result = study(spec, variants=variants, options=options, weights=weights, train_epochs=train_epochs,
                           data=data_spec, samples=samples, batch_size=batch_size, top=top, iters=iters, tol=tol,
                           probes=probes, per_block=per_block, density_steps=lanczos_steps if density else 0,
                           density_runs=density_runs, keep_graph=keep_graph, seed=seed, progress=progress,
                           directory=out, resume=resume,
                           curvature=Curvature(operator, param_filter, method, which, trace_method, batch_probes),
                           device=dev)
            main = is_main()
            if out is not None and main:
                _write(out, result, samples, seed)
                clear_state(out)
    except KeyboardInterrupt:
        if out is None:
            raise click.ClickException("interrupted (with -o DIR a rerun with --resume continues)") from None
        raise click.ClickException(f"interrupted; the state is kept in {out}: rerun with --resume to continue") \
            from None
    if main:
        _say(result)


def _say(result):
    """The table on stdout, the study's warnings on stderr."""
    from netprobe.render.tables import render

    click.echo(render(result.table, "table"), nl=False)
    say_warnings(result.warnings, {"(raise iters)": "(raise --iters)", "(samples, seed)": "(--samples, --seed)"})


def _directory(name):
    """Create folder `name` (one level) and check a file can be written there, before any computing."""
    from pathlib import Path

    from netprobe.errors import NetprobeError
    from netprobe.files import check_writable

    out = Path(name)
    try:
        out.mkdir(exist_ok=True)
    except OSError as exc:
        raise NetprobeError(f"cannot create {out}: {exc.strerror or exc}") from None
    check_writable(out / "hessian.csv")
    return out


def _write(out, result, samples, seed):
    """Render every output, then write each atomically."""
    from netprobe.analysis.hessian.density import density_curve
    from netprobe.analysis.surfaces.directions import directions_bytes
    from netprobe.render import hessian_plots as plots
    from netprobe.render.tables import to_csv

    table = result.table
    title = f"{result.model}: {samples} training samples, seed {seed}"
    files = {"hessian.csv": to_csv(table)}
    if result.quadratures:
        files["density.csv"] = to_csv(result.density_table())
        curves = [(v, *density_curve(runs)) for v, runs in result.quadratures.items()]
        files["density.png"] = plots.plot_density(curves, title)["png"]
    if (table["scope"] != "model").any():
        files["blocks.png"] = plots.plot_scopes(table, title)["png"]
    for variant, vectors in result.eigenvectors.items():
        rows = table[(table["variant"] == variant) & (table["scope"] == "model")]
        values = [float(v) for v in rows[rows["quantity"].str.startswith("eigenvalue_")]["value"]]
        files[f"eigenvectors-{variant}.pt"] = directions_bytes(vectors, {
            "model": result.model, "variant": variant, "seed": seed, "samples": samples,
            "state": result.states[variant], "source": "hessian top eigenvectors",
            **{f"eigenvalue_{i}": v for i, v in enumerate(values, 1)}})
    write_outputs(out, files)
