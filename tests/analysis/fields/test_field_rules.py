"""The receptive-field rule registry: one rule per aten operator, duplicates refused, the zoo fully covered,
and a rule added from outside is the one `solve` runs."""

import numpy as np
import pytest
import torch
from torch import nn

from netprobe.analysis.counting.trace import trace
from netprobe.analysis.fields.solve import solve
from netprobe.analysis.fields.propagate import Axis
from netprobe.analysis.fields.rules import RULES, rule
from netprobe.analysis.fields.rules_spatial import conv
from netprobe.zoo import list_models, load, model_spec

aten = torch.ops.aten


def test_a_second_rule_for_an_operator_is_refused():
    with pytest.raises(ValueError, match="duplicate rule for aten.convolution"):
        rule(aten.convolution)(lambda state, op, args, ins: [None])
    assert RULES[aten.convolution] is conv


@pytest.mark.parametrize("registry, table", [("rules", "RULES"), ("flops", "FORMULAS")])
def test_a_refused_decorator_registers_none_of_its_operators(registry, table):
    from netprobe.analysis.counting import flops
    from netprobe.analysis.fields import rules

    module = {"rules": rules, "flops": flops}[registry]
    register, known = {"rules": rules.rule, "flops": flops.formula}[registry], getattr(module, table)
    taken = next(op for op in (aten.convolution, aten.mm) if op in known)
    assert aten.cumsum not in known
    before = dict(known)
    for ops in ((aten.cumsum, taken), (aten.cumsum, aten.cumsum)):  # a taken packet last; one named twice
        with pytest.raises(ValueError, match="duplicate"):
            register(*ops)(lambda *args: None)
        assert known == before and aten.cumsum not in known


class Cumsum(nn.Module):
    def forward(self, x):
        return x.cumsum(-1)  # unit q along w sums positions 0..q


def test_a_registered_rule_is_what_solve_runs():
    model, size = Cumsum(), (1, 1, 3, 5)
    assert aten.cumsum not in RULES and torch.Tag.pointwise not in aten.cumsum.default.tags
    before = solve(trace(model, size))
    assert any("aten.cumsum.default" in w and "without a receptive-field rule" in w for w in before.warnings)

    def prefix(state, op, args, ins):
        """Unit q along the summed dim reads positions 0..q."""
        dim = args["dim"] % len(ins[0].shape)
        fld = {}
        for name, ax in state.fields[ins[0].id].items():
            taps = (lambda q, n=ax.n: [(np.full_like(q, t), q >= t) for t in range(n)]) if ax.dim == dim else \
                (lambda q: [(q, None)])
            fld[name] = Axis(ax.dim, ax.n, ax.jump, [("taps", ax, taps)])
        return [fld]

    rule(aten.cumsum)(prefix)
    try:
        after = solve(trace(model, size))
    finally:
        del RULES[aten.cumsum]
    out = after.fields[max(after.fields)]
    assert after.warnings == []
    assert [out["w"].window(q) for q in range(5)] == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4)]
    assert [out["h"].window(q) for q in range(3)] == [(0, 0), (1, 1), (2, 2)]


def _zoo_operators(name):
    spec = model_spec(name)
    with torch.device("meta"):
        model = load(name).eval()
    return {op.op for op in trace(model, (1, *spec.input_size)).ops}


def test_every_operator_the_zoo_uses_has_a_rule():
    missing = {}
    # resnet1202 is resnet110's builder with n=200 instead of 18: the same operators, 10 s more to build.
    for name in [n for n in list_models() if n != "resnet1202"]:
        for op in _zoo_operators(name):
            if op.overloadpacket not in RULES and torch.Tag.pointwise not in op.tags:
                missing.setdefault(str(op), []).append(name)
    assert missing == {}
