"""The report's configuration: TOML (or YAML when PyYAML is installed), validated with errors naming the key."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from netprobe import MAX_SEED
from netprobe.errors import NetprobeError
from netprobe.report.registry import sections

CASES = ("3x3-vs-7x7", "basic-vs-bottleneck")
_BASE_TOP = {"title", "seed", "models", "design", "quick"}  # beside one table per section with settings
_MODEL_KEYS = {"name", "options", "input_size", "analyses"}
_DESIGN_KEYS = {"bottleneck", "cases"}
# key -> (type, minimum, maximum); the maxima keep every count of the meta-device layers within int64
_BOTTLENECK = {"input": (str, None, None), "kernel": (int, 1, 99), "out": (int, 1, 65536), "reduce": (int, 1, 65536)}
_BOTTLENECK_INPUT = (8192, 8192, 65536)  # the largest H, W and C of `input` (HxWxC)


@dataclass
class ModelEntry:
    """One model of the report: zoo name or `module:Name` spec, builder options, input (C, H, W) and the analyses to run on it."""

    name: str
    options: dict
    input_size: tuple[int, int, int] | None
    analyses: list[str]

    @property
    def label(self) -> str:
        """The name with its options, e.g. 'resnet56' or 'resnet56 (plain=True)'."""
        opts = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.name} ({opts})" if opts else self.name

    @property
    def slug(self) -> str:
        """A file-name-safe form of the label."""
        return re.sub(r"[^A-Za-z0-9]+", "_", self.label).strip("_")


@dataclass
class ReportConfig:
    """A validated report configuration."""

    title: str
    seed: int
    models: list[ModelEntry]
    bottleneck: dict | None
    cases: list[str]
    settings: dict = field(default_factory=dict)  # section -> its settings, defaults filled in
    source: str = "default"
    device: str = "cpu"  # where the trained and measured sections compute (not a config key: `report --device`)


class _Where:
    """Turns a key path into 'FILE:LINE: key' using the raw text, so errors point at the config line."""

    def __init__(self, source: str, text: str):
        self.source, self.lines = source, text.splitlines()

    def error(self, key: str, message: str, needle=None) -> NetprobeError:
        line = self._find(needle if needle is not None else key.rsplit(".", 1)[-1].split("[")[0])
        where = f"{self.source}:{line}" if line else self.source
        return NetprobeError(f"{where}: {key}: {message}")

    def _find(self, needle) -> int | None:
        text = str(needle)
        quoted = (f'"{text}"', f"'{text}'")
        for i, line in enumerate(self.lines, 1):
            body = line.split("#", 1)[0]
            # a key at the start of a line, or inside an inline table: `bottleneck = {input = "28x28x192"}`
            if any(q in body for q in quoted) or re.search(rf"(^|[{{,])\s*{re.escape(text)}\s*[=:]", body):
                return i
        return None


def _parse(text: str, source: str) -> dict:
    if source.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise NetprobeError(f"{source}: YAML configs need PyYAML (pip install pyyaml); or use TOML") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise NetprobeError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from None
    else:
        import gc
        import tomllib

        # Deeply nested input recurses to the limit: a garbage collection there would run other objects'
        # finalizers with no stack left (they fail as "unraisable" errors), so none runs while parsing.
        collecting = gc.isenabled()
        gc.disable()
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise NetprobeError(f"{source}: not valid TOML: {exc}") from None
        except RecursionError:
            raise NetprobeError(f"{source}: not valid TOML: nested too deeply") from None
        finally:
            if collecting:
                gc.enable()
    if not isinstance(data, dict):
        raise NetprobeError(f"{source}: expected a table of settings at the top level")
    return data


def default_text() -> str:
    """The embedded default configuration (the case studies' story)."""
    return resources.files("netprobe.report").joinpath("default.toml").read_text(encoding="utf-8")


def load_config(path=None, *, quick: bool = False) -> ReportConfig:
    """Read and validate a config file (the embedded default when `path` is None); `quick` applies [quick]."""
    if path is None:
        text, source = default_text(), "default.toml"
    else:
        path = Path(path)
        try:
            if not path.is_file():
                raise NetprobeError(f"config file {path} does not exist")
            text, source = path.read_text(encoding="utf-8"), str(path)
        except UnicodeDecodeError as exc:
            raise NetprobeError(f"config file {path} is not UTF-8 text (byte {exc.start})") from None
        except OSError as exc:  # a name too long, a directory without read permission
            raise NetprobeError(f"cannot read config file {path}: {exc.strerror}") from None
    where = _Where(source, text)
    data = _parse(text, source)
    declared = {s.name: s for s in sections() if s.settings}
    top = _BASE_TOP | set(declared)
    for key in data:
        if key not in top:
            raise where.error(key, f"unknown setting (known: {', '.join(sorted(top))})")
    settings = {name: _settings(where, s, name, data.get(name, {})) for name, s in declared.items()}
    if quick:
        quick_data = _table(where, "quick", data.get("quick", {}))
        for name, values in quick_data.items():
            if name not in declared:
                raise where.error(f"quick.{name}", f"unknown section (known: {', '.join(declared)})", name)
            settings[name].update(_settings(where, declared[name], f"quick.{name}", values))
    settings = {name: {**s.defaults(), **settings[name]} for name, s in declared.items()}
    design = _table(where, "design", data.get("design", {}))
    for key in design:
        if key not in _DESIGN_KEYS:
            raise where.error(f"design.{key}", f"unknown setting (known: {', '.join(sorted(_DESIGN_KEYS))})", key)
    return ReportConfig(
        title=_typed(where, "title", data.get("title", "netprobe report"), str),
        seed=_typed(where, "seed", data.get("seed", 0), int, 0, MAX_SEED),
        models=[_model(where, i, entry) for i, entry in enumerate(_list(where, "models", data.get("models", [])))],
        bottleneck=_bottleneck(where, design.get("bottleneck")),
        cases=_cases(where, design.get("cases", [])),
        settings=settings, source=source)


def _typed(where, key, value, kind, minimum=None, maximum=None):
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise where.error(key, f"expected an integer, got {value!r}")
    if kind is not int and not isinstance(value, kind):
        raise where.error(key, f"expected {kind.__name__}, got {value!r}")
    if minimum is not None and value < minimum:
        raise where.error(key, f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise where.error(key, f"must be at most {maximum}, got {value}")
    return value


def _table(where, key, value) -> dict:
    if not isinstance(value, dict):
        raise where.error(key, f"expected a table, got {value!r}")
    return value


def _list(where, key, value) -> list:
    if not isinstance(value, list):
        raise where.error(key, f"expected a list, got {value!r}")
    return value


def _settings(where, declared, table: str, values) -> dict:
    """The settings given in `table` for a declared section, each checked against its type and bounds."""
    known = declared.settings
    out = {}
    for key, value in _table(where, table, values).items():
        if key not in known:
            raise where.error(f"{table}.{key}", f"unknown setting (known: {', '.join(known)})", key)
        out[key] = _typed(where, f"{table}.{key}", value, *known[key][:3])
    return out


def _model(where, i: int, entry) -> ModelEntry:
    from netprobe.errors import UnknownModelError
    from netprobe.zoo import model_spec

    key = f"models[{i}]"
    entry = _table(where, key, entry)
    for name in entry:
        if name not in _MODEL_KEYS:
            raise where.error(f"{key}.{name}", f"unknown key (known: {', '.join(sorted(_MODEL_KEYS))})", name)
    if "name" not in entry:
        raise where.error(key, "every model needs a name", "[[models]]")
    name = _typed(where, f"{key}.name", entry["name"], str)
    options = copy.deepcopy(_table(where, f"{key}.options", entry.get("options", {})))
    analyses = _analyses(where, key, entry)
    size = _size(where, key, entry.get("input_size"))
    if ":" in name:
        # A user's module (`path/file.py:Net`, `package.module:build`): options are its keyword arguments.
        if size is None:
            raise where.error(f"{key}.input_size", f"{name} is not a zoo model: give its input_size (CxHxW)", name)
        twins = [a for a in analyses if a in _twins()]
        if twins:
            raise where.error(f"{key}.analyses", f"{twins[0]} compares a zoo model with its plain twin; "
                                                 f"{name} is not a zoo model", twins[0])
        return ModelEntry(name, options, size, analyses)
    try:
        spec = model_spec(name)
    except UnknownModelError as exc:
        raise where.error(f"{key}.name", str(exc), name) from None
    for option in options:
        if option not in spec.options():
            raise where.error(f"{key}.options.{option}",
                              f"{name} does not take this option (it takes: {', '.join(spec.options())})", option)
    if any(a in _twins() for a in analyses):
        if not spec.plain:
            raise where.error(f"{key}.analyses", f"{', '.join(_twins())} compare plain and residual twins; "
                                                 f"{name} has no plain twin", name)
    own = [s.name for s in sections() if s.own_input and s.name in analyses]
    if own and size is not None:
        raise where.error(f"{key}.input_size", f"the {own[0]} study evaluates test data at the model's own input "
                                               f"size: drop input_size for {name}", "input_size")
    return ModelEntry(name, options, size, analyses)


def analyses() -> tuple[str, ...]:
    """Every analysis a model entry may list: its summary, then the declared sections in run order."""
    return ("summary", *(s.name for s in sections()))


def _twins() -> tuple[str, ...]:
    return tuple(s.name for s in sections() if s.twins)


def _analyses(where, key: str, entry: dict) -> list[str]:
    known = analyses()
    listed = _list(where, f"{key}.analyses", entry.get("analyses", ["summary"]))
    for analysis in listed:
        if analysis not in known:
            raise where.error(f"{key}.analyses", f"unknown analysis {analysis!r} (known: {', '.join(known)})",
                              analysis)
    return list(listed)


def _size(where, key: str, size) -> tuple[int, int, int] | None:
    if size is None:
        return None
    dims = re.findall(r"\d+", str(size))
    if not re.fullmatch(r"\d+x\d+x\d+", str(size)) or any(int(d) <= 0 for d in dims):
        raise where.error(f"{key}.input_size", f"expected CxHxW like '3x224x224', got {size!r}", size)
    return tuple(int(d) for d in dims)


def _bottleneck(where, value) -> dict | None:
    if value is None or value is False:
        return None
    value = _table(where, "design.bottleneck", value)
    for key, item in value.items():
        if key not in _BOTTLENECK:
            raise where.error(f"design.bottleneck.{key}", f"unknown key (known: {', '.join(_BOTTLENECK)})", key)
        _typed(where, f"design.bottleneck.{key}", item, *_BOTTLENECK[key])
    if "input" in value:
        dims = value["input"].split("x")
        if not re.fullmatch(r"[0-9]+x[0-9]+x[0-9]+", value["input"]) or not all(
                1 <= int(d) <= top for d, top in zip(dims, _BOTTLENECK_INPUT)):
            raise where.error("design.bottleneck.input", "expected HxWxC like '28x28x192' (H, W at most "
                              f"{_BOTTLENECK_INPUT[0]}, C at most {_BOTTLENECK_INPUT[2]}), got {value['input']!r}")
    from netprobe.analysis.counting import design

    try:  # the library's own rules (an odd kernel), on the meta device: milliseconds
        design.bottleneck(**bottleneck_args(value))
    except NetprobeError as exc:
        raise where.error("design.bottleneck", str(exc), "bottleneck") from None
    return dict(value)


def bottleneck_args(value: dict) -> dict:
    """design.bottleneck's keyword arguments from a validated [design] bottleneck table."""
    args = {k: v for k, v in value.items() if k != "input"}
    if "input" in value:
        h, w, c = (int(d) for d in value["input"].split("x"))
        args["input_size"] = (c, h, w)
    return args


def _cases(where, value) -> list[str]:
    for i, case in enumerate(_list(where, "design.cases", value)):
        if case not in CASES:
            raise where.error("design.cases", f"unknown case {case!r} (known: {', '.join(CASES)})", case)
        if case in value[:i]:
            raise where.error("design.cases", f"{case!r} is listed twice", case)
    return list(value)
