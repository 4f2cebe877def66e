"""The Jalali monthly timetable: boundaries, scheduling rules, manual runs, serialization."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pendulum
import pytest
from airflow.timetables.base import DataInterval, TimeRestriction

import anbar.timetables as tt
from anbar.periods import Period
from anbar.registry import Calendar
from anbar.timetables import (
    JalaliMonthlyTimetable,
    data_interval_for,
    period_for,
    period_label_for,
    resolve_run_period,
    timetable_for,
)

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
UTC = pendulum.UTC


def utc(*args: int) -> pendulum.DateTime:
    return pendulum.datetime(*args, tz=UTC)


def tehran(*args: int) -> pendulum.DateTime:
    return pendulum.datetime(*args, tz="Asia/Tehran")


@pytest.fixture
def timetable() -> JalaliMonthlyTimetable:
    return JalaliMonthlyTimetable()


@pytest.fixture
def now(monkeypatch):
    """Freeze the timetable's clock: ``now(instant)``."""

    def freeze(instant: pendulum.DateTime) -> None:
        monkeypatch.setattr(tt, "_now", lambda: instant)

    return freeze


def restriction(earliest=None, latest=None, catchup=True) -> TimeRestriction:
    return TimeRestriction(earliest=earliest, latest=latest, catchup=catchup)


# -- boundaries ----------------------------------------------------------------------------
def test_aban_1404_is_tehran_midnights_in_utc(timetable):
    interval = timetable.interval_for(1404, 8)
    assert interval == DataInterval(utc(2025, 10, 22, 20, 30), utc(2025, 11, 21, 20, 30))
    assert interval.start.in_timezone("Asia/Tehran") == tehran(2025, 10, 23)
    assert interval.end.in_timezone("Asia/Tehran") == tehran(2025, 11, 22)  # exclusive
    assert interval.start.tzinfo.name == "UTC"


def test_esfand_of_leap_year_1403_has_30_days(timetable):
    interval = timetable.interval_for(1403, 12)
    assert interval.start == utc(2025, 2, 18, 20, 30)  # 1 Esfand 1403 = 2025-02-19
    assert interval.end == utc(2025, 3, 20, 20, 30)  # 1 Farvardin 1404 = 2025-03-21 (Nowruz)
    assert interval.end - interval.start == dt.timedelta(days=30)


def test_esfand_of_common_year_1404_has_29_days(timetable):
    interval = timetable.interval_for(1404, 12)
    assert interval.start == utc(2026, 2, 19, 20, 30)
    assert interval.end == utc(2026, 3, 20, 20, 30)
    assert interval.end - interval.start == dt.timedelta(days=29)


@pytest.mark.parametrize(
    ("year", "nowruz"),
    [(1403, dt.date(2024, 3, 20)), (1404, dt.date(2025, 3, 21)), (1405, dt.date(2026, 3, 21))],
)
def test_farvardin_starts_at_nowruz(timetable, year, nowruz):
    start = timetable.month_start(year, 1)
    local = start.in_timezone("Asia/Tehran")
    assert (local.date(), local.hour, local.minute) == (nowruz, 0, 0)


def test_months_under_the_old_daylight_saving_rules(timetable):
    # Iran kept DST (+04:30, from 2 Farvardin to 30 Shahrivar) until 2022: the UTC
    # offset of a month's first midnight follows the rules in force that day.
    assert timetable.month_start(1400, 1) == utc(2021, 3, 20, 20, 30)
    assert timetable.month_start(1400, 2) == utc(2021, 4, 20, 19, 30)
    assert timetable.month_start(1400, 7) == utc(2021, 9, 22, 20, 30)


def test_months_tile_without_gaps_or_overlaps(timetable):
    start = timetable.month_start(1399, 1)
    for year in range(1399, 1407):
        for month in range(1, 13):
            interval = timetable.interval_for(year, month)
            assert interval.start == start
            assert dt.timedelta(days=28) < interval.end - interval.start < dt.timedelta(days=32)
            assert period_label_for(interval.start) == f"{year}-{month:02d}"
            assert Period.parse(f"{year}-{month:02d}", "jalali").start == (
                interval.start.in_timezone("Asia/Tehran").date()
            )
            start = interval.end


# -- scheduling -------------------------------------------------------------------------------
def test_first_run_with_catchup_starts_at_the_next_month_boundary(timetable, now):
    now(utc(2026, 1, 1))
    info = timetable.next_dagrun_info(
        last_automated_data_interval=None, restriction=restriction(earliest=utc(2025, 3, 1))
    )
    assert info.data_interval == timetable.interval_for(1404, 1)
    assert info.run_after == info.data_interval.end  # due when the month is over
    assert info.logical_date == info.data_interval.start


