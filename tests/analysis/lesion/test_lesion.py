"""Lesion study: deleting a block keeps exactly its shortcut path, hand-checked; counts of deletable blocks
from He et al.'s layout; random sets; restoration; the command's outputs and one-line errors."""

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netprobe.analysis.lesion import lesion as L
from netprobe.analysis.lesion.blocks import deletable_blocks, deleted, find_blocks
from netprobe.zoo import cifar_resnet, load

SAMPLE = "cifar10:fixtures/cifar10_sample"  # 10 test images, one per class


def _tiny(name="resnet20", seed=0, **options):
    torch.manual_seed(seed)
    return load(name, width=2, **options).eval()


def _zero_branch(block):
    """Make F(x) = 0 exactly: the last BatchNorm of the residual branch scales by 0 and shifts by 0."""
    with torch.no_grad():
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()


@pytest.mark.parametrize("name", ["layer1.1", "layer2.0", "layer3.0"])
def test_deleting_a_block_whose_branch_is_zero_changes_nothing(name):
    # relu(0 + shortcut(x)) is what the block computed; layer2.0 and layer3.0 check the option-A shortcut.
    model = _tiny()
    _zero_branch(model.get_submodule(name))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        intact = model(x)
        block = next(b for b in find_blocks(model, x) if b.name == name)
        with deleted(model, [block]):
            lesioned = model(x)
    assert torch.equal(lesioned, intact)


@pytest.mark.parametrize("preact", [False, True])
def test_imagenet_basic_block_with_projection_zero_branch(preact):
    torch.manual_seed(0)
    model = load("resnet18", preact=preact).eval()
    block = model.layer2[0]  # a projection shortcut (1x1 conv, stride 2)
    with torch.no_grad():
        if preact:
            block.conv2.weight.zero_()  # pre-activation: F ends in conv2, added without a ReLU
        else:
            _zero_branch(block)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        intact = model(x)
        found = next(b for b in find_blocks(model, x) if b.name == "layer2.0")
        assert found.downsampling and found.residual
        with deleted(model, [found]):
            lesioned = model(x)
    assert torch.equal(lesioned, intact)


def test_deleting_a_plain_block_is_the_identity():
    model = _tiny(plain=True)
    x = torch.randn(3, 3, 32, 32)

    def without(skip):  # the plain net's forward with block `skip` left out, written out by hand
        h = F.relu(model.bn1(model.conv1(x)))
        for stage in (model.layer1, model.layer2, model.layer3):
            for i, block in enumerate(stage):
                if (stage, i) != skip:
                    h = block(h)
        return model.linear(F.adaptive_avg_pool2d(h, 1).flatten(1))

    with torch.no_grad():
        block = next(b for b in find_blocks(model, x) if b.name == "layer2.1")
        with deleted(model, [block]):
            lesioned = model(x)
        assert torch.equal(lesioned, without((model.layer2, 1)))


@pytest.mark.parametrize("depth", [20, 56])
def test_counts_follow_he_et_al_layout(depth):
    # 6n + 2 layers: 3n blocks, two of which (the first of stages 2 and 3) change the shape.
    n = (depth - 2) // 6
    x = torch.empty(1, 3, 32, 32, device="meta")
    with torch.device("meta"):
        residual, plain = cifar_resnet.cifar_resnet(depth), cifar_resnet.cifar_resnet(depth, plain=True)
    blocks = deletable_blocks(residual, x)
    assert len(blocks) == 3 * n
    assert [b.name for b in blocks if b.downsampling] == ["layer2.0", "layer3.0"]
    assert len(deletable_blocks(plain, x)) == 3 * n - 2  # the plain downsampling blocks have no identity
    assert [b.position for b in blocks] == list(range(3 * n))


def test_no_deletable_blocks_raises():
    from netprobe.errors import NetprobeError

    with pytest.raises(NetprobeError, match="no deletable blocks"):
        deletable_blocks(nn.Sequential(nn.Conv2d(3, 3, 3)), torch.zeros(1, 3, 8, 8))


