"""The monthly report's figures from a hand-built ledger with known outcomes (anbar.compliance)."""

from __future__ import annotations

import datetime as dt

import pytest

from anbar import compliance, expected, ledger, verdict
from anbar import monthly_report as mr
from anbar.registry import load_registry

pytestmark = pytest.mark.integration

REGISTRY = load_registry()
REPORT_MONTH = "1405-07"  # Mehr 1405 = 2026-09-23 .. 2026-10-22
GENERATED_ON = dt.date(2026, 10, 27)  # 5 Aban 1405
# Due in Mehr 1405: sso 1405-06 (2026-10-07), cspf and swo 1405-06 (2026-10-02), tvto 2026-09 (2026-10-10).


def tehran(*args) -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime(*args, tzinfo=ZoneInfo("Asia/Tehran"))


def _delivery(conn, key: str, version: int, received_at, status: str, rows: tuple, scores: dict) -> None:
    """One ledger row (version >= 1) and its scorecard: scores = principle -> (rules evaluated, rules failed)."""
    org, dataset, period = key.split("/")
    manifest, loaded, rejected = rows
    row = {"org": org, "dataset": dataset, "period": period, "version": version, "received_at": received_at}
    row |= {"sha": key + str(version), "status": status, "manifest": manifest, "loaded": loaded, "rejected": rejected}
    with conn.cursor() as cur:
        cur.execute(
            "insert into anbar.submissions (org, dataset, period, version, transport, received_at, delivery_sha256,"
            " rows_manifest, rows_loaded, rows_rejected, status) values (%(org)s, %(dataset)s, %(period)s,"
            " %(version)s, 'sftp', %(received_at)s, %(sha)s, %(manifest)s, %(loaded)s, %(rejected)s, %(status)s)"
            " returning submission_id",
            row,
        )
        (row["submission_id"],) = cur.fetchone()
        for principle, (evaluated, failed) in scores.items():
            cur.execute(
                "insert into anbar.quality_scorecard (submission_id, org, dataset, period, version, principle,"
                " rules_evaluated, rules_failed, blocking_failed, outcome) values (%(submission_id)s, %(org)s,"
                " %(dataset)s, %(period)s, %(version)s, %(principle)s, %(evaluated)s, %(failed)s, 0, %(status)s)",
                row | {"principle": principle, "evaluated": evaluated, "failed": failed},
            )
    conn.commit()


ALL_PASS = {"conversion": (4, 0), "system": (5, 0), "consistency": (2, 0), "quality": (8, 0)}
# key, version, received, outcome, rows (manifest, loaded, rejected), scorecard
DELIVERIES = [
    # sso insured_persons 1405-06: v1 on time (due 2026-10-07) but rejected; v2, two days late, accepted.
    ("sso/insured_persons/1405-06", 1, tehran(2026, 10, 5, 10), "rejected", (1000, 0, 1000),
     {"conversion": (4, 0), "system": (5, 1), "consistency": (2, 0), "quality": (8, 4)}),
    ("sso/insured_persons/1405-06", 2, tehran(2026, 10, 9, 10), "accepted", (1000, 990, 10),
     {"conversion": (4, 0), "system": (5, 0), "consistency": (2, 1), "quality": (8, 2)}),
    # sso workplaces 1405-06: three days late (a minute before midnight, Tehran time), accepted at its first version.
    ("sso/workplaces/1405-06", 1, tehran(2026, 10, 10, 23, 59), "accepted", (500, 500, 0), ALL_PASS),
    # sso insured_persons 1405-05: on time, accepted (in the trend, not in the month).
    ("sso/insured_persons/1405-05", 1, tehran(2026, 9, 1, 9), "accepted", (900, 900, 0), ALL_PASS),
    # tvto trainees 2026-09: on its due date (2026-10-10), accepted; no conversion rule evaluated.
    ("tvto/trainees/2026-09", 1, tehran(2026, 10, 10, 18), "accepted", (300, 297, 3),
     {"conversion": (0, 0), "system": (3, 0), "consistency": (1, 0), "quality": (4, 1)}),
]  # fmt: skip


@pytest.fixture
def reports(fresh_warehouse):
    conn = fresh_warehouse
    for delivery in DELIVERIES:
        _delivery(conn, *delivery)
    # cspf pensioners 1405-06: recorded missing by the ingest (with its scorecard: quality.delivered failed).
    missing = ledger.record_missing(conn, org="cspf", dataset="pensioners", period="1405-06", message="no manifest")
    verdict.score_rejection(conn, missing, "missing")
    # swo beneficiaries 1405-06: nothing at all, and no ingest ever waited for it.

    expected.sync(conn, REGISTRY, *compliance.calendar_window(REGISTRY, REPORT_MONTH))
    return {r.org: r for r in compliance.collect(conn, REGISTRY, REPORT_MONTH, GENERATED_ON)}


