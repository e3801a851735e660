"""The registry: duplicate names refused, natural sort, closest-match errors, option checking."""

import pytest

from netprobe.errors import NetprobeError, UnknownModelError
from netprobe.zoo import registry


@pytest.fixture
def scratch(monkeypatch):
    """An empty registry for the duration of one test."""
    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_families_imported", True)  # the real families must not register into it
    return registry


def _register(reg, name, **extra):
    def builder(*, num_classes=10, plain=False):
        return (name, num_classes, plain)

    builder.__name__ = name
    return reg.register_model(family="toy", input_size=(3, 32, 32), num_classes=10, description="t", **extra)(builder)


def test_duplicate_names_are_refused(scratch):
    _register(scratch, "net1")
    with pytest.raises(ValueError, match="already registered"):
        _register(scratch, "net1")


def test_natural_sort_and_filters(scratch):
    for name in ["resnet101", "resnet18", "resnet50", "vgg16"]:
        _register(scratch, name)
    assert scratch.list_models() == ["resnet18", "resnet50", "resnet101", "vgg16"]
    assert scratch.list_models("resnet*") == ["resnet18", "resnet50", "resnet101"]
    assert scratch.list_models(family="other") == []


def test_unknown_name_suggests_closest(scratch):
    _register(scratch, "resnet56")
    with pytest.raises(UnknownModelError) as err:
        scratch.model_spec("resnet57")
    assert str(err.value) == "unknown architecture 'resnet57' (did you mean 'resnet56'?)"


def test_load_passes_options_and_rejects_unknown_ones(scratch):
    _register(scratch, "net1")
    assert scratch.load("net1", plain=True, num_classes=3) == ("net1", 3, True)
    assert scratch.model_spec("net1").plain and not scratch.model_spec("net1").preact
    with pytest.raises(NetprobeError, match="does not take option 'depth'"):
        scratch.load("net1", depth=3)
