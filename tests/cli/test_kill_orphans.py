"""kill -9 of a long command leaves no process behind (checked in the process table), and a resume cannot
share the folder with survivors."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
TINY = ["--depths", "20", "--width", "1", "--every", "1", "--batch-size", "2", "--threads", "1", "--no-progress"]


def _children(pid: int) -> set[int]:
    """Every live descendant of `pid`, from the process table."""
    parents = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        kids = {p for p, pp in parents.items() if pp == parent}
        found |= kids
        todo += kids
    return found


def _alive(pids) -> set[int]:
    live = set()
    for pid in pids:
        try:
            if (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z":
                live.add(pid)
        except OSError:
            pass
    return live


def _start(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "netprobe", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when_workers_train(proc, workers: int, ready, timeout=300) -> set[int]:
    """kill -9 `proc` once it has `workers` worker processes and `ready()` holds; its descendants then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # the resource tracker is a child too: count the spawned workers by their command line
        kids = {p for p in _children(proc.pid) if b"spawn_main" in _cmdline(p)}
        if len(kids) >= workers and ready():
            descendants = _children(proc.pid)
            proc.kill()
            proc.wait()
            return descendants
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.2)
    proc.kill()
    pytest.fail("the workers never started")


def _cmdline(pid) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _gone(pids, timeout=60.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _alive(pids)


def test_killed_depth_study_leaves_no_workers(tmp_path):
    out = tmp_path / "D"
    proc = _start(["depth", "--jobs", "2", *TINY, "--steps", "100000", "-o", str(out)], tmp_path)
    left = _kill_when_workers_train(proc, 2, lambda: any(out.glob("*.pt")))
    assert left and not _gone(left)


def test_resume_refused_while_a_survivor_holds_the_folder(tmp_path):
    from click.testing import CliRunner

    from netprobe.lifetime import share
    from netprobe.cli.main import cli

    out = tmp_path / "D"
    args = ["depth", "--jobs", "1", "--variants", "plain", *TINY, "--steps", "1", "-o", str(out)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    fd = share(out)  # as a worker of a killed run would
    try:
        result = CliRunner().invoke(cli, [*args, "--resume"])
        assert result.exit_code == 2 and "another process" in result.output, result.output
    finally:
        os.close(fd)
    assert CliRunner().invoke(cli, [*args, "--resume"]).exit_code == 0


def test_killed_report_leaves_no_workers_and_no_work_folder(tmp_path):
    (tmp_path / "r.toml").write_text('[[models]]\nname = "resnet20"\nanalyses = ["depth"]\n')
    proc = _start(["report", "--config", "r.toml", "--quick", "--no-progress", "-o", "rep"], tmp_path)
    left = _kill_when_workers_train(proc, 2, lambda: any(tmp_path.glob(".rep.work.*/depth")))
    assert left and not _gone(left)
    from netprobe.report.build import check_target

    check_target(tmp_path / "rep")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.toml"]