def test_every_dataset_has_its_last_12_periods(reports):
    assert sorted(reports) == ["cspf", "sso", "swo", "tvto"]
    sso = reports["sso"]
    assert (sso.name_en, sso.report_month, sso.generated_on) == (
        "Social Security Organization",
        "1405-07",
        GENERATED_ON,
    )
    for code, report in reports.items():
        for ds in REGISTRY.org(code).datasets:
            periods = sorted(s.period for s in report.submissions if s.dataset == ds.name)
            assert len(periods) == {"monthly": 12, "quarterly": 4}[ds.period], (code, ds.name)
    quarters = sorted(s.period for s in reports["swo"].submissions if s.dataset == "disability_assessments")
    assert quarters == ["1404-Q3", "1404-Q4", "1405-Q1", "1405-Q2"]  # the four ended by the end of Mehr 1405
    # the periods that have ended by the end of Mehr 1405, in each organisation's calendar
    assert sorted({s.period for s in sso.submissions})[::11] == ["1404-08", "1405-07"]
    assert sorted({s.period for s in reports["tvto"].submissions})[::11] == ["2025-10", "2026-09"]


FIELDS = ("due_date", "status", "received", "on_time", "days_late", "accepted_first_time", "resubmissions")
ROWS = ("rows_delivered", "rows_rejected")  # of the latest version


def _fields(report, dataset, period, names=FIELDS + ROWS) -> tuple:
    [s] = [s for s in report.submissions if (s.dataset, s.period) == (dataset, period)]
    return tuple(getattr(s, name) for name in names)


def test_exact_figures_of_each_outcome(reports):
    sso, tvto, cspf = (reports[c] for c in ("sso", "tvto", "cspf"))
    sso_due, jalali_due, tvto_due = dt.date(2026, 10, 7), dt.date(2026, 10, 2), dt.date(2026, 10, 10)
    everything = {
        ("sso", "insured_persons"): (sso_due, "accepted", True, True, 0, False, 1, 1000, 10),
        ("sso", "workplaces"): (sso_due, "accepted", True, False, 3, True, 0, 500, 0),
        ("tvto", "trainees"): (tvto_due, "accepted", True, True, 0, True, 0, 300, 3),
        ("cspf", "pensioners"): (jalali_due, "missing", False, False, None, False, 0, None, None),
        ("swo", "beneficiaries"): (jalali_due, "missing", False, False, None, False, 0, None, None),
    }
    for (org, dataset), figures in everything.items():
        period = "2026-09" if org == "tvto" else "1405-06"
        assert _fields(reports[org], dataset, period) == figures, (org, dataset)
    assert _fields(sso, "insured_persons", "1405-06", ("quality",)) == (
        {"conversion": 1.0, "system": 1.0, "consistency": 0.5, "quality": 0.75},  # the latest version's
    )
    assert _fields(sso, "workplaces", "1405-06", ("quality",)) == (dict.fromkeys(mr.PRINCIPLES, 1.0),)
    assert _fields(tvto, "trainees", "2026-09", ("quality",)) == (
        {"conversion": None, "system": 1.0, "consistency": 1.0, "quality": 0.75},  # conversion not evaluated
    )
    # missing: not evaluated, though the ingest scored the missing delivery
    assert _fields(cspf, "pensioners", "1405-06", ("quality",)) == (dict.fromkeys(mr.PRINCIPLES),)
    assert _fields(sso, "workplaces", "1404-08", ("status",)) == ("missing",)  # nothing was ever delivered


def test_month_and_summary_figures(reports):
    sso = mr.month_figures(reports["sso"], REPORT_MONTH, GENERATED_ON)
    t = sso.timeliness
    assert (t.expected, t.received, t.on_time, t.accepted_first_time) == (2, 2, 1, 1)
    assert (t.reporting_rate, t.on_time_rate, t.accepted_first_time_rate) == (100.0, 50.0, 50.0)
    assert (sso.rows_delivered, sso.rows_rejected) == (1500, 10)
    assert sso.quality == pytest.approx({"conversion": 1.0, "system": 1.0, "consistency": 0.75, "quality": 0.875})
    # the trend: 1405-05 holds one delivery of two
    trend = {p.label: p for p in mr.period_figures(reports["sso"])}
    assert trend["1405-05"].timeliness.reporting_rate == 50.0 and trend["1405-05"].rows_delivered == 900

    everything = [s for r in reports.values() for s in mr.month_submissions(r.submissions, REPORT_MONTH)]
    total = mr.figures(REPORT_MONTH, everything, GENERATED_ON).timeliness
    # sso 2, tvto 1, cspf 1, swo 2 (beneficiaries 1405-06 and the quarter 1405-Q2, due 2026-10-12)
    assert (total.expected, total.received, total.on_time) == (6, 3, 2)


def test_figures_survive_xcom(reports):
    import json

    data = json.loads(json.dumps(compliance.to_xcom(REPORT_MONTH, GENERATED_ON, list(reports.values()))))
    month, generated_on, again = compliance.from_xcom(data)
    assert (month, generated_on) == (REPORT_MONTH, GENERATED_ON)
    assert again == list(reports.values())


def test_a_period_off_the_calendar_is_an_error_not_a_gap(fresh_warehouse):
    with pytest.raises(LookupError, match=r"anbar\.expected\.sync"):
        compliance.collect(fresh_warehouse, REGISTRY, REPORT_MONTH, GENERATED_ON)
