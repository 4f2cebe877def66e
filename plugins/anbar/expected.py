"""The expected-submission calendar: which organisation owes which dataset for which period, and by when.

Generated from the registry: every dataset of every organisation is expected once per period of
the organisation's calendar (Jalali months for Jalali suppliers, so Esfand ends on its 29th or,
in a leap year, its 30th day), or once per quarter or year for a dataset the committee approved
with another period. A submission is

- **due** on ``Period.due_date(due_day)``: ``due_day`` days after the period ends (the last day
  to deliver on time), unless the committee approved a one-off extension of that period, whose
  new due date replaces it;
- **missing** when nothing has arrived by ``grace_until`` = due date + ``grace_days``: the ingest
  waits that long before it records the period as missing (``anbar.ingest.deadline``).

The calendar is kept in the ledger table ``anbar.expected_submissions`` (:func:`sync`,
:func:`record_expected`), where the view ``anbar.submission_status`` (``anbar.ddl``) joins it to
the deliveries.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import jdatetime

from anbar.periods import Frequency, Period
from anbar.registry import Dataset, DeadlineExtension, Organisation, Registry


@dataclass(frozen=True)
class Extension:
    """A committee-approved one-off extension of one dataset's period."""

    period: str  # label, e.g. "1405-07"
    due_date: dt.date  # the new due date
    decision: str  # committee decision reference, e.g. "1405/7/12-34"


@dataclass(frozen=True)
class ExpectedSubmission:
    org: str
    dataset: str
    period: Period
    due_date: dt.date  # last day to deliver on time: Period.due_date(due_day), or the extension's
    grace_until: dt.date  # due_date + grace_days: a delivery still absent after this day is missing
    extension: Extension | None

    @property
    def key(self) -> str:
        """``org/dataset/period``, e.g. ``sso/insured_persons/1405-07``."""
        return f"{self.org}/{self.dataset}/{self.period.label}"


def _extension(ds: Dataset, period: Period) -> DeadlineExtension | None:
    # The registry has checked that each label parses in the organisation's calendar and is unique.
    for ext in ds.extensions:
        if ext.period == period.label:
            return ext
    return None


def _expected(org: Organisation, ds: Dataset, period: Period) -> ExpectedSubmission:
    approved = _extension(ds, period)
    extension = Extension(approved.period, approved.due_date, approved.decision) if approved else None
    due = extension.due_date if extension else period.due_date(ds.due_day)
    return ExpectedSubmission(
        org=org.code,
        dataset=ds.name,
        period=period,
        due_date=due,
        grace_until=due + dt.timedelta(days=ds.grace_days),
        extension=extension,
    )


def expected_submission(registry: Registry, org: str, dataset: str, period_label: str) -> ExpectedSubmission:
    """One expected submission; ``period_label`` in the organisation's calendar (ValueError if it is not)."""
    organisation = registry.org(org)
    ds = organisation.dataset(dataset)
    return _expected(organisation, ds, Period.parse(period_label, organisation.calendar, ds.period))


def dataset_period(ds: Dataset, run_period: Period) -> Period | None:
    """The period of ``ds`` a run of ``run_period`` ingests, or None if the run has none of it.

    Runs are monthly: the run of a month ingests every monthly dataset for that month, and a quarterly
    or yearly dataset for the quarter or year that month ends (none in the other months). A run given
    a quarter or a year (a manual re-run) ingests the datasets of that frequency only.
    """
    if Frequency(ds.period).months == run_period.months:
        return run_period
    if run_period.months == 1:
        return run_period.ending_in(ds.period)
    return None


def due_in_run(org: Organisation, run_period_label: str) -> list[tuple[Dataset, Period]]:
    """The datasets of ``org`` a run of ``run_period_label`` ingests, each with its own period."""
    run_period = Period.parse(run_period_label, org.calendar)
    out = []
    for ds in org.datasets:
        period = dataset_period(ds, run_period)
        if period is not None:
            out.append((ds, period))
    return out


def expected_submissions(registry: Registry, start: dt.date, end: dt.date) -> list[ExpectedSubmission]:
    """Every registry dataset's periods whose last day falls within [start, end), sorted by
    (due_date, org, dataset, period)."""
    out = []
    for org in registry.organisations.values():
        for ds in org.datasets:
            # the first period whose last day is >= start
            period = Period.containing(start, org.calendar, ds.period)
            while period.end <= end:  # its last day, period.end - 1, is before end
                out.append(_expected(org, ds, period))
                period = period.next()
    out.sort(key=lambda e: (e.due_date, e.org, e.dataset, e.period.start))
    return out


# -- the calendar in the ledger -------------------------------------------------------------------------

