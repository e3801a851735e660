"""Fuzz every registered command with hostile option values and arguments: never a traceback.

NETPROBE_FUZZ_EXAMPLES sets how many invocations hypothesis tries (60 by default, to stay fast in CI).
Heavy commands stop where their real work starts (WORK_POINTS raise `_Validated` there), so everything they
check first (options, outputs, models, checkpoints, data) is exercised and the compute never runs. A call
that reaches no work point within BUDGET_S fails: a slow validation is a bug of its own.
"""

import importlib
import os
import pkgutil
import signal
import tempfile

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netprobe.cli.main import COMMANDS, cli

EXAMPLES = int(os.environ.get("NETPROBE_FUZZ_EXAMPLES", "60"))
BUDGET_S = 120.0
# Where the heavy commands start computing, once every input is checked: (module, function).
WORK_POINTS = [("netprobe.train.loop", "train_epoch"), ("netprobe.analysis.surfaces.landscape", "evaluate_grid"),
               ("netprobe.analysis.hessian.study", "measure"), ("netprobe.analysis.lesion.study", "_lesion"),
               ("netprobe.analysis.gradients.profile", "gradient_profile"),
               ("netprobe.analysis.gradients.profile", "response_std"),
               ("netprobe.analysis.gradients.shattered", "shattered_gradients"),
               ("netprobe.analysis.depth.study", "_train_here"), ("netprobe.analysis.depth.study", "_train_in_workers"),
               ("netprobe.report.build", "run"), ("netprobe.analysis.fields.check", "effective"),
               ("netprobe.cli.receptive_field", "_verify")]
# Imported up front: a timer firing inside a first import would leave the module half-initialised.
for _name in sorted(COMMANDS):
    cli.get_command(click.Context(cli), _name)
import matplotlib.pyplot  # noqa: E402,F401
import pandas  # noqa: E402,F401
import sympy  # noqa: E402,F401
import torch._dynamo  # noqa: E402,F401  (torch.compile's and the flop counter's lazy import; half-imported it broke
import torch.fx  # noqa: E402,F401        every later test in the worker with "partially initialized module")

import netprobe  # noqa: E402

try:  # `--data digits` imports scikit-learn on first use
    import sklearn.datasets  # noqa: F401
except ImportError:
    pass
for _module in pkgutil.walk_packages(netprobe.__path__, "netprobe."):
    if _module.name != "netprobe.__main__":
        importlib.import_module(_module.name)

HOSTILE = ["", "0", "-1", "1", "3", "1e400", "nan", "inf", "-0.5", "abc", "3x9999999999999999999999x32",
           "3x32x32", "1x1", "0x0x0", "/dev/null", "/proc/version", "/proc/x.pt", "missing/dir/out.csv",
           "x" * 300, "out.csv", "out.pt", "lenet5", "resnet20", "unet", "nosuchmodel", "x.py:Net",
           "os:system", "synthetic", "synthetic:10", "digits", "folder:/nonexistent", "cifar10:/nonexistent",
           "a=1", "=", "--", "99999999999999999999999"]
VALUE = st.one_of(st.sampled_from(HOSTILE), st.text(st.characters(blacklist_characters="\0",
                                                                  blacklist_categories=("Cs",)), max_size=12))

MODEL = st.one_of(st.sampled_from(["lenet5", "resnet20", "unet", "alexnet", "vgg11"]), VALUE)


class _OutOfBudget(BaseException):
    """Raised by the timer: the command reached no work point in BUDGET_S."""


class _Validated(BaseException):
    """Raised at a work point: the command checked its input and began computing."""


def _alarm(signum, frame):
    raise _OutOfBudget


def _validated(*args, **kwargs):
    raise _Validated


def _command(name):
    return cli.get_command(click.Context(cli), name)


@st.composite
def invocations(draw):
    name = draw(st.sampled_from(sorted(COMMANDS)))
    params = _command(name).params
    args = [name]
    arguments = [p for p in params if isinstance(p, click.Argument)]
    for param in arguments + (draw(st.lists(st.sampled_from(params), max_size=4)) if params else []):
        if isinstance(param, click.Argument):
            args.append(draw(MODEL if param.name == "model" else VALUE))
        elif param.is_flag:
            args.append(param.opts[0])
        else:
            args += [param.opts[0], draw(VALUE)]
    return args + draw(st.lists(VALUE, max_size=2))


@pytest.mark.filterwarnings("ignore")
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(invocations())
def test_no_traceback(args):
    runner = CliRunner()
    previous = signal.signal(signal.SIGALRM, _alarm)
    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as tmp, \
            runner.isolated_filesystem(temp_dir=tmp):
        for module, name in WORK_POINTS:
            patch.setattr(importlib.import_module(module), name, _validated)
        signal.setitimer(signal.ITIMER_REAL, BUDGET_S)
        try:
            result = runner.invoke(cli, args + ["--no-progress"] * ("--no-progress" in _flags(args[0])))
        except _Validated:  # CliRunner catches Exception only: the work point's signal comes through
            return
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    if isinstance(result.exception, _Validated):
        return
    assert not isinstance(result.exception, _OutOfBudget), (args, "no work point reached in time")
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exc_info)
    # 1 is a deliberate verdict (summary's --max-params/--max-macs budget gates), not a crash
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, result.output[-500:])
    assert "Traceback" not in result.output, args


def _flags(name):
    return {opt for param in _command(name).params for opt in param.opts}
