"""Loss landscapes: filter-normalised directions, in-place grid evaluation, resume, torchrun sharding,
roughness measures (hand-computed arrays) and the CLI's one-line errors."""

import copy
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netprobe.analysis.surfaces import landscape as ls
from netprobe import runs
from netprobe.analysis.surfaces.directions import directions_bytes, filter_normalize, load_directions, random_directions
from netprobe.analysis.surfaces.roughness import as_grid, local_minima, loss_range, mean_abs_second_difference, roughness
from netprobe.errors import NetprobeError


class Tiny(nn.Module):
    """Two convs (one with a bias), a BatchNorm and a linear head: every kind of parameter, 8x8 inputs."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, bias=False)
        self.linear = nn.Linear(6, 3)

    def forward(self, x):
        x = F.relu(self.bn(self.conv1(x)))
        x = F.relu(self.conv2(x))
        return self.linear(x.mean((2, 3)))


def tiny(seed=0):
    torch.manual_seed(seed)
    model = Tiny()
    with torch.no_grad():  # non-trivial running statistics, so eval mode is visible in the numbers
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    return model


def data(n=20, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


# --- directions ---------------------------------------------------------------------------------------

def test_directions_are_filter_normalised_per_output_filter():
    model = tiny()
    d1, d2 = random_directions(model, 2, seed=3)
    params = dict(model.named_parameters())
    for name in ("conv1.weight", "conv2.weight", "linear.weight"):
        w = params[name].detach()
        for k in range(len(w)):
            assert torch.allclose(d1[name][k].norm(), w[k].norm(), rtol=1e-5)
            assert torch.allclose(d2[name][k].norm(), w[k].norm(), rtol=1e-5)
        assert not torch.allclose(d1[name], d2[name])
    for name in ("conv1.bias", "bn.weight", "bn.bias", "linear.bias"):
        assert torch.equal(d1[name], torch.zeros_like(params[name]))


def test_include_bn_scales_each_element_to_its_weight():
    model = tiny()
    (d,) = random_directions(model, 1, seed=0, include_bn=True)
    for name in ("conv1.bias", "bn.weight", "bn.bias", "linear.bias"):
        w = dict(model.named_parameters())[name].detach()
        assert torch.allclose(d[name].abs(), w.abs(), rtol=1e-5, atol=1e-8)


def test_filter_normalize_hand_example():
    # Rows (3, 4) of norm 5 and (0, 2) of norm 2; the weight rows have norms 10 and 1.
    d = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    w = torch.tensor([[6.0, 8.0], [1.0, 0.0]])
    assert torch.allclose(filter_normalize(d, w), torch.tensor([[6.0, 8.0], [0.0, 1.0]]))


def test_same_seed_same_directions_and_file_round_trip(tmp_path):
    a = random_directions(tiny(), 2, seed=7)
    b = random_directions(tiny(), 2, seed=7)
    c = random_directions(tiny(), 2, seed=8)
    assert all(torch.equal(a[k][n], b[k][n]) for k in range(2) for n in a[0])
    assert not torch.equal(a[0]["conv1.weight"], c[0]["conv1.weight"])
    path = tmp_path / "directions.pt"
    path.write_bytes(directions_bytes(a, {"seed": 7, "include_bn": False}))
    loaded, meta = load_directions(path)
    assert meta == {"seed": 7, "include_bn": False}
    assert all(torch.equal(a[k][n], loaded[k][n]) for k in range(2) for n in a[0])


# --- surface ------------------------------------------------------------------------------------------

def reference_point(model, directions, a, b, x, y):
    """Copy-based reference: a fresh copy of the model with w0 + a d1 + b d2 written into it."""
    ref = copy.deepcopy(model).eval()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.copy_(p + a * directions[0][name] + b * directions[1][name])
        out = ref(x)
    return F.cross_entropy(out, y).item(), (out.argmax(1) == y).float().mean().item()


def test_in_place_surface_equals_copy_reference_and_restores_weights():
    model, (x, y) = tiny(), data()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dirs = random_directions(model, 2, seed=0)
    xs, ys = [-1.0, 0.0, 0.5], [-0.5, 0.0, 1.0]
    table = ls.surface(model, x, y, dirs, xs, ys, batch_size=7)
    # Folded and fused (oneDNN conv + ReLU), the default path, checked point by point against the eager copy.
    assert table.attrs["evaluation"] == "evaluation: folded+fused"
    assert list(table.columns) == ["x", "y", "loss", "accuracy"]
    assert list(zip(table["x"], table["y"])) == [(a, b) for a in xs for b in ys]
    for (a, b), loss, acc in zip(zip(table["x"], table["y"]), table["loss"], table["accuracy"]):
        ref_loss, ref_acc = reference_point(model, dirs, a, b, x, y)
        assert loss == pytest.approx(ref_loss, rel=1e-5)
        assert acc == pytest.approx(ref_acc)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # Evaluated channels-last, handed back in the model's own (contiguous NCHW) layout.
    assert all(p.is_contiguous() for p in model.parameters())


def test_weights_restored_after_an_error_midway():
    model, (x, y) = tiny(), data()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def boom(*args):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ls.surface(model, x, y, random_directions(model, 2), [0.5, 1.0], [1.0], on_point=boom)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.is_contiguous() for p in model.parameters())


def test_one_dimensional_and_nan_points_recorded():
    model, (x, y) = tiny(), data()
    (d,) = random_directions(model, 1, seed=0)
    d = {k: v.clone() for k, v in d.items()}
    d["linear.weight"][0, 0] = float("nan")  # every point but the origin gets NaN logits
    table = ls.surface(model, x, y, [d], [-1.0, 0.0, 1.0])
    assert table["y"].tolist() == [0.0, 0.0, 0.0]
    assert np.isnan(table["loss"][0]) and np.isnan(table["loss"][2]) and np.isfinite(table["loss"][1])
    assert "nan" in ls.surface_csv(table)


def test_interpolate_ends_are_the_checkpoints():
    a, b = tiny(0), tiny(1)
    x, y = data()
    model = tiny(2)
    table = ls.interpolate(model, a.state_dict(), b.state_dict(), [0.0, 1.0], x, y)
    with torch.no_grad():
        for m, row in ((a, 0), (b, 1)):
            assert table["loss"][row] == pytest.approx(F.cross_entropy(m.eval()(x), y).item(), rel=1e-5)
    assert torch.equal(model.conv1.weight, tiny(2).conv1.weight)
    with pytest.raises(NetprobeError, match="does not fit"):
        ls.interpolate(model, a.state_dict(), {"conv1.weight": torch.zeros(1)}, [0.0], x, y)


def test_bad_grid_inputs():
    with pytest.raises(NetprobeError, match="at least 2 steps"):
        ls.axis(-1, 1, 1)
    with pytest.raises(NetprobeError, match="below its end"):
        ls.axis(1, -1, 5)
    model, (x, y) = tiny(), data()
    with pytest.raises(NetprobeError, match="2-D slice takes 2"):
        ls.surface(model, x, y, random_directions(model, 1), [0.0, 1.0], [0.0, 1.0])


# --- resume -------------------------------------------------------------------------------------------

def resumable_run(directory, stop_after=None, resume=False):
    model, (x, y) = tiny(), data()
    dirs = random_directions(model, 2, seed=0)
    xs, ys = ls.axis(-1, 1, 4), ls.axis(-1, 1, 3)
    coords = ls.grid(xs, ys)
    done, log = runs.open_log(directory, "surface", coords, resume=resume)
    calls = []

    def on_point(*args):
        log.append(*args)
        calls.append(args[0])
        if stop_after is not None and len(calls) == stop_after:
            raise KeyboardInterrupt  # a kill after `stop_after` points were logged

    try:
        table = ls.surface(model, x, y, dirs, xs, ys, done=done, on_point=on_point)
    finally:
        log.close()
    runs.clear_logs(directory, "surface")
    return ls.surface_csv(table), calls


def test_resume_computes_only_missing_points_and_gives_identical_bytes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    full, _ = resumable_run(tmp_path / "a")
    part = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        resumable_run(part, stop_after=5)
    log = part / ".surface.partial.0.csv"
    with open(log, "a") as f:
        f.write("5,-0.333")  # a line cut short by the kill
    resumed, calls = resumable_run(part, resume=True)
    assert calls == list(range(5, 12))
    assert resumed == full
    assert not log.exists()


def test_resume_refuses_a_log_from_another_grid(tmp_path):
    (tmp_path / ".surface.partial.0.csv").write_text("index,x,y,loss,accuracy\n0,-2.0,-1.0,1.0,0.5\n")
    with pytest.raises(NetprobeError, match="not on this grid"):
        resumable_run(tmp_path, resume=True)


# --- torchrun -----------------------------------------------------------------------------------------

WORKER = """
import sys
import torch
import torch.distributed as dist
sys.path.insert(0, {tests!r})
from test_landscape import tiny, data
from netprobe.analysis.surfaces import landscape as ls
from netprobe import runs
from netprobe.analysis.surfaces.directions import random_directions