def test_start_date_on_a_boundary_is_that_month(timetable):
    info = timetable.next_dagrun_info(
        last_automated_data_interval=None, restriction=restriction(earliest=tehran(2025, 10, 23))
    )
    assert info.data_interval == timetable.interval_for(1404, 8)


def test_next_run_follows_the_previous_interval(timetable):
    info = timetable.next_dagrun_info(
        last_automated_data_interval=timetable.interval_for(1403, 12),
        restriction=restriction(earliest=utc(2024, 1, 1)),
    )
    assert info.data_interval == timetable.interval_for(1404, 1)
    info = timetable.next_dagrun_info(
        last_automated_data_interval=timetable.interval_for(1404, 12), restriction=restriction()
    )
    assert info.data_interval == timetable.interval_for(1405, 1)


def test_without_start_date_and_with_catchup_nothing_is_scheduled(timetable):
    assert timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction()) is None


def test_catchup_off_schedules_only_the_last_complete_month(timetable, now):
    now(utc(2025, 11, 25, 9))  # 4 Azar 1404
    aban = timetable.interval_for(1404, 8)
    first = timetable.next_dagrun_info(
        last_automated_data_interval=None, restriction=restriction(earliest=utc(2024, 1, 1), catchup=False)
    )
    assert first.data_interval == aban
    after_a_pause = timetable.next_dagrun_info(
        last_automated_data_interval=timetable.interval_for(1404, 1),
        restriction=restriction(earliest=utc(2024, 1, 1), catchup=False),
    )
    assert after_a_pause.data_interval == aban
    no_start_date = timetable.next_dagrun_info(
        last_automated_data_interval=None, restriction=restriction(catchup=False)
    )
    assert no_start_date.data_interval == aban


def test_catchup_off_at_the_exact_end_of_a_month(timetable, now):
    now(utc(2025, 11, 21, 20, 30))  # 00:00 on 1 Azar 1404 in Tehran
    info = timetable.next_dagrun_info(
        last_automated_data_interval=None, restriction=restriction(earliest=utc(2024, 1, 1), catchup=False)
    )
    assert info.data_interval == timetable.interval_for(1404, 8)


def test_catchup_off_keeps_a_future_start_date(timetable, now):
    now(utc(2025, 11, 25))
    info = timetable.next_dagrun_info(
        last_automated_data_interval=None, restriction=restriction(earliest=utc(2026, 1, 1), catchup=False)
    )
    assert info.data_interval == timetable.interval_for(1404, 11)  # 1 Bahman 1404 = 2026-01-21


def test_catchup_on_backfills_every_missed_month(timetable, now):
    now(utc(2025, 11, 25))
    info = timetable.next_dagrun_info(
        last_automated_data_interval=timetable.interval_for(1404, 1),
        restriction=restriction(earliest=utc(2024, 1, 1), catchup=True),
    )
    assert info.data_interval == timetable.interval_for(1404, 2)


def test_end_date_stops_the_schedule(timetable):
    kwargs = {"earliest": utc(2025, 1, 1), "latest": utc(2025, 11, 1)}
    last = timetable.next_dagrun_info(
        last_automated_data_interval=timetable.interval_for(1404, 7), restriction=restriction(**kwargs)
    )
    assert last.data_interval == timetable.interval_for(1404, 8)  # starts before end_date
    assert (
        timetable.next_dagrun_info(
            last_automated_data_interval=timetable.interval_for(1404, 8), restriction=restriction(**kwargs)
        )
        is None
    )


def test_realigns_after_a_schedule_change(timetable):
    # The last run came from another (Gregorian) schedule: continue at the next Jalali month.
    info = timetable.next_dagrun_info(
        last_automated_data_interval=DataInterval(utc(2025, 10, 1), utc(2025, 11, 1)),
        restriction=restriction(earliest=utc(2025, 1, 1)),
    )
    assert info.data_interval == timetable.interval_for(1404, 8)
    assert info.data_interval.start > utc(2025, 10, 1)


# -- manual runs ---------------------------------------------------------------------------
def test_manual_run_gets_the_last_complete_month(timetable):
    aban = timetable.interval_for(1404, 8)
    assert timetable.infer_manual_data_interval(run_after=utc(2025, 11, 25, 7)) == aban
    # exactly at a month boundary: the month that has just ended
    assert timetable.infer_manual_data_interval(run_after=utc(2025, 11, 21, 20, 30)) == aban
    # one second before it, Aban is not over yet
    assert timetable.infer_manual_data_interval(run_after=utc(2025, 11, 21, 20, 29, 59)) == timetable.interval_for(
        1404, 7
    )
    # Farvardin runs look back across the year end
    assert timetable.infer_manual_data_interval(run_after=utc(2025, 4, 1)) == timetable.interval_for(1403, 12)


