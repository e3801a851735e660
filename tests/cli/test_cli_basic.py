"""The CLI skeleton: version, help, list, and the one-line unknown-name error."""

import json
import subprocess
import sys

from netprobe import __version__
from helpers import run


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_help_does_not_import_torch_or_pandas():
    code = ("import sys; from netprobe.cli.main import cli; "
            "sys.argv=['netprobe','--help']\ntry:\n cli()\nexcept SystemExit: pass\n"
            "print(sorted(m for m in ('torch','pandas','matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "netprobe", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout


def test_list_json_has_one_row_per_model():
    from netprobe.zoo import list_models

    result = run("list", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["name"] for r in rows] == list_models()
    for row in rows:
        assert set(row) == {"name", "family", "input", "classes", "params", "plain", "description"}


def test_unknown_family_is_a_usage_error():
    result = run("list", "--family", "nosuch")
    assert result.exit_code == 2
    assert "unknown family 'nosuch'" in result.output
    assert "Traceback" not in result.output
