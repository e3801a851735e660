"""`netprobe hessian --operator/--params/--method lanczos/--trace-method/--batch-probes` through the CLI."""

import pandas as pd
import pytest

COMMON = ("resnet20", "--kwargs", "width=2", "--samples", "8", "--batch-size", "4", "--no-progress")


def cli(*args):
    from click.testing import CliRunner

    from netprobe.cli.main import cli as group

    return CliRunner().invoke(group, ["hessian", *COMMON, *args])


def test_lanczos_rows_hutchpp_trace_and_filtered_eigenvectors(tmp_path):
    from netprobe.analysis.surfaces.directions import load_directions

    result = cli("--params", "layer3.*", "--operator", "ggn", "--method", "lanczos", "--which", "largest",
                 "--top", "2", "--iters", "6", "--trace-method", "hutch++", "--probes", "6", "--batch-probes", "3",
                 "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "hessian.csv")
    assert table["quantity"].tolist() == ["eigenvalue_1", "eigenvalue_2", "residual_1", "residual_2", "trace"]
    assert table["iterations"].tolist() == [6, 6, 6, 6, 6]
    values = table["value"].tolist()
    assert values[0] >= values[1] >= 0 and values[2] >= 0  # the Gauss-Newton matrix is PSD
    (vector, *_), _ = load_directions(tmp_path / "eigenvectors-residual.pt")
    outside = [name for name in vector if not name.startswith("layer3.")]
    assert outside and all(not vector[name].any() for name in outside)  # zero off the chosen parameters
    assert float(sum((vector[n] ** 2).sum() for n in vector)) == pytest.approx(1.0, rel=1e-5)


def test_batched_probes_give_the_one_at_a_time_figures(tmp_path):
    args = ("--operator", "fisher", "--iters", "2", "--probes", "4", "--density", "--lanczos-steps", "3",
            "--density-runs", "2")
    tables = []
    for name, batch in (("one", "1"), ("many", "4")):
        result = cli(*args, "--batch-probes", batch, "-o", str(tmp_path / name))
        assert result.exit_code == 0, result.output
        tables.append(pd.read_csv(tmp_path / name / "hessian.csv"))
    assert tables[0]["quantity"].tolist() == ["eigenvalue_1", "trace", "ritz_max", "ritz_min"]
    assert tables[1]["value"].tolist() == pytest.approx(tables[0]["value"].tolist(), rel=1e-4)
    assert tables[1]["stderr"].iloc[1] == pytest.approx(tables[0]["stderr"].iloc[1], rel=1e-4)


@pytest.mark.parametrize("args, message", [
    (("--params", "nothing.*"), "no parameter name matches 'nothing.*'"),
    (("--params", "("), "not a regular expression"),
    (("--which", "largest"), "needs method='lanczos'"),
    (("--trace-method", "hutch++", "--per-block"), "Hutch++ gives the model's trace only"),
    (("--trace-method", "hutch++", "--probes", "2"), "at least 3 products"),
    (("--operator", "newton"), "--operator"),
])
def test_bad_curvature_settings_exit_2(args, message):
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