def test_naive_datetimes_are_refused(timetable):
    with pytest.raises(ValueError, match="timezone-aware"):
        timetable.infer_manual_data_interval(run_after=dt.datetime(2025, 11, 25))


# -- period labels ---------------------------------------------------------------------------
def test_period_label_for_data_interval_start():
    assert period_label_for(utc(2025, 10, 22, 20, 30)) == "1404-08"
    assert period_label_for(utc(2025, 10, 22, 20, 29)) == "1404-07"
    assert period_label_for(dt.datetime(2025, 3, 20, 20, 30, tzinfo=dt.UTC)) == "1404-01"
    assert period_label_for(utc(2025, 10, 1), Calendar.gregorian) == "2025-10"
    assert period_for(utc(2025, 10, 22, 20, 30)) == Period(Calendar.jalali, 1404, 8)


def test_data_interval_for_a_period():
    aban = Period.parse("1404-08", "jalali")
    assert data_interval_for(aban) == JalaliMonthlyTimetable().interval_for(1404, 8)
    assert data_interval_for(Period.parse("2025-12", "gregorian")) == DataInterval(utc(2025, 12, 1), utc(2026, 1, 1))


def test_resolve_run_period():
    jalali = Calendar.jalali
    assert resolve_run_period(jalali, conf={"period": "1403-12"}) == Period(jalali, 1403, 12)
    assert resolve_run_period(jalali, data_interval_start=utc(2025, 10, 22, 20, 30)).label == "1404-08"
    # a manual run without a logical date has no data interval: last complete month
    assert resolve_run_period(jalali, run_after=utc(2025, 11, 25)).label == "1404-08"
    assert resolve_run_period("gregorian", run_after=utc(2025, 11, 25)).label == "2025-10"
    with pytest.raises(ValueError):
        resolve_run_period(jalali)


# -- identity, serialization -------------------------------------------------------------------
def test_summary_description_and_serialize_round_trip(timetable):
    assert timetable.summary == "Jalali monthly (Asia/Tehran)"
    assert "Jalali" in timetable.description
    assert timetable.periodic
    assert timetable.serialize() == {"timezone": "Asia/Tehran"}
    again = JalaliMonthlyTimetable.deserialize(json.loads(json.dumps(timetable.serialize())))
    assert again == timetable
    assert again.interval_for(1404, 8) == timetable.interval_for(1404, 8)
    assert JalaliMonthlyTimetable("Asia/Kabul") != timetable
    timetable.validate()


def test_timetable_for_calendar():
    from airflow.timetables.interval import CronDataIntervalTimetable

    assert timetable_for("jalali") == JalaliMonthlyTimetable()
    gregorian = timetable_for(Calendar.gregorian)
    assert isinstance(gregorian, CronDataIntervalTimetable)
    assert gregorian.serialize() == {"expression": "0 0 1 * *", "timezone": "UTC"}
    info = gregorian.next_dagrun_info(
        last_automated_data_interval=None, restriction=restriction(earliest=utc(2025, 10, 1))
    )
    assert info.data_interval == DataInterval(utc(2025, 10, 1), utc(2025, 11, 1))


@pytest.fixture
def registered_plugin(monkeypatch):
    """Load the repository's plugins folder the way Airflow's processes do."""
    from airflow import plugins_manager, settings

    monkeypatch.setattr(settings, "PLUGINS_FOLDER", str(PLUGINS))
    monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    caches = [plugins_manager._get_plugins, plugins_manager.get_timetables_plugins]
    for cached in caches:
        cached.cache_clear()
    yield plugins_manager
    for cached in caches:
        cached.cache_clear()


def test_plugin_registers_the_timetable(registered_plugin):
    plugins, errors = registered_plugin._get_plugins()
    assert not {k: v for k, v in errors.items() if "anbar" in k}
    assert "anbar" in {p.name for p in plugins}
    registered = registered_plugin.get_timetables_plugins()
    # the class is found by its import path: DAG files must import anbar.timetables
    assert registered["anbar.timetables.JalaliMonthlyTimetable"] is JalaliMonthlyTimetable


