"""The trace engine on tiny purpose-built nets whose operators and shapes are known by hand."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from netprobe.analysis.counting.trace import trace
from netprobe.errors import NetprobeError


class Block(nn.Module):
    """conv -> relu (used twice, in place) -> conv, plus a functional shortcut addition."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.conv1(x))
        out = self.conv2(out)
        return self.relu(out + x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.block = Block()
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        x = self.block(self.stem(x))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def _names(t):
    return [op.op._opname for op in t.ops]


def test_operators_in_order_attributed_to_innermost_module():
    t = trace(Net(), (2, 3, 8, 8))
    work = [(op.op._opname, op.module) for op in t.ops if not op.op.is_view]
    assert work == [
        ("convolution", "stem"),
        ("convolution", "block.conv1"),
        ("relu_", "block.relu"),
        ("convolution", "block.conv2"),
        ("add", "block"),  # the functional shortcut belongs to the block that runs it
        ("relu_", "block.relu"),
        ("mean", ""),  # adaptive_avg_pool2d to 1x1 in the root's forward
        ("addmm", "fc"),
    ]


def test_module_calls_in_execution_order_with_depth_parent_and_shapes():
    t = trace(Net(), (2, 3, 8, 8))
    calls = [(c.name, c.type, c.depth) for c in t.modules]
    assert calls == [("", "Net", 0), ("stem", "Conv2d", 1), ("block", "Block", 1), ("block.conv1", "Conv2d", 2),
                     ("block.relu", "ReLU", 2), ("block.conv2", "Conv2d", 2), ("block.relu", "ReLU", 2),
                     ("fc", "Linear", 1)]
    block = t.modules[2]
    assert t.modules[3].parent == 2 and block.parent == 0 and t.modules[0].parent is None
    assert block.input_shapes == ((2, 4, 8, 8),) and block.output_shapes == ((2, 4, 8, 8),)
    assert t.modules[-1].input_shapes == ((2, 4),) and t.modules[-1].output_shapes == ((2, 10),)
    # a call's slice of ops covers its children's
    assert {t.ops[i].module for i in range(block.start, block.stop)} == {"block", "block.conv1", "block.relu",
                                                                       "block.conv2"}


def test_tensor_ids_connect_producers_to_consumers_and_name_parameters():
    t = trace(Net(), (1, 3, 8, 8))
    conv = t.ops[0]
    x, w, b = conv.inputs
    assert x == t.inputs[0] and (w.name, b.name) == ("stem.weight", "stem.bias")
    assert w.shape == (4, 3, 3, 3) and t.params["stem.weight"] == w
    ids = [r.id for op in t.ops for r in op.outputs] + [r.id for r in t.inputs]
    assert len(ids) == len(set(ids))  # every output is a fresh id, in-place ones included
    producers, consumers = t.producers(), t.consumers()
    relu = next(i for i, op in enumerate(t.ops) if op.op._opname == "relu_")
    assert producers[t.ops[relu].inputs[0].id] == 1  # conv1 feeds the in-place relu
    assert t.ops[relu].outputs[0].id != t.ops[relu].inputs[0].id
    assert consumers[t.inputs[0].id] == [0]  # only the stem reads the input


def test_shortcut_reads_the_block_input():
    t = trace(Net(), (1, 3, 8, 8))
    add = next(op for op in t.ops if op.op._opname == "add")
    producers = t.producers()
    sources = {t.ops[producers[r.id]].module for r in add.inputs}
    assert sources == {"block.conv2", "stem"}


def test_user_model_is_untouched():
    model = Net().train()
    before = {k: dict(m.__dict__) for k, m in model.named_modules()}
    trace(model, (1, 3, 8, 8))
    assert model.training and all(m.training for m in model.modules())
    assert all(p.device.type == "cpu" for p in model.parameters())
    for name, m in model.named_modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
        assert set(m.__dict__) == set(before[name])


def test_plain_tensor_attributes_go_to_meta_too():
    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            self.mask = torch.ones(3)  # not a buffer

        def forward(self, x):
            return x * self.mask

    model = Masked()
    t = trace(model, (2, 3))
    assert t.outputs[0].shape == (2, 3) and model.mask.device.type == "cpu"


def test_cost_is_independent_of_batch_size():
    small, large = trace(Net(), (1, 3, 8, 8)), trace(Net(), (4096, 3, 8, 8))
    assert _names(small) == _names(large)
    assert large.outputs[0].shape == (4096, 10)


def test_example_tensors_and_several_inputs():
    class Two(nn.Module):
        def forward(self, a, b):
            return torch.cat([a, b], dim=1)

    t = trace(Two(), [(1, 2, 3), (1, 5, 3)])
    assert [r.shape for r in t.inputs] == [(1, 2, 3), (1, 5, 3)] and t.outputs[0].shape == (1, 7, 3)
    t = trace(nn.Linear(3, 2, dtype=torch.float64), torch.zeros(5, 3, dtype=torch.float64))
    assert t.inputs[0].dtype == torch.float64 and t.outputs[0].shape == (5, 2)


def test_dtype_casts_the_meta_copy():
    t = trace(nn.Linear(3, 2), (1, 3), dtype=torch.float16)
    assert t.outputs[0].dtype == torch.float16 and t.outputs[0].nbytes == 4


def _lenetish():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3), nn.Flatten(),
                         nn.Linear(8 * 2 * 2, 10))


