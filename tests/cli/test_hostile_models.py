"""User models: built on the meta device where the constructor allows; odd outputs and no parameters are
refused in one line."""

import textwrap

import pytest
from click.testing import CliRunner

from netprobe.cli.main import cli
from netprobe.zoo.loading import load_model

MODELS = textwrap.dedent("""
    import torch

    class Huge(torch.nn.Module):  # 1e9 parameters: 4 GB if built for real
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(100000, 10000)

        def forward(self, x):
            return self.fc(x.flatten(1))

    class Reads(torch.nn.Module):  # its construction reads a value: meta cannot build it
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, int(torch.tensor(3).item()))

        def forward(self, x):
            return self.fc(x.flatten(1))

    class IntOut(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 10)

        def forward(self, x):
            return self.fc(x.flatten(1)).long()

    class NoGrad(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 10)

        def forward(self, x):
            return self.fc(x.flatten(1)).detach()

    class NoParams(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1).repeat(1, 3)[:, :10] * 2
""")


@pytest.fixture
def models(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.py").write_text(MODELS)
    return tmp_path


def test_user_model_built_on_meta(models):
    assert all(p.is_meta for p in load_model("m.py:Huge").model.parameters())
    reads = load_model("m.py:Reads").model
    assert not any(p.is_meta for p in reads.parameters()) and reads.fc.out_features == 3
    result = CliRunner().invoke(cli, ["summary", "m.py:Huge", "--input-size", "1x1x100000", "--format", "csv"])
    assert result.exit_code == 0 and "1000010000" in result.output.replace(",", ""), result.output


SIZE = ["--input-size", "1x2x2"]
RUNS = {
    "gradients": ["--batch-size", "2", "--batches", "1"],
    "train": ["--epochs", "1", "-o", "t.pt", "--no-progress"],
    "hessian": ["--samples", "2", "--iters", "2", "--probes", "1", "-o", "H", "--no-progress"],
    "landscape": ["--train-epochs", "0", "--steps", "2", "--samples", "2", "-o", "L", "--no-progress"],
    "rf": ["--effective", "--samples", "1"],
}


@pytest.mark.parametrize("name", ["IntOut", "NoGrad", "NoParams"])
@pytest.mark.parametrize("command", sorted(RUNS))
def test_odd_models_one_line(models, name, command):
    result = CliRunner().invoke(cli, [command, f"m.py:{name}", *SIZE, *RUNS[command]])
    assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exc_info)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    if result.exit_code == 2:
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_huge_omp_num_threads_is_bounded(monkeypatch):
    from netprobe.cpus import MAX_THREADS, bound_env_threads, default_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "100000")
    assert default_threads() == MAX_THREADS == 1024
    bound_env_threads()
    assert __import__("os").environ["OMP_NUM_THREADS"] == "1024"


@pytest.mark.parametrize("args", [
    ["gradients", "resnet20", "--depths", "99999999999999999999998"],
    ["landscape", "lenet5", "--range", "-1e308:1e308", "-o", "L"],
    ["gradients", "lenet5", "--seed", "18446744073709551615"],
    ["summary", "lenet5", "--input-size", "3x9223372036854775807x32"],
])
def test_huge_numbers_refused_before_work(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) >= 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
