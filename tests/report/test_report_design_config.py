"""Bad [design] values in a report config are refused at load, in one line naming the line and the key."""

import pytest
from click.testing import CliRunner

from netprobe.cli.main import cli
from netprobe.errors import NetprobeError
from netprobe.report.config import bottleneck_args, load_config


@pytest.mark.parametrize("design, message", [
    ('bottleneck = {input = "abc"}', r"d.toml:2: design.bottleneck.input: expected HxWxC like '28x28x192'"),
    ('bottleneck = {input = "28x28"}', r"d.toml:2: design.bottleneck.input: expected HxWxC"),
    ('bottleneck = {input = "0x28x192"}', r"design.bottleneck.input: expected HxWxC"),
    ('bottleneck = {input = "28x28x99999999"}', r"C at most 65536\), got '28x28x99999999'"),
    ('bottleneck = {input = "٢x2x2"}', r"design.bottleneck.input: expected HxWxC"),  # a non-ASCII digit
    ('bottleneck = {input = 28}', r"design.bottleneck.input: expected str, got 28"),
    ('bottleneck = {kernel = 4}', r"d.toml:2: design.bottleneck: kernel must be odd"),
    ('bottleneck = {kernel = 1000000000}', r"d.toml:2: design.bottleneck.kernel: must be at most 99"),
    ('bottleneck = {out = 0}', r"design.bottleneck.out: must be at least 1"),
    ('bottleneck = {reduce = 1.5}', r"design.bottleneck.reduce: expected an integer"),
    ('bottleneck = {colour = 1}', r"design.bottleneck.colour: unknown key"),
    ('bottleneck = "yes"', r"design.bottleneck: expected a table"),
    ('cases = ["3x3-vs-7x7", "3x3-vs-7x7"]', r"d.toml:2: design.cases: '3x3-vs-7x7' is listed twice"),
    ('cases = "3x3-vs-7x7"', r"design.cases: expected a list"),
    ('botleneck = {kernel = 3}', r"d.toml:2: design.botleneck: unknown setting \(known: bottleneck, cases\)"),
])
def test_bad_design_values_are_refused_at_load(tmp_path, design, message):
    path = tmp_path / "d.toml"
    path.write_text(f"[design]\n{design}\n", encoding="utf-8")
    with pytest.raises(NetprobeError, match=message) as info:
        load_config(path)
    assert "\n" not in str(info.value)


def test_bad_design_exits_2_before_any_step(tmp_path):
    path = tmp_path / "d.toml"
    path.write_text('[design]\nbottleneck = {input = "abc"}\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["report", "--config", str(path), "-o", str(tmp_path / "rep"), "--no-progress"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "design.bottleneck.input" in result.output and not (tmp_path / "rep").exists()


def test_bottleneck_input_is_height_width_channels():
    # Szegedy et al.'s 28x28x192 example, as the design step calls design.bottleneck: (C, H, W).
    assert bottleneck_args({"input": "28x14x192", "kernel": 5}) == {"kernel": 5, "input_size": (192, 28, 14)}
