"""Atomic writes: permissions follow the umask, odd output paths get one line before any work."""

import os
import stat

import pytest

from netprobe.errors import NetprobeError
from netprobe.files import check_writable, write_atomic


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_gets_umask_mode(tmp_path, umask, expected):
    old = os.umask(umask)
    try:
        write_atomic(tmp_path / "a.csv", "x\n")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a.csv") == expected  # 0o666 & ~umask, as open() gives


def test_existing_file_keeps_its_mode(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("old")
    os.chmod(path, 0o640)
    write_atomic(path, b"new")
    assert _mode(path) == 0o640 and path.read_bytes() == b"new"


def test_symlink_is_followed_and_kept(tmp_path):
    target, link = tmp_path / "real.csv", tmp_path / "link.csv"
    target.write_text("old")
    link.symlink_to(target)
    write_atomic(link, "new")
    assert link.is_symlink() and target.read_text() == "new"


def test_fifo_is_refused(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(NetprobeError, match="not a regular file"):
        write_atomic(fifo, "x")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.parametrize("name, match", [
    ("", "empty name"), ("a\0b", "NUL byte"), ("x" * 300, "longer than"),
    ("/dev/null", "not a regular file"), ("missing/a.csv", "does not exist"),
])
def test_bad_names_are_one_line(tmp_path, name, match):
    path = name if name.startswith("/") or not name else str(tmp_path / name)
    with pytest.raises(NetprobeError, match=match) as info:
        check_writable(path)
    assert "\n" not in str(info.value)


def test_directory_is_refused(tmp_path):
    with pytest.raises(NetprobeError, match="directory"):
        check_writable(tmp_path)


def test_no_temporary_left_after_write(tmp_path):
    write_atomic(tmp_path / "a.csv", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]
