"""The report swap survives a kill between its two renames; leftovers of killed runs are removed."""

import os

import pytest

from netprobe.report import build


def _folder(path, text):
    path.mkdir()
    (path / "index.md").write_text(text)
    (path / "report.json").write_text('{"title": "t", "seed": 0, "config": "c"}')
    return path


def test_kill_between_renames_keeps_the_old_report(tmp_path, monkeypatch):
    target = _folder(tmp_path / "R", "old")
    new = _folder(tmp_path / ".R.new.abc", "new")
    real, calls = os.replace, []

    def dying_replace(src, dst):
        calls.append(src)
        if len(calls) == 2:  # the kill: after the old report moved aside, before the new one moved in
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(build.os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        build._swap(new, target)
    monkeypatch.setattr(build.os, "replace", real)
    assert not target.exists()
    build.check_target(target)  # the next run recovers before it writes anything
    assert (target / "index.md").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["R"]


def test_leftovers_removed_and_swap_replaces(tmp_path):
    target = _folder(tmp_path / "R", "old")
    _folder(tmp_path / ".R.new.killed", "half")
    _folder(tmp_path / ".R.old", "stale")
    _folder(tmp_path / ".Rx.new.other", "not ours")
    build.check_target(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".Rx.new.other", "R"]
    build._swap(_folder(tmp_path / ".R.new.abc", "new"), target)
    assert (target / "index.md").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".Rx.new.other", "R"]
