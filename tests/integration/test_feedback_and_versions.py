"""What suppliers get back, row-level rejection, and corrected deliveries as new versions.

Against the real simulators (SFTP, API, SMTP) and PostgreSQL, with the committed suites
unless a test edits a copy (the statisticians' one-file change).
"""

from __future__ import annotations

import csv
import email
import io
import json
import shutil
from pathlib import Path

import pytest

from anbar import ingest
from anbar.registry import load_registry
from anbar.sim import SimConfig
from anbar.sim.delivery import publish_sftp_periods

from .db import fetch, rendered

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sent_now(mailbox):
    """The one mail this test made whose subject holds a text (the SMTP sink is shared by the session)."""

    def find(needle: str) -> email.message.EmailMessage:
        found = mailbox.received(needle)
        assert len(found) == 1, [needle, len(found)]
        return found[0]

    return find


def _html(msg) -> str:
    return msg.get_body(preferencelist=("html",)).get_content()


def _national_ids(landing_path) -> set[str]:
    """Every national ID as delivered (from the rendering of the delivered values)."""
    rows = rendered(landing_path, "select national_id from delivered")
    return {r["national_id"].strip() for r in rows if r["national_id"]}


def test_an_accepted_delivery_gets_its_feedback_per_principle(fresh_warehouse, simulators, sent_now):
    conn = fresh_warehouse
    step = ingest.run_steps("tvto", "trainees", "2025-09")
    assert step.state == "accepted", step
    [sub] = fetch(conn, "select * from anbar.submissions where org = 'tvto' and period = '2025-09'")
    msg = sent_now(f"ACCEPTED tvto/trainees 2025-09 v{sub['version']}")
    assert "data-desk" in msg["to"] or "@" in msg["to"]
    html = _html(msg)
    for fa, en in [("تبدیل", "Conversion"), ("نظام‌های طبقه‌بندی", "Classification systems"), ("سازگاری", "Consistency")]:
        assert fa in html and en in html
    assert html.index('dir="rtl"') < html.index('lang="en"')  # Persian first
    assert "check_digit.national_id" in html and "not applicable" in html  # no earlier period yet

    delivery = Path(sub["landing_path"])
    report = json.loads((delivery / "report.json").read_text(encoding="utf-8"))
    # Delivered now, long after the 2025-09 due date: the one finding is the timeliness warning.
    failed = [r for p in report["principles"] for r in p["rules"] if r["status"] == "failed"]
    assert report["status"] == "accepted" and [r["rule"] for r in failed] == ["quality.timeliness"], failed
    assert failed[0]["severity"] == "warning" and failed[0]["observed"]["days_late"] > 300
    assert [p["principle"] for p in report["principles"]] == ["conversion", "system", "consistency", "quality"]
    assert all(p["passed"] > 0 for p in report["principles"])
    kept = (delivery / "feedback.html").read_text(encoding="utf-8")
    assert "check_digit.national_id" in kept and "ACCEPTED" in kept
    assert (delivery / "findings.csv").read_text(encoding="utf-8").splitlines() == [
        "file,row_no,principle,rule,severity"
    ]


def test_a_rejected_delivery_lists_every_offending_row_without_identifiers(fresh_warehouse, simulators, sent_now):
    conn = fresh_warehouse
    step = ingest.run_steps("tvto", "trainees", "2025-11")  # duplicate_keys
    assert step.state == "rejected"
    [sub] = fetch(conn, "select * from anbar.submissions where org = 'tvto' and period = '2025-11'")
    delivery = Path(sub["landing_path"])
    findings = list(csv.DictReader(io.StringIO((delivery / "findings.csv").read_text(encoding="utf-8"))))
    dup = [f for f in findings if f["rule"] == "primary_key_unique"]
    assert dup and all(f["principle"] == "quality" and f["severity"] == "blocking" for f in dup)
    # every row sharing a key is listed, by file and row number only
    assert (
        len(dup)
        == rendered(
            delivery,
            "select count(*) as n from delivered where (national_id, course_code) "
            "in (select national_id, course_code from delivered group by 1, 2 having count(*) > 1)",
        )[0]["n"]
    )
    html = _html(sent_now(f"REJECTED tvto/trainees 2025-11 v{sub['version']}"))
    ids = _national_ids(sub["landing_path"])
    for text in [html, *(p.read_text(encoding="utf-8") for p in delivery.glob("*.*") if p.suffix in (".html", ".csv"))]:
        assert not any(i in text for i in ids)
    report = json.loads((delivery / "report.json").read_text(encoding="utf-8"))
    quality = next(p for p in report["principles"] if p["principle"] == "quality")
    failed = next(r for r in quality["rules"] if r["rule"] == "primary_key_unique")
    assert failed["status"] == "failed" and failed["rows_failing"] == len(dup) and failed["samples"]


