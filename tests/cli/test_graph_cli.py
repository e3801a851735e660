"""`netprobe graph` from the command line: formats, files, and bad input in one line with exit 2."""

import xml.etree.ElementTree as ET

import pytest

from helpers import one_line_error, run


def test_formats_follow_the_output_suffix(tmp_path):
    for suffix, start in ((".svg", b"<svg"), (".png", b"\x89PNG"), (".dot", b"digraph"), (".mmd", b"flowchart")):
        out = tmp_path / f"lenet{suffix}"
        result = run("graph", "lenet5", "--show", "shape,params,macs,rf", "-o", out)
        assert result.exit_code == 0, result.output
        assert out.read_bytes().startswith(start), suffix


def test_svg_to_stdout_names_every_lenet_layer():
    result = run("graph", "lenet5", "--show", "rf")
    assert result.exit_code == 0, result.output
    texts = [t.text for t in ET.fromstring(result.stdout).iter("{http://www.w3.org/2000/svg}text")]
    assert "features.0" in texts and "Conv2d 5x5 conv, 6" in texts  # LeCun et al. 1998: C1, 6 maps of 5x5
    # S4 (features.5), by hand: r = 1 + (5-1) + (2-1) + (5-1) x 2 + (2-1) x 2 = 16, jump 2 x 2 = 4
    assert "rf 16x16, jump 4" in texts


def test_compare_draws_the_plain_twin_beside(tmp_path):
    result = run("graph", "resnet20", "--kwargs", "width=2", "--compare", "--format", "mermaid")
    assert result.exit_code == 0, result.output
    assert 'subgraph m0["resnet20"]' in result.stdout and 'subgraph m1["resnet20 (plain)"]' in result.stdout
    assert "m0n" in result.stdout and "==>" in result.stdout.split('subgraph m1')[0]
    assert "==>" not in result.stdout.split('subgraph m1')[1]  # the plain twin has no skips


def test_model_file_and_depth(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text("import torch\nclass Net(torch.nn.Sequential):\n"
                    "    def __init__(self):\n        super().__init__(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())\n")
    result = run("graph", f"{path}:Net", "--input-size", "3x8x8", "--depth", "0", "--format", "dot")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("->") == 2  # input -> model -> output


@pytest.mark.parametrize("args, parts", [
    (("--show", "shape,flops"), ("--show", "unknown --show field 'flops'")),
    (("--depth", "-1"), ("--depth", "-1")),
    (("--compare",), ("lenet5", "no shortcuts to remove")),
])
def test_bad_options_are_one_line(args, parts):
    one_line_error(run("graph", "lenet5", *args), *parts)


def test_a_model_that_does_not_trace_is_one_line(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("import torch\nclass Net(torch.nn.Module):\n    def forward(self, x):\n"
                    "        return x.view(-1, 7)\n")
    one_line_error(run("graph", f"{path}:Net", "--input-size", "3x8x8"), "forward pass failed")
