"""The fastmeta shortcut rules answer (do not decline) the convolutions, pools, batch norms and linear layers of
real networks: a rule that always declined would still give correct shapes through the real kernel, so only
these tests notice it."""

import pytest
import torch

from netprobe.analysis.counting import fastmeta
from netprobe.analysis.counting.trace import trace
from netprobe.zoo import load

aten = torch.ops.aten
# Every operator of these kinds in the networks below must be answered by its rule.
MUST_ANSWER = {aten.convolution.default, aten.max_pool2d_with_indices.default, aten.avg_pool2d.default,
               aten._adaptive_avg_pool2d.default, aten.native_batch_norm.default, aten.mean.dim, aten.add.Tensor,
               aten.addmm.default, aten.relu_.default, aten.cat.default}


def _answers(monkeypatch, name: str) -> dict:
    """{operator: [answered?, ...]} for every call of a MUST_ANSWER operator while tracing zoo model `name`."""
    seen, original = {}, fastmeta.outputs

    def recording(func, args, kwargs):
        out = original(func, args, kwargs)
        if func in MUST_ANSWER:
            seen.setdefault(func, []).append(out is not None)
        return out

    monkeypatch.setattr(fastmeta, "outputs", recording)
    trace(load(name), (1, 3, 224, 224))
    return seen


# The operators each network is built from (its source in netprobe/zoo): the kinds the test expects to see.
@pytest.mark.parametrize("name, kinds", [
    ("resnet18", {aten.convolution.default, aten.max_pool2d_with_indices.default, aten.relu_.default,
                  aten.native_batch_norm.default, aten.mean.dim, aten.add.Tensor, aten.addmm.default}),
    ("vgg11", {aten.convolution.default, aten.max_pool2d_with_indices.default, aten.relu_.default,
               aten._adaptive_avg_pool2d.default, aten.addmm.default}),
    ("densenet121", {aten.convolution.default, aten.avg_pool2d.default, aten.cat.default,
                     aten.max_pool2d_with_indices.default, aten.native_batch_norm.default}),
])
def test_rules_answer_every_layer_of_real_networks(monkeypatch, name, kinds):
    seen = _answers(monkeypatch, name)
    assert kinds <= set(seen), f"{name}: expected operators not traced: {kinds - set(seen)}"
    declined = {str(op): answers.count(False) for op, answers in seen.items() if not all(answers)}
    assert not declined, f"{name}: rules declined {declined}"


def test_convolution_counts_match_the_network():
    """The convolution rule answers each of resnet18's 20 convolutions (He et al. 2016, Table 1: the stem, 16 in
    the eight basic blocks, 3 projection shortcuts), each once."""
    calls = []
    original = fastmeta.RULES[aten.convolution.default]
    try:
        fastmeta.RULES[aten.convolution.default] = lambda *a, **k: calls.append(original(*a, **k)) or calls[-1]
        trace(load("resnet18"), (1, 3, 224, 224))
    finally:
        fastmeta.RULES[aten.convolution.default] = original
    assert len(calls) == 20 and all(out is not None for out in calls)
