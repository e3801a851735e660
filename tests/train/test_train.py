"""Training: the schedule, resumable bit-identical runs, checkpoints, BN recalibration, the CLI's bad input."""

import shutil

import pytest
import torch
from torch import nn

from netprobe.data import Dataset, Split, load_data
from netprobe.errors import NetprobeError
from netprobe.train import fit, learning_rate, load_weights, recalibrate_bn, save_checkpoint
from helpers import FIXTURE_DIR as FIXTURE, run

TINY = ("resnet20", "--data", f"cifar10:{FIXTURE}", "--batch-size", "8", "--no-progress")  # 40 train images


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def test_learning_rate_drops_at_half_and_three_quarters():
    # He et al. 2016, Sec. 4.2: 0.1, divided by 10 at 32k and at 48k of 64k iterations.
    assert learning_rate(0.1, 0, 64000) == 0.1
    assert learning_rate(0.1, 31999, 64000) == 0.1
    assert learning_rate(0.1, 32000, 64000) == pytest.approx(0.01)
    assert learning_rate(0.1, 47999, 64000) == pytest.approx(0.01)
    assert learning_rate(0.1, 48000, 64000) == pytest.approx(0.001)
    assert learning_rate(0.1, 63999, 64000) == pytest.approx(0.001)
    # Short runs: 10 steps -> 5 at lr, 3 (steps 5, 6, 7... up to 7.5) at lr/10, 2 at lr/100.
    assert [round(learning_rate(1.0, s, 10), 6) for s in range(10)] == [1, 1, 1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01]


