"""netprobe depth: bad input, resuming within and between pairs, determinism, jobs, rank shares, checkpoints."""

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from netprobe.analysis.depth import Recipe, Study, describe, rank_share, run_study, train_pair
from netprobe.cli.main import cli
from netprobe.errors import NetprobeError

TINY = ["--depths", "20", "--steps", "2", "--every", "1", "--width", "1", "--threads", "1", "--batch-size", "4",
        "--no-progress"]


def _run(*args):
    return CliRunner().invoke(cli, ["depth", *args])


@pytest.mark.parametrize("args, message", [
    (["--depths", "21"], "not of the form 6n + 2"),
    (["--depths", "8"], "not a zoo model"),
    (["--variants", "plain,preact"], "unknown variant 'preact'"),
    (["--jobs", "0"], "--jobs"),
    (["--steps", "2", "--epochs", "1"], "not both"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, message):
    result = _run(*args, "-o", str(tmp_path / "study"))
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "study").exists()


def test_unwritable_dir_exit_2(tmp_path):
    (tmp_path / "file").write_text("x")
    result = _run(*TINY, "-o", str(tmp_path / "file" / "study"))
    assert result.exit_code == 2 and "cannot create" in result.output


def test_study_resumes_pair_by_pair_byte_identical_and_refuses_other_settings(tmp_path, images):
    first, second = tmp_path / "a", tmp_path / "b"
    tiny = [*TINY, "--data", images]
    assert _run(*tiny, "-o", str(first)).exit_code == 0
    assert _run(*tiny, "-o", str(second)).exit_code == 0
    for name in ("curves.csv", "final.csv", "curves.png"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    curves = pd.read_csv(first / "curves.csv")
    assert list(curves.columns) == ["variant", "depth", "step", "epoch", "train_loss", "train_acc", "test_loss",
                                    "test_acc"]
    assert list(zip(curves.variant, curves.step)) == [("plain", 1), ("plain", 2), ("residual", 1), ("residual", 2)]
    # A study killed after one pair: the other pair is retrained, the finished one is kept as it was.
    kept = (second / "plain20.pt").read_bytes()
    (second / "residual20.pt").unlink()
    (second / "curves.csv").unlink()
    assert _run(*tiny, "-o", str(second)).exit_code == 2  # a used DIR without --resume: refused
    assert _run(*tiny, "--resume", "-o", str(second)).exit_code == 0
    assert (second / "plain20.pt").read_bytes() == kept
    assert (second / "curves.csv").read_bytes() == (first / "curves.csv").read_bytes()
    result = _run(*[a if a != "2" else "3" for a in tiny], "--resume", "-o", str(second))
    assert result.exit_code == 2 and "steps=2" in result.output
    assert (second / "plain20.pt").read_bytes() == kept
    result = _run(*tiny, "--threads", "2", "--resume", "-o", str(second))
    assert result.exit_code == 2 and "threads=1" in result.output


def test_resume_within_a_pair_ends_identical(tmp_path, monkeypatch, images):
    # batch 4 of 16 samples: 4 steps per epoch, so the interval of steps 4-6 crosses an epoch boundary
    recipe = Recipe(data=images, steps=6, every=3, width=1, batch_size=4)
    whole = train_pair(recipe, "residual", 20, tmp_path / "whole.pt")
    import netprobe.analysis.evaluation as evaluation

    real, calls = evaluation.evaluate_fast, []

    def dies_second_time(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_fast", dies_second_time)
    with pytest.raises(KeyboardInterrupt):
        train_pair(recipe, "residual", 20, tmp_path / "cut.pt")
    monkeypatch.setattr(evaluation, "evaluate_fast", real)
    assert torch.load(tmp_path / "cut.pt", weights_only=True)["meta"]["step"] == 3
    resumed = train_pair(recipe, "residual", 20, tmp_path / "cut.pt", resume=True)
    assert resumed == whole and [row["step"] for row in whole] == [3, 6]
    a = torch.load(tmp_path / "whole.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "cut.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pair_checkpoint_loads_with_load_weights_and_knows_its_twin(tmp_path, images):
    from netprobe.train import load_weights
    from netprobe.zoo import load

    train_pair(Recipe(data=images, steps=1, width=1, batch_size=4), "plain", 20, tmp_path / "plain20.pt")
    meta = load_weights(load("resnet20", plain=True, width=1, num_classes=2), tmp_path / "plain20.pt", plain=True)
    assert meta["model"] == "resnet20" and meta["options"] == {"plain": True, "width": 1, "num_classes": 2}
    with pytest.raises(NetprobeError, match="plain twin"):
        load_weights(load("resnet20", width=1, num_classes=2), tmp_path / "plain20.pt", plain=False)


def test_two_jobs_match_one_job(tmp_path, images):
    study = Study(depths=(20,), recipe=Recipe(data=images, steps=2, every=1, width=1, batch_size=4))
    one = run_study(study, tmp_path / "one", jobs=1, threads=1, progress=False)
    two = run_study(study, tmp_path / "two", jobs=2, threads=1, progress=False)
    pd.testing.assert_frame_equal(one[0], two[0])
    pd.testing.assert_frame_equal(one[1], two[1])


def test_rank_share_and_pair_order():
    pairs = Study(depths=(20, 56, 110)).pairs()
    assert pairs[:2] == [("plain", 110), ("residual", 110)] and pairs[-1] == ("residual", 20)
    assert rank_share(pairs, 0, 2) == [("plain", 110), ("plain", 56), ("plain", 20)]
    assert rank_share(pairs, 1, 4) == [("residual", 110), ("residual", 20)]
    with pytest.raises(NetprobeError, match="outside a world"):
        run_study(Study(), "unused", rank=2, world=2)


def test_describe_says_which_side_of_the_shallow_net():
    final = pd.DataFrame({"variant": ["plain", "plain", "residual", "residual"], "depth": [20, 56, 20, 56],
                          "steps": 10, "train_loss": [0.5, 0.75, 0.25, 0.25], "train_acc": 0.5,
                          "test_loss": 1.0, "test_acc": [0.5, 0.25, 0.75, 0.75]})
    assert describe(final) == [
        "plain: 56 layers end at training loss 0.7500, above 20 layers' 0.5000 (test accuracy 0.250 vs 0.500)",
        "residual: 56 layers end at training loss 0.2500, at or below 20 layers' 0.2500 (test accuracy 0.750 vs "
        "0.750)",
        "at 20 layers: final training loss 0.5000 plain, 0.2500 residual",
        "at 56 layers: final training loss 0.7500 plain, 0.2500 residual"]


@pytest.mark.parametrize("text", ["{bad", "[1]"])
def test_resume_with_a_malformed_manifest_is_one_line(tmp_path, text):
    out = tmp_path / "d"
    out.mkdir()
    (out / "study.json").write_text(text)
    result = _run(*TINY, "--resume", "-o", str(out))
    assert result.exit_code == 2 and "is not a depth-study manifest" in result.output
    assert (out / "study.json").read_text() == text


def test_the_quick_regime_orders_depths_as_he_et_al_at_half_the_batch(tmp_path):
    """Plain-56 above plain-20 and residual-56 at or below residual-20 in final training loss, on the embedded
    data at the quick regime's rate, width and steps with batches of 64 (benchmarks/README.md, "depth": the same
    holds at batch 128 for 150 and 600 steps and seeds 0, 1 and 2)."""
    from netprobe.analysis.depth.study import preset

    study = Study(depths=(20, 56), recipe=preset("quick", batch_size=64, snapshots=0))
    _, final = run_study(study, tmp_path / "study", threads=1, progress=False)
    loss = {(r.variant, r.depth): r.train_loss for r in final.itertuples()}
    assert loss["plain", 56] > loss["plain", 20]
    assert loss["residual", 56] <= loss["residual", 20]
    assert loss["residual", 56] < loss["plain", 56]
