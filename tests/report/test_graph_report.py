"""The report's architecture diagrams: Mermaid in index.md, SVG files in index.html, a depth per model."""

import json
import re

from click.testing import CliRunner

from netprobe.cli.main import cli

CONFIG = """
title = "diagrams"

[[models]]
name = "lenet5"
analyses = ["summary"]

[[models]]
name = "resnet20"
options = {width = 2}
analyses = ["summary"]
"""


def test_report_draws_each_summarised_model(tmp_path):
    (tmp_path / "r.toml").write_text(CONFIG)
    out = tmp_path / "rep"
    result = CliRunner().invoke(cli, ["report", "--config", str(tmp_path / "r.toml"), "-o", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    figures = json.loads((out / "report.json").read_text())["architecture"]
    # LeNet-5 at full depth: input, C1 tanh S2 C3 tanh S4 (6), the three linear layers and two tanh (5), output
    assert figures["lenet5"] == {"depth": 2, "nodes": 13, "edges": 12}
    # resnet20 (n = 3): stem 3 + three stages of one drawn block pair (7 + 7, the first of stages 2, 3 with its pad)
    assert figures["resnet20 (width=2)"]["depth"] == 3
    markdown = (out / "index.md").read_text()
    assert len(re.findall(r"^```mermaid\nflowchart TB\n", markdown, re.M)) == 2
    assert 'subgraph ng0["layer1.0 .. layer1.2 x3"]' in markdown
    page = (out / "index.html").read_text()
    for name in ("graph_lenet5.svg", "graph_resnet20_width_2.svg"):
        assert f'<img src="{name}"' in page and (out / name).read_text().startswith("<svg")
