"""Hostile report configs: one clear line each, never a traceback or a huge allocation."""

import pytest

from netprobe.errors import NetprobeError
from netprobe.report.config import load_config


@pytest.mark.parametrize("content, message", [
    ("a = " + "[" * 5000 + "]" * 5000 + "\n", "not valid TOML"),
    (b"title = \"\xff\xfe\"\n", "not UTF-8"),
    ("[landscape]\nsteps = 1000000000\n", "landscape.steps.*at most 201"),
    ("[gradients]\nbatch_size = 1000000000\n", "at most 4096"),
])
def test_hostile_config_one_line(tmp_path, content, message):
    path = tmp_path / "hostile.toml"
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    with pytest.raises(NetprobeError, match=message) as info:
        load_config(path)
    assert "\n" not in str(info.value)


def test_config_name_too_long_is_one_line(tmp_path):
    with pytest.raises(NetprobeError, match="File name too long") as info:
        load_config(tmp_path / ("a" * 300))
    assert "\n" not in str(info.value)
