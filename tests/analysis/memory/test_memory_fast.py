"""The fast paths of the traced training step give what the slow ones give: the direct output rules
(netprobe.analysis.memory.fastgrad) agree with torch's meta kernels on every operator call of zoo steps, and a meta
model traced as it is (netprobe.analysis.memory.borrow) costs what its meta copy costs and comes back unchanged."""

import pytest
import torch

from netprobe.analysis.counting import fastmeta
from netprobe.analysis.memory import borrow, fastgrad
from netprobe.analysis.memory.cost import Settings, training_cost

from helpers import meta_model

aten = torch.ops.aten
# The rules fastgrad registers (the forward's own rules are checked in test_trace.py).
OURS = {op for op, fn in fastmeta.RULES.items() if fn.__module__ == fastgrad.__name__} | {
    aten.lerp_.Scalar, aten.addcmul_.default, aten.addcdiv_.default}


def _layout(value):
    """What the step's accounting reads of an output: metadata, storage size and offset."""
    if isinstance(value, (tuple, list)):
        return [_layout(v) for v in value]
    if not isinstance(value, torch.Tensor):
        return value
    return (tuple(value.shape), value.stride(), value.dtype, value.storage_offset(), value.untyped_storage().nbytes())


def _storages(value):
    return {t.untyped_storage()._cdata for t in (value if isinstance(value, (tuple, list)) else [value])
            if isinstance(t, torch.Tensor)}


def _checked(monkeypatch, seen):
    """Every rule's answer compared with the kernel's, each skipped update run by the kernel without error."""
    outputs, skips = fastmeta.outputs, fastgrad.skips

    def check_outputs(func, args, kwargs):
        fast = outputs(func, args, kwargs)
        if fast is not None and func in OURS:
            real = func(*args, **kwargs)
            assert _layout(fast) == _layout(real), func
            inputs = _storages([*args, *[t for a in args if isinstance(a, (list, tuple)) for t in a]])
            assert (_storages(fast) <= inputs) == (_storages(real) <= inputs), func  # fresh or in place, alike
            seen.add(str(func))
        return fast

    def check_skips(func, args, kwargs):
        skipped = skips(func, args, kwargs)
        if skipped:
            assert func(*args, **kwargs) is None
            seen.add(str(func))
        return skipped

    monkeypatch.setattr(fastmeta, "outputs", check_outputs)
    monkeypatch.setattr(fastgrad, "skips", check_skips)


@pytest.mark.parametrize("name, size, settings", [
    ("resnet20", (2, 3, 32, 32), Settings(optimizer="adam")),
    ("resnet20", (2, 3, 32, 32), Settings(optimizer="adamw", allocator="cuda", checkpoint_blocks=True)),
    ("lenet5", (2, 1, 32, 32), Settings(optimizer="momentum", allocator="cuda")),
    ("lenet5", (2, 1, 32, 32), Settings(optimizer="sgd", amp="bf16")),
    ("inception_block", (2, 192, 8, 8), Settings(optimizer="adam", dtype="bfloat16", allocator="cuda")),
    ("resnet18", (2, 3, 32, 32), Settings(optimizer="momentum", channels_last=True)),
])
def test_rules_agree_with_kernels_on_zoo_steps(monkeypatch, name, size, settings):
    seen = set()
    _checked(monkeypatch, seen)
    training_cost(meta_model(name), size, settings)
    assert seen  # the rules were used


def test_every_rule_is_exercised(monkeypatch):
    seen = set()
    _checked(monkeypatch, seen)
    for optimizer, allocator in (("adam", "none"), ("adam", "cuda"), ("momentum", "cuda"), ("adamw", "cuda")):
        training_cost(meta_model("resnet20"), (2, 3, 32, 32), Settings(optimizer=optimizer, allocator=allocator))
    expected = {"aten.threshold_backward.default", "aten.native_batch_norm_backward.default",
                "aten.convolution_backward.default", "aten.nll_loss_forward.default", "aten.nll_loss_backward.default",
                "aten._log_softmax_backward_data.default", "aten.zeros_like.default", "aten._foreach_sqrt.default",
                "aten.lerp_.Scalar", "aten.addcmul_.default", "aten.addcdiv_.default",
                "aten._foreach_addcdiv_.ScalarList", "aten._foreach_mul_.Scalar", "aten._foreach_lerp_.Scalar"}
    assert expected <= seen, expected - seen


