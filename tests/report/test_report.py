"""`netprobe report`: config validation, the folder it writes, determinism and the atomic swap."""

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from netprobe.errors import NetprobeError
from netprobe.report.config import load_config

from helpers import report, run

SMALL = """
title = "small"
seed = 3

[[models]]
name = "lenet5"

[[models]]
name = "resnet20"
options = {plain = true}
analyses = ["summary"]

[design]
bottleneck = {input = "28x28x192", kernel = 5, out = 32, reduce = 16}
cases = ["3x3-vs-7x7"]
"""


def _config(tmp_path, text=SMALL, name="r.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if attrs.get(key) and not attrs[key].startswith("#"):
                self.refs.append(attrs[key])


def test_report_folder_contents_and_figures(tmp_path):
    out = tmp_path / "rep"
    result = run("report", "--config", _config(tmp_path), "-o", out, "--no-progress", "--svg")
    assert result.exit_code == 0, result.output
    names = {p.name for p in out.iterdir()}
    assert {"index.html", "index.md", "report.json", "models.csv", "bottleneck.csv", "3x3_vs_7x7.csv",
            "summary_lenet5.csv", "models_glance.png", "models_glance.svg"} <= names
    parser = _Refs()
    page = (out / "index.html").read_text()
    parser.feed(page)
    assert parser.refs and all((out / ref).is_file() for ref in parser.refs)
    assert not re.search(r"(src|href)=\"https?://", page)  # readable offline
    key = json.loads((out / "report.json").read_text())
    # Published / hand-computed figures: LeNet-5 61,706 params; the textbook bottleneck 120,422,400 vs 12,443,648.
    assert key["models"]["lenet5"]["params"] == 61_706
    assert key["models"]["resnet20 (plain=True)"]["params"] == 269_722
    assert [r["macs"] for r in key["design"]["bottleneck"]] == [120_422_400, 12_443_648]
    assert "61,706" in page and "12,443,648" in page


def test_same_config_writes_identical_files(tmp_path):
    config = _config(tmp_path)
    run("report", "--config", config, "-o", tmp_path / "a", "--no-progress")
    run("report", "--config", config, "-o", tmp_path / "b", "--no-progress")
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


@pytest.mark.parametrize("text, message", [
    ('[[models]]\nname = "resnet57"\n', r"r.toml:2: models\[0\].name: unknown architecture 'resnet57' \(did you mean"),
    ('[[models]]\nname = "lenet5"\nanalyses = ["sumary"]\n', r"r.toml:3: models\[0\].analyses: unknown analysis"),
    ('[[models]]\nname = "lenet5"\noptions = {depth = 3}\n', r"models\[0\].options.depth: lenet5 does not take"),
    ('seed = "x"\n', r"r.toml:1: seed: expected an integer"),
    ('[gradients]\nbatches = 0\n', r"gradients.batches: must be at least 1"),
    ('colour = 1\n', r"colour: unknown setting"),
    ('[[models]]\nname = "vgg16"\nanalyses = ["gradients"]\n', r"vgg16 has no plain twin"),
    ('[[models]]\nname = "mynet.py:Net"\n', r"models\[0\].input_size: mynet.py:Net is not a zoo model"),
    ('[[models]]\nname = "mynet.py:Net"\ninput_size = "3x8x8"\nanalyses = ["landscape"]\n',
     r"landscape compares a zoo model with its plain twin"),
    ('title = \n', r"not valid TOML"),
])
def test_bad_configs_name_the_line_or_key(tmp_path, text, message):
    with pytest.raises(NetprobeError, match=message):
        load_config(_config(tmp_path, text))


USER_NET = """
from torch import nn


class Net(nn.Sequential):
    def __init__(self, width=4):
        super().__init__(nn.Conv2d(3, width, 3), nn.ReLU(), nn.Flatten(), nn.Linear(width * 6 * 6, 10))
"""


def test_user_model_from_a_file(tmp_path):
    (tmp_path / "mynet.py").write_text(USER_NET)
    config = _config(tmp_path, f"""
[[models]]
name = "{tmp_path / 'mynet.py'}:Net"
options = {{width = 5}}
input_size = "3x8x8"
analyses = ["summary", "receptive_field"]
""")
    out = tmp_path / "rep"
    result = run("report", "--config", config, "-o", out, "--no-progress")
    assert result.exit_code == 0, result.output
    (label, figures), = json.loads((out / "report.json").read_text())["models"].items()
    assert label.endswith("mynet.py:Net (width=5)")
    # By hand: conv 3*3*3*5 + 5 = 140; linear 5*6*6*10 + 10 = 1,810. MACs: 6*6*5*27 = 4,860 + 1,800.
    assert (figures["params"], figures["macs"]) == (140 + 1_810, 4_860 + 1_800)


def test_bad_input_exits_2_and_keeps_the_previous_report(tmp_path):
    out = tmp_path / "rep"
    assert run("report", "--config", _config(tmp_path), "-o", out, "--no-progress").exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = run("report", "--config", _config(tmp_path, '[[models]]\nname = "nope"\n', "bad.toml"), "-o", out)
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert run("report", "-o", tmp_path / "missing" / "rep").exit_code == 2
    assert run("report", "--config", tmp_path / "nofile.toml", "-o", out).exit_code == 2


def test_failure_mid_run_leaves_no_partial_folder(tmp_path, monkeypatch):
    from netprobe.report import steps

    def boom(config):
        raise RuntimeError("disk full")

    monkeypatch.setattr(steps, "design_step", boom)
    out = tmp_path / "rep"
    with pytest.raises(RuntimeError):
        from netprobe.report.build import run as run_report, write

        write(load_config(_config(tmp_path)), run_report(load_config(_config(tmp_path)), progress=False), out)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".rep")] == []


