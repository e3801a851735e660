"""Options shared by several commands, defined once and stacked as decorators."""

from __future__ import annotations

import functools
import math
import re
import sys

import click

from netprobe import MAX_SEED
from netprobe.render.tables import Format

model_argument = click.argument("model", metavar="MODEL")

format_option = click.option(
    "--format", "fmt", type=click.Choice([f.value for f in Format]), default=Format.table.value,
    show_default=True, help="Output format.")

output_option = click.option(
    "-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
    help="Write to this file (atomically) instead of stdout.")

plain_option = click.option("--plain", is_flag=True, help="Remove the shortcut additions (residual families).")

preact_option = click.option("--preact", is_flag=True, help="Pre-activation blocks (ImageNet ResNets).")

seed_option = click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True,
                           help="Random seed (0 to 2**63 - 1).")


def threads_option(command):
    """--threads N for a compute command: torch's intra-op CPU threads while it runs (restored afterwards)."""

    @functools.wraps(command)
    def run(*args, threads, **kwargs):
        import torch

        from netprobe.cpus import default_threads

        before = torch.get_num_threads()
        torch.set_num_threads(threads or default_threads())
        try:
            return command(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return click.option(
        "--threads", type=click.IntRange(1, 1024), default=None, metavar="N",
        help="CPU threads for torch's kernels [default: OMP_NUM_THREADS if set, else the physical cores this "
             "process may use (its CPU affinity, within a cgroup CPU quota)]. Figures can differ in the last "
             "digits between thread counts.")(run)


def parse_size(value: str, param_hint: str = "--input-size") -> tuple[int, ...]:
    """Parse 'CxHxW' (or 'HxW', or a single int) into a tuple of positive ints."""
    if not re.fullmatch(r"\s*\d+(\s*[x,]\s*\d+)*\s*", value or ""):
        raise click.BadParameter(f"expected sizes like 3x224x224, got {value!r}", param_hint=param_hint)
    dims = tuple(int(v) for v in re.split(r"[x,]", value.replace(" ", "")))
    if any(d <= 0 for d in dims):
        raise click.BadParameter(f"sizes must be positive, got {value!r}", param_hint=param_hint)
    if math.prod(dims) >= 2**60:  # torch sizes are int64, and its byte counts too (8 bytes an element)
        raise click.BadParameter(f"sizes must multiply to below 2**60, got {value!r}", param_hint=param_hint)
    return dims


def _input_size_callback(ctx, param, value):
    if value is None:
        return None
    dims = parse_size(value)
    if len(dims) != 3:
        raise click.BadParameter(f"expected CxHxW, got {value!r}", param_hint="--input-size")
    return dims


input_size_option = click.option(
    "--input-size", callback=_input_size_callback, default=None, metavar="CxHxW",
    help="Input size without the batch dimension (default: the model's own).")


def _inputs_callback(ctx, param, values):
    """--input [NAME=]SHAPE[:DTYPE] values as (name or None, dims, dtype name) triples."""
    parsed = []
    for value in values:
        name, sep, rest = value.rpartition("=") if "=" in value else ("", "", value)
        shape, _, dtype = rest.partition(":")
        if sep and not name.isidentifier():
            raise click.BadParameter(f"expected NAME=SHAPE[:DTYPE], got {value!r}", param_hint="--input")
        parsed.append((name or None, parse_size(shape, "--input"), dtype or "float32"))
    return tuple(parsed)


inputs_option = click.option(
    "--input", "inputs", multiple=True, callback=_inputs_callback, metavar="[NAME=]SHAPE[:DTYPE]",
    help="One input of forward, without the batch dimension, e.g. --input x=3x224x224 --input mask=196:bool; "
         "repeat for several (named ones bind by forward's parameter names, unnamed ones in order).")


kwargs_option = click.option(
    "--kwargs", "kwargs", multiple=True, metavar="KEY=VALUE",
    help="Keyword argument for the model's builder; repeat for several (values are Python literals).")


def model_inputs(command):
    """--kwargs and --input-size, for commands whose MODEL may be path/to/file.py:Name or package.module:Name."""
    return kwargs_option(input_size_option(command))


def resolve_model(model: str, kwargs, input_size):
    """The registry spec of MODEL (a zoo name, file.py:Name or module:Name) and its build options from --kwargs."""
    from netprobe.zoo.loading import model_for, parse_kwargs

    return model_for(model, parse_kwargs(kwargs), input_size)


def merge_options(options: dict, given: dict) -> dict:
    """`options` from --kwargs plus the dedicated options `given` ({key: (flag, value)}); a key that both give
    with different values is refused, naming both (one would silently win)."""
    for key, (flag, value) in given.items():
        if key in options and options[key] != value:
            raise click.UsageError(f"--kwargs {key}={options[key]!r} conflicts with {flag} ({key}={value!r}): "
                                   f"give {key} once")
    return {**options, **{key: value for key, (_, value) in given.items()}}


def check_twin(spec, flags: str) -> None:
    """Refuse `flags` (--plain, --compare) for a model without a plain twin (the pipeline's check, in the words of
    the flags)."""
    from netprobe.errors import NetprobeError

    if not spec.plain:
        kind = "a model from a file or module" if spec.family == "custom" else spec.family
        raise NetprobeError(f"{spec.name} ({kind}) has no shortcuts to remove: {flags} apply to the zoo's "
                            "residual families")


def model_options(plain: bool, preact: bool = False) -> dict:
    """Builder keyword options from the shared flags (only the flags that were given)."""
    options = {}
    if plain:
        options["plain"] = True
    if preact:
        options["preact"] = True
    return options


def output_dir_callback(ctx, param, value):
    """-o DIR: a name a folder can have (not empty, within the file system's name limit), checked at parsing."""
    import os

    if value is None:
        return None
    value = os.fspath(value)  # click passes a Path given from Python (CliRunner) through as it is
    if not value.strip() or "\0" in value:
        raise click.BadParameter(f"expected a folder name, got {value!r}", param_hint="-o")
    name = os.path.basename(os.path.normpath(value))
    if len(os.fsencode(name)) > 200:  # the run's temporary and log names extend it (NAME_MAX is 255)
        raise click.BadParameter(f"the folder name {name[:40]}... is longer than 200 bytes", param_hint="-o")
    return value


def check_files(outputs, models=(), weights=()) -> None:
    """Refuse two outputs ((flag, path) pairs) at one path, or an output at a MODEL file or checkpoint the run
    reads."""
    from netprobe.files import check_outputs
    from netprobe.zoo.loading import source_file

    check_outputs(outputs, [("MODEL", source_file(m)) for m in models] + [("--weights", w) for w in weights])


def emit(text: str, output: str | None) -> None:
    """Write rendered output to `output` atomically, or to stdout."""
    if output is None:
        sys.stdout.write(text)
        return
    from netprobe.files import write_atomic

    write_atomic(output, text)
    click.echo(f"wrote {output}", err=True)


_SUFFIXES = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_count(value: str, param_hint: str | None = None) -> int:
    """Parse a count with an optional decimal K/M/G/T suffix ('4G' -> 4_000_000_000, '1.5M' -> 1_500_000)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)\s*", value or "")
    if not match:
        raise click.BadParameter(f"expected a count like 25M or 4G, got {value!r}", param_hint=param_hint)
    number, suffix = match.groups()
    from decimal import Decimal

    return int(Decimal(number) * _SUFFIXES[suffix.upper()])


def count_callback(ctx, param, value):
    """Click callback for an optional count option with K/M/G/T suffixes."""
    if value is None:
        return None
    return parse_count(value, param_hint="--" + param.name.replace("_", "-"))


# --- the options and preamble of the plain-vs-residual commands (landscape, hessian, lesion, gradients) ---

compare_option = click.option("--compare", is_flag=True, help="The residual model and its plain twin, side by side.")


def weights_option(many: bool = True, help: str = "A checkpoint of `netprobe train` or the depth study (with "
                                                 "--compare: give it twice, residual then plain)."):
    """--weights CKPT: one per variant (`many`), or one model's."""
    return click.option("--weights", multiple=many, type=click.Path(dir_okay=False), default=None if not many
                        else (), metavar="CKPT", help=help)


def train_epochs_option(default: int):
    """--train-epochs N: the brief training before a study that is given no checkpoint."""
    return click.option("--train-epochs", type=click.IntRange(min=0), default=default, show_default=True,
                        help="Without --weights: train this many epochs first (SGD, batch 128, lr 0.1, /10 at 50% "
                             "and 75%); 0: at initialisation.")


def samples_option(default, help: str):
    """--samples N: the seeded subset a study measures on."""
    return click.option("--samples", type=click.IntRange(min=1), default=default, show_default=default is not None,
                        help=help)


def batch_size_option(default, help: str):
    """--batch-size N (what a batch is for, in `help`)."""
    return click.option("--batch-size", type=click.IntRange(min=1), default=default,
                        show_default=default is not None, help=help)


def progress_option(help: str = "Progress bar on stderr."):
    """--progress/--no-progress: bars and notes on stderr."""
    return click.option("--progress/--no-progress", default=True, show_default=True, help=help)


def output_dir_option(help: str, required: bool = True, name: str = "directory"):
    """-o DIR: a run folder, its name checked at parsing."""
    return click.option("-o", "--output", name, type=click.Path(file_okay=False), callback=output_dir_callback,
                        required=required, metavar="DIR", help=help)


def twin_preamble(model, kwargs, input_size, plain, compare, weights, *, what: str, grad: bool = True):
    """The common start of a plain-vs-residual command: (spec, options, variants), with --plain/--compare/--weights
    misuse refused and a model without class scores (for `what`) refused before any work."""
    from netprobe.analysis.twins import check_scores, variants_of

    if plain and compare:
        raise click.UsageError("--plain and --compare exclude each other (--compare measures both)")
    many = weights if isinstance(weights, tuple) else (weights,) if weights else ()
    if many and len(many) != (2 if compare else 1):
        raise click.UsageError("--weights takes one checkpoint, or two with --compare (residual, plain)")
    spec, options = resolve_model(model, kwargs, input_size)
    if plain or compare:
        check_twin(spec, "--plain and --compare")
    if what:
        check_scores(spec, options, what, grad)
    return spec, options, variants_of(plain, compare)


def say_warnings(lines, said: dict | None = None) -> None:
    """The one way a result's warnings (its `warnings`, or a table's attrs["warnings"]) reach the user: stderr;
    `said` maps the library's words for a parameter to the command's flag, as `NetprobeError.said` does."""
    for line in lines:
        for words, flag in (said or {}).items():
            line = line.replace(words, flag)
        click.echo(f"warning: {line}", err=True)


def write_outputs(out, files: dict) -> None:
    """Write every rendered output (name -> text or bytes) into folder `out` atomically, saying what was written."""
    from netprobe.files import write_atomic

    for name, data in files.items():
        write_atomic(out / name, data)
        click.echo(f"wrote {out / name}", err=True)


device_option = click.option(
    "--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True,
    help="Where to compute: cpu, cuda (under torchrun: each rank's own GPU, by LOCAL_RANK) or auto (cuda when "
         "available). Figures agree across devices within the tolerances in benchmarks/README.md, not to the last digit.")
