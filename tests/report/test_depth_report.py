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
    config = type("Config", (), {"seed": 3, "device": "cpu"})()
    section = depth_step([_entry("resnet56")], config)
    assert seen["depths"] == (20, 56)
    text = " ".join(section.text)
    assert ("Plain: 56 layers end at 1.5000, 20 layers at 0.5000. He et al.'s degradation problem is reproduced"
            in text)
    assert "Residual: 56 layers end at 0.1250, 20 layers at 0.2500. As He et al. find" in text
    assert "20: 0.2500 against 0.5000; 56: 0.1250 against 1.5000. At every depth the shortcuts" in text
    assert section.figures["plain56"] == {"train_loss": 1.5, "test_acc": 0.25}
    assert [p.name for p in section.plots] == ["degradation_curves", "degradation_final"]


def test_findings_say_where_the_budget_does_not_reach_the_paper():
    from netprobe.report.verdicts import degradation_findings

    final = pd.DataFrame({"variant": ["plain", "plain", "residual", "residual"], "depth": [20, 56, 20, 56],
                          "train_loss": [1.0, 0.5, 0.25, 0.5]})
    plain, residual = degradation_findings(final)
    assert "does not show at this budget" in plain
    assert "He et al. find the deeper ResNet at the lower training error; here it is not" in residual


def test_models_near_chance_draw_no_conclusion():
    from netprobe.report.verdicts import has_learned, not_learned

    assert has_learned(0.325, 0.1) and not has_learned(0.324, 0.1)
    assert not_learned([("residual", 0.9), ("plain", 0.5)], 0.1, "x") is None
    words = not_learned([("residual", 0.9), ("plain", 0.2)], 0.1, "the surfaces")
    assert "No conclusion is drawn about the surfaces: the plain twin (accuracy 0.200) has not learned" in words
