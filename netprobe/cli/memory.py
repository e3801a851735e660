"""`netprobe memory`: what one training step costs (backward FLOPs, saved activations, peak memory), on meta."""

import re

import click

from netprobe.cli.options import emit, format_option, input_size_option, kwargs_option, model_argument, output_option

_UNITS = {"": 1, "B": 1, "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9, "GB": 10**9, "T": 10**12,
          "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_bytes(value: str) -> int:
    """A size such as 24GB, 24GiB, 512M or 1.5G in bytes (K/M/G/T decimal, KiB/MiB/GiB/TiB binary)."""
    from decimal import Decimal

    from netprobe.errors import NetprobeError

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
    if not match or match.group(2).upper() not in _UNITS:
        raise NetprobeError(f"--max-memory: expected a size such as 24GB, 24GiB or 512M, got {value!r}")
    return int(Decimal(match.group(1)) * _UNITS[match.group(2).upper()])


@click.command("memory")
@model_argument
@input_size_option
@click.option("--batch", type=int, default=1, show_default=True, help="Batch size.")
@click.option("--optimizer", default="adam", show_default=True, help="sgd, momentum (SGD 0.9), adam or adamw.")
@click.option("--dtype", default="float32", show_default=True, help="Weights and inputs: float32, bfloat16, float16.")
@click.option("--amp", default=None, help="Mixed precision, bf16 or fp16: autocast's low-precision weight copies.")
@click.option("--checkpoint-blocks", is_flag=True,
              help="Checkpoint every residual, dense or inception block; list what each saves.")
@click.option("--channels-last", is_flag=True, help="Model and input in channels-last memory format.")
@click.option("--allocator", default="none", show_default=True,
              help="none: exact tensor bytes; cuda: also PyTorch's CUDA caching allocator (allocated, reserved).")
@click.option("--max-memory", metavar="SIZE", default=None,
              help="Exit 1 if the peak (the reserved peak with --allocator cuda) exceeds SIZE (24GB, 24GiB).")
@kwargs_option
@format_option
@output_option
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write the memory timeline (PNG).")
@click.pass_context
def memory_cmd(ctx, model, input_size, batch, optimizer, dtype, amp, checkpoint_blocks, channels_last, allocator,
               max_memory, kwargs, fmt, output, plot):
    """Cost of one training step of MODEL (forward, loss, backward, optimizer step), without running it.

    The step runs once on the meta device, so the estimate costs the same at any batch size. Per layer:
    forward and backward MACs/FLOPs (the backward from the aten backward operators autograd runs; input
    gradients autograd skips are not counted), bytes saved for backward (unique storages), parameter,
    gradient and optimizer-state bytes. Then the peak of live memory over the step and where it occurs.

    \b
    The loss is cross-entropy on the first output; the step is a steady one (optimizer state exists,
    gradients set to None before it). Kernel workspaces (oneDNN, cuDNN) are not included.
    """
    from netprobe.analysis.memory.cost import Settings, training_cost
    from netprobe.errors import NetprobeError
    from netprobe.files import check_writable, write_atomic
    from netprobe.render.memory_view import mib, render_cost, timeline_plot
    from netprobe.zoo.loading import load_model, parse_kwargs

    budget = parse_bytes(max_memory) if max_memory is not None else None
    settings = Settings(optimizer=optimizer, dtype=dtype, amp=amp, checkpoint_blocks=checkpoint_blocks,
                        channels_last=channels_last, allocator=allocator)
    if batch < 1:
        raise NetprobeError(f"--batch must be at least 1, got {batch}")
    for path in (output, plot):
        if path is not None:
            check_writable(path)
    loaded = load_model(model, parse_kwargs(kwargs))
    size = input_size or loaded.input_size
    if size is None:
        raise NetprobeError(f"{model} is not a zoo model: give its input with --input-size CxHxW")
    cost = training_cost(loaded.model, (batch, *size), settings, name=loaded.name)
    emit(render_cost(cost, fmt), output)
    if plot is not None:
        write_atomic(plot, timeline_plot(cost)["png"])
        click.echo(f"wrote {plot}", err=True)
    peak = cost.cuda.reserved if cost.cuda is not None else cost.totals.peak_bytes
    if budget is not None and peak > budget:
        click.echo(f"peak {mib(peak)} > budget {mib(budget)}", err=True)
        ctx.exit(1)
