"""anbar.dbt.coalesce: deliveries accepted close together make one warehouse build."""

from __future__ import annotations

import datetime as dt

from anbar.dbt.coalesce import LastBuild, covered, wait_for_quiet

T0 = dt.datetime(2026, 12, 7, 21, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


class Clock:
    """Time that moves only when the code under test sleeps."""

    def __init__(self):
        self.now = T0
        self.sleeps: list[float] = []

    def __call__(self) -> dt.datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += dt.timedelta(seconds=seconds)


def test_a_run_is_covered_only_by_a_successful_build_that_started_after_all_its_events():
    last = LastBuild(run_id="asset_triggered__1", started_at=at(100))
    assert covered([at(10), at(99)], last, "success")
    assert covered([at(100)], last, "success")
    assert not covered([at(10), at(101)], last, "success")  # one delivery came after that build read the ledger
    assert not covered([at(10)], last, "failed")  # a failed build covers nothing
    assert not covered([at(10)], last, None)  # nor one whose run is gone
    assert not covered([at(10)], None, None)  # nor none
    assert not covered([], last, "success")  # a run by hand is never skipped


def test_the_last_build_record_survives_the_variable_and_garbage_does_not_break_it():
    last = LastBuild(run_id="manual__2026", started_at=at(5))
    assert LastBuild.loads(last.dumps()) == last
    for junk in (None, "", "not json", '{"run_id": "x"}', '{"run_id": "x", "started_at": "yesterday"}'):
        assert LastBuild.loads(junk) is None


def test_waits_until_the_last_event_is_quiet_seconds_old():
    clock = Clock()
    events = {at(0)}  # the delivery that triggered the run, accepted just now

    def latest():
        if clock.now >= at(20):  # another one is accepted 20 s later
            events.add(at(20))
        return max(events)

    waited = wait_for_quiet(latest, quiet=30, max_wait=600, now=clock, sleep=clock.sleep, poll=5)
    assert clock.now == at(50) and waited == dt.timedelta(seconds=50)
    assert max(clock.sleeps) <= 5


def test_an_old_event_means_no_wait_and_a_stream_of_events_waits_only_max_wait():
    clock = Clock()
    assert wait_for_quiet(lambda: at(-120), quiet=60, max_wait=600, now=clock, sleep=clock.sleep) == dt.timedelta()
    assert wait_for_quiet(lambda: None, quiet=60, max_wait=600, now=clock, sleep=clock.sleep) == dt.timedelta()
    assert clock.sleeps == []
    waited = wait_for_quiet(lambda: clock.now, quiet=60, max_wait=45, now=clock, sleep=clock.sleep, poll=10)
    assert waited == dt.timedelta(seconds=45)
