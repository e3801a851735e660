"""`training_cost` against torch's own accounting of a real CPU step: the storages autograd saves
(saved_tensors_hooks), FlopCounterMode's backward count and the profiler's memory events."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from netprobe.analysis.memory.cost import Settings, make_optimizer, training_cost
from netprobe.analysis.memory.step import loss_of
from netprobe.zoo import list_models, model_spec

from zoo_helpers import meta_model

# The smallest inputs each model takes (AlexNet's 11x11/4 stem and three 3x3/2 pools need 63 pixels; the
# paper's AlexNet has no adaptive pool, so 227).
SMALL = {"alexnet": 64, "alexnet_original": 227, "inception_block": 4, "unet": 188}
# Narrower widths where the architecture allows it (the same layers, fewer channels), to keep the real run cheap.
NARROW = {"unet": {"base": 4}}
# Too slow for the real CPU pass on two shared cores (VGG's 120M-parameter classifier; 1,202 layers).
HEAVY = {"vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "resnet1202", "resnet152", "densenet201",
         "densenet161"}


def _size(name):
    c, h, w = model_spec(name).input_size
    side = SMALL.get(name, min(h, 32))
    return (2, c, side, side)


def _real(name):
    """The model with zero weights: what autograd saves and computes depends on shapes only (uninitialised
    memory may hold denormals, which slow the CPU kernels a hundredfold)."""
    model = meta_model(name, **NARROW.get(name, {})).to_empty(device="cpu").train()
    with torch.no_grad():
        for t in model.parameters():
            t.zero_()
    return model


def _saved_storages(model, x):
    """Bytes of the unique storages autograd saves for backward, the model's own tensors excluded; the loss."""
    own = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in own:
            seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_of(model(x))
    return sum(seen.values()), loss


@pytest.mark.parametrize("name", [n for n in list_models() if n not in HEAVY])
def test_saved_bytes_and_backward_flops_match_torch(name, one_thread):
    size = _size(name)
    cost = training_cost(meta_model(name, **NARROW.get(name, {})), size, Settings(optimizer="sgd", batch=2))
    model = _real(name)
    saved, loss = _saved_storages(model, torch.zeros(size))
    assert cost.totals.saved_bytes == saved
    with FlopCounterMode(display=False) as counter:
        loss.backward()
    assert 2 * cost.totals.backward_macs == counter.get_total_flops()
    assert cost.totals.backward_flops > 2 * cost.totals.backward_macs  # the elementwise extras, listed apart
    assert not cost.uncounted_ops, cost.uncounted_ops
    for column in ("forward_flops", "backward_flops", "saved_bytes", "param_bytes"):
        assert int(cost.layers[column].sum()) == getattr(cost.totals, column), column