def test_single_deletions_restore_the_model_and_zero_branch_costs_nothing():
    model = _tiny()
    _zero_branch(model.layer3[1])
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    children = [id(m) for m in model.modules()]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    blocks = deletable_blocks(model, x)
    table = L.single_deletions(model, blocks, x, y)
    assert list(table.columns) == list(L.SINGLE_COLUMNS) and len(table) == 9
    row = table.set_index("block").loc["layer3.1"]
    assert row["accuracy_drop"] == 0.0 and row["loss_increase"] == 0.0
    assert [id(m) for m in model.modules()] == children
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_deleted_restores_after_an_error():
    model = _tiny()
    blocks = deletable_blocks(model, torch.zeros(1, 3, 32, 32))
    original = model.layer1[0]
    with pytest.raises(RuntimeError):
        with deleted(model, blocks):
            raise RuntimeError("boom")
    assert model.layer1[0] is original and not any(isinstance(m, nn.Identity) for m in model.layer1)


def test_ratio_and_variances_by_hand():
    # A single block with F(x) = c everywhere (bn2 scales by 0, shifts by c) and an input x >= 0:
    # ratio = |c| sqrt(numel) / ||x||, and relu(x + c) = x + c has the variance of x.
    block = cifar_resnet.BasicBlock(4, 4)
    with torch.no_grad():
        block.bn2.weight.zero_()
        block.bn2.bias.fill_(0.5)
    model = nn.Sequential(block).eval()
    x = torch.rand(6, 4, 5, 5)
    table = L.block_statistics(model, find_blocks(model, x), x, batch_size=4)
    row = table.iloc[0]
    assert row["ratio"] == pytest.approx(0.5 * math.sqrt(x.numel()) / float(x.double().norm()), rel=1e-12)
    assert row["input_var"] == pytest.approx(float(x.double().var(unbiased=False)), rel=1e-9)
    assert row["output_var"] == pytest.approx(row["input_var"], rel=1e-6)


def test_train_mode_statistics_leave_buffers_and_mode_alone():
    model = _tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(8, 3, 32, 32)
    table = L.block_statistics(model, find_blocks(model, x), x, train=True)
    assert not model.training and len(table) == 9
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_draw_sets_distinct_seeded_and_exhaustive_when_few():
    names = ["a", "b", "c", "d"]
    sets = L.draw_sets(names, 4, 3, seed=1)
    by_k = {k: [s for kk, _, s in sets if kk == k] for k in range(1, 5)}
    # C(4,1) = 4, C(4,2) = 6, C(4,3) = 4 exceed 3 draws; C(4,4) = 1 set only.
    assert [len(by_k[k]) for k in range(1, 5)] == [3, 3, 3, 1]
    assert all(len(set(v)) == len(v) and all(len(s) == k for s in v) for k, v in by_k.items())
    assert by_k[4] == [("a", "b", "c", "d")]
    assert L.draw_sets(names, 4, 3, seed=1) == sets
    assert L.draw_sets(names, 2, 10, seed=0) == [(1, i, (n,)) for i, n in enumerate(names)] + [
        (2, i, s) for i, s in enumerate([("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")])]


def test_set_curve_by_hand():
    sets = pd.DataFrame({"deleted": [1, 1, 2], "draw": [0, 1, 0], "blocks": ["a", "b", "a;b"],
                         "accuracy": [0.5, 0.7, 0.2], "loss": [1.0, 1.0, 2.0]})
    curve = L.set_curve(sets)
    assert curve["accuracy_mean"].tolist() == pytest.approx([0.6, 0.2])
    assert curve["accuracy_std"].tolist() == pytest.approx([math.sqrt(0.02), 0.0])
    assert curve["accuracy_min"].tolist() == [0.5, 0.2] and curve["draws"].tolist() == [2, 1]


# --- CLI ----------------------------------------------------------------------------------------------


def cli(*args):
    from click.testing import CliRunner

    from netprobe.cli.main import cli as group

    return CliRunner().invoke(group, ["lesion", *args])


