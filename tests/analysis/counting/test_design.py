"""Design arithmetic: the case studies' textbook figures, counted by the engine."""

import json

import pytest

from netprobe.analysis.counting import design
from netprobe.errors import NetprobeError
from helpers import run


def _macs(comparison, variant):
    return int(comparison.totals.set_index("variant").loc[variant, "macs"])


def test_inception_bottleneck_textbook_figures():
    # Ng's case study / Szegedy et al.: 28x28x192 -> 28x28x32 by 5x5: 28*28*32 * 5*5*192 multiplies direct;
    # through 16 channels: 28*28*16 * 192 + 28*28*32 * 5*5*16.
    result = design.bottleneck()
    assert _macs(result, "direct") == 28 * 28 * 32 * 5 * 5 * 192 == 120_422_400
    layers = result.layers[result.layers.variant == "1x1 reduce to 16"]
    assert list(layers.macs) == [2_408_448, 10_035_200]
    assert _macs(result, "1x1 reduce to 16") == 12_443_648
    params = result.totals.set_index("variant")["params"]
    assert params["direct"] == 5 * 5 * 192 * 32 + 32
    assert params["1x1 reduce to 16"] == (192 * 16 + 16) + (5 * 5 * 16 * 32 + 32)


def test_bottleneck_other_sizes_follow_the_formula():
    result = design.bottleneck((64, 14, 10), kernel=3, out=48, reduce=8)
    assert _macs(result, "direct") == 14 * 10 * 48 * 3 * 3 * 64
    assert _macs(result, "1x1 reduce to 8") == 14 * 10 * 8 * 64 + 14 * 10 * 48 * 3 * 3 * 8


@pytest.mark.parametrize("c", [64, 32])
def test_three_3x3_vs_one_7x7_weights(c):
    result = design.stacked_convs(c, (20, 20))
    params = result.totals.set_index("variant")["params"]
    assert params["3 x conv3x3"] == 27 * c * c
    assert params["1 x conv7x7"] == 49 * c * c
    assert _macs(result, "1 x conv7x7") == 49 * c * c * 20 * 20


def test_basic_vs_bottleneck_block_weights():
    # He et al. 2016 Fig. 5: a bottleneck block on 256-d maps: 1x1 256->64, 3x3 64->64, 1x1 64->256.
    result = design.residual_blocks(256, (56, 56))
    convs = result.layers[result.layers.type == "Conv2d"].groupby("variant")["params"].sum()
    assert convs["basic"] == 2 * 3 * 3 * 256 * 256
    assert convs["bottleneck"] == 256 * 64 + 3 * 3 * 64 * 64 + 64 * 256
    assert _macs(result, "bottleneck") == (256 * 64 + 3 * 3 * 64 * 64 + 64 * 256) * 56 * 56


def test_twins_have_equal_params_and_macs_for_option_a():
    result = design.twins("resnet20")
    totals = result.totals.set_index("variant")
    assert totals.loc["resnet20", "params"] == totals.loc["resnet20 plain", "params"] == 269_722
    assert totals.loc["resnet20", "macs"] == totals.loc["resnet20 plain", "macs"] == 40_551_040


def test_models_side_by_side_match_published_params():
    result = design.models(["vgg16", "resnet50"])
    params = result.totals.set_index("variant")["params"]
    assert params["vgg16"] == 138_357_544 and params["resnet50"] == 25_557_032  # torchvision docs


def test_bad_design_inputs():
    with pytest.raises(NetprobeError, match="odd"):
        design.bottleneck(kernel=4)
    with pytest.raises(NetprobeError, match="no plain twin"):
        design.twins("vgg16")
    with pytest.raises(NetprobeError, match="multiple of 4"):
        design.residual_blocks(250)


def test_bottleneck_cli_defaults_and_json():
    result = run("bottleneck")
    assert result.exit_code == 0
    assert "120,422,400" in result.output and "12,443,648" in result.output and "9.68x fewer MACs" in result.output
    data = json.loads(run("bottleneck", "--format", "json").output)
    assert [t["macs"] for t in data["totals"]] == [120_422_400, 12_443_648]


def test_compare_cli_errors_exit_2(tmp_path):
    for args in (["compare"], ["compare", "resnet57"], ["compare", "vgg16", "--case", "3x3-vs-7x7"],
                 ["compare", "vgg16", "--twins"], ["bottleneck", "--input", "28x28"],
                 ["compare", "--case", "3x3-vs-7x7", "-o", str(tmp_path / "missing" / "x.csv")]):
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output


def test_compare_cli_writes_csv(tmp_path):
    out = tmp_path / "cmp.csv"
    assert run("compare", "--case", "3x3-vs-7x7", "--no-layers", "--format", "csv", "-o", str(out)).exit_code == 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith("variant,input,params,macs")
    assert lines[1].split(",")[2] == str(27 * 64 * 64)
