"""landscape: Ctrl-C says how to resume."""

from click.testing import CliRunner

from netprobe.cli.main import cli


def test_landscape_interrupt_hint(tmp_path, monkeypatch):
    from netprobe.analysis.surfaces import study

    def interrupted(*args, **kwargs):
        (tmp_path / "land").mkdir(exist_ok=True)
        (tmp_path / "land" / "points.log").write_text("partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(study, "study", interrupted)
    result = CliRunner().invoke(cli, ["landscape", "resnet20", "--no-progress", "-o", str(tmp_path / "land")])
    assert result.exit_code == 1 and "rerun with --resume" in result.output