_UPSERT = """
insert into anbar.expected_submissions
    (org, dataset, period, period_start, period_end, due_date, grace_until, extension_decision, timezone)
values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
on conflict (org, dataset, period) do update set
    period_start = excluded.period_start,
    period_end = excluded.period_end,
    due_date = excluded.due_date,
    grace_until = excluded.grace_until,
    extension_decision = excluded.extension_decision,
    timezone = excluded.timezone,
    synced_at = now()
where (expected_submissions.period_start, expected_submissions.period_end, expected_submissions.due_date,
       expected_submissions.grace_until, expected_submissions.extension_decision, expected_submissions.timezone)
      is distinct from
      (excluded.period_start, excluded.period_end, excluded.due_date, excluded.grace_until,
       excluded.extension_decision, excluded.timezone)
"""


def _write(conn, registry: Registry, subs: list[ExpectedSubmission]) -> int:
    """Upsert ``subs``; returns how many rows were added or changed (an unchanged row is left alone,
    so ``synced_at`` says when the registry last changed it)."""
    changed = 0
    with conn.cursor() as cur:
        for sub in subs:
            cur.execute(
                _UPSERT,
                (
                    sub.org,
                    sub.dataset,
                    sub.period.label,
                    sub.period.start,
                    sub.period.end,
                    sub.due_date,
                    sub.grace_until,
                    sub.extension.decision if sub.extension else None,
                    registry.org(sub.org).timezone,
                ),
            )
            changed += cur.rowcount
    conn.commit()
    return changed


def sync(conn, registry: Registry, start: dt.date, end: dt.date, org: str | None = None) -> int:
    """Write the calendar of the periods ending within [start, end) into ``anbar.expected_submissions``
    (of one organisation's datasets if ``org`` is given).

    Idempotent: a row the registry now gives another due date (an extension approved or withdrawn)
    is updated, the others are left as they are; rows outside the window, or of datasets no longer in
    the registry, are kept (what was expected then stays on record). Returns the rows added or changed.
    """
    return _write(conn, registry, [s for s in expected_submissions(registry, start, end) if org in (None, s.org)])


def record_expected(conn, registry: Registry, org: str, dataset: str, period_label: str) -> ExpectedSubmission:
    """Put one period on the calendar in the ledger (the ingest DAG does it for the period it waits for)."""
    sub = expected_submission(registry, org, dataset, period_label)
    _write(conn, registry, [sub])
    return sub


# -- reading it back (the CLI and the Submissions page) --------------------------------------------------

STATUSES = ("expected", "late", "missing", "received", "validated", "resubmitted", "loaded", "rejected")

STATUS_COLUMNS = (
    "org",
    "dataset",
    "period",
    "due_date",
    "grace_until",
    "extension_decision",
    "status",
    "first_received_at",
    "accepted_at",
    "on_time",
    "days_late",
    "versions",
    "resubmissions",
    "accepted_first_time",
    "latest_submission_id",
    "latest_ledger_status",
    "reason",
    "rows_manifest",
    "rows_counted",
    "rows_loaded",
    "rows_rejected",
)


def read_status(conn, org: str | None = None, period: str | None = None) -> list[dict]:
    """Rows of ``anbar.submission_status`` (the columns of :data:`STATUS_COLUMNS`), latest due first."""
    with conn.cursor() as cur:
        cur.execute(
            f"select {', '.join(STATUS_COLUMNS)} from anbar.submission_status "
            "where (%(org)s::text is null or org = %(org)s) and (%(period)s::text is null or period = %(period)s) "
            "order by due_date desc, org, dataset, period",
            {"org": org, "period": period},
        )
        rows = [dict(zip(STATUS_COLUMNS, r, strict=True)) for r in cur.fetchall()]
    conn.commit()
    return rows


# Every organisation in the registry is in Tehran; status listings show times there.
SHOWN_TIMEZONE = "Asia/Tehran"


def shown(value: object) -> str:
    """A status value as text: times in Tehran to the minute, yes/no, nothing for null."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return value.astimezone(ZoneInfo(SHOWN_TIMEZONE)).strftime("%Y-%m-%d %H:%M")
    return str(value)


def jalali(day: dt.date) -> str:
    """The day as the ministry writes it: ``1404/09/15``."""
    return jdatetime.date.fromgregorian(date=day).strftime("%Y/%m/%d")


def parse_day(text: str) -> dt.date:
    """A Gregorian ``2025-12-06`` or a Jalali ``1404/09/15`` day."""
    try:
        if "/" in text:
            year, month, day = (int(part) for part in text.split("/"))
            return jdatetime.date(year, month, day).togregorian()
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"not a day (YYYY-MM-DD, or Jalali YYYY/MM/DD): {text!r}") from exc
