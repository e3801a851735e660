"""`netprobe bottleneck` and `netprobe compare`: the case studies' design arithmetic, counted by the engine."""

import click

from netprobe.cli.options import (check_files, emit, format_option, input_size_option, kwargs_option, output_option,
                                  parse_size)

CASES = ("3x3-vs-7x7", "basic-vs-bottleneck")


def _fits(hint: str, *sizes: int) -> None:
    """Refuse a design whose weights or activations would have 2**60 elements or more (torch counts in int64)."""
    if max(sizes) >= 2**60:
        raise click.BadParameter("the design's tensors would hold more than 2**60 elements", param_hint=hint)


def _hw(value: str, hint: str) -> tuple[int, int]:
    dims = parse_size(value, hint)
    if len(dims) != 2:
        raise click.BadParameter(f"expected HxW, got {value!r}", param_hint=hint)
    return dims


@click.command("bottleneck")
@click.option("--input", "input_", default="28x28x192", show_default=True, metavar="HxWxC",
              help="Input feature map, height x width x channels as the case studies write it.")
@click.option("--kernel", type=click.IntRange(min=1), default=5, show_default=True, help="Kernel size of the conv.")
@click.option("--out", type=click.IntRange(min=1), default=32, show_default=True, help="Output channels.")
@click.option("--reduce", type=click.IntRange(min=1), default=16, show_default=True,
              help="Channels of the 1x1 bottleneck.")
@format_option
@output_option
def bottleneck_cmd(input_, kernel, out, reduce, fmt, output):
    """A direct KxK conv vs the same conv after a 1x1 reduction (the Inception bottleneck).

    Both designs are counted by the summary engine on the meta device. The default is the textbook case:
    28x28x192 -> 28x28x32 by a 5x5 conv costs 120,422,400 multiplies direct, 12,443,648 through a
    16-channel 1x1. MACs count multiply-accumulates of the convolutions (bias additions excluded).
    """
    from netprobe.analysis.counting.design import bottleneck
    from netprobe.render.comparison_view import render_comparison

    dims = parse_size(input_, "--input")
    if len(dims) != 3:
        raise click.BadParameter(f"expected HxWxC, got {input_!r}", param_hint="--input")
    h, w, c = dims
    _fits("--input, --kernel, --out, --reduce", out * c * kernel ** 2, reduce * c, out * reduce * kernel ** 2,
          h * w * max(c, out, reduce))
    emit(render_comparison(bottleneck((c, h, w), kernel=kernel, out=out, reduce=reduce), fmt), output)


@click.command("compare")
@click.argument("models", nargs=-1, metavar="[MODEL]...")
@click.option("--case", type=click.Choice(CASES), default=None,
              help="A textbook comparison instead of models: 3x3-vs-7x7 (three stacked 3x3 convs vs one 7x7), "
                   "basic-vs-bottleneck (residual blocks).")
@click.option("--channels", type=click.IntRange(min=1), default=None,
              help="Channels for --case (default: 64 for 3x3-vs-7x7, 256 for basic-vs-bottleneck).")
@click.option("--size", default="56x56", show_default=True, metavar="HxW", help="Feature map size for --case.")
@click.option("--twins", is_flag=True, help="Compare MODEL with its plain twin (shortcuts removed).")
@input_size_option
@kwargs_option
@click.option("--layers/--no-layers", default=None,
              help="Show per-layer rows too (default: on for --case, off for models).")
@format_option
@output_option
def compare_cmd(models, case, channels, size, twins, input_size, kwargs, layers, fmt, output):
    """Side-by-side parameters, MACs, FLOPs and activations of designs or models.

    \b
    netprobe compare vgg16 resnet50 googlenet     totals of several models
    netprobe compare resnet56 --twins             residual vs plain twin
    netprobe compare --case 3x3-vs-7x7            27C^2 vs 49C^2 weights
    netprobe compare --case basic-vs-bottleneck   He et al.'s two residual blocks

    Everything is counted by the summary engine on the meta device (MACs of conv/linear/matmul;
    FLOPs = 2 x MACs + elementwise work).
    """
    from netprobe.analysis.counting import design
    from netprobe.render.comparison_view import render_comparison
    from netprobe.zoo.loading import parse_kwargs

    if case and (models or twins or kwargs):
        raise click.UsageError("give either models (with --kwargs) or --case, not both")
    check_files([("-o", output)], models)
    if case:
        hw = _hw(size, "--size")
        wide = channels or 256
        _fits("--channels, --size", 49 * wide ** 2, 4 * wide * hw[0] * hw[1])  # a 7x7 conv; a 4x bottleneck map
        if case == "3x3-vs-7x7":
            result = design.stacked_convs(channels or 64, hw)
        else:
            result = design.residual_blocks(channels or 256, hw)
    elif twins:
        if len(models) != 1:
            raise click.UsageError("--twins takes exactly one model")
        result = design.twins(models[0], input_size=input_size, kwargs=parse_kwargs(kwargs))
    elif models:
        result = design.models(models, input_size=input_size, kwargs=parse_kwargs(kwargs))
    else:
        raise click.UsageError("give models to compare, or --case")
    emit(render_comparison(result, fmt, layers=bool(case) if layers is None else layers), output)
