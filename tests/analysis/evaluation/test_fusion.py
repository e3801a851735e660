"""oneDNN fusion of the folded graph: conv + add + ReLU as one primitive gives the eager outputs, writes the add
in place only into tensors the graph made and nobody reads later, and follows weight updates after refresh."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netprobe
from netprobe.analysis.evaluation import FastEval
from netprobe.analysis.evaluation import fusion

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch has no oneDNN")


def _conv(channels=4):
    conv = nn.Conv2d(channels, channels, 3, padding=1)
    with torch.no_grad():
        conv.weight.normal_(0, 0.3)
        conv.bias.uniform_(-0.5, 0.5)
    return conv


class AddInput(nn.Module):
    """relu(conv(x) + x): the other operand is the caller's tensor, so the sum must go to a fresh tensor."""

    def __init__(self):
        super().__init__()
        self.conv = _conv()

    def forward(self, x):
        return F.relu(self.conv(x) + x)


class ReadAfter(nn.Module):
    """a = conv1(x); conv2(a) + a, then a is read again: writing the sum into a would change the result."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = _conv(), _conv()

    def forward(self, x):
        a = self.conv1(x)
        b = F.relu(self.conv2(a) + a)
        return b * a


class Chain(nn.Module):
    """Two basic blocks: each sum may overwrite the block's input, read before only by the block's first conv."""

    def __init__(self):
        super().__init__()
        self.stem, self.conv1, self.conv2, self.conv3, self.conv4 = (_conv() for _ in range(5))

    def forward(self, x):
        a = F.relu(self.stem(x))
        b = F.relu(self.conv2(F.relu(self.conv1(a))) + a)
        return self.conv4(F.relu(self.conv3(b))) + b


class SelfAdd(nn.Module):
    """conv(a) + a: the conv reads the tensor the sum would overwrite, so the sum goes to a fresh tensor."""

    def __init__(self):
        super().__init__()
        self.stem, self.conv = _conv(), _conv()

    def forward(self, x):
        a = F.relu(self.stem(x))
        return self.conv(a) + a


class WrittenBetween(nn.Module):
    """conv(a), then an in-place ReLU of a before the sum: the fused conv would run at the sum and read the new a."""

    def __init__(self):
        super().__init__()
        self.stem, self.conv, self.relu = _conv(), _conv(), nn.ReLU(inplace=True)

    def forward(self, x):
        a = self.stem(x)
        y = self.conv(a)
        return y + self.relu(a)


class Broadcast(nn.Module):
    """conv(x) + a (1, C, 1, 1) tensor: not the conv's shape, so the add stays a separate op."""

    def __init__(self):
        super().__init__()
        self.conv = _conv()
        self.register_buffer("shift", torch.linspace(-1, 1, 4).reshape(1, 4, 1, 1))

    def forward(self, x):
        return self.conv(x) + self.shift


def _run(model, x):
    evaluator = FastEval(model.eval(), compile=False)
    with torch.inference_mode():
        return evaluator, evaluator(evaluator.layout(x))


@pytest.mark.parametrize("model, adds", [(AddInput, ["fresh"]), (ReadAfter, [None, "fresh"]),
                                         (Chain, [None, None, "inplace", None, "inplace"]),
                                         (SelfAdd, [None, "fresh"]), (WrittenBetween, [None, None]),
                                         (Broadcast, [None])])
def test_fused_equals_eager_and_adds_in_place_only_where_safe(model, adds):
    torch.manual_seed(0)
    model = model()
    x = torch.randn(3, 4, 6, 6)
    kept = x.clone()
    with torch.inference_mode():
        want = model.eval()(x)
    evaluator, got = _run(model, x)
    assert evaluator.mode == "folded+fused"
    assert [conv.add for conv in evaluator._fused] == adds
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert torch.equal(x, kept)  # the caller's batch is never written


def test_chain_fuses_relu_into_the_first_sum_not_the_last():
    evaluator, _ = _run(Chain(), torch.randn(1, 4, 5, 5))
    assert [conv.relu for conv in evaluator._fused] == [True, True, True, True, False]


def test_refresh_follows_weight_updates_and_other_batch_shapes():
    torch.manual_seed(0)
    model = netprobe.load("resnet20", width=4).eval()
    x = torch.randn(8, 3, 32, 32)
    evaluator, _ = _run(model, x)
    assert evaluator.mode == "folded+fused"
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.1)
        model.layer2[0].bn1.running_var.mul_(3.0)
    evaluator.refresh()
    with torch.inference_mode():
        want = model(x[:5])
        # A smaller batch than the weights were packed for, and the default (NCHW) layout.
        for got in (evaluator(evaluator.layout(x[:5])), evaluator(x[:5])):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))


def test_a_fusion_failure_runs_the_folded_graph(monkeypatch):
    def refuses(*args):
        raise RuntimeError("could not create a primitive descriptor\ndetails")

    monkeypatch.setattr(fusion, "fuse_pointwise", refuses)
    torch.manual_seed(0)
    model = Chain()
    x = torch.randn(2, 4, 6, 6)
    with torch.inference_mode():
        want = model.eval()(x)
    evaluator, got = _run(model, x)
    assert evaluator.mode == "folded" and not evaluator._fused
    assert evaluator.note == "evaluation: folded; not fused (RuntimeError: could not create a primitive descriptor)"
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_compiling_skips_fusion(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda fn, **options: fn)
    evaluator = FastEval(Chain().eval(), compile=True)
    with torch.inference_mode():
        evaluator(torch.randn(1, 4, 5, 5))
    assert evaluator.mode == "folded+compiled" and not evaluator._fused


