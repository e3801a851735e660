"""`report -o DIR` never replaces a user's folder, checks its target before any work, leaves no work folders."""

import fcntl
import os

import pytest
from click.testing import CliRunner

from netprobe.cli.main import cli
from netprobe.report import build

CONFIG = '[[models]]\nname = "lenet5"\nanalyses = ["summary"]\n'


def _config(folder):
    path = folder / "tiny.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def no_work(monkeypatch):
    """Fails the test if the report starts running its steps."""
    def refuse(*args, **kwargs):
        raise AssertionError("the report ran before its target was checked")

    monkeypatch.setattr(build, "run", refuse)


def _report(*args):
    return CliRunner().invoke(cli, ["report", "--no-progress", *map(str, args)])


def test_user_folder_is_refused_and_kept(tmp_path, no_work):
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "thesis.tex").write_text("x")
    result = _report("--config", _config(tmp_path), "-o", user)
    assert result.exit_code == 2 and "not empty" in result.output, result.output
    assert [p.name for p in user.iterdir()] == ["thesis.tex"]


def test_folder_holding_the_config_is_refused(tmp_path, no_work):
    proj = tmp_path / "proj"
    proj.mkdir()
    config = _config(proj)
    assert _report("--config", config, "-o", proj).exit_code == 2
    assert config.read_text() == CONFIG


def test_report_with_a_stranger_inside_is_refused(tmp_path):
    out = tmp_path / "rep"
    assert _report("--config", _config(tmp_path), "-o", out, "--svg").exit_code == 0
    assert {p.suffix for p in out.iterdir()} >= {".png", ".svg"}
    assert _report("--config", _config(tmp_path), "-o", out).exit_code == 0  # its own previous report
    # Plots come as PNG alone; the architecture diagrams (graph_*.svg) are index.html's vector drawings.
    assert not [p for p in out.iterdir() if p.suffix == ".svg" and not p.name.startswith("graph_")]
    assert "(<a" not in (out / "index.html").read_text()
    (out / "notes.txt").write_text("mine")
    assert _report("--config", _config(tmp_path), "-o", out).exit_code == 2
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("target", ["", ".", "..", "/proc/r", "/sys/r", "x" * 300, "sub/../.."])
def test_bad_targets_refused_before_work(tmp_path, no_work, monkeypatch, target):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    result = _report("--config", _config(tmp_path), "-o", target)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output


def test_stale_work_folders_removed_live_ones_kept(tmp_path):
    stale = tmp_path / ".rep.work.dead"
    live = tmp_path / ".rep.work.live"
    for folder in (stale, live):
        folder.mkdir()
        (folder / build.LOCK).write_text("")
    fd = os.open(live / build.LOCK, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        build.check_target(tmp_path / "rep")
        assert not stale.exists() and live.exists()
    finally:
        os.close(fd)


def test_run_leaves_no_work_folder(tmp_path):
    from netprobe.report.config import load_config

    build.run(load_config(_config(tmp_path)), progress=False, beside=tmp_path / "rep")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.toml"]
