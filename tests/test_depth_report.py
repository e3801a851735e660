"""The report's degradation section: which depths it trains, and what it says from the study's tables."""

import pandas as pd
import pytest

from netprobe.errors import NetprobeError
from netprobe.report.config import ModelEntry
from netprobe.report.depth_step import depth_step, study_depths


def _entry(name):
    return ModelEntry(name, {}, None, ["depth"])


def test_depths_are_20_and_each_listed_resnet():
    assert study_depths([_entry("resnet56")]) == (20, 56)
    assert study_depths([_entry("resnet110"), _entry("resnet20")]) == (20, 110)
    for bad in ("vgg16", "resnet50", "mymodels.py:resnet56"):
        with pytest.raises(NetprobeError, match="trains CIFAR ResNets"):
            study_depths([_entry(bad)])


def test_section_reports_the_final_table_in_words(monkeypatch):
    import netprobe.analysis.depth

    final = pd.DataFrame({"variant": ["plain", "plain", "residual", "residual"], "depth": [20, 56, 20, 56],
                          "steps": 4, "train_loss": [0.5, 1.5, 0.25, 0.125], "train_acc": 0.5, "test_loss": 1.0,
                          "test_acc": [0.5, 0.25, 0.75, 0.875]})
    curves = final.rename(columns={"steps": "step"}).assign(epoch=0.5)
    seen = {}

    def fake(study, out, **kwargs):
        seen["depths"] = study.depths
        return curves, final

    monkeypatch.setattr(netprobe.analysis.depth, "run_study", fake)
    config = type("Config", (), {"seed": 3})()
    section = depth_step([_entry("resnet56")], config)
    assert seen["depths"] == (20, 56)
    assert "plain: 56 layers end at training loss 1.5000, above 20 layers' 0.5000" in " ".join(section.text)
    assert "residual: 56 layers end at training loss 0.1250, at or below 20 layers' 0.2500" in " ".join(section.text)
    assert section.figures["plain56"] == {"train_loss": 1.5, "test_acc": 0.25}
    assert [p.name for p in section.plots] == ["degradation_curves", "degradation_final"]
