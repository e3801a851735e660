"""The twin pipeline: resolved specs (nothing registered at run time), the checks, the options' precedence, the
seeded twins, and the modes restored by `model_mode`."""

import textwrap

import pytest
import torch
from torch import nn

from netprobe.modes import model_mode
from netprobe.analysis.twins import Twins, build, fit_classes, resolve, variants_of
from netprobe.errors import NetprobeError, UnknownModelError
from netprobe.zoo import model_spec


def test_a_file_model_is_resolved_not_registered(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(textwrap.dedent("""
        import torch.nn as nn
        class Net(nn.Sequential):
            def __init__(self, width=2):
                super().__init__(nn.Conv2d(3, width, 3), nn.Flatten(), nn.LazyLinear(5))
    """))
    spec, options = resolve(f"{path}:Net", {"width": 3}, (3, 8, 8))
    assert (spec.num_classes, options, dict(spec.bound)) == (5, {}, {"width": 3})
    assert build(spec, {}, 0)[0].out_channels == 3  # the kwargs are bound into the spec's own builder
    with pytest.raises(UnknownModelError):
        model_spec(f"{path}:Net")  # the registry never saw it


def test_the_twins_share_their_initial_weights_and_differ_in_their_shortcuts():
    spec, _ = resolve("resnet20")
    residual = build(spec, {"width": 2, "plain": False}, 7)
    plain = build(spec, {"width": 2, "plain": True}, 7)
    assert all(torch.equal(a, b) for a, b in zip(residual.state_dict().values(), plain.state_dict().values()))
    assert variants_of(False, True) == ("residual", "plain") and variants_of(True, False) == ("plain",)


@pytest.mark.parametrize("variants, weights, message", [
    (("residual", "residual"), (), "distinct names"),
    (("ghost",), (), "distinct names"),
    (("residual", "plain"), ("a.pt",), "1 checkpoint(s) for 2 variant(s)"),
])
def test_plan_refuses_bad_variants_and_checkpoint_counts(variants, weights, message):
    spec, _ = resolve("resnet20")
    with pytest.raises(NetprobeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Twins.plan(spec, variants, weights=weights)


def test_plan_refuses_a_plain_twin_of_a_family_without_shortcuts():
    with pytest.raises(NetprobeError, match="no shortcuts to remove"):
        Twins.plan(resolve("vgg11")[0], ("plain",))


def test_options_given_override_the_checkpoints_and_the_twin_flag_is_the_variants(checkpoints):
    spec, _ = resolve("resnet20")
    twins = Twins.plan(spec, ("residual", "plain"), options={"width": 4},
                       weights=(checkpoints["residual"], checkpoints["plain"]))
    assert twins.build_options(0) == {"width": 4, "plain": False}  # the checkpoint said width 2, plain absent
    assert twins.build_options(1) == {"width": 4, "plain": True}
    assert twins.data == "cifar10:fixtures/cifar10_sample"  # the first checkpoint's data


def test_an_explicit_class_count_that_disagrees_with_the_data_is_refused():
    spec, _ = resolve("resnet20")

    class Data:
        num_classes = 10

    assert fit_classes(spec, {}, Data, "synthetic") == {}
    assert fit_classes(resolve("resnet20", {"num_classes": 4})[0], {}, Data, "x") == {"num_classes": 10}
    with pytest.raises(NetprobeError, match="has 4 outputs and cannot be built for the 10 classes"):
        fit_classes(spec, {"num_classes": 4}, Data, "x")


def test_model_mode_restores_every_modules_own_mode():
    model = nn.Sequential(nn.BatchNorm1d(2), nn.Dropout(), nn.Linear(2, 2))
    model.train()
    model[1].eval()  # mixed modes, as a user may leave them
    with model_mode(model, False):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == [True, True, False, True]
    with pytest.raises(RuntimeError), model_mode(model, True):
        raise RuntimeError("restored on the way out too")
    assert [m.training for m in model.modules()] == [True, True, False, True]
