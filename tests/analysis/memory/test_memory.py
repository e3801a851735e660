"""`training_cost` against torch's own accounting of a real CPU step: the storages autograd saves
(saved_tensors_hooks), FlopCounterMode's backward count and the profiler's memory events."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from netprobe.analysis.memory.cost import Settings, make_optimizer, training_cost
from netprobe.analysis.memory.step import loss_of
from netprobe.zoo import list_models, model_spec

from helpers import meta_model

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
    cost = training_cost(meta_model(name, **NARROW.get(name, {})), size, Settings(optimizer="sgd"))
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


def test_hand_counted_net():
    # conv 3->4 (3x3, no bias) on 1x3x8x8, ReLU, flatten, linear 144->5, cross-entropy:
    # backward MACs: the conv's weight gradient only (its input needs none) 4*6*6 outputs x 27 = 3,888, and the
    # linear's two products (1x5 @ 5x144, 5x1 @ 1x144) 720 each. Saved: the input (768 B), the ReLU output
    # (576 B; the linear's view of it shares the storage), log-softmax's output (20 B), the target (8 B) and
    # nll_loss's total weight (4 B); the weights are parameters, not counted.
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(144, 5))
    cost = training_cost(net, (1, 3, 8, 8), Settings(optimizer="momentum"))
    assert cost.totals.backward_macs == 3888 + 720 + 720
    assert cost.totals.saved_bytes == 768 + 576 + 20 + 8 + 4
    assert cost.totals.optimizer_bytes == cost.totals.param_bytes == (108 + 720 + 5) * 4
    assert [p.requires_grad for p in net.parameters()] == [True] * 3 and net.training  # the model is untouched


@pytest.mark.parametrize("name", ["resnet20", "googlenet"])
def test_amp_saved_bytes_match_cpu_autocast(name, one_thread):
    size = _size(name)
    cost = training_cost(meta_model(name), size, Settings(optimizer="sgd", amp="bf16"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        saved, _ = _saved_storages(_real(name), torch.zeros(size))
    assert cost.totals.saved_bytes == saved


def test_channels_last_saved_bytes_match_a_channels_last_cpu_forward(one_thread):
    size = _size("googlenet")
    cost = training_cost(meta_model("googlenet"), size, Settings(optimizer="sgd", channels_last=True))
    model = _real("googlenet").to(memory_format=torch.channels_last)
    saved, _ = _saved_storages(model, torch.zeros(size).contiguous(memory_format=torch.channels_last))
    assert cost.totals.saved_bytes == saved


def _profiled_peak(model, x, optimizer_name):
    """Peak live bytes of one real CPU step after a warm-up one: the tensors alive before it plus the highest
    net allocation in the profiler's memory events (total_allocated counts from the session's start)."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    optimizer = make_optimizer(optimizer_name, model.parameters())
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    state = [t for s in optimizer.state.values() for t in s.values() if t.dim() > 0]
    before = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
              for t in [*model.parameters(), *model.buffers(), x, *state]}
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        loss = loss_of(model(x))
        loss.backward()
        del loss
        optimizer.step()
    events = []

    def walk(nodes):
        for node in nodes:
            if node.tag == _EventType.Allocation:
                events.append((node.start_time_ns, node.extra_fields.alloc_size, node.extra_fields.total_allocated))
            walk(node.children)

    walk(prof.profiler.kineto_results.experimental_event_tree())
    events.sort()
    start = events[0][2] - events[0][1]
    return sum(before.values()) + max(e[2] for e in events) - start


# Measured (real - predicted) / real, torch 2.13 CPU, batch 2: resnet20 sgd 1.53%, adam 1.06% (the peak is in
# backward, where the convolution backward's workspace, absent on meta, adds 73,728 bytes); where Adam peaks
# in the step (lenet5, vgg11_bn, resnet18, densenet121) no kernel needs one: 12 bytes.
@pytest.mark.parametrize("name, optimizer, tolerance", [("resnet20", "sgd", 0.02), ("resnet20", "adam", 0.02),
                                                         ("lenet5", "adam", 1e-4)])
def test_peak_matches_profiler_memory_events(name, optimizer, tolerance, one_thread):
    size = _size(name)
    predicted = training_cost(meta_model(name), size, Settings(optimizer=optimizer)).totals.peak_bytes
    real = _profiled_peak(_real(name), torch.zeros(size), optimizer)
    assert 0 <= real - predicted <= tolerance * real


def test_checkpointing_lowers_the_peak_and_names_the_blocks():
    cost = training_cost(meta_model("resnet20"), (2, 3, 32, 32), Settings(optimizer="sgd", checkpoint_blocks=True))
    assert list(cost.blocks["block"]) == [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
    assert cost.totals.peak_bytes < cost.plain_peak
    # each block's first convolution recomputed in backward: backward work grows by the blocks' forward work
    plain = training_cost(meta_model("resnet20"), (2, 3, 32, 32), Settings(optimizer="sgd"))
    assert cost.totals.backward_flops - plain.totals.backward_flops == int(cost.blocks["recompute_flops"].sum())


def test_bad_settings_are_one_line_errors():
    from netprobe.errors import NetprobeError

    for bad in ({"optimizer": "rmsprop"}, {"dtype": "int8"}, {"amp": "fp8"}, {"allocator": "tpu"}):
        with pytest.raises(NetprobeError, match="choose one of"):
            Settings(**bad)
    with pytest.raises(NetprobeError, match="positive"):
        training_cost(meta_model("lenet5"), (0, 1, 32, 32))
    with pytest.raises(NetprobeError, match="no residual, dense or inception blocks"):
        training_cost(meta_model("lenet5"), (1, 1, 32, 32), Settings(checkpoint_blocks=True))


def test_caching_allocator_rules():
    # Hand-worked from c10/cuda/CUDACachingAllocator.cpp's constants (512 B blocks, 2 MiB small segments,
    # 20 MiB segments under 10 MiB, larger requests rounded to 2 MiB).
    from netprobe.analysis.memory.allocator import CachingAllocator, allocation_size, round_size

    assert (round_size(1), round_size(512), round_size(513)) == (512, 512, 1024)
    assert allocation_size(1 << 20) == 2 << 20 and allocation_size((1 << 20) + 512) == 20 << 20
    assert allocation_size(10 << 20) == 10 << 20 and allocation_size((10 << 20) + 1) == 12 << 20
    a = CachingAllocator()
    first, second = a.malloc(100), a.malloc(600)  # both packed in one 2 MiB small segment
    assert (a.allocated, a.reserved) == (512 + 1024, 2 << 20)
    a.release(first)
    a.release(second)  # merges back into one free 2 MiB block
    a.malloc(1 << 20)
    assert (a.allocated, a.reserved) == (1 << 20, 2 << 20)
    a.malloc(5 << 20)  # a 20 MiB segment, split: 15 MiB stays free
    a.malloc(15 << 20)  # best fit: the 15 MiB remainder, no new segment
    assert (a.allocated, a.reserved) == (21 << 20, 22 << 20)
    a.malloc((19 << 20) + 1)  # 19 MiB + 512 fits no free block: a new 20 MiB segment, rest under 1 MiB unsplit
    assert (a.allocated, a.reserved) == (41 << 20, 42 << 20)