torch.set_num_threads(1)  # the same kernels in both runs
distributed = "RANK" in __import__("os").environ
if distributed:
    dist.init_process_group("gloo")
out = sys.argv[1]
model, (x, y) = tiny(), data()
xs, ys = ls.axis(-1, 1, 4), ls.axis(-1, 1, 3)
done, log = runs.open_log(out, "surface", ls.grid(xs, ys), resume=False)
table = ls.surface(model, x, y, random_directions(model, 2), xs, ys, on_point=log.append)
log.close()
if runs.world()[0] == 0:
    open(out + "/surface.csv", "w").write(ls.surface_csv(table))
    open(out + "/ranks.txt", "w").write(" ".join(p.name for p in sorted(__import__("pathlib").Path(out).glob(".*"))))
if distributed:
    dist.destroy_process_group()
"""


def test_torchrun_two_processes_equal_single_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=os.path.dirname(__file__)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    outs = []
    for launcher in ([], ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]):
        out = tmp_path / f"out{len(outs)}"
        out.mkdir()
        result = subprocess.run([sys.executable, *launcher, str(script), str(out)], env=env,
                                capture_output=True, text=True, timeout=90)
        assert result.returncode == 0, result.stderr[-2000:]
        outs.append(out)
    single, double = ((o / "surface.csv").read_text() for o in outs)
    assert single == double
    assert (outs[1] / "ranks.txt").read_text() == ".surface.partial.0.csv .surface.partial.1.csv"
    assert len(pd.read_csv(outs[1] / "surface.csv")) == 12


# --- roughness (hand-computed) ------------------------------------------------------------------------

def test_mean_abs_second_difference_by_hand():
    # Along x (rows): columns [1,4,9] -> |1-8+9| = 2 and [0,0,0] -> 0; along y rows have 2 values: none.
    z = np.array([[1.0, 0.0], [4.0, 0.0], [9.0, 0.0]])
    assert mean_abs_second_difference(z) == pytest.approx(1.0)
    # A plane has zero second differences; a NaN drops only the lines through it.
    assert mean_abs_second_difference(np.add.outer([0.0, 1.0, 2.0], [0.0, 3.0, 6.0])) == 0.0
    assert mean_abs_second_difference(np.array([[0.0, 1.0, 0.0, np.nan]])) == pytest.approx(2.0)


def test_local_minima_by_hand():
    z = np.array([[5, 5, 5, 5, 5],
                  [5, 1, 5, 2, 5],
                  [5, 5, 5, 5, 5],
                  [5, 3, 3, 5, 0]], dtype=float)  # 1 and 2 are minima; the 3s tie; the corner 0 is an edge
    assert local_minima(z) == 2
    assert local_minima(np.array([3.0, 1.0, 2.0, 0.5, 4.0, 4.0])) == 2
    z[1, 2] = np.nan  # a NaN neighbour leaves both undecided
    assert local_minima(z) == 0


def test_loss_range_and_roughness_table():
    table = pd.DataFrame([(a, b, a * a + b * b, 1.0) for a in (-1.0, 0.0, 1.0) for b in (-1.0, 0.0, 1.0)],
                         columns=["x", "y", "loss", "accuracy"])
    xs, ys, z = as_grid(table)
    assert z[0, 0] == 2.0 and z[1, 1] == 0.0
    assert loss_range(z, xs, ys, 1.0) == 1.0  # the centre 0 and the 4 axis points 1; corners at sqrt 2
    assert loss_range(z, xs, ys, 1.5) == 2.0
    r = roughness(table, radius=1.0)
    # a*a + b*b: second differences 2 along every line of 3.
    assert r == {"points": 9, "loss_at_origin": 0.0, "loss_min": 0.0, "loss_max": 2.0, "loss_range_r1": 1.0,
                 "mean_abs_d2": 2.0, "local_minima": 1, "nonfinite_points": 0}


# --- CLI ----------------------------------------------------------------------------------------------

QUICK = ("--train-epochs", "0", "--samples", "8", "--steps", "3", "--no-progress")


def cli(*args):
    from click.testing import CliRunner

    from netprobe.cli.main import cli as group

    return CliRunner().invoke(group, ["landscape", *args])


def test_cli_compare_writes_everything_and_resumes_byte_identically(tmp_path, monkeypatch):
    full = tmp_path / "full"
    result = cli("resnet20", "--compare", *QUICK, "-o", str(full))
    assert result.exit_code == 0, result.output
    for name in ("surface.csv", "summary.csv", "contour.png", "surface3d.png", "directions-residual.pt",
                 "directions-plain.pt"):
        assert (full / name).stat().st_size > 0, name
    table = pd.read_csv(full / "surface.csv")
    assert list(table.columns) == ["variant", "x", "y", "loss", "accuracy"] and len(table) == 18
    summary = pd.read_csv(full / "summary.csv")
    assert summary["variant"].tolist() == ["residual", "plain"]
    assert (summary["state"] == "at initialisation").all()
    dirs, meta = load_directions(full / "directions-plain.pt")
    assert len(dirs) == 2 and meta["variant"] == "plain"

    killed = tmp_path / "killed"
    calls = []
    real = ls._point

    def dies_after_4(*args):
        if len(calls) == 13:  # all 9 residual points and 4 plain ones
            raise RuntimeError("killed")
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(ls, "_point", dies_after_4)
    assert cli("resnet20", "--compare", *QUICK, "-o", str(killed)).exit_code != 0
    monkeypatch.setattr(ls, "_point", real)
    assert not (killed / "surface.csv").exists()
    result = cli("resnet20", "--compare", *QUICK, "--resume", "-o", str(killed))
    assert result.exit_code == 0, result.output
    assert "residual at initialisation: 0 points computed, 9 resumed" in result.output
    assert "plain at initialisation: 5 points computed, 4 resumed" in result.output
    assert (killed / "surface.csv").read_bytes() == (full / "surface.csv").read_bytes()
    assert not list(killed.glob(".surface-*.partial.*.csv"))
    changed = cli("resnet20", "--compare", *QUICK, "--samples", "6", "--resume", "-o", str(killed))
    assert changed.exit_code == 2 and "samples=8" in changed.output
    resized = cli("resnet20", "--compare", *QUICK, "--input-size", "3x24x24", "--resume", "-o", str(killed))
    assert resized.exit_code == 2 and "input_size=[3, 32, 32]" in resized.output


def test_cli_between_and_weights(tmp_path):
    from netprobe.train import save_checkpoint
    from netprobe.zoo import load

    paths = []
    for seed, name in ((0, "resnet20"), (1, "resnet20"), (0, "resnet32")):
        torch.manual_seed(seed)
        paths.append(str(save_checkpoint(tmp_path / f"{name}-{seed}.pt", load(name), {"model": name})))
    result = cli("resnet20", "--dim", "1", "--between", paths[0], paths[1], *QUICK, "-o", str(tmp_path / "b"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b" / "curves.png").exists()
    assert pd.read_csv(tmp_path / "b" / "surface.csv")["x"].tolist() == [-1.0, 0.0, 1.0]
    bad = cli("resnet20", "--dim", "1", "--between", paths[0], paths[2], *QUICK, "-o", str(tmp_path / "c"))
    assert bad.exit_code == 2 and "resnet32" in bad.output and "Traceback" not in bad.output
    wrong = cli("resnet20", "--weights", paths[2], *QUICK, "-o", str(tmp_path / "d"))
    assert wrong.exit_code == 2 and "holds weights of resnet32, not of resnet20" in wrong.output


@pytest.mark.parametrize("args, message", [
    (("--range", "1..2"), "expected START:END"),
    (("--range", "1:-1"), "START must be below END"),
    (("--steps", "1"), "--steps"),
    (("--dim", "3"), "--dim"),
    (("--plain", "--compare"), "exclude each other"),
    (("--between", "a.pt", "b.pt"), "--between is a 1-D slice"),
    (("--device", "tpu"), "--device"),
])
def test_cli_bad_input_exits_2(tmp_path, args, message):
    result = cli("resnet20", *args, "-o", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_cli_unwritable_directory(tmp_path):
    result = cli("resnet20", *QUICK, "-o", str(tmp_path / "missing" / "out"))
    assert result.exit_code == 2 and "cannot create" in result.output


def test_checkpoint_sliced_on_data_normalised_as_it_was_trained(tmp_path):
    from netprobe.analysis.surfaces.study import study
    from netprobe.data import load_data
    from netprobe.train import save_checkpoint
    from netprobe.zoo import load

    torch.manual_seed(0)
    model = load("resnet20", width=2)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)  # not the synthetic train split's own statistics
    path = save_checkpoint(tmp_path / "w.pt", model, {"model": "resnet20", "options": {"width": 2},
                                                        "mean": list(mean), "std": list(std)})
    result = study("resnet20", weights=[path], dim=1, steps=3, samples=8, seed=3)
    data = load_data("synthetic", input_size=(3, 32, 32), seed=3, mean=mean, std=std)
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(3))[:8]
    with torch.inference_mode():
        expected = F.cross_entropy(model.eval()(data.train.x[order]), data.train.y[order]).item()
    at_origin = result.slices[0].table.set_index("x").loc[0.0, "loss"]
    assert at_origin == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("payload, message", [
    (b"import torch\n", "is not a file torch.load reads with weights_only=True"),
    ({"directions": "x", "meta": {}}, "is not a directions file"),
    ([1, 2], "is not a directions file"),
    ({"directions": [{"w": 1.0}], "meta": {}}, "is not a directions file"),
])
def test_cli_malformed_directions_file_is_one_line(tmp_path, payload, message):
    path = tmp_path / "d.pt"
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    else:
        torch.save(payload, path)
    result = cli("resnet20", *QUICK, "--directions", str(path), "-o", str(tmp_path / "out"))
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text", ["{bad", "[1]"])
def test_cli_resume_with_a_malformed_settings_file_is_one_line(tmp_path, text):
    from netprobe.analysis.surfaces.study import SETTINGS

    out = tmp_path / "out"
    out.mkdir()
    (out / SETTINGS).write_text(text)
    result = cli("resnet20", *QUICK, "--resume", "-o", str(out))
    assert result.exit_code == 2 and "is not a landscape run's settings file" in result.output
    assert (out / SETTINGS).read_text() == text


@pytest.mark.parametrize("log, message", [("header\ngarbage line\n", "is not a point log of this run"),
                                          ("header\n\xff\xfe,1\n", "is not a point log of this run"),
                                          ("header\n-5,0,0,1,1\n", "holds point -5")])
def test_a_corrupt_point_log_is_refused_on_resume(tmp_path, log, message):
    from netprobe.runs import PointLog

    path = tmp_path / ".surface-residual.partial.0.csv"
    path.write_bytes(log.encode("latin-1"))
    with pytest.raises(NetprobeError, match=message):
        PointLog(path).read([(0.0, 0.0), (1.0, 0.0)])