class Paddings(nn.Module):
    """String paddings: "same" (odd kernel), "valid" (grouped 1x1), and "same" with an even kernel, which pads
    one side more than the other and stays the folded conv."""

    def __init__(self):
        super().__init__()
        self.same = nn.Conv2d(3, 8, 3, padding="same", dilation=2)
        self.valid = nn.Conv2d(8, 8, 1, padding="valid", groups=2)
        self.even = nn.Conv2d(8, 4, 2, padding="same")

    def forward(self, x):
        return self.even(F.relu(self.valid(F.relu(self.same(x)))))


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's, for the even conv
def test_string_paddings_fuse_where_symmetric():
    torch.manual_seed(0)
    model = Paddings()
    x = torch.randn(2, 3, 9, 9)
    with torch.inference_mode():
        want = model.eval()(x)
    evaluator, got = _run(model, x)
    assert evaluator.mode == "folded+fused" and [c._args[0] for c in evaluator._fused] == [[2, 2], [0, 0]]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


# Reproducers from a review of the first version, each of which gave other numbers than the eager forward (or
# wrote into the caller's tensor) before the fixes: a conv module called twice, a conv moved past a write to
# what it reads, `out=`, a sum that broadcasts over the batch, a model that writes into its input.

class SharedConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = _conv()

    def forward(self, x):
        return self.conv(F.relu(self.conv(x)))


class MovedPastSum(nn.Module):
    def __init__(self):
        super().__init__()
        self.c0, self.c1, self.c3 = _conv(), _conv(), _conv()

    def forward(self, x):
        a = self.c0(x)
        y = self.c1(x)
        t = self.c3(a)
        u = y + a  # may overwrite a: c3 must not move past it
        return u * F.relu(t)


class WrittenBeforeRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.conv, self.act = _conv(), _conv(), nn.ReLU(inplace=True)

    def forward(self, x):
        a = self.stem(x)
        y = self.conv(a)
        b = self.act(a)
        return F.relu(y) + b


class OtherWrittenBeforeRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.stem, self.act = _conv(), _conv(), nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.conv(x)
        w = self.stem(x)
        t = y + w
        b = self.act(w)
        return F.relu(t) + b


class OutKeyword(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.conv, self.stem2 = _conv(), _conv(), _conv()

    def forward(self, x):
        a = self.stem(x)
        y = self.conv(a)
        w = self.stem2(x)
        torch.mul(a, 2.0, out=a)
        return y + w + a


class ConvOfParameter(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.c0 = _conv(), _conv()
        self.pos = nn.Parameter(torch.randn(1, 4, 6, 6))

    def forward(self, x):
        return F.relu(self.conv(self.pos) + self.c0(x))  # (1, ...) + (N, ...): a broadcast, not fused


class ScalesItsInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = _conv()

    def forward(self, x):
        x.mul_(2.0)
        return F.relu(self.conv(x))


@pytest.mark.parametrize("model", [SharedConv, MovedPastSum, WrittenBeforeRelu, OtherWrittenBeforeRelu, OutKeyword,
                                   ConvOfParameter, ScalesItsInput])
@pytest.mark.parametrize("first", [1, 3])
def test_reviewed_cases_equal_eager_at_every_batch(model, first):
    torch.manual_seed(0)
    model = model().eval()
    x = torch.randn(3, 4, 6, 6).contiguous(memory_format=torch.channels_last)
    evaluator = FastEval(model)
    with torch.inference_mode():
        for batch in (x[:first], x):  # the first call sets the shapes; a later one has another batch
            mine, theirs = batch.clone(), batch.clone()
            want = model(theirs)
            got = evaluator(evaluator.layout(mine))
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(mine, theirs)  # the input changed exactly as the model changes it
    assert evaluator.mode == "folded+fused"


def _relu_net():
    torch.manual_seed(0)
    return nn.Sequential(_conv(), nn.ReLU(), _conv(), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)).eval()


@pytest.mark.parametrize("spoil", ["weight", "input"])
def test_nan_propagates_as_in_torch_where_fused_relu_would_zero_it(spoil):
    model, x = _relu_net(), torch.randn(3, 4, 6, 6)
    evaluator = FastEval(model)
    with torch.inference_mode():
        evaluator(x)  # fused while everything is finite
    assert evaluator._fused and all(conv.relu for conv in evaluator._fused)
    with torch.no_grad():
        if spoil == "weight":
            model[2].weight[0, 0, 0, 0] = float("nan")
            evaluator.refresh()
        else:
            x[0, 0, 0, 0] = float("nan")
    with torch.inference_mode():
        want, got = model(x), evaluator(x)
    assert torch.isnan(want[0]).all()  # the spoilt sample (a weight spoils them all)
    torch.testing.assert_close(got, want, equal_nan=True)


@pytest.mark.parametrize("scale, fused_runs", [(1e31, 0), (1e16, 1)])  # a huge input; a huge output (two convs)
def test_values_near_overflow_are_evaluated_unfused(scale, fused_runs):
    model, x = _relu_net(), torch.randn(3, 4, 6, 6).abs()
    evaluator = FastEval(model)
    with torch.inference_mode():
        evaluator(x)
    calls = {"fused": 0, "folded": 0}
    for key, attribute in (("fused", "_fused_forward"), ("folded", "_forward")):
        def counted(batch, run=getattr(evaluator, attribute), key=key):
            calls[key] += 1
            return run(batch)
        setattr(evaluator, attribute, counted)
    if scale > 1e20:
        x = x * scale
    else:
        with torch.no_grad():
            for layer in (model[0], model[2]):
                layer.weight.mul_(scale)
        evaluator.refresh()
    with torch.inference_mode():
        want, got = model(x), evaluator(x)
    assert calls == {"fused": fused_runs, "folded": 1}
    torch.testing.assert_close(got, want)
