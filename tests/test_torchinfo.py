"""torchinfo as an independent check: a real forward over every zoo model, parameter totals must agree."""

import pytest
import torchinfo

from netprobe.analysis.counting.summary import summary
from netprobe.zoo import list_models, model_spec

from zoo_helpers import meta_model

# Weights are left uninitialised (meta build, then to_empty): counts and shapes do not depend on values, and
# initialising VGG's 138M parameters would cost most of the test.
# Small inputs keep real CPU forwards fast; models with fixed-size heads keep their own input size.
SMALL = {"alexnet": 64, "googlenet": 64, "resnet18": 64, "resnet34": 64, "resnet50": 64,
         "resnet101": 64, "resnet152": 64, "densenet121": 64, "densenet161": 64, "densenet169": 64,
         "densenet201": 64, "unet": 188,
         **{f"vgg{d}{bn}": 32 for d in (11, 13, 16, 19) for bn in ("", "_bn")}}


def _size(name):
    spec = (1, *model_spec(name).input_size)
    side = SMALL.get(name)
    return spec if side is None else (1, spec[1], side, side)


@pytest.mark.parametrize("name", list_models())
def test_param_totals_agree_with_torchinfo(name):
    size = _size(name)
    model = meta_model(name).to_empty(device="cpu").eval()
    info = torchinfo.summary(model, input_size=size, verbose=0, device="cpu")
    ours = summary(meta_model(name), size).totals
    assert ours.params == info.total_params
    assert ours.trainable_params == info.trainable_params
