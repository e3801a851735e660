"""FastEval: BatchNorm folded into convolutions gives the eager eval outputs, never alters the model, and falls
back to eager when compilation fails."""

import pytest
import torch
from torch import nn

import netprobe
from netprobe.analysis.evaluation import FastEval, FoldedConv

# float32 folding reorders the arithmetic: logits agree to 1e-5 of their largest magnitude (plus 1e-6).
RTOL, ATOL = 1e-5, 1e-6


def _with_stats(model):
    """Non-trivial BatchNorm statistics and affine parameters, as after training, so folding changes numbers."""
    torch.manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


# Inputs small enough for a quick forward; U-Net's unpadded convolutions need 188 (its smallest valid size
# above 64) and the original AlexNet's classifier takes 227 only.
SIZES = {"unet": 188, "alexnet_original": 227}


def _zoo_model(name):
    """`name` with cheap deterministic weights (built on meta, then filled) and trained-like BN statistics."""
    with torch.device("meta"):
        model = netprobe.load(name)
    model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            for p in m.parameters(recurse=False):
                fan_in = p[0].numel() if p.dim() > 1 else 1
                p.uniform_(-1, 1, generator=generator).mul_((3 / fan_in) ** 0.5 if p.dim() > 1 else 0.1)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5, generator=generator)
                m.running_var.uniform_(0.5, 2.0, generator=generator)
                # Near 1, and smaller in very deep nets, so 600 residual sums stay finite.
                m.weight.uniform_(0.5, 1.0, generator=generator).div_(1 + len(list(model.modules())) / 2000)
    return model.eval()


@pytest.mark.parametrize("name", netprobe.list_models())
def test_folded_equals_eager_on_every_zoo_model(name, one_thread):
    model = _zoo_model(name)
    channels, height, _ = netprobe.model_spec(name).input_size
    size = SIZES.get(name, min(height, 64))
    x = torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want = model(x)
    assert torch.isfinite(want).all() and want.abs().max() > 0
    evaluator = FastEval(model, compile=False)
    assert evaluator.mode == "folded"
    with torch.inference_mode():
        got = evaluator(evaluator.layout(x))
    # Every zoo model has float32 2-D convolutions for oneDNN to fuse.
    assert evaluator.mode == "folded+fused" and evaluator._fused
    torch.testing.assert_close(got, want, rtol=RTOL, atol=ATOL * float(want.abs().max()) + ATOL)


@pytest.mark.parametrize("name, options", [("resnet20", {}), ("resnet20", {"plain": True}),
                                           ("vgg11_bn", {"num_classes": 10})])
def test_folding_covers_every_bn_and_leaves_model_alone(name, options):
    torch.manual_seed(0)
    model = _with_stats(netprobe.load(name, **options))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    evaluator = FastEval(model, compile=False)
    folded = [m for m in evaluator._forward.modules() if isinstance(m, FoldedConv)]
    # Every conv of these nets is followed by a BatchNorm and gets folded.
    assert sum(m._source[1] is not None for m in folded) == sum(isinstance(m, nn.BatchNorm2d)
                                                                 for m in model.modules())
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        evaluator(evaluator.layout(x))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(not isinstance(m, FoldedConv) for m in model.modules())


def test_fold_formula_and_refresh_follow_weight_updates():
    conv, bn = nn.Conv2d(1, 2, 1, bias=True), nn.BatchNorm2d(2).eval()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([2.0, 3.0]).reshape(2, 1, 1, 1))
        conv.bias.copy_(torch.tensor([1.0, -1.0]))
        bn.running_mean.copy_(torch.tensor([1.0, 2.0]))
        bn.running_var.copy_(torch.tensor([4.0, 1.0]) - bn.eps)  # sqrt(var + eps) = 2, 1
        bn.weight.copy_(torch.tensor([1.0, 2.0]))
        bn.bias.copy_(torch.tensor([0.5, 0.0]))
    folded = FoldedConv(conv, bn, channels_last=True)
    # W gamma / sqrt(var + eps): 2 * 1 / 2 = 1, 3 * 2 / 1 = 6; (b - mean) * s + beta: 0.5, -6.
    torch.testing.assert_close(folded.weight.flatten(), torch.tensor([1.0, 6.0]))
    torch.testing.assert_close(folded.bias, torch.tensor([0.5, -6.0]))
    with torch.no_grad():
        conv.weight.mul_(2)
    folded.refresh()
    torch.testing.assert_close(folded.weight.flatten(), torch.tensor([2.0, 12.0]))


def test_compile_failure_falls_back_to_eager(monkeypatch):
    def broken(fn, **options):
        def run(*args):
            raise RuntimeError("no C++ compiler found\nsecond line")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    model = _with_stats(netprobe.load("resnet20"))
    evaluator = FastEval(model, compile=True)
    assert evaluator.compiled and evaluator.mode == "folded+compiled"
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        got = evaluator(evaluator.layout(x))
        want = model(x)
    torch.testing.assert_close(got, want, rtol=RTOL, atol=ATOL * float(want.abs().max()) + ATOL)
    assert evaluator.mode == "folded" and not evaluator.compiled
    assert "not compiled (RuntimeError: no C++ compiler found)" in evaluator.note


def test_untraceable_model_runs_unfolded():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent: fx cannot trace it
                x = -x
            return self.bn(self.conv(x))

    model = Branchy().eval()
    evaluator = FastEval(model, compile=False)
    assert evaluator.mode == "eager" and evaluator.note.startswith("evaluation: eager; not folded")
    x = torch.randn(1, 3, 8, 8)
    with torch.inference_mode():
        torch.testing.assert_close(evaluator(x), model(x))


def test_evaluate_matches_the_eager_evaluation_and_restores_train_mode():
    from netprobe.analysis.evaluation import evaluate_fast as evaluate
    from netprobe.data import Split
    from netprobe.train import evaluate as eager_evaluate

    torch.manual_seed(0)
    model = _with_stats(netprobe.load("resnet20", width=4)).train()
    split = Split(torch.randn(20, 3, 32, 32), torch.randint(0, 10, (20,)))
    loss, accuracy = evaluate(model, split, batch_size=8)
    assert model.training
    with torch.inference_mode():
        eager_loss, eager_accuracy = eager_evaluate(model, split, batch_size=8)
    assert loss == pytest.approx(eager_loss, rel=RTOL) and accuracy == eager_accuracy
