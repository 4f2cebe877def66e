"""The figures of the monthly performance report, read from the warehouse.

For a Jalali report month, every organisation's :class:`~anbar.monthly_report.OrgMonthlyReport`:
one :class:`~anbar.monthly_report.SubmissionFigures` for each expected submission of the last 12
periods of each of its datasets (:func:`expected_for_report`: the periods that have ended by the
end of the report month, in the organisation's calendar). Everything comes from the ledger, with
read-only SQL:

* status, punctuality and versions from ``anbar.submission_status`` (one row per expected
  submission; its status logic lives there and only there), which needs those periods on the
  calendar ``anbar.expected_submissions`` (:func:`anbar.expected.sync`, which the report DAG runs
  first over :func:`calendar_window`);
* rows delivered (the manifest's count) and rows rejected of the latest version delivered;
* quality per principle = share of the rules passed (``1 - rules_failed / rules_evaluated``) in
  ``anbar.quality_scorecard_latest``, for the latest version only: a submission not delivered, or
  whose latest version is not decided yet, was not evaluated (None).

The view's statuses are told in the renderer's words: ``loaded`` is ``accepted``; a delivery still
being processed (``received``, ``validated``, ``resubmitted``) is ``late`` when it arrived after the
due date and ``received`` otherwise; ``late`` with nothing delivered (overdue, still within grace)
is ``overdue``; ``expected``, ``missing`` and ``rejected`` keep their names.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from anbar.expected import ExpectedSubmission, expected_submissions
from anbar.monthly_report import PERIODS_SHOWN, OrgMonthlyReport, SubmissionFigures
from anbar.periods import Period
from anbar.registry import Calendar, Registry
from anbar.suites import PRINCIPLES

# anbar.submission_status -> the renderer's status (anbar.monthly_report.STATUS_NAMES)
STATUS = {
    "expected": "expected",
    "late": "overdue",
    "missing": "missing",
    "loaded": "accepted",
    "rejected": "rejected",
}
PENDING = ("received", "validated", "resubmitted")


def expected_for_report(registry: Registry, report_month: str) -> list[ExpectedSubmission]:
    """The periods of every dataset that have ended by the end of the Jalali report month: the last 12
    months, the last 4 quarters of a quarterly dataset, the last year of a yearly one."""
    month = Period.parse(report_month, Calendar.jalali)
    window = expected_submissions(registry, month.start - dt.timedelta(days=31 * (PERIODS_SHOWN + 1)), month.end)
    by_dataset: dict[tuple[str, str], list[ExpectedSubmission]] = defaultdict(list)
    for e in sorted(window, key=lambda e: e.period.start):
        by_dataset[(e.org, e.dataset)].append(e)
    return [e for subs in by_dataset.values() for e in subs[-(PERIODS_SHOWN // subs[0].period.months) :]]


def calendar_window(registry: Registry, report_month: str) -> tuple[dt.date, dt.date]:
    """[start, end) for :func:`anbar.expected.sync`: it puts every period of the report on the calendar."""
    subs = expected_for_report(registry, report_month)
    return min(e.period.start for e in subs), Period.parse(report_month, Calendar.jalali).end


_QUERY = """
with wanted (org, dataset, period) as (select * from unnest(%s::text[], %s::text[], %s::text[]))
select s.org, s.dataset, s.period, s.due_date, s.status, s.latest_submission_id is not null as received,
       s.on_time, s.days_late, s.accepted_first_time, s.resubmissions,
       coalesce(s.rows_counted, s.rows_manifest) as rows_delivered, s.rows_rejected,
       q.quality
from wanted w
join anbar.submission_status s using (org, dataset, period)
left join (
    select submission_id,
           jsonb_object_agg(principle, 1 - rules_failed::numeric / rules_evaluated)
               filter (where rules_evaluated > 0) as quality
    from anbar.quality_scorecard_latest
    group by submission_id
) q on q.submission_id = s.latest_submission_id
"""


def _status(view_status: str, on_time: bool | None) -> str:
    if view_status in PENDING:
        return "received" if on_time else "late"
    return STATUS.get(view_status, view_status)


def submission_figures(conn, subs: list[ExpectedSubmission]) -> list[SubmissionFigures]:
    """The figures of these expected submissions; LookupError if any is not on the calendar in the ledger."""
    with conn.cursor() as cur:
        cur.execute(_QUERY, ([e.org for e in subs], [e.dataset for e in subs], [e.period.label for e in subs]))
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    conn.rollback()  # read-only: end the transaction
    absent = {e.key for e in subs} - {f"{r['org']}/{r['dataset']}/{r['period']}" for r in rows}
    if absent:
        raise LookupError(
            f"{len(absent)} expected submissions are not in anbar.expected_submissions "
            f"(run anbar.expected.sync first), e.g. {', '.join(sorted(absent)[:5])}"
        )
    out = []
    for r in rows:
        received, quality = r["received"], r["quality"] or {}
        out.append(
            SubmissionFigures(
                org=r["org"],
                dataset=r["dataset"],
                period=r["period"],
                due_date=r["due_date"],
                status=_status(r["status"], r["on_time"]),
                received=received,
                on_time=bool(received and r["on_time"]),
                days_late=r["days_late"] if received else None,
                accepted_first_time=bool(r["accepted_first_time"]),
                resubmissions=r["resubmissions"],
                rows_delivered=r["rows_delivered"] if received else None,
                rows_rejected=r["rows_rejected"] if received else None,
                quality={p: (float(quality[p]) if p in quality else None) for p in PRINCIPLES},
            )
        )
    return sorted(out, key=lambda s: (s.org, s.dataset, s.period))


def collect(conn, registry: Registry, report_month: str, generated_on: dt.date) -> list[OrgMonthlyReport]:
    """Every organisation's report for the Jalali ``report_month`` (``1405-07``), dated ``generated_on``."""
    figures = submission_figures(conn, expected_for_report(registry, report_month))
    reports = []
    for code in sorted(registry.organisations):
        org = registry.org(code)
        reports.append(
            OrgMonthlyReport(
                org=code,
                name_fa=org.names.fa,
                name_en=org.names.en,
                report_month=report_month,
                generated_on=generated_on,
                submissions=tuple(s for s in figures if s.org == code),
            )
        )
    return reports


# --- as XCom (plain JSON) ------------------------------------------------------------------------


def to_xcom(report_month: str, generated_on: dt.date, reports: list[OrgMonthlyReport]) -> dict:
    def sub(s: SubmissionFigures) -> dict:
        return {**vars(s), "due_date": s.due_date.isoformat(), "quality": dict(s.quality)}

    return {
        "report_month": report_month,
        "generated_on": generated_on.isoformat(),
        "reports": [
            {**vars(r), "generated_on": r.generated_on.isoformat(), "submissions": [sub(s) for s in r.submissions]}
            for r in reports
        ],
    }


def from_xcom(data: dict) -> tuple[str, dt.date, list[OrgMonthlyReport]]:
    def sub(s: dict) -> SubmissionFigures:
        return SubmissionFigures(**{**s, "due_date": dt.date.fromisoformat(s["due_date"])})

    reports = [
        OrgMonthlyReport(
            **{
                **r,
                "generated_on": dt.date.fromisoformat(r["generated_on"]),
                "submissions": tuple(sub(s) for s in r["submissions"]),
            }
        )
        for r in data["reports"]
    ]
    return data["report_month"], dt.date.fromisoformat(data["generated_on"]), reports