def test_default_config_is_valid():
    config = load_config(quick=True)
    names = [m.name for m in config.models]
    assert names[:4] == ["lenet5", "alexnet", "vgg16", "googlenet"] and "unet" in names
    assert config.settings["landscape"]["steps"] < load_config().settings["landscape"]["steps"]
    assert Path(config.source).name == "default.toml"


def test_gradients_section_writes_both_twins(tmp_path):
    text = ('[[models]]\nname = "resnet20"\nanalyses = ["gradients"]\n\n'
            '[gradients]\nbatch_size = 8\nbatches = 1\n')
    out = report(tmp_path, text)
    assert {"gradients_summary.csv", "gradients_resnet20.csv", "gradients_resnet20.png"} <= {p.name for p in out.iterdir()}
    key = json.loads((out / "report.json").read_text())
    assert set(key["gradients"]["resnet20"]) == {"residual", "plain"}
    profile = (out / "gradients_resnet20.csv").read_text().splitlines()
    assert len(profile) == 1 + 2 * 20  # header + 19 convs and the linear layer per twin
    assert "resnet20, measured: first/last gradient-norm ratio" in (out / "index.md").read_text()


def test_receptive_field_section(tmp_path):
    text = '[[models]]\nname = "lenet5"\nanalyses = ["receptive_field"]\n'
    out = report(tmp_path, text)
    assert {"rf_lenet5.csv", "rf_by_depth.png"} <= {p.name for p in out.iterdir()}
    field = json.loads((out / "report.json").read_text())["receptive_field"]["lenet5"]
    # By hand: conv 5x5 (r 5, j 1), pool 2/2 (r 6, j 2), conv 5x5 (r 6 + 4*2 = 14), pool 2/2 (r 16, j 4).
    assert field["rf"] == [16, 16] and field["jump"] == [4, 4]


def test_landscape_section_figures_match_the_surface_csv(tmp_path):
    import numpy as np
    import pandas as pd

    text = ('[[models]]\nname = "resnet20"\ninput_size = "3x16x16"\nanalyses = ["landscape"]\n\n'
            '[landscape]\nsteps = 3\nsamples = 8\ntrain_epochs = 0\n')
    out = report(tmp_path, text)
    assert {"landscape_summary.csv", "landscape_resnet20.csv", "landscape_resnet20.png"} <= {p.name for p in out.iterdir()}
    figures = json.loads((out / "report.json").read_text())["landscape"]["resnet20"]
    assert figures["state"] == "at initialisation" and figures["grid"] == "3x3"
    surface = pd.read_csv(out / "landscape_resnet20.csv")
    assert len(surface) == 18 and set(surface["variant"]) == {"residual", "plain"}
    summary = pd.read_csv(out / "landscape_summary.csv").set_index("variant")
    for variant in ("residual", "plain"):
        z = surface[surface["variant"] == variant].sort_values(["x", "y"])["loss"].to_numpy().reshape(3, 3)
        got = figures[variant]
        # By hand on the 3x3 grid over [-1, 1]: the origin is the centre, the only point within 0.5 of it
        # (range 0); the only interior point, a local minimum if below its 8 neighbours; second differences
        # z[0] - 2 z[1] + z[2] along the 3 rows and 3 columns.
        assert got["loss_at_origin"] == pytest.approx(z[1, 1], rel=1e-5)
        assert got["loss_range_r0.5"] == 0.0
        neighbours = [z[i, j] for i in range(3) for j in range(3) if (i, j) != (1, 1)]
        assert got["local_minima"] == int(all(z[1, 1] < v for v in neighbours))
        d2 = [abs(z[0, k] - 2 * z[1, k] + z[2, k]) for k in range(3)] + [abs(z[k, 0] - 2 * z[k, 1] + z[k, 2])
                                                                       for k in range(3)]
        assert got["mean_abs_d2"] == pytest.approx(np.mean(d2), rel=1e-5)
        assert summary.loc[variant, "mean_abs_d2"] == pytest.approx(np.mean(d2), rel=1e-5)
    page = (out / "index.md").read_text()
    assert "landscape_resnet20.png" in page and f"{figures['plain']['mean_abs_d2']:.3g}" in page
    # Every highlights row stays two cells: the '|' in 'mean |2nd difference|' is escaped.
    rows = [line for line in page.splitlines() if line.startswith("| ") and "resnet20" in line]
    assert rows and all(len(re.findall(r"(?<!\\)\|", row)) == 3 for row in rows)