def test_a_statistician_switches_a_dataset_to_row_level_rejection_by_editing_its_suite(
    fresh_warehouse, simulators, sent_now, tmp_path, monkeypatch
):
    """sso insured persons allow 2% bad rows; the 1404-08 delivery has 3% bad IDs. At 5%, it is accepted
    without them: the bad rows wait in the rejects table with the rule they broke."""
    conn = fresh_warehouse
    suites = tmp_path / "expectations"
    shutil.copytree(REPO / "expectations", suites)
    path = suites / "sso__insured_persons.json"
    suite = json.loads(path.read_text(encoding="utf-8"))
    suite["meta"]["max_rejected_percent"] = 5
    path.write_text(json.dumps(suite, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setenv("ANBAR_EXPECTATIONS_DIR", str(suites))

    step = ingest.run_steps("sso", "insured_persons", "1404-08")
    assert step.state == "accepted", step
    [sub] = fetch(conn, "select * from anbar.submissions where org = 'sso' and period = '1404-08'")
    sid = sub["submission_id"]
    assert 0 < sub["rows_rejected"] < 0.05 * sub["rows_manifest"]
    assert sub["rows_manifest"] == sub["rows_loaded"] + sub["rows_rejected"]
    clean = fetch(conn, f'select count(*) as n from clean."sso__insured_persons_s{sid}"')[0]["n"]
    assert clean == sub["rows_loaded"]
    invalid = fetch(
        conn,
        f'select count(*) as n from clean."sso__insured_persons_s{sid}" '
        "where not anbar.is_valid_person_id(national_id)",
    )[0]["n"]
    assert invalid == 0
    rejected = fetch(conn, "select reasons from raw.rejected_rows where submission_id = %s", sid)
    assert len(rejected) == sub["rows_rejected"]
    assert all("quality: check_digit.national_id" in r["reasons"] for r in rejected)
    decision = sub["validation_summary"]["decision"]
    assert decision["rows_rejected_by_rules"] == sub["rows_rejected"]
    msg = sent_now(f"ACCEPTED sso/insured_persons 1404-08 v{sub['version']}")
    assert f"{sub['rows_rejected']} rejected" in str(msg["subject"])


def test_a_corrected_delivery_supersedes_the_rejected_one_and_both_are_kept(fresh_warehouse, simulators, sent_now):
    conn = fresh_warehouse
    registry = load_registry()
    period = "1403-10"  # served by no other test
    broken = SimConfig(seed=7, defect_share=0.0, overrides={f"sso/workplaces/{period}": "unknown_codes"})
    population = broken.population()
    publish_sftp_periods(simulators.sftp_root, population, registry, broken, {"sso": [period]})
    assert ingest.run_steps("sso", "workplaces", period).state == "rejected"

    fixed = SimConfig(seed=7, defect_share=0.0)
    publish_sftp_periods(simulators.sftp_root, population, registry, fixed, {"sso": [period]})
    assert ingest.run_steps("sso", "workplaces", period).state == "accepted"
    # the same bytes again: nothing new
    assert ingest.run_steps("sso", "workplaces", period).state == "noop"

    versions = fetch(
        conn,
        "select version, status, reason, is_latest, is_in_use, superseded_by from anbar.submission_versions "
        "where org = 'sso' and dataset = 'workplaces' and period = %s order by version",
        period,
    )
    assert versions == [
        {"version": 1, "status": "rejected", "reason": "validation", "is_latest": False, "is_in_use": False,
         "superseded_by": 2},
        {"version": 2, "status": "accepted", "reason": None, "is_latest": True, "is_in_use": True,
         "superseded_by": None},
    ]  # fmt: skip
    subs = fetch(conn, "select landing_path from anbar.submissions where period = %s order by version", period)
    assert all(Path(s["landing_path"], "report.json").exists() for s in subs)
    assert len({s["landing_path"] for s in subs}) == 2
    scored = fetch(
        conn,
        "select version, outcome, rules_failed from anbar.quality_scorecard_latest "
        "where org = 'sso' and dataset = 'workplaces' and period = %s and principle = 'system'",
        period,
    )
    assert scored == [{"version": 2, "outcome": "accepted", "rules_failed": 0}]
