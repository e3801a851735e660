"""The eigenvectors `netprobe hessian -o DIR` saves are directions for `netprobe landscape --directions`."""

import pandas as pd
import pytest
import torch

# LeNet-5 is smooth (tanh, average pooling): the slice's curvature is the Hessian's, with no ReLU kinks crossed
MODEL, DATA = "lenet5", "synthetic"


def cli(*args):
    from click.testing import CliRunner

    from netprobe.cli.main import cli as group

    return CliRunner().invoke(group, list(args))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A LeNet-5 checkpoint, and the top eigenvector the hessian command saved for it."""
    from netprobe.train import save_checkpoint
    from netprobe.zoo import load

    folder = tmp_path_factory.mktemp("hessian")
    torch.manual_seed(0)
    meta = {"model": MODEL, "options": {}, "data": DATA, "seed": 0}
    ckpt = str(save_checkpoint(folder / "lenet.pt", load(MODEL), meta))
    result = cli("hessian", MODEL, "--weights", ckpt, "--samples", "8", "--probes", "0", "--iters", "30",
                 "--no-progress", "-o", str(folder / "out"))
    assert result.exit_code == 0, result.output
    table = pd.read_csv(folder / "out" / "hessian.csv")
    return ckpt, folder / "out" / "eigenvectors-residual.pt", float(table["value"].iloc[0])


def test_landscape_slices_along_the_top_eigenvector(tmp_path, saved):
    from netprobe.data import load_data
    from netprobe.zoo import load

    ckpt, vectors, eigenvalue = saved
    h = (1e-3 / abs(eigenvalue)) ** 0.5  # a curvature term of 1e-3: far above float32 rounding, still local
    result = cli("landscape", MODEL, "--weights", ckpt, "--directions", str(vectors), "--dim", "1", "--steps",
                 "3", "--range", f"{-h}:{h}", "--samples", "8", "--data", DATA, "--no-progress", "-o",
                 str(tmp_path / "slice"))
    assert result.exit_code == 0, result.output
    curve = pd.read_csv(tmp_path / "slice" / "surface.csv").sort_values("x")
    # alpha = 0 is the model itself: its mean cross-entropy on the same seeded 8 training samples, eval mode
    model = load(MODEL)
    model.load_state_dict(torch.load(ckpt, weights_only=True)["state_dict"])
    train = load_data(DATA, input_size=(1, 32, 32), seed=0).train
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:8]
    with torch.no_grad():
        loss = float(torch.nn.functional.cross_entropy(model.eval()(train.x[order]), train.y[order]))
    low, mid, high = curve["loss"].tolist()
    assert mid == pytest.approx(loss, rel=1e-5)
    # along a unit eigenvector the curvature is its eigenvalue: (L(h) - 2 L(0) + L(-h)) / h^2 ~ v'Hv
    assert (high - 2 * mid + low) / h ** 2 == pytest.approx(eigenvalue, rel=0.02)


def test_landscape_refuses_directions_of_another_model_or_too_few(tmp_path, saved):
    from netprobe.analysis.surfaces.directions import directions_bytes, load_directions

    ckpt, vectors, _ = saved
    two = cli("landscape", MODEL, "--weights", ckpt, "--directions", str(vectors), "--dim", "2",
              "--samples", "2", "--data", DATA, "--no-progress", "-o", str(tmp_path / "a"))
    assert two.exit_code == 2 and "holds 1 direction(s): a 2-D slice needs 2" in two.output
    directions, meta = load_directions(vectors)
    other = tmp_path / "other.pt"
    other.write_bytes(directions_bytes(directions, {**meta, "model": "resnet20"}))
    wrong = cli("landscape", MODEL, "--weights", ckpt, "--directions", str(other), "--dim", "1",
                "--samples", "2", "--data", DATA, "--no-progress", "-o", str(tmp_path / "b"))
    assert wrong.exit_code == 2 and "for resnet20, not for lenet5" in wrong.output
