"""The `netprobe` group. Commands load lazily so `--help` imports neither torch nor pandas."""

from __future__ import annotations

import importlib

import click

from netprobe import __version__
from netprobe.cpus import bound_env_threads
from netprobe.errors import NetprobeError

bound_env_threads()  # before any command imports torch

# command name -> "module:function"; aliases point at the same function.
COMMANDS = {
    "bottleneck": "netprobe.cli.design:bottleneck_cmd",
    "compare": "netprobe.cli.design:compare_cmd",
    "depth": "netprobe.cli.depth:depth_cmd",
    "diff": "netprobe.cli.diff:diff_cmd",
    "gradients": "netprobe.cli.gradients:gradients_cmd",
    "graph": "netprobe.cli.graph:graph_cmd",
    "hessian": "netprobe.cli.hessian:hessian_cmd",
    "landscape": "netprobe.cli.landscape:landscape_cmd",
    "lesion": "netprobe.cli.lesion:lesion_cmd",
    "list": "netprobe.cli.listing:list_cmd",
    "memory": "netprobe.cli.memory:memory_cmd",
    "receptive-field": "netprobe.cli.receptive_field:receptive_field_cmd",
    "report": "netprobe.cli.report:report_cmd",
    "rf": "netprobe.cli.receptive_field:receptive_field_cmd",
    "summary": "netprobe.cli.summary:summary_cmd",
    "train": "netprobe.cli.train:train_cmd",
}


class InputError(click.ClickException):
    """Bad user input: one line on stderr, exit 2 like click's usage errors."""

    exit_code = 2


class LazyGroup(click.Group):
    """A group whose commands are imported on first use and whose library errors become one-line exits."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NetprobeError as exc:
            raise InputError(exc.for_cli()) from None
        except SystemExit as exc:  # click exits through its own exceptions: this came from a model's code
            raise InputError(f"{_origin(exc)} called sys.exit({exc.code!r}): netprobe stopped without a "
                             "result") from None
        except (MemoryError, RuntimeError) as exc:
            # An allocation the machine cannot serve (a model or batch too large): say so in one line.
            words = str(exc)
            if not isinstance(exc, MemoryError) and "can't allocate memory" not in words \
                    and "out of memory" not in words:
                raise
            asked = words.split("you tried to allocate ")[-1].split(".")[0] if "tried to allocate" in words else ""
            raise InputError("not enough memory for this model or batch" + (f" (one tensor of {asked})" if asked
                                                                              else "")
                             + ": use a smaller --kwargs/--batch-size/--samples") from None


def _origin(exc: BaseException) -> str:
    """'path:line' of the innermost frame that raised `exc` (the user's file that called sys.exit)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "code run by netprobe"
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="netprobe")
def cli():
    """netprobe: shapes, parameters, MACs, receptive fields, gradients and loss surfaces of CNNs."""