def _meta(*shape, dtype=torch.float32):
    return torch.empty(shape, device="meta", dtype=dtype)


@pytest.mark.parametrize("op, args", [
    # batch norm backward without the input gradient: the decomposition returns one anyway
    (aten.native_batch_norm_backward.default, (_meta(2, 4, 3, 3), _meta(2, 4, 3, 3), _meta(4), None, None, _meta(4),
                                               _meta(4), True, 1e-5, [False, True, True])),
    (aten.threshold_backward.default, (_meta(4, 4).t(), _meta(4, 4), 0.0)),  # not contiguous
    (aten.convolution_backward.default, (_meta(2, 4, 3, 3), _meta(2, 3, 5, 5, dtype=torch.bfloat16), _meta(4, 3, 3, 3),
                                         [4], [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [True, True, True])),
    (aten.nll_loss_forward.default, (_meta(2, 5), _meta(2, dtype=torch.int64), _meta(5), 1, -100)),  # class weights
    (aten.nll_loss_forward.default, (_meta(2, 5), _meta(2, dtype=torch.int64), None, 0, -100)),  # no reduction
])
def test_rules_decline_the_unusual(op, args):
    assert fastmeta.outputs(op, args, {}) is None


def test_updates_of_real_tensors_are_not_skipped():
    # Adam's step counters live on the CPU: their update has a value, so the kernel must run
    steps = [torch.zeros(()), torch.zeros(())]
    assert not fastgrad.skips(aten._foreach_add_.Scalar, (steps, 1.0), {})
    assert fastgrad.skips(aten._foreach_add_.Scalar, ([_meta(3), _meta(2)], 1.0), {})
    assert not fastgrad.skips(aten._foreach_add_.List, ([_meta(3), _meta(2)], [_meta(3), _meta(3)]), {})


def _figures(cost):
    return cost.totals, cost.layers.to_csv(), cost.timeline.to_csv(), cost.cuda, cost.blocks.to_csv()


@pytest.mark.parametrize("name, size", [("resnet20", (2, 3, 32, 32)), ("inception_block", (2, 192, 8, 8))])
def test_a_meta_model_is_traced_as_it_is_and_comes_back_unchanged(name, size):
    model = meta_model(name).eval()
    *others, last = model.parameters()
    last.grad = grad = torch.empty_like(last)
    settings = Settings(optimizer="adam", allocator="cuda")
    cost = training_cost(model, size, settings)
    assert borrow.traceable_as_is(model, torch.float32)
    assert not any(m.training for m in model.modules())
    assert last.grad is grad and all(p.grad is None for p in others)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    # the figures a copy gives: a CPU model (copied to meta), a fresh meta model, the same one again
    assert _figures(training_cost(meta_model(name).to_empty(device="cpu"), size, settings)) == _figures(cost)
    assert _figures(training_cost(meta_model(name), size, settings)) == _figures(cost)
    assert _figures(training_cost(model, size, settings)) == _figures(cost)


def test_models_that_a_copy_would_change_are_copied():
    shared = torch.nn.Linear(4, 4, device="meta")
    tied = torch.nn.Sequential(shared, torch.nn.ReLU(), torch.nn.Linear(4, 4, device="meta"))
    tied[2].weight = torch.nn.Parameter(shared.weight.view(4, 4))  # another Parameter on the same storage
    assert not borrow.traceable_as_is(tied, torch.float32)
    assert not borrow.traceable_as_is(torch.nn.Linear(4, 4, device="meta"), torch.bfloat16)
    assert not borrow.traceable_as_is(torch.nn.Linear(4, 4), torch.float32)
    assert borrow.traceable_as_is(torch.nn.Linear(4, 4, device="meta"), torch.float32)
