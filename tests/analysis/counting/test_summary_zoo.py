"""summary() over the whole registry: published MAC figures, FlopCounterMode agreement, invariants, a property."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from netprobe.analysis.counting.summary import summary
from netprobe.errors import NetprobeError
from netprobe.zoo import list_models, model_spec

from helpers import meta_model

MODELS = list_models()

# torchvision's model documentation, "GFLOPS" column at 224x224, batch 1 (these are GMACs).
TORCHVISION_GMACS = {"alexnet": 0.714, "vgg16": 15.47, "vgg19": 19.632, "googlenet": 1.498, "resnet18": 1.814,
                     "resnet50": 4.089, "resnet152": 11.514, "densenet121": 2.834}
# He et al. 2016 CIFAR ResNets at 32x32, conv + linear multiply-accumulates (counted from Table 6's layout).
CIFAR_MACS = {"resnet20": 40_551_040, "resnet56": 125_485_696, "resnet110": 252_887_680}


def _size(name, batch=1):
    return (batch, *model_spec(name).input_size)


@pytest.mark.parametrize("name", sorted(TORCHVISION_GMACS))
def test_macs_match_torchvision_published_gflops(name):
    if name not in MODELS:
        pytest.skip(f"{name} is not registered yet")
    macs = summary(meta_model(name), (1, 3, 224, 224)).totals.macs
    assert macs / 1e9 == pytest.approx(TORCHVISION_GMACS[name], rel=0.005)


@pytest.mark.parametrize("name", sorted(CIFAR_MACS))
def test_cifar_resnet_macs_exact(name):
    assert summary(meta_model(name), (1, 3, 32, 32)).totals.macs == CIFAR_MACS[name]


@pytest.mark.parametrize("name", MODELS)
def test_macs_equal_flop_counter_mode_and_rows_add_up(name):
    model = meta_model(name).eval()
    size = _size(name, batch=2)
    s = summary(model, size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(size, device="meta"))
    assert 2 * s.totals.macs == counter.get_total_flops()
    assert s.totals.params == sum(p.numel() for p in model.parameters())
    for column, total in (("params", s.totals.params), ("macs", s.totals.macs), ("flops", s.totals.flops),
                          ("activation_bytes", s.totals.activation_bytes)):
        assert int(s.layers[column].sum()) == total, column
    assert s.totals.flops >= 2 * s.totals.macs and not s.uncounted_ops, s.uncounted_ops


@pytest.mark.parametrize("name", MODELS)
def test_batch_scales_macs_linearly(name):
    one, three = summary(meta_model(name), _size(name, 1)), summary(meta_model(name), _size(name, 3))
    assert three.totals.macs == 3 * one.totals.macs and three.totals.params == one.totals.params


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(MODELS), h=st.integers(1, 160), w=st.integers(1, 160), wrong_channels=st.booleans())
def test_any_input_gives_a_consistent_summary_or_one_line_error(name, h, w, wrong_channels):
    model = meta_model(name)
    channels = model_spec(name).input_size[0] + (1 if wrong_channels else 0)
    try:
        s = summary(model, (1, channels, h, w))
    except NetprobeError as err:
        message = str(err)
        assert message and "\n" not in message and "Traceback" not in message
        if wrong_channels:
            assert "expects" in message
        return
    assert not wrong_channels
    assert s.totals.params == sum(p.numel() for p in model.parameters())
    assert int(s.layers["macs"].sum()) == s.totals.macs
    first = s.layers.iloc[0]
    assert s.input_shape == (1, channels, h, w)
    for shape in s.layers["output_shape"].dropna():
        dims = shape if isinstance(shape[0], int) else shape[0]
        assert dims[0] == 1 and all(d > 0 for d in dims)
    assert first["input_shape"] is None or first["input_shape"][0] == 1
