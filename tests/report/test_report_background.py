"""The report's depth study trains in the background from the first step on, and stops when the report fails."""

import multiprocessing
import time

import pandas as pd
import pytest

from netprobe.report import build, depth_step, steps
from netprobe.report.config import load_config

CONFIG = """
seed = 1

[[models]]
name = "lenet5"

[[models]]
name = "resnet56"
analyses = ["depth"]
"""


class FakeStudy:
    """Stands in for depth_step.Training: records when it began, what ran meanwhile, and whether it was cancelled."""

    log: list = []

    def __init__(self, entries, config, work=None):
        self.log.append(("begin", [e.name for e in entries], work is not None))

    def result(self):
        self.log.append(("result",))
        final = pd.DataFrame({"variant": ["plain", "plain", "residual", "residual"], "depth": [20, 56, 20, 56],
                              "steps": 2, "train_loss": [0.5, 1.5, 0.25, 0.125], "train_acc": 0.5,
                              "test_loss": 1.0, "test_acc": 0.5})
        return final.rename(columns={"steps": "step"}).assign(epoch=0.5), final

    def cancel(self):
        self.log.append(("cancel",))


@pytest.fixture
def fake_study(monkeypatch):
    FakeStudy.log = []
    from dataclasses import replace

    from netprobe.report import registry

    registry.sections()
    monkeypatch.setitem(registry._SECTIONS, "depth", replace(registry._SECTIONS["depth"], early=FakeStudy))
    return FakeStudy.log


def _summary_logging(log, real):
    def step(entry):
        log.append(("summary", entry.name))
        return real(entry)
    return step


def test_study_begins_before_the_first_step_and_feeds_the_depth_section(tmp_path, monkeypatch, fake_study):
    monkeypatch.setattr(steps, "summary_step", _summary_logging(fake_study, steps.summary_step))
    path = tmp_path / "r.toml"
    path.write_text(CONFIG)
    sections = build.run(load_config(path), progress=False)
    assert fake_study[0] == ("begin", ["resnet56"], True)
    assert fake_study[1] == ("summary", "lenet5")
    assert ("result",) in fake_study and fake_study.index(("result",)) > 1
    degradation = next(s for s in sections if s.key == "degradation")
    assert degradation.figures["plain56"] == {"train_loss": 1.5, "test_acc": 0.5}


def test_a_failing_step_cancels_the_study(tmp_path, monkeypatch, fake_study):
    def boom(entry):
        raise RuntimeError("disk full")

    monkeypatch.setattr(steps, "summary_step", boom)
    path = tmp_path / "r.toml"
    path.write_text(CONFIG)
    with pytest.raises(RuntimeError, match="disk full"):
        build.run(load_config(path), progress=False)
    assert fake_study == [("begin", ["resnet56"], True), ("cancel",)]


def _sleep(seconds):
    time.sleep(seconds)


def _stuck_training(entries, config, work=None):
    """A study whose worker process would run for ten minutes."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(_sleep, 600).result()


def test_cancel_terminates_the_training_processes(monkeypatch):
    monkeypatch.setattr(depth_step, "train", _stuck_training)
    training = depth_step.Training([], None)
    deadline = time.monotonic() + 60
    while not multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = multiprocessing.active_children()
    assert workers, "the worker process never started"
    training.cancel()
    for worker in workers:
        worker.join(timeout=30)
        assert not worker.is_alive()
    with pytest.raises(Exception):  # the study ends with the pool's error, not with tables
        training.result()
