"""The report's lesion section: its files and columns, and the depth study's checkpoints reused through the
report run's work folder."""

import json

import pandas as pd
import pytest
import torch

from helpers import report, run

SAMPLE = "cifar10:fixtures/cifar10_sample"  # 10 test images, one per class


def test_lesion_section_files_and_columns(tmp_path):
    out = report(tmp_path, '[[models]]\nname = "resnet20"\noptions = {width = 2}\nanalyses = ["lesion"]\n\n'
                           '[lesion]\nsamples = 16\nrandom_sets = 1\nblocks = 2\ntrain_epochs = 0\n')
    names = {p.name for p in out.iterdir()}
    stem = "resnet20_width_2"
    assert {"lesion_summary.csv", f"lesion_{stem}.csv", f"lesion_blocks_{stem}.csv", f"lesion_curve_{stem}.csv",
            *(f"{p}_{stem}.{f}" for p in ("lesion", "lesion_ratios", "lesion_sets") for f in ("png",))} <= names
    single = pd.read_csv(out / f"lesion_{stem}.csv")
    assert list(single.columns) == ["variant", "block", "stage", "position", "downsampling", "accuracy", "loss",
                                    "accuracy_drop", "loss_increase"]
    # He et al.'s resnet20: 3 blocks a stage, 2 of them downsampling (layer2.0, layer3.0), which the plain twin
    # cannot delete (the identity does not fit).
    assert single.groupby("variant", sort=False).size().to_dict() == {"residual": 9, "plain": 7}
    curve = pd.read_csv(out / f"lesion_curve_{stem}.csv")
    assert curve["deleted"].tolist() == [1, 2, 1, 2] and (curve["draws"] == 1).all()
    summary = pd.read_csv(out / "lesion_summary.csv").set_index("variant")
    assert summary["model"].tolist() == ["resnet20 (width=2)"] * 2 and (summary["chance"] == 0.1).all()
    assert summary.loc["residual", "downsampling_blocks"] == 2 and summary.loc["plain", "downsampling_blocks"] == 0
    figures = json.loads((out / "report.json").read_text())["lesion"]["resnet20 (width=2)"]
    assert figures["state"] == "at initialisation"
    for variant, rows in single.groupby("variant"):
        kept = rows[~rows["downsampling"]]["accuracy"]
        assert figures[variant]["median_accuracy"] == pytest.approx(kept.median(), abs=1e-6)
        assert figures[variant]["worst_accuracy"] == pytest.approx(kept.min(), abs=1e-6)
    assert "resnet20 (width=2), measured at initialisation on 16 test samples" in (out / "index.md").read_text()


def _zero_branch_checkpoints(out, data):
    """What the depth study leaves for resnet20, with every residual branch scaled to zero (bn2 = 0)."""
    from netprobe.train import save_checkpoint
    from netprobe.zoo import load

    for variant in ("residual", "plain"):
        options = {"plain": True} if variant == "plain" else {}
        torch.manual_seed(0)
        model = load("resnet20", width=2, **options)
        if variant == "residual":
            for name, module in model.named_modules():
                if name.endswith(".bn2"):
                    torch.nn.init.zeros_(module.weight)
                    torch.nn.init.zeros_(module.bias)
        meta = {"model": "resnet20", "options": {"width": 2, **options, "num_classes": 10}, "data": data, "seed": 0,
                "step": 4}
        save_checkpoint(out / f"{variant}20.pt", model, meta)


@pytest.fixture
def trained_depth_study(monkeypatch):
    """The depth step's training replaced by ready checkpoints (resnet20 twins, width 2, zero residual branches)."""
    import netprobe.analysis.depth

    final = pd.DataFrame({"variant": ["plain", "residual"], "depth": [20, 20], "steps": 4, "train_loss": [1.0, 0.5],
                          "train_acc": 0.5, "test_loss": 1.0, "test_acc": 0.5})

    def fake_study(study, out, **kwargs):
        from pathlib import Path

        Path(out).mkdir(parents=True)
        _zero_branch_checkpoints(Path(out), SAMPLE)
        return final.rename(columns={"steps": "step"}).assign(epoch=0.5), final

    monkeypatch.setattr(netprobe.analysis.depth, "run_study", fake_study)


def test_lesion_reuses_the_depth_study_checkpoints(tmp_path, trained_depth_study):
    out = report(tmp_path, '[[models]]\nname = "resnet20"\nanalyses = ["depth", "lesion"]\n\n'
                           '[lesion]\nsamples = 10\nrandom_sets = 0\n')
    figures = json.loads((out / "report.json").read_text())["lesion"]["resnet20"]
    assert figures["state"] == "at the depth study's checkpoints above (4 SGD steps, width 2)"
    # With F(x) = 0 in every residual block, deleting one (downsampling ones too: the option-A shortcut is what
    # is left) computes exactly what the intact net computes: no accuracy is lost.
    single = pd.read_csv(out / "lesion_resnet20.csv")
    assert (single[single["variant"] == "residual"]["accuracy_drop"] == 0).all()
    assert not any(p.name.startswith("lesion_curve") for p in out.iterdir())  # random_sets = 0


def test_landscape_slices_the_depth_study_checkpoints_when_asked(tmp_path, trained_depth_study):
    out = report(tmp_path, '[[models]]\nname = "resnet20"\nanalyses = ["depth", "landscape"]\n\n'
                           '[landscape]\nsteps = 2\nsamples = 8\ndepth_checkpoints = true\n')
    state = "at the depth study's checkpoints above (4 SGD steps, width 2)"
    assert json.loads((out / "report.json").read_text())["landscape"]["resnet20"]["state"] == state
    assert set(pd.read_csv(out / "landscape_summary.csv")["state"]) == {state}
    bad = tmp_path / "bad.toml"
    bad.write_text('[landscape]\ndepth_checkpoints = 1\n')
    refused = run("report", "--config", bad, "-o", tmp_path / "rep2", "--no-progress")
    assert refused.exit_code == 2 and "landscape.depth_checkpoints" in refused.output
