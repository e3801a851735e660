"""Report sections declared once: duplicates refused, a dependency must run first, config tables follow."""

import pytest

from netprobe.report import registry
from netprobe.report.config import analyses, load_config


def test_a_second_declaration_of_a_name_is_refused():
    registry.sections()
    with pytest.raises(ValueError, match="already declared"):
        registry.section("lesion", order=99)(lambda entries, config: None)


def test_a_section_needing_one_that_runs_later_is_refused(monkeypatch):
    registry.sections()
    monkeypatch.setitem(registry._SECTIONS, "early_reader", registry.Declared(
        "early_reader", lambda entries, config: None, order=1, needs=("depth",)))
    with pytest.raises(ValueError, match="'early_reader' needs 'depth'"):
        registry.sections()


def test_the_config_is_built_from_the_declarations():
    names = [s.name for s in registry.sections()]
    assert analyses() == ("summary", *names)
    assert names.index("depth") < names.index("lesion") < names.index("landscape")
    config = load_config()
    lesion = next(s for s in registry.sections() if s.name == "lesion")
    assert set(config.settings["lesion"]) == set(lesion.settings)  # every declared setting, defaults filled in
    assert config.settings["gradients"] == {"batch_size": 64, "batches": 4}  # default.toml's [gradients]
