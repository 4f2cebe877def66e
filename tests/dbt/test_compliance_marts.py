"""The compliance marts built by dbt from the ledger, against figures worked out by hand.

A warehouse of its own: the synthetic deliveries of the other dbt tests (SSO, TVTO), plus a late
CSPF delivery saved by a committee extension, a late SSO workplaces delivery, a period the ingest
recorded missing, quality scorecards, and a period far in the future. The calendar holds the
periods ending from 2026-08-01 to 2026-10-31; every one of them is past its grace on the day of
the run, so the statuses below do not depend on the day the test runs.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg2
import pytest
from anbar_dbt_testdata import dbt_build, fetch_dicts, make_warehouse, record_scorecard

from anbar import expected

pytestmark = pytest.mark.integration

DBNAME = "dbt_wh_compliance"
TEHRAN = ZoneInfo("Asia/Tehran")


def _ledger_row(cur, org, dataset, period, version, status, received_at) -> int:
    cur.execute(
        "insert into anbar.submissions (org, dataset, period, version, transport, delivery_sha256, rows_manifest,"
        " rows_loaded, rows_rejected, status, received_at) values (%s, %s, %s, %s, 'sftp', %s, 5, 5, 0, %s, %s)"
        " returning submission_id",
        (org, dataset, period, version, f"{org}-{dataset}-{period}-{version}", status, received_at),
    )
    return cur.fetchone()[0]


@pytest.fixture(scope="module")
def built(local_pg, registry, tmp_path_factory):
    synthetic = make_warehouse(local_pg, registry, DBNAME)
    conn = psycopg2.connect(local_pg.dsn(DBNAME))
    try:
        assert expected.sync(conn, registry, dt.date(2026, 8, 1), dt.date(2026, 11, 1)) == 16  # with 1405-Q2
        expected.record_expected(conn, registry, "sso", "insured_persons", "1415-01")  # not due for years
        with conn.cursor() as cur:
            # The committee moved CSPF's Shahrivar 1405 from 2026-10-02 to 2026-10-25.
            cur.execute(
                "update anbar.expected_submissions set due_date = '2026-10-25', grace_until = '2026-10-30', "
                "extension_decision = '1405/7/20-12' where org = 'cspf' and period = '1405-06'"
            )
            at = dt.datetime(2026, 10, 20, 10, tzinfo=TEHRAN)
            _ledger_row(cur, "cspf", "pensioners", "1405-06", 1, "accepted", at)
            # Due 2026-09-06, delivered two days later.
            at = dt.datetime(2026, 9, 8, 10, tzinfo=TEHRAN)
            _ledger_row(cur, "sso", "workplaces", "1405-05", 1, "accepted", at)
            at = dt.datetime(2026, 10, 8, 0, 5, tzinfo=TEHRAN)
            missing = _ledger_row(cur, "swo", "beneficiaries", "1405-06", 0, "missing", at)
            record_scorecard(cur, missing, quality=(1, 1))  # a missing period's scorecard is not a delivery's quality
            ids = {(d.org, d.period, d.version): d.submission_id for d in synthetic.deliveries}
            record_scorecard(
                cur, ids[("sso", "1405-06", 1)], conversion=(10, 0), system=(4, 1), consistency=(0, 0), quality=(5, 2)
            )
            record_scorecard(
                cur, ids[("tvto", "2026-10", 1)], conversion=(2, 0), system=(2, 0), consistency=(3, 3), quality=(4, 1)
            )
        conn.commit()
    finally:
        conn.close()
    dbt_build(local_pg, DBNAME, "+mart_compliance_rates", tmp_path_factory.mktemp("dbt-compliance"))
    conn = psycopg2.connect(local_pg.dsn(DBNAME))
    yield conn
    conn.close()


# org/dataset/period: status, expected, received, on time, days late, accepted first time, versions,
# resubmissions. The statuses are the ledger view's; the rest are worked out from the dates above and the
# synthetic deliveries (received 2026-10-01; SSO insured persons 1405-07: v1 and v2 accepted, v3 rejected,
# v4 validating; TVTO 2026-10 rejected).
COMPLIANCE = {
    "cspf/pensioners/1405-05": ("missing", True, False, False, None, False, 0, 0),
    "cspf/pensioners/1405-06": ("loaded", True, True, True, 0, True, 1, 0),  # late but for the extension
    "cspf/pensioners/1405-07": ("missing", True, False, False, None, False, 0, 0),
    "sso/insured_persons/1405-05": ("missing", True, False, False, None, False, 0, 0),
    "sso/insured_persons/1405-06": ("loaded", True, True, True, 0, True, 1, 0),
    "sso/insured_persons/1405-07": ("resubmitted", True, True, True, 0, True, 4, 3),
    "sso/insured_persons/1415-01": ("expected", False, False, False, None, False, 0, 0),
    "sso/workplaces/1405-05": ("loaded", True, True, False, 2, True, 1, 0),
    "sso/workplaces/1405-06": ("loaded", True, True, True, 0, True, 1, 0),
    "sso/workplaces/1405-07": ("loaded", True, True, True, 0, True, 1, 0),
    "swo/beneficiaries/1405-05": ("missing", True, False, False, None, False, 0, 0),
    "swo/beneficiaries/1405-06": ("missing", True, False, False, None, False, 0, 0),
    "swo/beneficiaries/1405-07": ("missing", True, False, False, None, False, 0, 0),
    "swo/disability_assessments/1405-Q2": ("missing", True, False, False, None, False, 0, 0),  # quarterly
    "tvto/trainees/2026-08": ("missing", True, False, False, None, False, 0, 0),
    "tvto/trainees/2026-09": ("loaded", True, True, True, 0, True, 1, 0),
    "tvto/trainees/2026-10": ("rejected", True, True, True, 0, False, 1, 0),
}
FIGURES = (
    "status",
    "is_expected",
    "is_received",
    "is_on_time",
    "days_late",
    "is_accepted_first_time",
    "versions",
    "resubmissions",
)


def test_the_status_on_the_day_of_the_run_is_past_every_grace(built):
    (row,) = fetch_dicts(built, "select min(status_on) as status_on from marts.mart_compliance")
    assert row["status_on"] > dt.date(2026, 11, 13), "the test's calendar must be past its grace"


def test_compliance_per_expected_submission(built):
    rows = fetch_dicts(built, "select * from marts.mart_compliance")
    got = {f"{r['org']}/{r['dataset']}/{r['period']}": r for r in rows}
    assert set(got) == set(COMPLIANCE)
    for key, want in COMPLIANCE.items():
        assert tuple(got[key][f] for f in FIGURES) == want, key
    cspf = got["cspf/pensioners/1405-06"]
    assert (cspf["due_date"], cspf["extension_decision"]) == (dt.date(2026, 10, 25), "1405/7/20-12")
    workplaces = got["sso/workplaces/1405-05"]
    assert (workplaces["period_start"], workplaces["period_end"]) == (dt.date(2026, 7, 23), dt.date(2026, 8, 23))
    assert (workplaces["due_date"], workplaces["grace_until"]) == (dt.date(2026, 9, 6), dt.date(2026, 9, 11))


def test_quality_score_per_principle_is_the_latest_versions(built):
    rows = fetch_dicts(
        built,
        "select org, period, score_conversion, score_system, score_consistency, score_quality "
        "from marts.mart_compliance where score_conversion is not null or score_quality is not null",
    )
    scores = {(r["org"], r["period"]): tuple(r.values())[2:] for r in rows}
    assert scores == {
        ("sso", "1405-06"): (Decimal("100.0"), Decimal("75.0"), None, Decimal("60.0")),
        ("tvto", "2026-10"): (Decimal("100.0"), Decimal("100.0"), Decimal("0.0"), Decimal("75.0")),
    }


def test_reporting_and_on_time_rates_as_dhis2_defines_them(built):
    rows = fetch_dicts(built, "select * from marts.mart_compliance_rates")
    got = {
        (r["org"], r["period"]): (
            r["datasets"],
            r["expected_submissions"],
            r["received_submissions"],
            r["on_time_submissions"],
            r["accepted_first_time_submissions"],
            r["reporting_rate"],
            r["on_time_rate"],
        )
        for r in rows
    }
    zero, half, full = Decimal("0.0"), Decimal("50.0"), Decimal("100.0")
    assert got == {
        ("cspf", "1405-05"): (1, 1, 0, 0, 0, zero, zero),
        ("cspf", "1405-06"): (1, 1, 1, 1, 1, full, full),
        ("cspf", "1405-07"): (1, 1, 0, 0, 0, zero, zero),
        ("sso", "1405-05"): (2, 2, 1, 0, 1, half, zero),  # workplaces late, insured persons missing
        ("sso", "1405-06"): (2, 2, 2, 2, 2, full, full),
        ("sso", "1405-07"): (2, 2, 2, 2, 2, full, full),
        ("sso", "1415-01"): (1, 0, 0, 0, 0, None, None),  # not due: no rate
        ("swo", "1405-05"): (1, 1, 0, 0, 0, zero, zero),
        ("swo", "1405-06"): (1, 1, 0, 0, 0, zero, zero),
        ("swo", "1405-07"): (1, 1, 0, 0, 0, zero, zero),
        ("swo", "1405-Q2"): (1, 1, 0, 0, 0, zero, zero),  # the quarterly dataset: a period of its own
        ("tvto", "2026-08"): (1, 1, 0, 0, 0, zero, zero),
        ("tvto", "2026-09"): (1, 1, 1, 1, 1, full, full),
        ("tvto", "2026-10"): (1, 1, 1, 1, 0, full, full),  # rejected, but received on time
    }
