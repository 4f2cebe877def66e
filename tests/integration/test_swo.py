"""SWO, the Jalali API supplier, end to end: pulled from the simulated API, landed, loaded with its
Jalali dates converted, validated against its committed suite and accepted, balanced."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import jdatetime
import pytest

from anbar import ingest
from anbar.registry import load_registry
from anbar.sim.extracts import extract_rows

from .db import fetch

pytestmark = pytest.mark.integration

LATE = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)  # after every deadline


def _submission(conn, period):
    [sub] = fetch(
        conn,
        "select submission_id, status, transport, rows_manifest, rows_loaded, rows_rejected, landing_path, "
        "validation_summary from anbar.submissions where org = 'swo' and dataset = 'beneficiaries' and period = %s",
        period,
    )
    return sub


def _outcomes(sub) -> dict[str, dict]:
    return {e["rule"]: e for e in sub["validation_summary"]["expectations"]}


def test_a_jalali_api_period_is_accepted_and_balanced(fresh_warehouse, simulators):
    conn = fresh_warehouse
    for period in ("1404-02", "1404-03"):  # the second is compared with the first across periods
        step = ingest.run_steps("swo", "beneficiaries", period, now=LATE)
        assert step.state == "accepted", step
    sub = _submission(conn, "1404-03")
    assert (sub["status"], sub["transport"]) == ("accepted", "api")
    assert sub["rows_manifest"] == sub["rows_loaded"] + sub["rows_rejected"] > 0
    assert sub["rows_rejected"] == 0
    table = f'clean."swo__beneficiaries_s{sub["submission_id"]}"'
    assert fetch(conn, f"select count(*) as n from {table}")[0]["n"] == sub["rows_loaded"]
    landed = json.loads((Path(sub["landing_path"]) / "files.json").read_text())
    assert [f["name"] for f in landed] == ["beneficiaries_1404-03.jsonl"], "the records as delivered"

    # Every rule of the suite ran (none errored) and passed, the cross-period ones included; the
    # only finding is anbar's own timeliness warning (the simulated month is long past due).
    outcomes = _outcomes(sub)
    assert not [r for r, e in outcomes.items() if e["error"]]
    assert [r for r, e in outcomes.items() if not e["success"]] == ["quality.timeliness"]
    for rule in ("row_count_vs_previous_period", "not_younger_than_previous_period.national_id", "county_in_province"):
        assert not outcomes[rule].get("skipped"), rule

    # Jalali dates as delivered, Gregorian in the clean table; the county lies in the province.
    registry = load_registry()
    delivered = {
        (r["national_id"], r["support_type"]): r
        for r in extract_rows(
            simulators.config.population(), registry.dataset("swo", "beneficiaries"), "1404-03", registry=registry
        )
    }
    rows = fetch(
        conn,
        f"select national_id, support_type, birth_date, support_start, province, county, monthly_amount from {table}",
    )
    assert len(rows) == len(delivered)
    for r in rows:
        want = delivered[r["national_id"], r["support_type"]]
        born = jdatetime.date(*map(int, want["birth_date"].split("/"))).togregorian()
        assert (r["birth_date"], r["county"][:2]) == (born, r["province"])
        assert r["support_start"] < dt.date(2025, 6, 22)  # before the end of Khordad 1404
        assert (r["monthly_amount"] is None) == (want["monthly_amount"] == "")


def test_the_elderly_pension_is_checked_against_the_civil_service_pensioners(fresh_warehouse, simulators):
    conn = fresh_warehouse
    assert ingest.run_steps("cspf", "pensioners", "1404-05", now=LATE).state == "accepted"
    assert ingest.run_steps("swo", "beneficiaries", "1404-05", now=LATE).state == "accepted"
    rule = _outcomes(_submission(conn, "1404-05"))["elderly_pension_not_civil_service_pensioner"]
    assert not rule.get("skipped") and rule["success"] and not rule["error"]
