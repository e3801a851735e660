"""The catalog `netprobe list` answers from: every entry equals its registered spec, a count of the model built
on the meta device and the published figures; list imports neither torch nor pandas and renders as pandas would."""

import subprocess
import sys

import pandas as pd
import pytest

from netprobe.render.records import render_rows
from netprobe.render.tables import render
from netprobe.zoo import list_models, model_spec
from netprobe.zoo.catalog import COLUMNS, INDEX, catalog, families
from netprobe.zoo.loading import load_model

from helpers import param_count

# torchvision's docs (`num_params` in each weights enum's meta, IMAGENET1K_V1).
TORCHVISION = {
    "alexnet": 61_100_840, "googlenet": 6_624_904,
    "densenet121": 7_978_856, "densenet161": 28_681_000, "densenet169": 14_149_480, "densenet201": 20_013_928,
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992, "vgg19_bn": 143_678_248,
}
# He et al. 2016, Table 6 (CIFAR-10), in millions as printed.
HE_CIFAR = {"resnet20": 0.27, "resnet32": 0.46, "resnet44": 0.66, "resnet56": 0.85, "resnet110": 1.7,
            "resnet1202": 19.4}


def test_index_holds_exactly_the_registered_models():
    assert sorted(INDEX) == sorted(list_models())
    assert families() == sorted({model_spec(n).family for n in list_models()})


@pytest.mark.parametrize("name", list_models())
def test_entry_equals_spec_and_count_on_meta(name):
    spec, entry = model_spec(name), INDEX[name]
    built = param_count(load_model(name).model)
    expected = (spec.family, spec.input_size, spec.num_classes, built, spec.plain, spec.description)
    assert tuple(entry) == expected, f"catalog.py INDEX[{name!r}] should read Entry{expected!r}"


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_params_equal_torchvision_docs(name):
    assert INDEX[name].params == TORCHVISION[name]


@pytest.mark.parametrize("name", sorted(HE_CIFAR))
def test_params_round_to_he_et_al(name):
    digits = 2 if HE_CIFAR[name] < 1 else 1
    assert round(INDEX[name].params / 1e6, digits) == HE_CIFAR[name]


def test_hand_counted_figures():
    # LeNet-5 layer by layer: 156 + 2,416 + 48,120 + 10,164 + 850; Inception (3a): see test_zoo_more.
    assert INDEX["lenet5"].params == 61_706 and INDEX["inception_block"].params == 163_696


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "markdown"])
@pytest.mark.parametrize("pattern", [None, "vgg1*", "inception*"])
def test_rows_render_as_their_dataframe(fmt, pattern):
    rows = catalog(pattern=pattern)
    frame = pd.DataFrame(rows, columns=list(COLUMNS)).astype({"classes": "Int64"})
    assert render_rows(rows, COLUMNS, fmt, humanize=("params",)) == render(frame, fmt, humanize=("params",))


def test_no_match_is_a_header_only():
    assert render_rows(catalog(pattern="nosuch*"), COLUMNS, "table") == " ".join(COLUMNS) + "\n"


def test_list_imports_neither_torch_nor_pandas():
    code = ("import sys; from netprobe.cli.main import cli; sys.argv = ['netprobe', 'list', '--family', 'vgg']\n"
            "try:\n cli()\nexcept SystemExit: pass\n"
            "print(sorted(m for m in ('torch', 'pandas', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "vgg16_bn" in out and out.strip().splitlines()[-1] == "[]"
