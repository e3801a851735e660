"""Every registered architecture, parametrized over the registry so new models are tested on arrival."""

import pytest
import torch

from netprobe.zoo import list_models, load, model_spec

MODELS = list_models()


def _meta_forward(name, batch=2, **options):
    spec = model_spec(name)
    with torch.device("meta"):
        model = load(name, **options).eval()
        c, h, w = spec.input_size
        c = options.get("in_channels", c)
        return model(torch.empty(batch, c, h, w))


@pytest.mark.parametrize("name", MODELS)
def test_builds_and_runs_at_default_input(name):
    spec = model_spec(name)
    out = _meta_forward(name)
    assert out.shape[0] == 2
    if spec.num_classes is not None and spec.family != "unet":
        assert tuple(out.shape) == (2, spec.num_classes)


@pytest.mark.parametrize("name", MODELS)
def test_builder_options_are_keyword_only_and_common(name):
    spec = model_spec(name)
    assert "in_channels" in spec.options()
    if spec.num_classes is not None:
        assert "num_classes" in spec.options()
        out = _meta_forward(name, num_classes=7, in_channels=2)
        assert out.shape[1] == 7


@pytest.mark.parametrize("name", [n for n in MODELS if model_spec(n).plain])
def test_plain_twin_runs_with_same_output_shape(name):
    assert _meta_forward(name, plain=True).shape == _meta_forward(name).shape


@pytest.mark.parametrize("name", [n for n in MODELS if model_spec(n).preact])
def test_preact_variant_runs(name):
    assert _meta_forward(name, preact=True).shape == _meta_forward(name).shape


def test_zoo_covers_the_case_studies():
    expected = {"lenet5", "alexnet", "alexnet_original", "vgg16", "vgg16_bn", "inception_block", "googlenet",
                "resnet18", "resnet50", "resnet20", "resnet56", "resnet1202", "densenet121", "unet"}
    assert expected <= set(MODELS)
