"""GoogLeNet, the Inception block, DenseNets and U-Net: published and hand-computed sizes, shapes, names."""

import pytest
import torch

from netprobe.analysis.counting.summary import summary
from netprobe.analysis.counting.trace import trace
from netprobe.errors import NetprobeError
from netprobe.zoo import load
from netprobe.zoo.unet import center_crop

from helpers import meta_forward, meta_model, param_count


# --- Inception block and GoogLeNet -------------------------------------------------------------------------

def test_inception_block_params_by_hand():
    # Conv weights k*k*cin*cout plus cout biases, 192 input channels:
    # 1x1 64: 12,288 + 64 = 12,352            1x1 96: 18,432 + 96 = 18,528
    # 3x3 96->128: 110,592 + 128 = 110,720    1x1 16: 3,072 + 16 = 3,088
    # 5x5 16->32: 12,800 + 32 = 12,832        pool proj 1x1 32: 6,144 + 32 = 6,176
    # total 163,696.
    assert param_count(meta_model("inception_block")) == 163_696


def test_inception_block_shape_and_macs_by_hand():
    assert meta_forward("inception_block", (2, 192, 28, 28)).shape == (2, 256, 28, 28)
    # Every weight is applied once per output pixel: 28 * 28 * 163,328 (the weights above without biases).
    assert summary(meta_model("inception_block"), (1, 192, 28, 28)).totals.macs == 784 * 163_328


# torchvision's docs, `num_params` of GoogLeNet_Weights.IMAGENET1K_V1 (6,624,904); with aux_logits=True the
# two side classifiers add 3,188,968 + 3,191,016 (1x1 conv 512/528->128 + BN, FC 2048->1024, FC 1024->1000).
@pytest.mark.parametrize("options, params", [({}, 6_624_904), ({"aux_logits": True}, 13_004_888)])
def test_googlenet_torchvision_layout_params(options, params):
    assert param_count(meta_model("googlenet", **options)) == params


def test_googlenet_paper_layout_params_by_hand():
    # Paper table 1 with bias convs, true 5x5s, 1000 classes. Stem: 7x7 3->64: 9,472; 1x1 64->64: 4,160;
    # 3x3 64->192: 110,784 (124,416). Inception modules, each sum of (cin*cout + cout) per 1x1 plus
    # 9*r3*c3 + c3 and 25*r5*c5 + c5: 3a 163,696; 3b 388,736; 4a 376,176; 4b 449,160; 4c 510,104;
    # 4d 605,376; 4e 868,352; 5a 1,043,456; 5b 1,444,080 (5,849,136). FC 1024->1000: 1,025,000.
    assert param_count(meta_model("googlenet", layout="paper")) == 124_416 + 5_849_136 + 1_025_000 == 6_998_552
    # Side classifiers with a bias conv instead of conv + BN: 3,188,840 + 3,190,888.
    assert param_count(meta_model("googlenet", layout="paper", aux_logits=True)) == 6_998_552 + 3_188_840 + 3_190_888


def test_googlenet_uses_torchvision_names():
    names = {n for n, _ in meta_model("googlenet", aux_logits=True).state_dict().items()}
    for key in ("conv1.conv.weight", "conv1.bn.running_var", "inception3a.branch2.1.conv.weight",
                "inception5b.branch4.1.bn.bias", "aux1.conv.conv.weight", "aux2.fc2.bias", "fc.weight"):
        assert key in names
    # torchvision's "5x5" branch is a 3x3 conv; the paper's is a true 5x5.
    assert meta_model("googlenet").inception3a.branch3[1].conv.kernel_size == (3, 3)
    assert meta_model("googlenet", layout="paper").inception3a.branch3[1].conv.kernel_size == (5, 5)


@pytest.mark.parametrize("layout", ["torchvision", "paper"])
def test_googlenet_forward_shapes(layout):
    assert meta_forward("googlenet", (2, 3, 224, 224), layout=layout).shape == (2, 1000)
    assert meta_forward("googlenet", (2, 3, 160, 160), layout=layout).shape == (2, 1000)


def test_googlenet_aux_outputs_only_in_training():
    with torch.device("meta"):
        model = load("googlenet", aux_logits=True, num_classes=10)
        out = model.train()(torch.empty(2, 3, 224, 224))
        assert [tuple(t.shape) for t in out] == [(2, 10)] * 3
        assert model.eval()(torch.empty(2, 3, 224, 224)).shape == (2, 10)


def test_googlenet_unknown_layout_is_one_line_error():
    with pytest.raises(NetprobeError, match="unknown GoogLeNet layout 'caffe'"):
        load("googlenet", layout="caffe")


# --- DenseNet ----------------------------------------------------------------------------------------------

