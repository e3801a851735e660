"""Depth-study recipes: warm-ups, initialisations, augmentation, snapshots and trajectories on their PCA plane."""

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from netprobe.analysis.depth.pair import Recipe, initialise, load_snapshots, rate
from netprobe.analysis.surfaces.trajectory import pca_plane
from netprobe.cli.main import cli
from netprobe.train import learning_rate
from netprobe.train.augment import PadCropFlip
from netprobe.zoo import load

TINY = ["--depths", "20", "--steps", "4", "--every", "1", "--width", "1", "--threads", "1", "--batch-size", "4",
        "--no-progress"]


def test_linear_warmup_then_the_step_schedule():
    assert learning_rate(0.1, 0, 100, warmup=10) == pytest.approx(0.01)
    assert learning_rate(0.1, 4, 100, warmup=10) == pytest.approx(0.05)
    assert learning_rate(0.1, 10, 100, warmup=10) == pytest.approx(0.1)
    assert learning_rate(0.1, 60, 100, warmup=10) == pytest.approx(0.01)


def test_he_warmup_holds_until_training_error_below_80_percent_at_110_layers():
    recipe = Recipe(lr=0.1, warmup_lr=0.01)
    assert rate(recipe, 110, []) == 0.01
    assert rate(recipe, 110, [{"train_acc": 0.15}]) == 0.01  # error 85%: still warming up
    assert rate(recipe, 110, [{"train_acc": 0.15}, {"train_acc": 0.21}]) == 0.1  # error 79%
    assert rate(recipe, 110, [{"train_acc": 0.21}, {"train_acc": 0.1}]) == 0.1  # once over, never again
    assert rate(recipe, 56, []) == 0.1  # He et al. warm up their 110-layer net only


def test_zero_last_bn_zeroes_residual_blocks_and_leaves_the_plain_twin():
    def built(plain, init):
        torch.manual_seed(0)
        model = load("resnet20", plain=plain, width=2)
        initialise(model, init)
        return model

    residual = built(False, "zero-last-bn")
    scales = {name: m.bn2.weight for name, m in residual.named_modules() if hasattr(m, "bn2")}
    downsampling = {"layer2.0", "layer3.0"}  # option A zero-pads their new channels: those must keep a scale
    assert all(float(w.detach().abs().sum()) == 0 for name, w in scales.items() if name not in downsampling)
    assert all(float(scales[name].detach().min()) == 1 for name in downsampling) and len(scales) == 9
    assert all(float(m.bn1.weight.detach().min()) == 1 for m in residual.modules() if hasattr(m, "bn1"))
    plain, paper = built(True, "zero-last-bn"), built(True, "he")
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), paper.state_dict().values()))


def test_pad_crop_flip_gives_crops_of_the_padded_image_and_uses_every_offset():
    x = torch.randn(400, 3, 6, 6)
    out = PadCropFlip([-1.0, -2.0, -3.0], seed=0, pad=2)(x)
    fill = torch.tensor([-1.0, -2.0, -3.0]).reshape(3, 1, 1)
    padded = F.pad(x, (2, 2, 2, 2)) + F.pad(torch.zeros(1, 3, 6, 6), (2, 2, 2, 2), value=1.0) * fill
    seen = set()
    for i in range(len(x)):
        match = [(top, left, flip) for top in range(5) for left in range(5) for flip in (False, True)
                 if torch.equal(out[i], (lambda c: c.flip(2) if flip else c)(padded[i, :, top:top + 6, left:left + 6]))]
        assert match, f"sample {i} is no crop of its padded image"
        seen.update(match)
    assert seen == {(t, l, f) for t in range(5) for l in range(5) for f in (False, True)}


def test_pad_crop_flip_is_seeded_and_resumable():
    x = torch.randn(8, 3, 5, 5)
    a, b = PadCropFlip([0.0] * 3, seed=3), PadCropFlip([0.0] * 3, seed=3)
    a(x)
    b.restore(a.state())
    assert torch.equal(a(x), b(x))


def test_pca_plane_recovers_a_path_that_lies_in_a_plane():
    torch.manual_seed(0)
    u, v = torch.linalg.qr(torch.randn(50, 2))[0].T  # orthonormal in parameter space
    final = {"w": torch.randn(5, 10), "b": torch.randn(5)}
    steps = [0, 1, 2, 3, 4, 5]
    ab = torch.tensor([[-4.0, -1.0], [-3.0, 1.5], [-2.5, 0.2], [-1.0, 0.9], [-0.5, -0.3], [0.0, 0.0]])
    states = [{"w": final["w"] + (a * u + b * v).reshape(5, 10), "b": final["b"] + i} for i, (a, b) in enumerate(ab)]
    plane = pca_plane(steps, states)
    assert sum(plane.explained) == pytest.approx(1.0)
    got = torch.tensor(plane.path[["x", "y"]].to_numpy())
    # A rotation or reflection of the true coordinates: the same distances between every two points.
    assert torch.allclose(torch.cdist(got, got), torch.cdist(ab.double(), ab.double()), atol=1e-5)
    assert (got[0] < 0).all()  # the path starts at negative x and y
    assert float(plane.directions[0]["b"].abs().sum()) == 0  # biases left out, as the landscape's directions


