"""``make demo``'s progress: one line per stage with its time and the elapsed time, and the summary at the end."""

from __future__ import annotations

import time

from anbar.devenv.progress import STARTED_AT_ENV, Stages


class Ticks:
    """A clock that moves only when told, so the times printed are exact."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_each_stage_prints_one_line_with_its_time_and_the_elapsed_time():
    lines: list[str] = []
    clock = Ticks(1000.0)
    stages = Stages(say=lines.append, started_at=1000.0, clock=clock)
    with stages.stage("PostgreSQL"):
        clock.now += 2.25
    with stages.stage("ingest (12 runs)"):
        clock.now += 125.0
    assert lines == ["[0:02] PostgreSQL: done in 2.2 s", "[2:07] ingest (12 runs): done in 125.0 s"]
    assert stages.times == [("PostgreSQL", 2.25), ("ingest (12 runs)", 125.0)]


def test_the_summary_lists_every_stage_and_the_total():
    clock = Ticks(0.0)
    stages = Stages(say=lambda _: None, started_at=0.0, clock=clock)
    for name, seconds in (("install", 61.0), ("warehouse build", 48.5)):
        with stages.stage(name):
            clock.now += seconds
    clock.now += 0.5  # between stages: counted in the total only
    assert stages.summary().splitlines() == [
        "Time per stage:",
        "  install             61.0 s",
        "  warehouse build     48.5 s",
        "  total              110.0 s  (1:50)",
    ]


def test_a_stage_that_fails_is_not_reported_done():
    lines: list[str] = []
    stages = Stages(say=lines.append, clock=Ticks(5.0), started_at=5.0)
    try:
        with stages.stage("Airflow up"):
            raise RuntimeError("Airflow exited")
    except RuntimeError:
        pass
    assert lines == [] and stages.times == []


def test_make_demo_s_start_makes_the_install_the_first_stage(monkeypatch):
    lines: list[str] = []
    monkeypatch.setenv(STARTED_AT_ENV, f"{time.time() - 30.5:.3f}")
    stages = Stages.from_environment(lines.append)
    (name, seconds), *_ = stages.times
    assert name == "install" and seconds >= 30
    assert lines[0].startswith("[0:3") and lines[0].split("] ", 1)[1].startswith("install: done in ")


def test_without_make_the_clock_starts_now(monkeypatch):
    monkeypatch.delenv(STARTED_AT_ENV, raising=False)
    stages = Stages.from_environment(lambda _: None)
    assert stages.times == []
    monkeypatch.setenv(STARTED_AT_ENV, "not a time")
    assert Stages.from_environment(lambda _: None).times == []