@pytest.mark.parametrize("size, message", [
    # 5x5 -> conv3 -> 3x3 -> pool2 -> 1x1 -> conv3 cannot fit
    ((1, 3, 5, 5), "input 1x3x5x5 is too small: the spatial size reaches zero at 3 (Conv2d) (its input is 1x1)"),
    # 3x3 -> conv3 -> 1x1 -> pool2 -> 0x0
    ((1, 3, 3, 3), "input 1x3x3x3 is too small: the spatial size reaches zero at 2 (MaxPool2d)"),
    ((1, 1, 10, 10), "wrong channel count at 0 (Conv2d): it expects 3 input channels, got 1"),
    # 12x12 -> 10 -> 5 -> 3: 8*3*3 = 72 features where the Linear takes 32
    ((1, 3, 12, 12), "input 1x3x12x12 does not fit at 5 (Linear): it expects 32 input features, got 72"),
])
def test_bad_inputs_are_one_line_errors(size, message):
    with pytest.raises(NetprobeError) as err:
        trace(_lenetish(), size)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_python_errors_in_forward_name_the_module():
    class Picky(nn.Module):
        def forward(self, x):
            raise ValueError("needs a mask\nsecond line")

    with pytest.raises(NetprobeError, match=r"^forward pass failed at inner \(Picky\): ValueError: needs a mask$"):
        trace(_Outer(Picky()), (1, 2))


class _Outer(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)


def test_bad_input_size_values():
    with pytest.raises(NetprobeError, match="positive"):
        trace(nn.Linear(2, 2), (0, 2))


# --- the direct output rules (fastmeta) agree with torch's own meta kernels ---

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from netprobe.analysis.counting import fastmeta  # noqa: E402

aten = torch.ops.aten


def _meta(*shape, dtype=torch.float32):
    return torch.empty(shape, device="meta", dtype=dtype)


def _same_as_kernel(op, *args, answers=False):
    """The rule either declines or returns exactly what the meta kernel returns; it declines what the kernel rejects.
    `answers`: it must not decline anything the kernel accepts with a non-empty output (an empty one is left to the
    kernel on purpose: the trace reports it as too small an input)."""
    fast = fastmeta.outputs(op, args, {})
    try:
        real = op(*args)
    except Exception:
        assert fast is None
        return None
    empty = any(t.numel() == 0 for t in (real if isinstance(real, tuple) else (real,)))
    assert fast is not None or not answers or empty, f"{op} declined arguments its kernel accepts"
    if fast is None:
        return None
    flat = lambda r: [(tuple(t.shape), t.stride(), t.dtype) for t in (r if isinstance(r, tuple) else (r,))]  # noqa
    assert flat(fast) == flat(real), op
    return fast