# torchvision's docs: `num_params` and GFLOPS (GMACs at 224x224) of DenseNet121/169/201/161_Weights.IMAGENET1K_V1;
# the width before the classifier follows from the paper's table 1 (64 + 6*32 = 256 > 128 + 12*32 = 512 > ...).
DENSENETS = {"densenet121": (7_978_856, 2.83, 1024), "densenet169": (14_149_480, 3.36, 1664),
             "densenet201": (20_013_928, 4.29, 1920), "densenet161": (28_681_000, 7.73, 2208)}


@pytest.mark.parametrize("name", list(DENSENETS))
def test_densenet_params_macs_and_width_match_published(name):
    params, gmacs, width = DENSENETS[name]
    model = meta_model(name)
    assert param_count(model) == params
    assert model.classifier.in_features == width
    assert summary(model, (1, 3, 224, 224)).totals.macs / 1e9 == pytest.approx(gmacs, abs=0.005)


def test_densenet_uses_torchvision_names_and_concatenates():
    model = meta_model("densenet121")
    names = set(model.state_dict())
    for key in ("features.conv0.weight", "features.norm0.running_mean", "features.denseblock1.denselayer1.conv1.weight",
                "features.denseblock4.denselayer16.norm2.bias", "features.transition3.conv.weight",
                "features.norm5.weight", "classifier.bias"):
        assert key in names
    # Layer l of a block sees the input plus l - 1 earlier outputs of 32 channels each.
    assert model.features.denseblock2.denselayer12.conv1.in_channels == 128 + 11 * 32
    # Concatenation, not addition: each dense layer's input is one aten.cat the operator trace sees.
    block = trace(model, (1, 3, 224, 224)).ops
    cats = [op for op in block if op.op is torch.ops.aten.cat.default and op.module == "features.denseblock4.denselayer16"]
    assert [op.outputs[0].shape for op in cats] == [(1, 512 + 15 * 32, 7, 7)]


@pytest.mark.parametrize("size", [224, 96])
def test_densenet_forward_shapes(size):
    assert meta_forward("densenet121", (2, 3, size, size)).shape == (2, 1000)


# --- U-Net -------------------------------------------------------------------------------------------------

def test_unet_params_by_hand():
    # Per conv k*k*cin*cout + cout (the 2x2 up-convolutions likewise, with cout their output channels).
    # Contracting: 1->64 640, 64->64 36,928 | 64->128 73,856, 128->128 147,584 | 128->256 295,168,
    # 256->256 590,080 | 256->512 1,180,160, 512->512 2,359,808 | 1024 bottom: 512->1024 4,719,616,
    # 1024->1024 9,438,208: 18,842,048.
    # Up-convs 2x2: 1024->512 2,097,664; 512->256 524,544; 256->128 131,200; 128->64 32,832: 2,786,240.
    # Expanding (after concat): 1024->512 4,719,104, 512->512 2,359,808 | 512->256 1,179,904, 256->256 590,080 |
    # 256->128 295,040, 128->128 147,584 | 128->64 73,792, 64->64 36,928: 9,402,240. Head 1x1 64->2: 130.
    assert param_count(meta_model("unet")) == 18_842_048 + 2_786_240 + 9_402_240 + 130 == 31_030_658
    # Padding changes no weight.
    assert param_count(meta_model("unet", padding="same")) == 31_030_658


@pytest.mark.parametrize("options, size, out", [
    ({}, 572, 388),  # the paper's figure 1: 572x572 tile, 388x388 map
    ({}, 188, 4),  # 188 > 184 > 92 > 88 > 44 > 40 > 20 > 16 > 8 > 4 at the bottom, each up level 8 > 4
    ({"padding": "same"}, 572, 572),  # 572 / 8 = 71.5: the odd pool is padded back
    ({"padding": "same"}, 256, 256),
    ({"padding": "same", "base": 16, "num_classes": 3, "in_channels": 4}, 101, 101),
])
def test_unet_output_shapes(options, size, out):
    channels = options.get("in_channels", 1)
    result = meta_forward("unet", (2, channels, size, size), **options)
    assert result.shape == (2, options.get("num_classes", 2), out, out)


def test_center_crop_takes_the_middle_by_slicing():
    x = torch.arange(36.0).reshape(1, 1, 6, 6)
    assert center_crop(x, (2, 4)).tolist() == [[[[13.0, 14.0, 15.0, 16.0], [19.0, 20.0, 21.0, 22.0]]]]
    # Inside the traced U-Net the crop and the skip concatenation are the only operators outside a submodule.
    ops = {str(op.op) for op in trace(meta_model("unet"), (1, 1, 572, 572)).ops if op.module == ""}
    assert ops == {"aten.slice.Tensor", "aten.cat.default"}


def test_unet_unknown_padding_is_one_line_error():
    with pytest.raises(NetprobeError, match="unknown U-Net padding 'full'"):
        load("unet", padding="full")
