"""ImageNet and CIFAR ResNets: published parameter counts, names, shortcuts, plain and pre-activation twins."""

import pytest
import torch
import torch.nn.functional as F

from netprobe.errors import NetprobeError
from netprobe.zoo import load
from netprobe.zoo.cifar_resnet import BasicBlock as CifarBlock
from netprobe.zoo.cifar_resnet import cifar_resnet, load_state_dict_compat
from netprobe.zoo.resnet import BasicBlock, Bottleneck

from helpers import meta_forward, meta_model, param_count

IMAGENET = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
CIFAR = ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202"]

# torchvision's docs, `num_params` of ResNet18_Weights ... ResNet152_Weights.IMAGENET1K_V1.
# He et al. 2016 Table 6 gives 0.27M / 0.46M / 0.66M / 0.85M / 1.7M / 19.4M for the CIFAR nets; the exact
# figures are checked against a layer-by-layer hand count in test_cifar_counts_by_hand.
PARAMS = {
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
    "resnet101": 44_549_160, "resnet152": 60_192_808,
    "resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586,
    "resnet56": 853_018, "resnet110": 1_727_962, "resnet1202": 19_421_274,
}


@pytest.mark.parametrize("name", list(PARAMS))
def test_parameter_counts_match_published_figures(name):
    assert param_count(meta_model(name)) == PARAMS[name]


@pytest.mark.parametrize("name, n", [("resnet20", 3), ("resnet32", 5), ("resnet44", 7), ("resnet56", 9),
                                     ("resnet110", 18), ("resnet1202", 200)])
def test_cifar_counts_by_hand(name, n):
    # conv1 + bn1; stage 1: n blocks of two 16->16 convs + 2 BNs; stages 2, 3: a widening block, n - 1 more; linear.
    stage1 = n * (2 * 16 * 16 * 9 + 2 * 2 * 16)
    stage2 = (16 * 32 * 9 + 32 * 32 * 9 + 2 * 2 * 32) + (n - 1) * (2 * 32 * 32 * 9 + 2 * 2 * 32)
    stage3 = (32 * 64 * 9 + 64 * 64 * 9 + 2 * 2 * 64) + (n - 1) * (2 * 64 * 64 * 9 + 2 * 2 * 64)
    assert 3 * 16 * 9 + 2 * 16 + stage1 + stage2 + stage3 + 64 * 10 + 10 == PARAMS[name]


def _cifar_count(n, w, bn=True):
    """He et al.'s CIFAR ResNet counted by hand at stage widths w, 2w, 4w (the paper's w is 16)."""
    convs = 27 * w + 2 * n * 9 * w * w
    convs += (2 * 9 * w * w + 4 * 9 * w * w + (n - 1) * 8 * 9 * w * w)
    convs += (8 * 9 * w * w + 16 * 9 * w * w + (n - 1) * 32 * 9 * w * w)
    norms = 2 * w * (1 + 2 * n) + 2 * 2 * w * 2 * n + 2 * 4 * w * 2 * n
    return convs + (norms if bn else 0) + 4 * w * 10 + 10


@pytest.mark.parametrize("n, width", [(3, 16), (3, 8), (5, 4), (9, 32)])
def test_cifar_width_option_counts_by_hand(n, width):
    assert _cifar_count(3, 16) == PARAMS["resnet20"]
    assert param_count(meta_model(f"resnet{6 * n + 2}", width=width)) == _cifar_count(n, width)


@pytest.mark.parametrize("plain", [False, True])
def test_cifar_without_batchnorm(plain):
    model = load("resnet20", bn=False, plain=plain)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert param_count(model) == _cifar_count(3, 16, bn=False)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_odd_width_pads_the_shortcut_on_both_sides():
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        out = _zero_convs(CifarBlock(3, 6, stride=2))(x)
    assert torch.equal(out[:, 1:4], x[:, :, ::2, ::2].relu())
    assert not out[:, 0].any() and not out[:, 4:].any()


@pytest.mark.parametrize("width", [0, -4, 2.5, True])
def test_cifar_width_must_be_a_positive_integer(width):
    with pytest.raises(NetprobeError, match="width"):
        load("resnet20", width=width)