@pytest.mark.parametrize("op, args", [
    (aten.relu.default, (_meta(2, 3, 4),)),
    (aten.gelu.default, (_meta(2, 3),)),
    (aten.hardtanh.default, (_meta(2, 3), 0.0, 6.0)),
    (aten.pow.Tensor_Scalar, (_meta(5, 4), 0.75)),
    (aten.add.Tensor, (_meta(2, 3, 4, 4), _meta(2, 3, 4, 4))),
    (aten.add.Tensor, (_meta(2, 3, 4, 4), _meta(3, 1, 1))),
    (aten.mul.Tensor, (_meta(2, 3), 2.0)),
    (aten.add_.Tensor, (_meta(2, 3), _meta(2, 3))),
    (aten.relu_.default, (_meta(2, 3),)),
    (aten.native_batch_norm.default, (_meta(2, 4, 5, 5), _meta(4), _meta(4), _meta(4), _meta(4), False, 0.1, 1e-5)),
    (aten._native_batch_norm_legit_no_training.default, (_meta(2, 4, 5), _meta(4), _meta(4), _meta(4), _meta(4),
                                                         0.1, 1e-5)),
    (aten.addmm.default, (_meta(5), _meta(3, 4), _meta(4, 5))),
    (aten.addmm.default, (_meta(5), _meta(3, 4), _meta(5, 4).t())),
    (aten.mm.default, (_meta(3, 4), _meta(4, 2))),
    (aten.bmm.default, (_meta(2, 3, 4), _meta(2, 4, 6))),
    (aten.mean.dim, (_meta(2, 8, 7, 7), [-1, -2], True)),
    (aten.mean.dim, (_meta(2, 8, 7, 7), [2, 3])),
    (aten.cat.default, ([_meta(2, 3, 4, 4), _meta(2, 5, 4, 4)], 1)),
    (aten._adaptive_avg_pool2d.default, (_meta(2, 3, 13, 13), [6, 6])),
    (aten._softmax.default, (_meta(2, 10), 1, False)),
])
def test_rules_match_meta_kernels(op, args):
    assert _same_as_kernel(op, *args) is not None


@pytest.mark.parametrize("op, args", [
    (aten.add.Tensor, (_meta(3, 1), _meta(1, 4))),  # grows both: declined
    (aten.add.Tensor, (_meta(2, 3), _meta(2, 3, dtype=torch.float16))),
    (aten.mm.default, (_meta(3, 4), _meta(5, 2))),
    (aten.cat.default, ([_meta(2, 3), _meta(3, 3)], 1)),
    (aten.relu.default, (_meta(4, 4).t(),)),  # not contiguous
])
def test_rules_decline_the_unusual(op, args):
    assert fastmeta.outputs(op, args, {}) is None


@settings(max_examples=150, deadline=None)
@given(size=st.integers(1, 12), channels=st.sampled_from([(4, 4, 1), (4, 6, 2), (3, 8, 1)]), k=st.integers(1, 5),
       stride=st.integers(1, 3), pad=st.integers(0, 3), dilation=st.integers(1, 2), transposed=st.booleans(),
       out_pad=st.integers(0, 1))
def test_convolution_rule_matches_kernel(size, channels, k, stride, pad, dilation, transposed, out_pad):
    cin, cout, groups = channels
    w = _meta(cin, cout // groups, k, k) if transposed else _meta(cout, cin // groups, k, k)
    _same_as_kernel(aten.convolution.default, _meta(2, cin, size, size + 1), w, _meta(cout), [stride, stride],
                    [pad, pad], [dilation, dilation], transposed, [out_pad, out_pad] if transposed else [0, 0], groups,
                    answers=True)


@settings(max_examples=150, deadline=None)
@given(size=st.integers(1, 12), k=st.integers(1, 4), stride=st.integers(0, 3), pad=st.integers(0, 2),
       dilation=st.integers(1, 2), ceil=st.booleans(), average=st.booleans())
def test_pooling_rules_match_kernels(size, k, stride, pad, dilation, ceil, average):
    x, strides = _meta(2, 3, size, size + 2), [stride] * 2 if stride else []
    if average:
        _same_as_kernel(aten.avg_pool2d.default, x, [k, k], strides, [pad, pad], ceil, answers=True)
    else:
        _same_as_kernel(aten.max_pool2d_with_indices.default, x, [k, k], strides, [pad, pad], [dilation] * 2, ceil,
                        answers=True)