def test_interrupted_run_resumes_bit_identical(tmp_path, monkeypatch):
    full = tmp_path / "full.pt"
    result = run("train", *TINY, "--epochs", "3", "-o", full)
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output and "after 3 epochs" in result.output

    # Interrupt the second run as a Ctrl-C during its second epoch would.
    import netprobe.train.loop as loop

    real, calls = loop.train_epoch, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "train_epoch", interrupted)
    part = tmp_path / "part.pt"
    result = run("train", *TINY, "--epochs", "3", "-o", part)
    assert result.exit_code == 1 and "rerun with --resume" in result.output and "Traceback" not in result.output
    assert torch.load(part, weights_only=True)["meta"]["epoch"] == 1 and not part.with_suffix(".csv").exists()
    monkeypatch.setattr(loop, "train_epoch", real)

    result = run("train", *TINY, "--epochs", "3", "--resume", "-o", part)
    assert result.exit_code == 0, result.output
    a, b = torch.load(full, weights_only=True), torch.load(part, weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert full.with_suffix(".csv").read_bytes() == part.with_suffix(".csv").read_bytes()
    assert a["meta"]["history"] == b["meta"]["history"]

    # The checkpoint format: plain types and tensors, the metadata the other commands read.
    meta = a["meta"]
    assert meta["model"] == "resnet20" and meta["options"] == {} and meta["data"] == f"cifar10:{FIXTURE}"
    assert meta["seed"] == 0 and meta["epoch"] == 3
    assert meta["train"] == {"epochs": 3, "batch_size": 8, "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
                             "seed": 0, "data": f"cifar10:{FIXTURE}"}
    lines = full.with_suffix(".csv").read_text().splitlines()
    assert lines[0] == "epoch,train_loss,train_acc,test_loss,test_acc" and len(lines) == 4
    assert [int(line.split(",")[0]) for line in lines[1:]] == [1, 2, 3]


def test_same_seed_same_csv_other_seed_differs(tmp_path):
    csvs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        result = run("train", "lenet5", *TINY[1:], "--epochs", "2", "--seed", seed, "-o", tmp_path / f"{name}.pt")
        assert result.exit_code == 0, result.output
        csvs.append((tmp_path / f"{name}.csv").read_bytes())
    assert csvs[0] == csvs[1]
    assert csvs[0] != csvs[2]


def test_plain_checkpoint_feeds_gradients(tmp_path):
    ckpt = tmp_path / "plain.pt"
    assert run("train", *TINY, "--plain", "--epochs", "1", "-o", ckpt).exit_code == 0
    assert torch.load(ckpt, weights_only=True)["meta"]["options"] == {"plain": True}
    result = run("gradients", "resnet20", "--plain", "--weights", ckpt, "--batch-size", "4", "--batches", "1",
                 "-o", tmp_path / "g.csv")
    assert result.exit_code == 0, result.output
    # Without --plain the residual twin would silently take the plain weights (same keys and shapes).
    result = run("gradients", "resnet20", "--weights", ckpt, "--batch-size", "4", "--batches", "1")
    assert result.exit_code == 2 and "holds the plain twin's weights" in result.output


def _corrupt(tmp_path):
    bad = tmp_path / "cifar"
    shutil.copytree(FIXTURE, bad)
    data = (bad / "data_batch_1").read_bytes()
    (bad / "data_batch_1").write_bytes(data[:len(data) // 2])
    return f"cifar10:{bad}"


@pytest.mark.parametrize("args, message", [
    (("--data", "imagenet:/x"), "unknown data spec 'imagenet:/x'"),
    (("--data", "cifar10:/no/such/dir"), "is not a directory"),
    (("--data", "corrupt"), "is not a CIFAR batch file"),
    (("--epochs", "0"), "Invalid value for '--epochs'"),
    (("--lr", "-0.1"), "the learning rate must be positive"),
    (("--lr", "0"), "the learning rate must be positive"),
    (("--lr", "nan"), "the learning rate must be positive"),
    (("--output", "no/such/dir/run.pt"), "directory"),
    (("--output", "run.csv"), "must not end in .csv"),
    (("--output", ""), "an empty name"),
    (("--preact",), "has no pre-activation variant"),
    (("--plain", "--model", "lenet5"), "has no shortcuts to remove"),
    (("--model", "unet"), "is not a classifier"),
    (("--model", "resnet2O"), "unknown architecture 'resnet2O' (did you mean"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    args = list(args)
    model = "resnet20"
    if "--model" in args:
        i = args.index("--model")
        model = args.pop(i + 1)
        args.pop(i)
    if "corrupt" in args:
        args[args.index("corrupt")] = _corrupt(tmp_path)
    if "--output" not in args:
        args += ["--output", "run.pt"]
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run("train", model, "--data", f"cifar10:{FIXTURE}", "--batch-size", "8", "--epochs", "1",
                 "--no-progress", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("Error")]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no checkpoint, no CSV


def test_unwritable_output_is_refused_before_the_data_loads(tmp_path, monkeypatch):
    import netprobe.data

    def fail(*args, **kwargs):
        raise AssertionError("load_data called before the output was checked")

    monkeypatch.setattr(netprobe.data, "load_data", fail)
    (tmp_path / "file").write_text("")
    result = run("train", *TINY, "-o", tmp_path / "file" / "run.pt")  # a file where the directory should be
    assert result.exit_code == 2 and "does not exist" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("change, message", [
    (("--lr", "0.05"), "it holds a run with lr=0.1, this one has lr=0.05"),
    (("--epochs", "2"), "it holds a run with epochs=1, this one has epochs=2"),
    (("--seed", "3"), "it holds a run with seed=0, this one has seed=3"),
    (("--plain",), "it holds a run with options={}, this one has options={'plain': True}"),
])
def test_resume_from_other_settings_is_refused_and_keeps_the_checkpoint(tmp_path, change, message):
    ckpt = tmp_path / "run.pt"
    assert run("train", *TINY, "--epochs", "1", "-o", ckpt).exit_code == 0
    saved = ckpt.read_bytes()
    result = run("train", *TINY, "--epochs", "1", *change, "--resume", "-o", ckpt)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert ckpt.read_bytes() == saved


def test_resume_from_a_file_that_is_no_checkpoint(tmp_path):
    ckpt = tmp_path / "run.pt"
    ckpt.write_bytes(b"not a checkpoint")
    result = run("train", *TINY, "--resume", "-o", ckpt)
    assert result.exit_code == 2 and "is not a loadable checkpoint" in result.output
    assert ckpt.read_bytes() == b"not a checkpoint"


def test_load_weights_names_the_mismatching_key(tmp_path):
    import netprobe

    ckpt = tmp_path / "r20.pt"
    save_checkpoint(ckpt, netprobe.load("resnet20"), {"model": "resnet20", "options": {}, "data": "synthetic",
                                                     "epoch": 1})
    # resnet32 has 5 blocks per stage: resnet20's 3 lack the 4th block's first weight (forward order).
    with pytest.raises(NetprobeError, match=r"missing key 'layer1\.3\.conv1\.weight'.*trained for resnet20 "
                                            r"on synthetic, epoch 1"):
        load_weights(netprobe.load("resnet32"), ckpt)
    with pytest.raises(NetprobeError, match=r"key 'linear\.weight' has shape \(10, 64\) in the checkpoint, "
                                            r"\(100, 64\) in the model"):
        load_weights(netprobe.load("resnet20", num_classes=100), ckpt)
    model = netprobe.load("resnet20")
    assert load_weights(model, ckpt)["model"] == "resnet20"


def test_load_weights_tells_the_twins_apart_by_their_options(tmp_path):
    import netprobe

    ckpt = tmp_path / "p20.pt"
    save_checkpoint(ckpt, netprobe.load("resnet20", plain=True), {"model": "resnet20", "options": {"plain": True}})
    # Option-A shortcuts have no weights: the twins' state dicts agree key for key, so only the meta can differ.
    with pytest.raises(NetprobeError, match=r"holds the plain twin's weights .* residual one: add --plain"):
        load_weights(netprobe.load("resnet20"), ckpt, plain=False)
    assert load_weights(netprobe.load("resnet20", plain=True), ckpt, plain=True)["options"] == {"plain": True}
    assert load_weights(netprobe.load("resnet20"), ckpt)["model"] == "resnet20"  # no variant given: no check


def test_recalibrate_bn_is_the_average_over_batches_by_hand():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 1)
    bn = nn.BatchNorm2d(3)
    model = nn.Sequential(conv, bn, nn.Dropout(0.5)).train()
    bn.running_mean.fill_(7.0)  # stale statistics that must be forgotten
    x = torch.randn(12, 2, 4, 4) * 3 + 1
    recalibrate_bn(model, x, batch_size=4)
    with torch.no_grad():
        z = conv(x).transpose(0, 1).reshape(3, 3, -1)  # (channel, batch of 4, 4*4*4 values)
    # By hand: each batch's per-channel mean and unbiased variance, averaged over the 3 batches with equal
    # weight (a cumulative moving average). Equal batches: the mean is the full-data mean exactly.
    mean = z.mean(dim=2).mean(dim=1)
    var = z.var(dim=2, correction=1).mean(dim=1)
    assert torch.allclose(bn.running_mean, mean, atol=1e-6)
    assert torch.allclose(bn.running_mean, conv(x).mean(dim=(0, 2, 3)).detach(), atol=1e-6)
    assert torch.allclose(bn.running_var, var, atol=1e-5)
    assert bn.momentum == 0.1 and model.training and bn.training and int(bn.num_batches_tracked) == 3


def test_training_on_synthetic_data_learns():
    # A small BN CNN on the embedded set at 16x16: 2,000 training images, 2 epochs. Chance is 0.1.
    data = load_data("synthetic", (3, 16, 16), seed=0)
    small = Dataset(data.spec, Split(data.train.x[:2000], data.train.y[:2000]), data.test, data.num_classes,
                    data.mean, data.std)

    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

    torch.manual_seed(0)
    model = nn.Sequential(*block(3, 16), nn.MaxPool2d(2), *block(16, 32), nn.MaxPool2d(2), *block(32, 32),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    history = fit(model, small, epochs=2, batch_size=32, lr=0.1, seed=0, progress=False)
    assert list(history.columns) == ["epoch", "train_loss", "train_acc", "test_loss", "test_acc"]
    assert history["test_acc"].iloc[-1] > 0.8  # 0.94 on seeds 0-3
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]


def test_training_keeps_the_parameter_objects_and_stores_conv_weights_channels_last():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    model3d = nn.Sequential(nn.Conv3d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 2 * 2 * 2, 2))
    torch.manual_seed(0)
    for net, shape in ((model, (16, 3, 8, 8)), (model3d, (16, 1, 4, 4, 4))):
        params = list(net.parameters())
        data = Dataset("synthetic", Split(torch.randn(shape), torch.arange(16) % 2),
                       Split(torch.randn(shape), torch.arange(16) % 2), 2, (0.0,), (1.0,))
        history = fit(net, data, epochs=1, batch_size=8, lr=0.01, seed=0, progress=False)
        assert list(net.parameters()) == params and history["train_loss"].notna().all()
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model3d[0].weight.is_contiguous()  # 5-D weights keep their layout