def test_dag_with_the_timetable_serializes_and_deserializes(registered_plugin):
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    with DAG(
        "jalali_roundtrip",
        schedule=JalaliMonthlyTimetable(),
        start_date=tehran(2025, 3, 21),
        catchup=True,
    ) as dag:
        EmptyOperator(task_id="noop")

    stored = json.loads(json.dumps(DagSerialization.to_dict(dag)))  # what the dag-processor writes
    assert stored["dag"]["timetable"] == {
        "__type": "anbar.timetables.JalaliMonthlyTimetable",
        "__var": {"timezone": "Asia/Tehran"},
    }
    serdag = DagSerialization.from_dict(stored)  # what the scheduler reads back
    assert serdag.timetable == JalaliMonthlyTimetable()
    assert serdag.timetable.summary == "Jalali monthly (Asia/Tehran)"

    # the path `airflow backfill create` takes: iterate the serialized DAG's timetable
    infos = list(serdag.iter_dagrun_infos_between(utc(2025, 10, 1), utc(2025, 12, 31)))
    assert [period_label_for(i.data_interval.start) for i in infos] == ["1404-08", "1404-09", "1404-10"]
    assert all(i.logical_date == i.data_interval.start and i.run_after == i.data_interval.end for i in infos)


def test_unregistered_timetable_does_not_serialize(monkeypatch):
    from airflow import plugins_manager
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    monkeypatch.setattr(plugins_manager, "get_timetables_plugins", lambda: {})
    with DAG("unregistered", schedule=JalaliMonthlyTimetable(), start_date=utc(2025, 1, 1)) as dag:
        EmptyOperator(task_id="noop")
    with pytest.raises(Exception, match="not registered"):
        DagSerialization.to_dict(dag)


def test_plugins_folder_exposes_only_the_plugin_file():
    # Airflow executes every .py under the plugins folder as a top-level module (the
    # package's dbt/__main__.py would run as __main__ in every Airflow process), so
    # plugins/.airflowignore must hide the anbar package from the plugin loader.
    from airflow._shared.module_loading import find_path_from_directory

    found = sorted(Path(p).relative_to(PLUGINS).as_posix() for p in find_path_from_directory(PLUGINS, ".airflowignore"))
    assert [p for p in found if p.endswith(".py")] == ["anbar_plugin.py"]


def test_scheduled_run_id_names_the_interval_end(timetable):
    from airflow.utils.types import DagRunType

    aban = timetable.interval_for(1404, 8)
    run_id = timetable.generate_run_id(run_type=DagRunType.SCHEDULED, run_after=aban.end, data_interval=aban)
    assert run_id == "scheduled__2025-11-21T20:30:00+00:00"


# -- a run some days after the month (the monthly report) -------------------------------------
def test_run_day_keeps_the_month_as_interval_and_runs_on_that_day_of_the_next(now):
    report = JalaliMonthlyTimetable(run_day=5)
    mehr = report.interval_for(1405, 7)
    info = report.next_dagrun_info(last_automated_data_interval=report.interval_for(1405, 6), restriction=restriction())
    assert info.data_interval == mehr  # still the whole month, so the run reports on Mehr 1405
    assert info.run_after == tehran(2026, 10, 27)  # 00:00 on 5 Aban 1405
    assert info.logical_date == mehr.start
    assert report.run_after_for(mehr) == utc(2026, 10, 26, 20, 30)
    # catch-up off: the month that ended last, due on its report day even if that is still ahead
    now(utc(2026, 10, 24, 9))  # 2 Aban
    info = report.next_dagrun_info(last_automated_data_interval=None, restriction=restriction(catchup=False))
    assert (info.data_interval, info.run_after) == (mehr, tehran(2026, 10, 27))
    # manual runs: the last complete month, as without run_day
    assert report.infer_manual_data_interval(run_after=utc(2026, 10, 24, 9)) == mehr
    # Esfand 1404 has 29 days: Bahman 1404's report on day 29 falls on its last day
    assert JalaliMonthlyTimetable(run_day=29).run_after_for(report.interval_for(1404, 11)) == tehran(2026, 3, 20)


def test_run_day_serializes_only_when_set_and_is_checked():
    assert JalaliMonthlyTimetable(run_day=1) == JalaliMonthlyTimetable()
    assert JalaliMonthlyTimetable(run_day=1).serialize() == {"timezone": "Asia/Tehran"}
    report = JalaliMonthlyTimetable(run_day=5)
    assert report.serialize() == {"timezone": "Asia/Tehran", "run_day": 5}
    assert JalaliMonthlyTimetable.deserialize(json.loads(json.dumps(report.serialize()))) == report
    assert report != JalaliMonthlyTimetable()
    assert report.summary == "Jalali monthly (Asia/Tehran, on day 5)"
    assert "day 5 of the next month" in report.description
    for bad in (0, 30, "5", True):
        with pytest.raises(ValueError, match="run_day"):
            JalaliMonthlyTimetable(run_day=bad)