def _study(tmp_path, images, *extra):
    out = tmp_path / "study"
    result = CliRunner().invoke(cli, ["depth", *TINY, "--data", images, "--snapshots", "2", *extra, "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_snapshots_kept_along_training_and_the_trajectory_drawn(tmp_path, images):
    out = _study(tmp_path, images)
    steps, states, meta = load_snapshots(out / "residual20.path.pt")
    assert steps == [0, 2, 4] and meta["model"] == "resnet20"
    final = torch.load(out / "residual20.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(t, final[name]) for name, t in states[-1].items())
    result = CliRunner().invoke(cli, ["landscape", "resnet20", "--compare", "--trajectory", str(out), "--steps", "3",
                                      "--samples", "4", "--no-progress", "-o", str(tmp_path / "traj")])
    assert result.exit_code == 0, result.output
    path = pd.read_csv(tmp_path / "traj" / "path.csv")
    assert list(path.variant) == ["residual"] * 3 + ["plain"] * 3 and list(path.step[:3]) == [0, 2, 4]
    assert len(pd.read_csv(tmp_path / "traj" / "surface.csv")) == 2 * 9
    assert (tmp_path / "traj" / "paths.png").read_bytes()[:4] == b"\x89PNG"


def test_trajectory_refusals_are_one_line(tmp_path, images):
    out = _study(tmp_path, images, "--variants", "residual")
    (out / "residual20.path.pt").write_text("not a snapshot file")
    for args, message in ((["resnet20"], "is not a snapshot file"), (["resnet20", "--plain"], "does not exist"),
                          (["resnet56"], "does not exist"), (["vgg11"], "not a CIFAR ResNet")):
        result = CliRunner().invoke(cli, ["landscape", *args, "--trajectory", str(out), "--no-progress",
                                          "-o", str(tmp_path / "traj")])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output


def test_recipe_refusals(tmp_path):
    for args, message in ((["--recipe", "he2016"], "cifar10:PATH"), (["--quick", "--recipe", "he2016"], "--quick"),
                          (["--recipe", "fast"], "fast")):
        result = CliRunner().invoke(cli, ["depth", *args, "-o", str(tmp_path / "d")])
        assert result.exit_code == 2 and message in result.output, result.output


def test_train_augment_is_deterministic_and_recorded(tmp_path, images):
    def train(name, *extra):
        result = CliRunner().invoke(cli, ["train", "resnet20", "--kwargs", "width=1", "--data", images, "--epochs", "2",
                                          "--batch-size", "4", "--threads", "1", "--no-progress", *extra,
                                          "-o", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        return (tmp_path / name).with_suffix(".csv").read_text()

    once, again, plain = train("a.pt", "--augment"), train("b.pt", "--augment"), train("c.pt")
    assert once == again and once != plain
    assert torch.load(tmp_path / "a.pt", weights_only=True)["meta"]["train"]["augment"] is True


def test_he2016_recipe_states_the_papers_figures_beside_the_measured(tmp_path):
    import json

    out = tmp_path / "he"
    result = CliRunner().invoke(cli, ["depth", "--recipe", "he2016", "--data", "cifar10:fixtures/cifar10_sample",
                                      "--depths", "20", "--steps", "2", "--every", "1", "--width", "1",
                                      "--batch-size", "8", "--threads", "1", "--no-progress", "-o", str(out)])
    assert result.exit_code == 0, result.output
    final = pd.read_csv(out / "final.csv")
    residual = final[final.variant == "residual"].iloc[0]
    assert residual.he2016_test_error_pct == 8.75  # He et al. 2016, Table 6: ResNet-20
    assert residual.test_error_pct == pytest.approx(100 * (1 - residual.test_acc))
    assert final[final.variant == "plain"].he2016_test_error_pct.isna().all()
    settings = json.loads((out / "study.json").read_text())
    assert settings["augment"] is True and settings["warmup_lr"] == 0.01 and settings["lr"] == 0.1


def test_a_corrupt_resume_block_is_refused_in_one_line(tmp_path, images):
    out = _study(tmp_path, images, "--variants", "residual")
    saved = torch.load(out / "residual20.pt", weights_only=True)
    saved["meta"]["resume"]["order"] = torch.zeros(3, dtype=torch.int64)  # not a permutation of the samples
    saved["meta"]["step"], saved["meta"]["history"] = 2, saved["meta"]["history"][:2]
    torch.save(saved, out / "residual20.pt")
    kept = (out / "residual20.pt").read_bytes()
    result = CliRunner().invoke(cli, ["depth", *TINY, "--data", images, "--snapshots", "2", "--variants", "residual",
                                      "--resume", "-o", str(out)])
    assert result.exit_code == 2 and "holds no permutation of the 16 training samples" in result.output, result.output
    assert (out / "residual20.pt").read_bytes() == kept