@pytest.mark.parametrize("name", CIFAR)
def test_plain_cifar_nets_keep_the_parameter_count(name):
    # Option-A shortcuts have no parameters, so removing them changes nothing in the count.
    assert param_count(meta_model(name, plain=True)) == PARAMS[name]


@pytest.mark.parametrize("name", IMAGENET)
def test_plain_imagenet_nets_run_and_have_no_projection(name):
    model = meta_model(name, plain=True)
    assert not [n for n, _ in model.named_modules() if "downsample" in n]
    # The projections are the only parameters that go: one 1x1 conv + BN per stage that changes shape.
    expansion = 4 if name in ("resnet50", "resnet101", "resnet152") else 1
    stages = [(64, 64 * expansion, 64 * expansion != 64)] + [(c * expansion // 2, c * expansion, True)
                                                             for c in (128, 256, 512)]
    projections = sum(cin * cout + 2 * cout for cin, cout, needed in stages if needed)
    assert param_count(model) == PARAMS[name] - projections
    assert meta_forward(name, (2, 3, 224, 224), plain=True).shape == (2, 1000)


@pytest.mark.parametrize("name", IMAGENET)
def test_preact_and_plain_preact_run_at_224(name):
    assert meta_forward(name, (2, 3, 224, 224), preact=True).shape == (2, 1000)
    assert meta_forward(name, (2, 3, 224, 224), preact=True, plain=True).shape == (2, 1000)


def test_resnet18_preact_real_forward_at_64():
    torch.manual_seed(0)
    model = load("resnet18", preact=True, num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    # Projections in pre-activation nets are a bare 1x1 conv fed by an already normalised tensor.
    assert [type(m).__name__ for m in model.layer2[0].downsample] == ["Conv2d"]
    assert isinstance(model.final_bn, torch.nn.BatchNorm2d)


@pytest.mark.parametrize("name", ["resnet20", "resnet56"])
@pytest.mark.parametrize("plain", [False, True])
@pytest.mark.parametrize("size", [32, 64])
def test_cifar_real_forward(name, plain, size):
    torch.manual_seed(0)
    model = load(name, plain=plain).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_resnet1202_on_meta():
    assert meta_forward("resnet1202", (2, 3, 32, 32)).shape == (2, 10)


def test_imagenet_nets_at_another_size():
    assert meta_forward("resnet50", (2, 3, 160, 160)).shape == (2, 1000)


def test_state_dict_keys_match_torchvision():
    # Names from torchvision/models/resnet.py: conv1/bn1 stem, layerK.I blocks, downsample = Sequential(conv, BN).
    sd = meta_model("resnet50").state_dict()
    for key in ["conv1.weight", "bn1.weight", "bn1.running_mean", "bn1.num_batches_tracked",
                "layer1.0.conv1.weight", "layer1.0.bn3.bias", "layer1.0.downsample.0.weight",
                "layer1.0.downsample.1.running_var", "layer2.0.downsample.0.weight", "layer3.5.conv3.weight",
                "layer4.2.bn3.weight", "fc.weight", "fc.bias"]:
        assert key in sd, key
    assert tuple(sd["layer2.0.downsample.0.weight"].shape) == (512, 256, 1, 1)
    assert tuple(sd["fc.weight"].shape) == (1000, 2048)
    # 53 convs, 53 BNs (weight, bias, running_mean, running_var, num_batches_tracked), fc weight + bias.
    assert len(sd) == 53 + 53 * 5 + 2
    sd18 = meta_model("resnet18").state_dict()
    assert "layer1.0.downsample.0.weight" not in sd18 and "layer2.0.downsample.1.weight" in sd18
    assert "layer4.1.conv2.weight" in sd18 and "layer1.0.conv3.weight" not in sd18
    assert len(sd18) == 20 + 20 * 5 + 2  # 20 convs (17 + 3 projections), 20 BNs, fc


def test_bottleneck_puts_the_stride_on_the_3x3():
    block = meta_model("resnet50").layer2[0]
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)


def test_cifar_keys_match_akamaster():
    sd = meta_model("resnet20").state_dict()
    for key in ["conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer1.0.bn1.running_var",
                "layer1.0.conv2.weight", "layer1.0.bn2.bias", "layer3.2.conv2.weight", "linear.weight", "linear.bias"]:
        assert key in sd, key
    assert not [k for k in sd if "shortcut" in k or "downsample" in k]


def test_load_state_dict_compat_strips_dataparallel_prefix():
    torch.manual_seed(1)
    source = load("resnet20")
    torch.manual_seed(2)
    target = load("resnet20")
    wrapped = {f"module.{k}": v for k, v in source.state_dict().items()}
    load_state_dict_compat(target, wrapped)
    assert torch.equal(target.conv1.weight, source.conv1.weight)
    assert torch.equal(target.linear.bias, source.linear.bias)
    del wrapped["module.linear.bias"]
    with pytest.raises(RuntimeError, match="linear.bias"):
        load_state_dict_compat(target, wrapped)  # still strict


def test_cifar_resnet_depth_helper():
    with torch.device("meta"):
        assert param_count(cifar_resnet(56)) == PARAMS["resnet56"]
        assert len(cifar_resnet(26).layer1) == 4
    for bad in [21, 2, 0, 8.0, True]:
        with pytest.raises(NetprobeError, match="6n \\+ 2"):
            cifar_resnet(bad)


def _zero_convs(module):
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.zeros_(m.weight)
    return module.eval()  # fresh BN in eval is the identity (mean 0, var 1, weight 1, bias 0)


@pytest.mark.parametrize("block_cls", [BasicBlock, CifarBlock])
def test_plain_block_really_drops_the_skip(block_cls):
    # With every conv zeroed the residual branch is 0: a residual block passes relu(x), a plain one gives 0.
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        assert torch.equal(_zero_convs(block_cls(16, 16))(x), x.relu())
        assert torch.equal(_zero_convs(block_cls(16, 16, plain=True))(x), torch.zeros_like(x))


def test_preact_block_adds_the_raw_input():
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        assert torch.equal(_zero_convs(Bottleneck(64, 16, preact=True))(x), x)  # no ReLU after the addition
        assert torch.equal(_zero_convs(BasicBlock(16, 16, preact=True, plain=True))(x[:, :16]),
                           torch.zeros(2, 16, 8, 8))


def test_option_a_shortcut_subsamples_and_zero_pads():
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        out = _zero_convs(CifarBlock(16, 32, stride=2))(x)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2].relu())
    assert not out[:, :8].any() and not out[:, 24:].any()


