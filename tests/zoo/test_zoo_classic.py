"""LeNet-5, AlexNet and VGG: parameter counts, output shapes, torchvision key names, initialisation."""

import math

import pytest
import torch

from netprobe.zoo import list_models, load, model_spec

from helpers import meta_model, param_count


def _conv(c_in, c_out, k):
    return c_out * c_in * k * k + c_out


def _fc(n_in, n_out):
    return n_in * n_out + n_out


# Hand arithmetic, layer by layer (pooling, tanh and LRN have no parameters).
LENET5 = _conv(1, 6, 5) + _conv(6, 16, 5) + _fc(16 * 5 * 5, 120) + _fc(120, 84) + _fc(84, 10)
ALEXNET_ORIGINAL = (_conv(3, 96, 11) + _conv(96, 256, 5) + _conv(256, 384, 3) + _conv(384, 384, 3)
                    + _conv(384, 256, 3) + _fc(256 * 6 * 6, 4096) + _fc(4096, 4096) + _fc(4096, 1000))

PARAMS = {
    "lenet5": 61_706,  # the task's figure; equals LENET5 above
    "alexnet_original": ALEXNET_ORIGINAL,
    # torchvision's model docs (`num_params` in each weights enum's meta)
    "alexnet": 61_100_840,
    "vgg11": 132_863_336,
    "vgg13": 133_047_848,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840,
    "vgg13_bn": 133_053_736,
    "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248,
}


def test_families_register_exactly_these_models():
    assert list_models(family="lenet") == ["lenet5"]
    assert list_models(family="alexnet") == ["alexnet", "alexnet_original"]
    assert list_models(family="vgg") == ["vgg11", "vgg11_bn", "vgg13", "vgg13_bn",
                                         "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]


def test_hand_counts():
    assert LENET5 == 156 + 2_416 + 48_120 + 10_164 + 850 == 61_706
    # conv1-5: 34,944 + 614,656 + 885,120 + 1,327,488 + 884,992; fc6-8: 37,752,832 + 16,781,312 + 4,097,000
    assert ALEXNET_ORIGINAL == 62_378_344


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_count(name):
    assert param_count(meta_model(name)) == PARAMS[name]


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_output_shape_at_default_input(name):
    spec = model_spec(name)
    model = meta_model(name)
    with torch.device("meta"):
        out = model(torch.empty(2, *spec.input_size))
    assert out.shape == (2, spec.num_classes)


@pytest.mark.parametrize("name", ["alexnet", "vgg11", "vgg16_bn", "vgg19"])
def test_adaptive_pool_accepts_other_sizes(name):
    model = meta_model(name, num_classes=7, in_channels=1)
    with torch.device("meta"):
        assert model(torch.empty(2, 1, 160, 160)).shape == (2, 7)
        assert model.features(torch.empty(2, 1, 160, 160)).shape[1:] == ((256, 4, 4) if name == "alexnet"
                                                                         else (512, 5, 5))


def test_alexnet_original_feature_maps_follow_the_paper():
    model = meta_model("alexnet_original")
    with torch.device("meta"):
        x = torch.empty(1, 3, 227, 227)
        assert model.features[0](x).shape == (1, 96, 55, 55)  # paper section 3.5
        assert model.features(x).shape == (1, 256, 6, 6)


def test_lenet5_real_forward_and_options():
    torch.manual_seed(0)
    model = load("lenet5").eval()
    out = model(torch.randn(3, 1, 32, 32))
    assert out.shape == (3, 10) and torch.isfinite(out).all()
    assert model.features(torch.randn(1, 1, 32, 32)).shape == (1, 16, 5, 5)
    assert load("lenet5", num_classes=4, in_channels=3)(torch.randn(1, 3, 32, 32)).shape == (1, 4)
    # LeCun et al. 1998, appendix C: weights uniform in +-2.4 / fan_in
    conv1 = model.features[0]
    assert conv1.weight.abs().max() <= 2.4 / 25
    assert conv1.weight.abs().max() > 2.4 / 25 * 0.8


def test_alexnet_original_real_forward_and_init():
    torch.manual_seed(0)
    model = load("alexnet_original", num_classes=5).eval()
    out = model(torch.randn(1, 3, 227, 227))
    assert out.shape == (1, 5) and torch.isfinite(out).all()
    # Krizhevsky et al. 2012, section 5: biases 1 in conv2, conv4, conv5, fc6, fc7; 0 in conv1, conv3, fc8
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert [m.bias[0].item() for m in layers] == [0, 1, 0, 1, 1, 1, 1, 0]
    assert abs(layers[5].weight.std().item() - 0.01) < 1e-3


def test_alexnet_state_dict_keys_match_torchvision():
    # torchvision/models/alexnet.py: convs at features.0/3/6/8/10, linears at classifier.1/4/6
    expected = [f"features.{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias")]
    expected += [f"classifier.{i}.{p}" for i in (1, 4, 6) for p in ("weight", "bias")]
    assert list(meta_model("alexnet").state_dict()) == expected
    shapes = {k: tuple(v.shape) for k, v in meta_model("alexnet").state_dict().items()}
    assert shapes["features.0.weight"] == (64, 3, 11, 11)
    assert shapes["classifier.1.weight"] == (4096, 9216)


def test_vgg_state_dict_keys_match_torchvision():
    # torchvision/models/vgg.py make_layers: conv, [bn,] ReLU per entry, MaxPool per "M"
    keys = list(meta_model("vgg16").state_dict())
    convs = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
    assert keys == ([f"features.{i}.{p}" for i in convs for p in ("weight", "bias")]
                    + [f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")])
    bn_keys = set(meta_model("vgg16_bn").state_dict())
    assert {"features.0.weight", "features.1.running_mean", "features.1.num_batches_tracked",
            "features.40.weight", "features.41.running_var", "classifier.6.bias"} <= bn_keys
    assert "features.43.weight" not in bn_keys  # the last max pool
    assert not any(k.startswith("avgpool") for k in bn_keys)


def test_vgg_initialisation_as_torchvision():
    torch.manual_seed(0)
    model = load("vgg11_bn", num_classes=10)
    conv = model.features[0]
    # kaiming_normal_(mode="fan_out", nonlinearity="relu"): std = sqrt(2 / (64 * 3 * 3))
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / 576), rel=0.1)
    assert model.features[1].weight.eq(1).all() and model.features[1].bias.eq(0).all()
    assert model.classifier[0].weight.std().item() == pytest.approx(0.01, rel=0.02)
    assert all(m.bias.eq(0).all() for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_forward_traces_op_by_op(name):
    graph = torch.fx.symbolic_trace(meta_model(name)).graph
    assert sum(node.op == "call_module" for node in graph.nodes) > 5
