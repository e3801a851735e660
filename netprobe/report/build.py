"""Run a report configuration and write the folder: CSVs, PNG plots (and SVG), report.json, index.md, index.html.

The folder is written to a temporary sibling `.NAME.new.*` and swapped in at the end, so a failed run never
leaves a half-written report where a previous good one stood. The swap moves the old folder to `.NAME.old`
first; a run killed between the two renames leaves it there, and the next run (or `check_target`) moves it
back before anything else, then removes the leftovers of killed runs.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from netprobe.errors import NetprobeError
from netprobe.lifetime import held
from netprobe.render.tables import to_csv
from netprobe.report import steps
from netprobe.report.graph_step import graph_step
from netprobe.report.models import one_trace_per_model
from netprobe.report.registry import needed, sections

REPORT_FILES = {".csv", ".png", ".svg", ".json", ".md", ".html"}  # what `write` puts in a report folder
LOCK = "lock"  # held (flock) by the run that owns a work folder


def plan(config, work=None) -> list[tuple[str, object]]:
    """The report's steps in run order, as (label for the progress display, zero-argument callable); `work` is
    a folder for files one step leaves to a later one."""
    summaries: list = []
    todo = [(f"{entry.label}: summary", _collect(steps.summary_step, entry, summaries))
            for entry in config.models if "summary" in entry.analyses]
    if todo:
        # Runs after every summary (it plots their totals) but is shown first.
        todo.append(("models at a glance", lambda: steps.overview(config, summaries)))
        drawn = [e for e in config.models if "summary" in e.analyses]
        todo.append(("architecture diagrams", lambda: graph_step(drawn, config)))
    if config.bottleneck is not None or config.cases:
        todo.append(("design arithmetic", lambda: steps.design_step(config)))
    read = needed()
    for declared in sections():
        entries = [e for e in config.models if declared.name in e.analyses]
        if entries:
            # the run's work folder: for the sections that leave files to others and those that read them
            shared = {"work": work} if declared.needs or declared.name in read else {}
            step = lambda d=declared, es=entries, kw=shared, **more: d.step(es, config, **kw, **more)
            if declared.early is not None:
                step = Early(lambda d=declared, es=entries, kw=shared: d.early(es, config, **kw), step)
            todo.append((f"{declared.name.replace('_', ' ')}: {', '.join(e.label for e in entries)}", step))
    return todo


class Early:
    """A step whose long part (`begin()`: something with result() and cancel()) `start`s before the other
    steps run; called at its turn, it waits for that part and passes it on as `finish(trained=...)`."""

    def __init__(self, begin, finish):
        self._begin, self._finish, self._pending = begin, finish, None
        self.running = False  # begun and not yet waited for

    def start(self) -> None:
        """Begin the long part (once)."""
        if self._pending is None:
            self._pending = self._begin()
            self.running = True

    def cancel(self) -> None:
        """Stop the long part if it still runs."""
        if self._pending is not None:
            self._pending.cancel()

    def __call__(self):
        self.start()
        try:
            trained = self._pending.result()
        finally:
            self.running = False
        return self._finish(trained=trained)


def _collect(step, entry, into: list):
    def call():
        section, *rest = step(entry)
        into.append((entry, *rest))
        return section
    return call


def run(config, *, progress: bool = True, beside=None) -> list:
    """Run every step; returns the sections in display order (the overview first). The steps' work folder is
    made beside the report folder `beside` (where the next run removes it if this one is killed), else in the
    temporary directory."""
    from tqdm.auto import tqdm

    sections = []
    with _work_folder(beside) as work, one_trace_per_model():
        todo = plan(config, Path(work))
        early = [step for _, step in todo if isinstance(step, Early)]
        threads = torch.get_num_threads()
        try:
            for step in early:  # the depth study trains in worker processes while the other steps run
                step.start()
            bar = tqdm(todo, desc="report", unit="step", disable=not progress, file=None)
            for label, step in bar:
                bar.set_postfix_str(label)
                # While the study trains on every core, the other steps take one thread: more only fight it.
                torch.set_num_threads(1 if any(e.running for e in early) else threads)
                with steps.seeded(config.seed):
                    section = step()
                if section is not None:
                    sections.append(section)
        finally:
            torch.set_num_threads(threads)
            for step in early:  # a failed step stops what still trains
                step.cancel()
    overview = [s for s in sections if s.key == "models"]
    return overview + [s for s in sections if s.key != "models"]


@contextlib.contextmanager
def _work_folder(beside):
    """A temporary folder, locked while this run lives; beside `beside` when given."""
    import fcntl

    if beside is None:
        with tempfile.TemporaryDirectory(prefix="netprobe-report-") as work:
            yield work
        return
    beside = Path(beside)
    work = tempfile.mkdtemp(prefix=f".{beside.name}.work.", dir=beside.parent)
    fd = os.open(Path(work) / LOCK, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield work
    finally:
        os.close(fd)
        shutil.rmtree(work, ignore_errors=True)


def check_target(out_dir) -> Path:
    """Raise a one-line error unless the report folder can be created, or replaced because it holds only a
    previous netprobe report (a user's folder is never replaced wholesale)."""
    text = os.fspath(out_dir)
    out_dir = Path(text)
    if not text or out_dir.name in ("", ".", ".."):
        raise NetprobeError(f"cannot write report to {text!r}: name a folder (the report replaces it as a whole)")
    parent = out_dir.parent
    if not parent.is_dir():
        raise NetprobeError(f"cannot write report to {out_dir}: directory {parent} does not exist")
    try:  # a probe with the longest name a run uses catches long names, read-only mounts, /proc and /sys
        os.rmdir(tempfile.mkdtemp(prefix=f".{out_dir.name}.work.", dir=parent))
    except OSError as exc:
        raise NetprobeError(f"cannot write report to {out_dir}: {exc.strerror or exc}") from None
    if out_dir.exists() and not out_dir.is_dir():
        raise NetprobeError(f"cannot write report to {out_dir}: it is a file")
    if Path.cwd().resolve().is_relative_to(out_dir.resolve()):
        raise NetprobeError(f"cannot write report to {out_dir}: it holds the current directory")
    recover(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not is_report(out_dir):
        raise NetprobeError(f"cannot write report to {out_dir}: it is not empty and holds no netprobe report "
                            "(the report replaces the folder as a whole): choose a new or empty folder")
    return out_dir


def is_report(folder: Path) -> bool:
    """Whether `folder` holds a netprobe report and nothing else: report.json as `write` makes it, and only
    files of the kinds a report has."""
    from netprobe.files import read_json_table

    try:
        key = read_json_table(folder / "report.json", "a report")
    except NetprobeError:
        return False
    return {"title", "seed", "config"} <= set(key) and all(
        p.is_file() and not p.is_symlink() and p.suffix in REPORT_FILES for p in folder.iterdir())


def recover(target: Path) -> None:
    """Put back a report a killed swap left at `.NAME.old`, and remove the folders killed runs left beside it
    (a work folder only once no run holds its lock)."""
    old = target.parent / f".{target.name}.old"
    if old.is_dir() and not target.exists():
        os.replace(old, target)
    name = glob.escape(target.name)
    for leftover in [old, *target.parent.glob(f".{name}.new.*"), *target.parent.glob(f".{name}.work.*")]:
        if leftover.is_dir() and not leftover.is_symlink() and not held(leftover / LOCK):
            shutil.rmtree(leftover, ignore_errors=True)


def write(config, sections, out_dir, *, svg: bool = False) -> Path:
    """Write the report folder atomically (temporary sibling, then swapped in); plots as PNG, and SVG with `svg`."""
    from netprobe.report.pages import html_page, markdown_page

    out_dir = check_target(out_dir)
    if not svg:  # before the pages are made: they link only the files written
        for section in sections:
            for plot in section.plots:
                plot.images = {fmt: data for fmt, data in plot.images.items() if fmt != "svg"}
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.new.", dir=out_dir.parent))
    try:
        for section in sections:
            for table in section.tables:
                (tmp / f"{table.name}.csv").write_text(to_csv(table.frame), encoding="utf-8")
            for plot in section.plots:
                for fmt, data in plot.images.items():
                    (tmp / f"{plot.name}.{fmt}").write_bytes(data)
            for drawing in section.diagrams:
                (tmp / f"{drawing.name}.svg").write_text(drawing.svg, encoding="utf-8")
        intro = [f"Generated by netprobe from {config.source} (seed {config.seed}).",
                 "Every number here comes from the netprobe analyses; CSV files hold the exact values."]
        key = {"title": config.title, "seed": config.seed, "config": config.source,
               **{s.key: s.figures for s in sections if s.figures}}
        (tmp / "report.json").write_text(json.dumps(key, indent=2, default=_json_safe) + "\n", encoding="utf-8")
        (tmp / "index.md").write_text(markdown_page(config.title, intro, sections), encoding="utf-8")
        (tmp / "index.html").write_text(html_page(config.title, intro, sections), encoding="utf-8")
        os.chmod(tmp, 0o755)
        _swap(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _swap(new: Path, target: Path) -> None:
    """Replace `target` by `new`; the old folder is removed only once the new one is in place."""
    if not target.exists():
        os.replace(new, target)
        return
    old = target.parent / f".{target.name}.old"  # a fixed name, so the next run finds it after a kill
    os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def _json_safe(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
