"""netprobe.runs: one wording for a changed setting, JSON-safe manifests, and NetprobeError in the CLI's words."""

import json

import pytest

from netprobe.errors import NetprobeError
from netprobe.runs import changed, check_manifest, json_safe


def test_changed_names_the_first_setting_that_differs_or_is_missing():
    assert changed({"a": 1, "b": [1, 2]}, {"a": 1, "b": [1, 2]}) is None
    assert changed({"a": 1}, {"a": 2}) == "it holds a run with a=1, this one has a=2"
    assert changed({"a": 1}, {"a": 1, "b": 0}) == "it holds a run with no b, this one has b=0"
    assert changed({"a": 1, "c": 3}, {"a": 1}) == "it holds a run with c=3, this one has no c"


def test_json_safe_values_read_back_equal():
    value = json_safe({"t": (1, 2), "s": {3}})
    assert value == {"t": [1, 2], "s": "{3}"} and json.loads(json.dumps(value)) == value


def test_a_manifest_of_other_settings_is_refused(tmp_path):
    path = tmp_path / ".settings.json"
    path.write_text(json.dumps({"steps": 3}))
    check_manifest(path, {"steps": 3}, "a run's settings")
    with pytest.raises(NetprobeError, match=r"cannot resume in .*: it holds a run with steps=3, this one has steps=5"):
        check_manifest(path, {"steps": 5}, "a run's settings")


def test_library_errors_name_parameters_and_the_cli_says_its_flags():
    exc = NetprobeError("input_size.py:Net is not a zoo model: give its input with input_size CxHxW",
                        said={"input with input_size": "input with --input-size"})
    assert str(exc).endswith("input_size CxHxW")
    # the quoted model name keeps its own words
    assert exc.for_cli() == "input_size.py:Net is not a zoo model: give its input with --input-size CxHxW"
