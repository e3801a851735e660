"""`hessian --resume` refuses a state file whose top level is valid but whose pieces are malformed: one line,
exit 2, the file left as it was; a well-formed state still resumes to the same table."""

import math

import pytest
import torch
from click.testing import CliRunner

from netprobe.analysis.hessian.study import STATE
from netprobe.cli.main import cli as main

ARGS = ("lenet5", "--samples", "4", "--top", "2", "--iters", "3", "--probes", "2", "--density", "--lanczos-steps",
        "2", "--no-progress")


def _run(*args):
    return CliRunner().invoke(main, ["hessian", *args])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The state of a complete lenet5 run (kept: clear_state switched off) and its table."""
    import netprobe.analysis.hessian.study as study_module

    out = tmp_path_factory.mktemp("h")
    with pytest.MonkeyPatch.context() as m:
        m.setattr(study_module, "clear_state", lambda directory: None)
        result = _run(*ARGS, "-o", str(out))
    assert result.exit_code == 0, result.output
    state = torch.load(out / STATE, weights_only=True)
    assert sorted(state["finished"]) == ["residual/density/0", "residual/model/eigen", "residual/trace"]
    return state, (out / "hessian.csv").read_bytes()


def _eigen(s):
    return s["finished"]["residual/model/eigen"]


def _set(path, value):
    """A function setting `value` at `path` (keys into the state) in place."""
    def apply(state):
        *outer, last = path
        target = state
        for key in outer:
            target = target[key]
        target[last] = value(target[last]) if callable(value) else value
    return apply


EIGEN, TRACE, DENSITY = ("finished", "residual/model/eigen"), ("finished", "residual/trace"), \
    ("finished", "residual/density/0")
MALFORMED = {
    "a piece that is a list": _set(EIGEN, [1, 2]),
    "an unknown piece": _set(("finished", "residual/other"), {"values": []}),
    "a NaN eigenvalue": _set((*EIGEN, "values"), lambda v: [math.nan, *v[1:]]),
    "an eigenvalue as text": _set((*EIGEN, "values"), lambda v: ["12.5", *v[1:]]),
    "lists of unequal length": _set((*EIGEN, "converged"), lambda v: v[:1]),
    "a negative product count": _set((*EIGEN, "iterations"), lambda v: [-3, *v[1:]]),
    "more eigenvalues than --top": lambda s: [_eigen(s)[k].append(_eigen(s)[k][-1]) for k in
                                             ("values", "vectors", "iterations", "converged")],
    "an integer eigenvector": _set((*EIGEN, "vectors"), lambda v: [t.long() for t in v]),
    "a 2-d eigenvector": _set((*EIGEN, "vectors"), lambda v: [t[None] for t in v]),
    "an eigenvector of the wrong length": _set((*EIGEN, "vectors"), lambda v: [t[:-1] for t in v]),
    "an eigenvector with NaN": _set((*EIGEN, "vectors"), lambda v: [torch.full_like(t, math.nan) for t in v]),
    "a truncated generator state": _set((*TRACE, "generator"), lambda g: g[:100]),
    "a generator state of floats": _set((*TRACE, "generator"), lambda g: g.float()),
    "a trace part of another length": _set((*TRACE, "parts"), {"stem": [1.0]}),
    "an infinite trace sample": _set((*TRACE, "values"), lambda v: [math.inf, *v[1:]]),
    "a missing trace field": lambda s: s["finished"]["residual/trace"].pop("values"),
    "density weights of another length": _set((*DENSITY, "weights"), lambda w: w[:-1]),
    "a negative density weight": _set((*DENSITY, "weights"), lambda w: [-1.0, *w[1:]]),
    "density steps as text": _set((*DENSITY, "steps"), "2"),
    "a running search without its vector": _set(("running",), {"residual/model/eigen": {
        "values": [], "vectors": [], "iterations": [], "converged": [], "value": 1.0, "i": 1}}),
    "a running search at product -1": lambda s: s.__setitem__("running", {"residual/model/eigen": {
        "values": [], "vectors": [], "iterations": [], "converged": [], "v": _eigen(s)["vectors"][0],
        "value": 1.0, "i": -1}}),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_pieces_are_one_line_and_exit_2(tmp_path, finished, name):
    import copy

    state = copy.deepcopy(finished[0])
    MALFORMED[name](state)
    torch.save(state, tmp_path / STATE)
    kept = (tmp_path / STATE).read_bytes()
    result = _run(*ARGS, "--resume", "-o", str(tmp_path))
    assert result.exit_code == 2, (name, result.output)
    assert "cannot resume" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert (tmp_path / STATE).read_bytes() == kept and not (tmp_path / "hessian.csv").exists()


def test_a_well_formed_state_resumes_to_the_same_table(tmp_path, finished):
    torch.save(finished[0], tmp_path / STATE)
    result = _run(*ARGS, "--resume", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "hessian.csv").read_bytes() == finished[1]
