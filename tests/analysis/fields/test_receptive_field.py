"""Receptive fields against published figures and hand computation (r_l = r_{l-1} + (k_l - 1) * j_{l-1},
j_l = j_{l-1} * s_l, effective padding P_l = P_{l-1} + p_l * j_{l-1}; centre of unit 0 = (r - 1) / 2 - P)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netprobe.zoo.loading import load_model
from netprobe.analysis.fields.receptive_field import receptive_field, rf_columns, summary_with_fields
from netprobe.analysis.counting.summary import COLUMNS, summary
from netprobe.zoo import list_models


def _rows(model, size):
    table = receptive_field(model, size)
    return table, {row["name"]: row for _, row in table.iterrows()}


def _zoo(name, depth=None):
    loaded = load_model(name)
    return receptive_field(loaded.model, (1, *loaded.input_size), depth=depth)


def _by_name(table):
    return {row["name"]: row for _, row in table.iterrows()}


def test_column_names_are_stable():
    assert rf_columns() == ["rf_h", "rf_w", "jump_h", "jump_w", "center_h", "center_w",
                            "rf_h_min", "rf_h_max", "rf_w_min", "rf_w_max"]


def test_vgg16_matches_distill_table():
    # Araujo, Norris & Sim, "Computing Receptive Fields of CNNs", Distill 2019, VGG-16 endpoints:
    # pool1 6, pool2 16, pool3 44, pool4 100, conv5_1 132, conv5_2 164, conv5_3 196 (j 16),
    # pool5 212 (j 32, effective padding 90). By hand: each 3x3 conv adds 2j, each 2x2/2 pool adds j and
    # doubles it; padding 1 per conv: 2*1 + 2*2 + 3*4 + 3*8 + 3*16 = 90.
    rows = _by_name(_zoo("vgg16"))
    expected = {"features.4": (6, 2), "features.9": (16, 4), "features.16": (44, 8), "features.23": (100, 16),
                "features.24": (132, 16), "features.26": (164, 16), "features.28": (196, 16),
                "features.30": (212, 32)}
    for name, (r, j) in expected.items():
        row = rows[name]
        assert (row.rf_h, row.rf_w, row.jump_h, row.jump_w) == (r, r, j, j), name
        assert row.rf_h_min == row.rf_h_max == r
    pool5 = rows["features.30"]
    assert (pool5.rf_h - 1) / 2 - pool5.center_h == 90  # effective padding


def test_alexnet_matches_distill_alexnet_v2():
    # Distill 2019 (alexnet_v2): conv5 r=163 j=16, pool5 r=195 j=32. By hand for torchvision's layout:
    # conv 11/4 -> 11, j4; pool 3/2 -> 19, j8; conv 5 -> 51; pool -> 67, j16; three 3x3 -> 99, 131, 163;
    # pool 3/2 -> 195, j32.
    rows = _by_name(_zoo("alexnet"))
    assert (rows["features.10"].rf_h, rows["features.10"].jump_h) == (163, 16)
    assert (rows["features.12"].rf_w, rows["features.12"].jump_w) == (195, 32)


def test_three_3x3_convs_see_what_one_7x7_sees():
    stacked = nn.Sequential(*[nn.Conv2d(2, 2, 3, padding=1) for _ in range(3)])
    table, rows = _rows(stacked, (1, 2, 16, 16))
    assert [rows[n].rf_h for n in "012"] == [3, 5, 7]  # 1 + 3 * (3 - 1)
    _, one = _rows(nn.Sequential(nn.Conv2d(2, 2, 7, padding=3)), (1, 2, 16, 16))
    assert one["0"].rf_h == one["0"].rf_w == 7 and one["0"].center_h == 0


def test_resnet20_by_hand():
    # conv1: 3; layer1: 6 convs at j1 -> 15; layer2: s2 conv +2 (j2), then 5 convs +4 each -> 37;
    # layer3: +4 (j4), 5 convs +8 -> 81. Padding 1 everywhere: P = 1 + 6 + 1 + 5*2 + 2 + 5*4 = 40 = (81-1)/2.
    # The option-A shortcut x[:, :, ::2, ::2] reads the same centre as the stride-2 conv path: no warning.
    table = _zoo("resnet20", depth=1)
    rows = _by_name(table)
    assert [rows[n].rf_h for n in ("conv1", "layer1", "layer2", "layer3")] == [3, 15, 37, 81]
    assert [rows[n].jump_w for n in ("conv1", "layer1", "layer2", "layer3")] == [1, 1, 2, 4]
    assert rows["layer3"].center_h == rows["layer3"].center_w == 0.0
    assert rows["linear"].rf_h == 32  # the linear layer sees the whole 32x32 input
    assert table.attrs["warnings"] == []


def test_branches_take_the_union():
    # Inception (3a), Szegedy et al. 2014: branches of 1x1, 3x3 and 5x5 convs and a 3x3 pool, concatenated.
    if "inception_block" in list_models():
        rows = _by_name(_zoo("inception_block"))
        assert rows[""].rf_h == 5

    class TwoPaths(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(1, 1, 3, padding=1)  # unit p reads [p - 1, p + 1]
            self.b = nn.Conv2d(1, 1, 3)  # after padding 2 on the right: unit p reads [p, p + 2]

        def forward(self, x):
            return self.a(x) + self.b(F.pad(x, (0, 2, 0, 2)))

    table, rows = _rows(TwoPaths(), (1, 1, 10, 10))
    assert rows["a"].rf_h == rows["b"].rf_h == 3
    assert rows[""].rf_h == rows[""].rf_w == 4  # [p - 1, p + 2]: wider than either path
    assert rows[""].center_h == 0.5
    assert any("not centred alike" in w for w in table.attrs["warnings"])


def test_non_square_kernels_keep_axes_apart():
    model = nn.Sequential(nn.Conv2d(1, 1, (1, 7), padding=(0, 3)), nn.Conv2d(1, 1, (3, 1), stride=(2, 1)))
    _, rows = _rows(model, (1, 1, 15, 15))
    assert (rows["0"].rf_h, rows["0"].rf_w) == (1, 7)
    assert (rows["1"].rf_h, rows["1"].rf_w, rows["1"].jump_h, rows["1"].jump_w) == (3, 7, 2, 1)


def test_dilation_ceil_mode_and_cropping():
    model = nn.Sequential(nn.Conv2d(1, 1, 3, dilation=2), nn.MaxPool2d(2, ceil_mode=True))
    _, rows = _rows(model, (1, 1, 11, 11))
    assert rows["0"].rf_h == 5  # effective kernel 1 + 2 * (3 - 1)
    assert rows["1"].rf_h == 5 + 1 and rows["1"].jump_h == 2 and rows["1"].center_h == 2.5

    class Crop(nn.Module):
        def forward(self, x):
            return F.pad(x, (-2, -1, 0, 0))[:, :, 1:, :]  # U-Net style crops: 2 off the left, 1 off the top

    _, rows = _rows(Crop(), (1, 1, 8, 8))
    assert rows[""].rf_w == 1 and rows[""].center_w == 2.0 and rows[""].center_h == 1.0


def test_transposed_convolution_and_upsampling_depend_on_position():
    # ConvTranspose k3 s2 p1: even outputs get one input tap (t = 1), odd outputs two (t = 0, 2).
    _, rows = _rows(nn.Sequential(nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1)), (1, 1, 6, 6))
    row = rows["0"]
    assert (row.rf_h_min, row.rf_h_max, row.rf_h, row.jump_h) == (1, 2, 2, 0.5)
    # Nearest x2 after a 3x3 conv keeps r = 3; a 3x3 conv on top reads 2 source units: r = 3 + 1.
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Upsample(scale_factor=2), nn.Conv2d(1, 1, 3, padding=1))
    _, rows = _rows(model, (1, 1, 8, 8))
    assert rows["1"].rf_h == 3 and rows["1"].jump_h == 0.5 and rows["2"].rf_h == 4


def test_global_pooling_and_linear_see_the_whole_input():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    _, rows = _rows(model, (1, 3, 12, 10))
    for name in ("1", "2", "3"):
        assert (rows[name].rf_h, rows[name].rf_w) == (12, 10)
        assert (rows[name].center_h, rows[name].center_w) == (5.5, 4.5)


def test_summary_rf_columns_only_when_asked():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    assert list(summary(model, (1, 1, 8, 8)).layers.columns) == COLUMNS
    layers = summary_with_fields(model, (1, 1, 8, 8)).layers
    assert list(layers.columns) == COLUMNS + rf_columns()
    assert list(layers["rf_h"]) == [3, 3]


@pytest.mark.parametrize("name", [n for n in list_models() if n != "resnet1202"])
def test_every_zoo_model_gets_a_field(name):
    table = _zoo(name, depth=1)
    assert len(table) and (table["rf_h"] >= 1).all() and (table["rf_h_min"] <= table["rf_h_max"]).all()


# -- verify and the effective field: real gradients on small CPU models ------------------------------------

def test_verify_resnet20_every_stage_matches_gradients():
    from netprobe.analysis.fields.check import verify

    table = verify(load_model("resnet20").model, (1, 3, 32, 32), depth=1)
    assert set(table["name"]) == {"conv1", "bn1", "layer1", "layer2", "layer3"}
    assert table["match"].all(), table[~table["match"]]


def test_verify_position_dependent_geometry():
    from netprobe.analysis.fields.check import verify

    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.up = nn.ConvTranspose2d(1, 2, 3, stride=2, padding=1)
            self.bilinear = nn.Upsample(scale_factor=2, mode="bilinear")
            self.dilated = nn.Conv2d(2, 2, 3, dilation=2, padding=1)
            self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.side = nn.Conv2d(1, 2, (1, 5), padding=(0, 2))

        def forward(self, x):
            y = self.pool(self.dilated(self.bilinear(self.up(x))))
            return torch.cat([y, F.adaptive_avg_pool2d(self.side(x), y.shape[-2:])], 1)

    table = verify(Mixed(), (1, 1, 9, 11), depth=1)
    assert table["match"].all(), table[~table["match"]]
    assert len(table) == 2 * 5


def test_effective_field_of_one_uniform_conv_is_flat():
    from netprobe.analysis.fields.check import effective

    conv = nn.Conv2d(1, 1, 3)
    nn.init.constant_(conv.weight, 1.0)
    erf = effective(nn.Sequential(conv), (1, 1, 7, 7), samples=2, layer="0")
    # |gradient| is 1 on the 3x3 window: a uniform distribution over offsets -1, 0, 1 has std sqrt(2/3);
    # 8 of the 9 equal pixels hold 8/9 < 95% of the mass, so all 9 are needed: fraction 1.
    assert erf.rf == (3, 3) and erf.mass95 == 1.0
    assert erf.std == pytest.approx(((2 / 3) ** 0.5,) * 2)


# -- CLI -----------------------------------------------------------------------------------------------------

def _cli(*args):
    from click.testing import CliRunner

    from netprobe.cli.main import cli

    return CliRunner().invoke(cli, list(args))


def test_cli_alias_csv_and_plot(tmp_path):
    full = _cli("receptive-field", "resnet20", "--depth", "1", "--format", "csv")
    short = _cli("rf", "resnet20", "--depth", "1", "--format", "csv")
    assert full.exit_code == 0 and full.output == short.output
    header = full.output.splitlines()[0].split(",")
    assert header == ["name", "type", "depth", "output_shape", *rf_columns()]
    assert "layer3,Sequential,1,1x64x8x8,81,81,4,4,0.0,0.0,81,81,81,81" in full.output
    plots = [tmp_path / "a.png", tmp_path / "b.png"]
    for plot in plots:
        assert _cli("rf", "vgg11", "resnet20", "--plot", str(plot), "--format", "json").exit_code == 0
    assert plots[0].read_bytes() == plots[1].read_bytes() and plots[0].read_bytes()[:4] == b"\x89PNG"


def test_cli_bad_input_is_one_line():
    missing = _cli("rf", "resnet20", "--plot", "/no/such/dir/rf.png")
    assert missing.exit_code == 2 and "does not exist" in missing.output and "Traceback" not in missing.output
    small = _cli("rf", "vgg16", "--input-size", "3x16x16")
    assert small.exit_code == 2 and "features.30 (MaxPool2d)" in small.output and len(small.output.strip().splitlines()) == 1
    assert _cli("rf", "resnet20", "--compare").exit_code == 2


def test_cli_verify_and_effective(tmp_path):
    checked = _cli("rf", "lenet5", "--verify", "--depth", "2", "--format", "csv")
    lines = [line.split(",") for line in checked.output.splitlines() if line.startswith("lenet5,")]
    assert checked.exit_code == 0 and len(lines) > 6 and all(line[-1] == "True" for line in lines)
    plot = tmp_path / "erf.png"
    erf = _cli("rf", "resnet20", "--effective", "--compare", "--samples", "2", "--format", "csv", "--plot", str(plot))
    assert erf.exit_code == 0 and "resnet20 plain,layer3,32,32" in erf.output and plot.stat().st_size > 0


def test_summary_cli_rf_flag():
    out = _cli("summary", "resnet20", "--depth", "1", "--rf", "--format", "csv").output
    assert out.splitlines()[0].endswith(",".join(rf_columns()))


def test_verify_leaves_shared_modules_outputs_alone():
    from netprobe.analysis.fields.check import verify

    class Shared(nn.Module):  # one pool module called twice: its hook must not replay the first output
        def __init__(self):
            super().__init__()
            self.pool, self.a, self.b = nn.MaxPool2d(2), nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 3)

        def forward(self, x):
            return self.b(self.pool(self.a(self.pool(x))))

    table = verify(Shared(), (1, 1, 16, 16), depth=1)
    assert table["match"].all() and set(table["name"]) == {"pool", "a", "b"}