def test_cli_compare_writes_everything(tmp_path, checkpoints):
    out = tmp_path / "out"
    result = cli("resnet20", "--compare", "--weights", checkpoints["residual"], "--weights", checkpoints["plain"],
                 "--samples", "10", "--random-sets", "2", "--blocks", "3", "--no-progress", "-o", str(out))
    assert result.exit_code == 0, result.output
    for name in ("single.csv", "blocks.csv", "summary.csv", "sets.csv", "curve.csv", "single.png", "ratios.png",
                 "sets.png"):
        assert (out / name).stat().st_size > 0, name
    single = pd.read_csv(out / "single.csv")
    assert single.groupby("variant", sort=False).size().to_dict() == {"residual": 9, "plain": 7}
    assert set(single[single["downsampling"]]["block"]) == {"layer2.0", "layer3.0"}
    summary = pd.read_csv(out / "summary.csv")
    assert summary["chance"].tolist() == [0.1, 0.1] and summary["downsampling_blocks"].tolist() == [2, 0]
    curve = pd.read_csv(out / "curve.csv")
    assert curve["deleted"].tolist() == [1, 2, 3, 1, 2, 3]
    blocks = pd.read_csv(out / "blocks.csv")
    assert blocks[blocks["variant"] == "plain"]["ratio"].isna().all() and len(blocks) == 18


def test_cli_same_seed_same_bytes(tmp_path, checkpoints):
    args = ("resnet20", "--weights", checkpoints["residual"], "--samples", "10", "--random-sets", "1",
            "--blocks", "2", "--no-progress")
    for name in ("a", "b"):
        assert cli(*args, "-o", str(tmp_path / name)).exit_code == 0
    for name in ("single.csv", "blocks.csv", "sets.csv", "single.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


@pytest.mark.parametrize("args, message", [
    (("lenet5",), "no deletable blocks"),
    (("resnet20", "--random-sets", "2", "--blocks", "8"), "has 7 blocks that keep the shape"),
    (("resnet20", "--blocks", "3"), "give --random-sets"),
    (("resnet20", "--plain", "--compare"), "exclude each other"),
    (("resnet20", "--samples", "11", "--data", SAMPLE), "10 test samples"),
    (("vgg11", "--no-bn"), "apply to the CIFAR ResNets"),
])
def test_cli_bad_input_exits_2(tmp_path, args, message):
    result = cli(*args, "--no-progress", "-o", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_cli_refuses_weights_of_another_model_or_twin(tmp_path, checkpoints):
    other = cli("resnet32", "--weights", checkpoints["residual"], "-o", str(tmp_path / "a"))
    assert other.exit_code == 2 and "not of resnet32" in other.output
    twin = cli("resnet20", "--weights", checkpoints["plain"], "-o", str(tmp_path / "b"))
    assert twin.exit_code == 2 and "add --plain" in twin.output


@pytest.fixture
def no_data(monkeypatch):
    """Fail the test if any data set is loaded: the refusals below must come before that."""
    import netprobe.data

    def load_data(*args, **kwargs):
        raise AssertionError("data was loaded before the checkpoint was refused")

    monkeypatch.setattr(netprobe.data, "load_data", load_data)


def test_wrong_twin_is_refused_before_the_data_loads(checkpoints, no_data):
    from netprobe.analysis.lesion.study import study
    from netprobe.errors import NetprobeError

    with pytest.raises(NetprobeError, match="holds the plain twin's weights .* given for the residual variant"):
        study("resnet20", weights=[checkpoints["plain"]])
    with pytest.raises(NetprobeError, match="holds the residual twin's weights .* given for the plain variant"):
        study("resnet20", variants=("plain",), weights=[checkpoints["residual"]])
    with pytest.raises(NetprobeError, match="plain.pt holds the plain twin's weights"):  # --compare, swapped
        study("resnet20", variants=("residual", "plain"), weights=[checkpoints["plain"], checkpoints["residual"]])


def test_weights_that_do_not_fit_are_refused_before_the_data_loads(tmp_path, checkpoints, no_data):
    from netprobe.analysis.lesion.study import study
    from netprobe.errors import NetprobeError

    # Width 4 against the checkpoint's 2: the stem conv maps 3 channels to `width`, 3x3 kernels.
    with pytest.raises(NetprobeError, match=r"key 'conv1.weight' has shape \(2, 3, 3, 3\) in the checkpoint, "
                                            r"\(4, 3, 3, 3\) in the model"):
        study("resnet20", options={"width": 4}, weights=[checkpoints["residual"]])
    # A bare state dict of resnet32 (5 blocks a stage) for resnet20 (3): layer1.3 is the first key it lacks.
    bare = tmp_path / "r32.pt"
    torch.save(_tiny("resnet32").state_dict(), bare)
    with pytest.raises(NetprobeError, match=r"does not fit the residual resnet20: unexpected key 'layer1.3."):
        study("resnet20", options={"width": 2}, weights=[str(bare)])
