"""Airflow timetables for the suppliers' reporting calendars.

A supplier that reports on **Jalali** months gets :class:`JalaliMonthlyTimetable`:
each data interval is one whole Jalali month in the Asia/Tehran time zone, from
00:00 Tehran on day 1 of the month to 00:00 Tehran on day 1 of the next month
(Airflow stores both bounds in UTC: Aban 1404 is 2025-10-22T20:30Z ..
2025-11-21T20:30Z). A run is due when its interval is over, at the interval end:
a month's delivery cannot be due before the month has ended.

A report *on* a Jalali month that is due some days after it (the monthly performance report,
sent on ``registry.ministry.report_day``) passes ``run_day``: the data interval is still the
whole month, and the run starts at 00:00 local time on that day of the next month
(``JalaliMonthlyTimetable(run_day=5)``: Mehr 1405's run on 5 Aban 1405).

A supplier that reports on **Gregorian** months uses Airflow's own
``CronDataIntervalTimetable("0 0 1 * *", timezone="UTC")`` (what ``schedule="@monthly"``
gives a DAG whose timezone is UTC): calendar months in UTC, a run at 00:00 UTC on
the 1st. :func:`timetable_for` picks the right one for an organisation's calendar.

Airflow 3.3 facts this module relies on (checked against the installed code):

- A custom timetable must subclass the *core* ``airflow.timetables.base.Timetable``
  and be registered by a plugin (``plugins/anbar_plugin.py``). The classes in
  ``airflow.sdk`` (``airflow.sdk.bases.timetable.BaseTimetable`` and the built-in
  stubs such as ``airflow.sdk.CronDataIntervalTimetable``) carry arguments only;
  the serializer refuses an SDK subclass it does not know. The class is looked up
  by its import path, so DAG files must import it as ``anbar.timetables``.
- Scheduled runs get ``logical_date == data_interval_start`` and a run id
  ``scheduled__<run_after>`` where ``run_after`` is the interval *end*
  (``scheduled__2025-11-21T20:30:00+00:00`` for Aban 1404). Backfills
  (``airflow backfill create``) walk ``next_dagrun_info`` over the requested range
  on the serialized DAG and only create runs whose interval has ended:
  ``backfill__<interval end>``.
  ``--from-date``/``--to-date`` without an offset are read in ``[core] default_timezone``
  (UTC by default) and the first run is the first month *starting* at or after
  ``--from-date``: for Aban 1404 pass ``--from-date 2025-10-23T00:00:00+03:30`` (or
  ``2025-10-22``), not ``2025-10-23``.
- ``dag.test(logical_date=X)`` takes its data interval from
  :meth:`JalaliMonthlyTimetable.infer_manual_data_interval` (the last complete month
  ending at or before ``X``) while ``logical_date`` stays ``X``: to test Aban 1404 pass
  ``logical_date=data_interval_for(Period.parse("1404-08", "jalali")).end``.
  ``airflow dags trigger`` *with* a logical date infers the interval from the trigger
  time, not from the logical date; *without* one (the Airflow 3 default) the run has no
  data interval at all. Hence: take the period from ``data_interval_start``
  (:func:`period_label_for`), never from ``logical_date``, and let manual runs name it
  (:func:`resolve_run_period` reads ``conf["period"]`` first).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import jdatetime
import pendulum
from airflow.timetables.base import DagRunInfo, DataInterval, Timetable

from anbar.periods import Period
from anbar.registry import Calendar

if TYPE_CHECKING:
    from airflow.timetables.base import TimeRestriction
    from pendulum import DateTime

TEHRAN = "Asia/Tehran"
UTC = pendulum.UTC

# Gregorian suppliers: calendar months in UTC, scheduled at the end of the month.
GREGORIAN_MONTHLY_CRON = "0 0 1 * *"
GREGORIAN_TIMEZONE = "UTC"


def _aware(value: dt.datetime, what: str) -> DateTime:
    if not isinstance(value, dt.datetime):
        raise TypeError(f"{what} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (Airflow passes aware UTC datetimes): {value!r}")
    return pendulum.instance(value)


def _now() -> DateTime:
    """The current time (a seam for tests)."""
    return pendulum.now(UTC)


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def _previous_month(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


class JalaliMonthlyTimetable(Timetable):
    """Data intervals of whole Jalali months in a local time zone (default Asia/Tehran).

    * interval ``[00:00 local on day 1 of a Jalali month, 00:00 local on day 1 of the next)``,
      in UTC;
    * scheduled at the interval end (``run_after == data_interval_end``), or with ``run_day=N``
      at 00:00 local on day N of the next month (N - 1 days after the interval end; every Jalali
      month has at least 29 days, hence 1 <= N <= 29);
    * ``logical_date == data_interval_start`` for scheduled and backfill runs.
    """

    periodic = True

    def __init__(self, timezone: str = TEHRAN, run_day: int = 1) -> None:
        name = timezone if isinstance(timezone, str) else getattr(timezone, "name", str(timezone))
        self._tz_name = name
        self._tz = pendulum.timezone(name)
        if isinstance(run_day, bool) or not isinstance(run_day, int) or not 1 <= run_day <= 29:
            raise ValueError(f"run_day must be a day of the Jalali month from 1 to 29, not {run_day!r}")
        self._run_day = run_day

    # -- identity -----------------------------------------------------------------------
    @property
    def timezone(self) -> str:
        return self._tz_name

    @property
    def run_day(self) -> int:
        return self._run_day

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JalaliMonthlyTimetable):
            return NotImplemented
        return (self._tz_name, self._run_day) == (other._tz_name, other._run_day)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._tz_name, self._run_day))

    def __repr__(self) -> str:
        day = f", run_day={self._run_day}" if self._run_day != 1 else ""
        return f"JalaliMonthlyTimetable(timezone={self._tz_name!r}{day})"

    @property
    def summary(self) -> str:
        day = f", on day {self._run_day}" if self._run_day != 1 else ""
        return f"Jalali monthly ({self._tz_name}{day})"

    @property
    def description(self) -> str:  # type: ignore[override]  # a class attribute in the protocol
        when = (
            "each run starts when its month is over"
            if self._run_day == 1
            else f"each run starts at 00:00 on day {self._run_day} of the next month"
        )
        return f"Whole Jalali (Solar Hijri) months from 00:00 {self._tz_name} on day 1; {when}"

    def serialize(self) -> dict[str, Any]:
        # run_day only when set, so DAGs serialized before it existed compare equal.
        return {"timezone": self._tz_name} | ({"run_day": self._run_day} if self._run_day != 1 else {})

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> JalaliMonthlyTimetable:
        return cls(data.get("timezone", TEHRAN), data.get("run_day", 1))

    def validate(self) -> None:
        from airflow.exceptions import AirflowTimetableInvalid

        try:
            pendulum.timezone(self._tz_name)
        except Exception as exc:  # pendulum raises its own InvalidTimezone
            raise AirflowTimetableInvalid(f"unknown time zone {self._tz_name!r}") from exc

    # -- calendar arithmetic ----------------------------------------------------------------
    def month_of(self, instant: dt.datetime) -> tuple[int, int]:
        """(Jalali year, month) whose local days contain ``instant``."""
        local = _aware(instant, "instant").in_timezone(self._tz)
        j = jdatetime.date.fromgregorian(date=local.date())
        return j.year, j.month

    def month_start(self, year: int, month: int) -> DateTime:
        """00:00 local time on day 1 of the Jalali month, in UTC."""
        g = jdatetime.date(year, month, 1).togregorian()
        return pendulum.datetime(g.year, g.month, g.day, tz=self._tz).in_timezone(UTC)

    def interval_for(self, year: int, month: int) -> DataInterval:
        return DataInterval(self.month_start(year, month), self.month_start(*_next_month(year, month)))

    def run_after_for(self, interval: DataInterval) -> DateTime:
        """When the run of ``interval`` starts: 00:00 local on day ``run_day`` of the next month, in UTC."""
        end = _aware(interval.end, "data interval end")
        return end.in_timezone(self._tz).add(days=self._run_day - 1).in_timezone(UTC)

    def _align_to_prev(self, instant: DateTime) -> DateTime:
        """The month boundary at or before ``instant``."""
        return self.month_start(*self.month_of(instant))

    def _align_to_next(self, instant: DateTime) -> DateTime:
        """The month boundary at or after ``instant``."""
        ym = self.month_of(instant)
        start = self.month_start(*ym)
        return start if start >= instant else self.month_start(*_next_month(*ym))

    def _next_boundary(self, boundary: DateTime) -> DateTime:
        return self.month_start(*_next_month(*self.month_of(boundary)))

    def _last_complete_start(self, now: DateTime) -> DateTime:
        """Start of the last month that has ended at or before ``now``."""
        return self.month_start(*_previous_month(*self.month_of(now)))

    # -- the Timetable protocol -----------------------------------------------------------
    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        """The last complete Jalali month ending at or before ``run_after``."""
        end = self._align_to_prev(_aware(run_after, "run_after"))
        return DataInterval(start=self.month_start(*_previous_month(*self.month_of(end))), end=end)

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
    ) -> DagRunInfo | None:
        earliest = restriction.earliest
        if earliest is not None:
            earliest = self._align_to_next(_aware(earliest, "restriction.earliest"))
        if not restriction.catchup:
            # No catch-up: nothing older than the month that ended last.
            latest_complete = self._last_complete_start(_now())
            earliest = latest_complete if earliest is None else max(earliest, latest_complete)

        if last_automated_data_interval is None:
            if earliest is None:  # no start_date and catch-up on: nothing to anchor on
                return None
            start = earliest
        else:
            last_start = _aware(last_automated_data_interval.start, "data interval start")
            start = self._align_to_prev(_aware(last_automated_data_interval.end, "data interval end"))
            if start <= last_start:  # a previous interval not on a Jalali month boundary
                start = self._align_to_next(last_start)
                if start <= last_start:
                    start = self._next_boundary(start)
            if earliest is not None:
                start = max(start, earliest)

        if restriction.latest is not None and start > _aware(restriction.latest, "restriction.latest"):
            return None
        info = DagRunInfo.interval(start=start, end=self._next_boundary(start))
        return info._replace(run_after=self.run_after_for(info.data_interval)) if self._run_day != 1 else info


# -- period labels -------------------------------------------------------------------------
def period_for(
    data_interval_start: dt.datetime,
    calendar: Calendar | str = Calendar.jalali,
    timezone: str = TEHRAN,
) -> Period:
    """The reporting period a run covers, from its ``data_interval_start``.

    Jalali periods are read in ``timezone`` (Asia/Tehran); Gregorian ones in UTC, the
    time zone of :func:`timetable_for`'s Gregorian schedule. Use the data interval,
    not ``logical_date``: manual runs and ``dag.test`` keep the logical date they were
    given while their data interval is the last complete month.
    """
    cal = Calendar(calendar)
    instant = _aware(data_interval_start, "data_interval_start")
    if cal is Calendar.jalali:
        return Period(cal, *JalaliMonthlyTimetable(timezone).month_of(instant))
    utc = instant.in_timezone(UTC)
    return Period(cal, utc.year, utc.month)


def period_label_for(
    data_interval_start: dt.datetime,
    calendar: Calendar | str = Calendar.jalali,
    timezone: str = TEHRAN,
) -> str:
    """``1404-08`` for a run whose interval starts 2025-10-22T20:30Z (Aban 1404)."""
    return period_for(data_interval_start, calendar, timezone).label


def resolve_run_period(
    calendar: Calendar | str,
    *,
    data_interval_start: dt.datetime | None = None,
    run_after: dt.datetime | None = None,
    conf: dict[str, Any] | None = None,
    timezone: str = TEHRAN,
) -> Period:
    """The period a DAG run should process, whatever kind of run it is.

    In order: an explicit ``conf["period"]`` label (``1404-08``); the run's data
    interval (scheduled and backfill runs, ``dag.test``, manual runs given a logical
    date); else the last period complete at ``run_after`` (a manual run triggered
    without a logical date has no data interval in Airflow 3).
    """
    cal = Calendar(calendar)
    label = (conf or {}).get("period")
    if label:
        return Period.parse(str(label), cal)
    if data_interval_start is not None:
        return period_for(data_interval_start, cal, timezone)
    if run_after is not None:
        return period_for(_aware(run_after, "run_after"), cal, timezone).previous()
    raise ValueError("no conf['period'], data interval or run_after to take the period from")


def data_interval_for(period: Period, timezone: str = TEHRAN) -> DataInterval:
    """The UTC data interval of the run that ingests a period (what a backfill of it creates): the
    period's month, or the last month of a quarter or a year (runs are monthly)."""
    period = period.last_month
    if period.calendar is Calendar.jalali:
        return JalaliMonthlyTimetable(timezone).interval_for(period.year, period.month)
    nxt = period.next()
    return DataInterval(
        pendulum.datetime(period.year, period.month, 1, tz=UTC),
        pendulum.datetime(nxt.year, nxt.month, 1, tz=UTC),
    )


def timetable_for(calendar: Calendar | str) -> Timetable:
    """The schedule of a supplier that reports on ``calendar`` months.

    Jalali: :class:`JalaliMonthlyTimetable` (Asia/Tehran). Gregorian: Airflow's
    ``CronDataIntervalTimetable("0 0 1 * *", timezone="UTC")``, the core class,
    which DAGs accept as ``schedule=`` and which serializes as a built-in.
    """
    cal = Calendar(calendar)
    if cal is Calendar.jalali:
        return JalaliMonthlyTimetable(TEHRAN)
    from airflow.timetables.interval import CronDataIntervalTimetable

    return CronDataIntervalTimetable(GREGORIAN_MONTHLY_CRON, timezone=GREGORIAN_TIMEZONE)
