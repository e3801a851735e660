"""The Hessian tools against the exact Hessian of a tiny MLP, formed with torch.autograd.functional.hessian."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from netprobe.analysis.hessian.hessian import hvp, hvp_operator, parameters, top_eigenvalues, trace

LOSS = nn.functional.cross_entropy
SAMPLE = "cifar10:fixtures/cifar10_sample"  # 40 training images: fast to load


def _setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()  # 43 parameters
    x = torch.randn(12, 4, dtype=torch.float64)
    y = torch.arange(12) % 3
    batches = [(x[:5], y[:5]), (x[5:], y[5:])]  # uneven split: the weighting must still give the mean loss
    return model, x, y, batches


def _exact(model, x, y):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in parameters(model)]
    sizes = [p.numel() for p in parameters(model)]
    flat = torch.cat([p.detach().reshape(-1) for p in parameters(model)])

    def loss(w):
        params = {n: t.view(s) for n, t, s in zip(names, torch.split(w, sizes), shapes)}
        return LOSS(functional_call(model, params, (x,)), y)

    return torch.autograd.functional.hessian(loss, flat)


def test_hvp_is_the_exact_hessian_times_v():
    model, x, y, batches = _setup()
    H = _exact(model, x, y)
    assert H.shape == (43, 43)
    v = torch.randn(43, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(hvp(model, LOSS, batches, v), H @ v, atol=1e-10)


def test_kept_graph_products_are_the_exact_hessian_times_v_every_time():
    model, x, y, batches = _setup()
    H = _exact(model, x, y)
    product = hvp_operator(model, LOSS, batches, keep_graph=True)
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):  # the graph is reused: later products must not see a freed or stale graph
        v = torch.randn(43, dtype=torch.float64, generator=gen)
        assert torch.allclose(product(v), H @ v, atol=1e-10)
    second = parameters(model)[2:]  # Linear(5, 3): its diagonal block, H[25:, 25:]
    block = hvp_operator(model, LOSS, batches, params=second, keep_graph=True)
    v = torch.randn(18, dtype=torch.float64, generator=gen)
    assert torch.allclose(block(v), H[25:, 25:] @ v, atol=1e-10)


def test_power_iteration_finds_the_largest_magnitude_eigenvalues():
    model, x, y, batches = _setup()
    exact = torch.linalg.eigvalsh(_exact(model, x, y))
    top = sorted(exact.tolist(), key=abs, reverse=True)[:3]
    found = top_eigenvalues(model, LOSS, batches, k=3, iters=2000, tol=1e-9, seed=0)
    assert all(found.converged)
    assert found.values == pytest.approx(top, rel=1e-2)
    # the eigenvectors are orthonormal and satisfy Hv = lambda v
    V = torch.stack(found.vectors)
    assert torch.allclose(V @ V.T, torch.eye(3, dtype=V.dtype), atol=1e-6)
    H = _exact(model, x, y)
    assert torch.allclose(V @ H, torch.tensor(found.values, dtype=V.dtype)[:, None] * V, atol=1e-3)


def test_hutchinson_trace_within_four_standard_errors():
    model, x, y, batches = _setup()
    H = _exact(model, x, y)
    est = trace(model, LOSS, batches, probes=400, seed=0)
    # Rademacher probes: Var(z'Hz) = 2 * sum of squared off-diagonal entries; the estimate is near it
    var = 2 * float((H ** 2).sum() - (H.diagonal() ** 2).sum())
    assert est.stderr == pytest.approx((var / 400) ** 0.5, rel=0.25)
    assert abs(est.value - float(H.trace())) < 4 * est.stderr


def test_same_seed_same_numbers_other_seed_others():
    model, _, _, batches = _setup()
    a = top_eigenvalues(model, LOSS, batches, k=2, iters=20, seed=3)
    b = top_eigenvalues(model, LOSS, batches, k=2, iters=20, seed=3)
    assert a.values == b.values and a.iterations == b.iterations
    assert trace(model, LOSS, batches, probes=5, seed=3).samples == trace(model, LOSS, batches, probes=5, seed=3).samples
    assert trace(model, LOSS, batches, probes=5, seed=3).samples != trace(model, LOSS, batches, probes=5, seed=4).samples


def test_hvp_of_a_conv_net_uses_batchnorm_running_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3)).double()
    bn = model[1]
    bn.running_mean.fill_(0.3), bn.running_var.fill_(2.0)  # not 0 and 1: eval mode must be visible
    model.train()  # hvp must switch to eval itself
    x, y = torch.randn(6, 1, 4, 4, dtype=torch.float64), torch.arange(6) % 3
    H = _exact(model.eval(), x, y)  # 41 parameters, BatchNorm on its running statistics
    model.train()
    v = torch.randn(len(H), dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(hvp(model, LOSS, [(x[:4], y[:4]), (x[4:], y[4:])], v), H @ v, atol=1e-10)
    assert float(bn.running_mean[0]) == 0.3  # statistics untouched


# --- study and CLI -------------------------------------------------------------------------------------


def cli(*args):
    from click.testing import CliRunner

    from netprobe.cli.main import cli as group

    return CliRunner().invoke(group, ["hessian", *args])


def test_cli_compare_writes_the_table_and_same_seed_same_bytes(tmp_path, checkpoints):
    import pandas as pd

    args = ("resnet20", "--compare", "--weights", checkpoints["residual"], "--weights", checkpoints["plain"],
            "--samples", "4", "--top", "2", "--iters", "2", "--probes", "2", "--no-progress")
    for name in ("a", "b"):
        result = cli(*args, "-o", str(tmp_path / name))
        assert result.exit_code == 0, result.output
    assert (tmp_path / "a" / "hessian.csv").read_bytes() == (tmp_path / "b" / "hessian.csv").read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "eigenvectors-plain.pt", "eigenvectors-residual.pt", "hessian.csv"]
    table = pd.read_csv(tmp_path / "a" / "hessian.csv")
    assert list(table.columns) == ["variant", "scope", "quantity", "value", "stderr", "iterations", "samples"]
    assert table["variant"].tolist() == ["residual"] * 3 + ["plain"] * 3
    assert table["quantity"].tolist() == ["eigenvalue_1", "eigenvalue_2", "trace"] * 2
    assert (table["samples"] == 4).all() and (table["iterations"] <= 2).all()
    assert "below 4096" in result.output


def test_cli_per_block_and_density(tmp_path, checkpoints):
    import pandas as pd

    from netprobe.analysis.surfaces.directions import load_directions

    result = cli("resnet20", "--weights", checkpoints["residual"], "--samples", "4", "--iters", "2", "--probes", "3",
                 "--per-block", "--density", "--lanczos-steps", "4", "--density-runs", "2", "--keep-graph",
                 "--no-progress", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "hessian.csv")
    scopes = ["model", "stem", *[f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)], "head"]
    assert list(dict.fromkeys(table["scope"])) == scopes
    traces = table[table["quantity"] == "trace"].set_index("scope")["value"]
    # Hutchinson is additive over a partition of the parameters: same probes, the scopes sum to the model
    assert traces.drop("model").sum() == pytest.approx(traces["model"], rel=1e-4, abs=1e-3)
    ritz = table[table["quantity"].str.startswith("ritz")].set_index("quantity")
    assert ritz.loc["ritz_min", "value"] <= ritz.loc["ritz_max", "value"] and (ritz["iterations"] <= 8).all()
    density = pd.read_csv(tmp_path / "density.csv")
    assert list(density.columns) == ["variant", "run", "node", "weight"]
    assert density.groupby("run")["weight"].sum().tolist() == pytest.approx([1, 1])
    assert (tmp_path / "density.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "blocks.png").exists()
    vectors, meta = load_directions(tmp_path / "eigenvectors-residual.pt")
    assert meta["model"] == "resnet20" and meta["variant"] == "residual" and len(vectors) == 1
    flat = torch.cat([t.reshape(-1) for t in vectors[0].values()])
    assert float(flat.norm()) == pytest.approx(1, rel=1e-5)  # a unit eigenvector over every parameter


def test_cli_killed_run_resumes_without_redoing_finished_work(tmp_path, checkpoints, monkeypatch):
    import netprobe.analysis.hessian.hessian as hessian_module
    import netprobe.analysis.hessian.measure as measure_module
    import netprobe.analysis.hessian.taylor as taylor_module

    base = ("resnet20", "--weights", checkpoints["residual"], "--samples", "4", "--top", "2", "--iters", "3",
            "--no-progress")
    args = (*base, "--probes", "3")
    fresh = cli(*args, "-o", str(tmp_path / "fresh"))
    assert fresh.exit_code == 0, fresh.output
    assert not (tmp_path / "fresh" / ".hessian-state.pt").exists()  # cleared once the results are written

    def killed(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(measure_module, "trace", killed)  # killed once every eigenvalue search is done
        stopped = cli(*args, "-o", str(tmp_path / "run"))
    assert stopped.exit_code == 1 and "rerun with --resume" in stopped.output
    state = torch.load(tmp_path / "run" / ".hessian-state.pt", weights_only=True)
    assert list(state["finished"]) == ["residual/model/eigen"] and len(state["finished"]["residual/model/eigen"]
                                                                          ["vectors"]) == 2
    other = cli(*base, "--probes", "4", "--resume", "-o", str(tmp_path / "run"))
    assert other.exit_code == 2 and "probes=3" in other.output
    products = []
    original = hessian_module.hvp_operator

    def counted(*a, **k):
        product = original(*a, **k)
        return lambda v: products.append(1) or product(v)

    def counted_form(*a, **k):  # the trace's z'Hz by Taylor mode
        form = original_form(*a, **k)
        return lambda z: products.append(1) or form(z)

    original_form = taylor_module.quadratic_form
    monkeypatch.setattr(hessian_module, "hvp_operator", counted)
    monkeypatch.setattr(taylor_module, "quadratic_form", counted_form)
    resumed = cli(*args, "--resume", "-o", str(tmp_path / "run"))
    assert resumed.exit_code == 0, resumed.output
    assert len(products) == 3  # only the trace's three probes
    assert (tmp_path / "run" / "hessian.csv").read_bytes() == (tmp_path / "fresh" / "hessian.csv").read_bytes()
    assert not (tmp_path / "run" / ".hessian-state.pt").exists()


@pytest.mark.parametrize("args, message", [
    (("unet",), "not a classifier"),
    (("vgg11", "--plain"), "no shortcuts"),
    (("resnet20", "--top", "0"), "--top"),
    (("resnet20", "--samples", "0"), "--samples"),
    (("resnet20", "--plain", "--compare"), "exclude each other"),
    (("resnet20", "--samples", "41", "--data", SAMPLE), "40 training samples"),
    (("vgg11", "--per-block", "--samples", "2", "--data", SAMPLE), "no residual blocks"),
    (("resnet20", "--lanczos-steps", "0"), "--lanczos-steps"),
    (("resnet20", "--resume"), "give -o"),
    (("resnet20", "-o", "tests/analysis/hessian/test_hessian.py"), "tests/analysis/hessian/test_hessian.py"),
])
def test_cli_bad_input_exits_2(args, message):
    result = cli(*args, "--no-progress")
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_cli_refuses_weights_of_another_model_or_twin(checkpoints):
    other = cli("resnet32", "--weights", checkpoints["residual"], "--no-progress")
    assert other.exit_code == 2 and "not of resnet32" in other.output
    twin = cli("resnet20", "--weights", checkpoints["plain"], "--no-progress")
    assert twin.exit_code == 2 and "plain" in twin.output.lower()


def test_cli_warns_when_power_iteration_stops_before_the_tolerance():
    common = ("lenet5", "--samples", "8", "--probes", "0", "--no-progress")
    stopped = cli(*common, "--iters", "2", "--tol", "1e-12")
    assert stopped.exit_code == 0, stopped.output
    assert "warning: residual model eigenvalue_1 did not reach the relative tolerance 1e-12 in 2 products" \
        in stopped.output
    converged = cli(*common, "--iters", "100", "--tol", "0.5")  # a relative change under 50% comes at once
    assert converged.exit_code == 0 and "did not reach" not in converged.output


@pytest.mark.parametrize("payload", [b"garbage\n", {"settings": 3}, [1]])
def test_cli_resume_from_a_foreign_state_file_is_one_line(tmp_path, payload):
    from netprobe.analysis.hessian.study import STATE

    out = tmp_path / "h"
    out.mkdir()
    if isinstance(payload, bytes):
        (out / STATE).write_bytes(payload)
    else:
        torch.save(payload, out / STATE)
    kept = (out / STATE).read_bytes()
    result = cli("lenet5", "--samples", "4", "--probes", "1", "--no-progress", "--resume", "-o", str(out))
    assert result.exit_code == 2 and "not a Hessian run's state" in result.output
    assert "Traceback" not in result.output and (out / STATE).read_bytes() == kept