def test_plain_and_residual_differ_from_the_same_weights():
    torch.manual_seed(0)
    residual = load("resnet20").eval()
    plain = load("resnet20", plain=True).eval()
    plain.load_state_dict(residual.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(residual(x), plain(x))


def test_initialisation():
    torch.manual_seed(0)
    model = load("resnet18")
    # torchvision: kaiming_normal_(fan_out, relu) -> std sqrt(2 / (64 * 7 * 7)); BN weight 1, bias 0.
    assert model.conv1.weight.std().item() == pytest.approx((2 / (64 * 49)) ** 0.5, rel=0.05)
    assert torch.equal(model.layer1[0].bn2.weight, torch.ones(64))
    assert torch.equal(model.layer1[0].bn2.bias, torch.zeros(64))
    # akamaster: kaiming_normal_ with default fan_in -> std sqrt(2 / (16 * 3 * 3)) for layer2.0.conv1 (16 -> 32).
    cifar = load("resnet20")
    assert cifar.layer2[0].conv1.weight.std().item() == pytest.approx((2 / 144) ** 0.5, rel=0.05)
    assert cifar.linear.weight.std().item() == pytest.approx((2 / 64) ** 0.5, rel=0.15)


def test_imagenet_forward_equals_torchvision_ops():
    # A basic block computed by hand from its own weights: relu(bn2(conv2(relu(bn1(conv1 x)))) + x).
    torch.manual_seed(0)
    block = BasicBlock(8, 8).eval()
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        ref = block.bn2(F.conv2d(block.bn1(F.conv2d(x, block.conv1.weight, padding=1)).relu(),
                                 block.conv2.weight, padding=1))
        assert torch.allclose(block(x), (ref + x).relu())
