"""The ingest steps against real servers: SFTP and HTTP suppliers, PostgreSQL, SMTP.

Each bad delivery must end in a clear ledger status and message, with nothing half-loaded
and the landed files kept; each good one must balance: rows in = rows loaded + rows rejected.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from anbar import ingest, settings
from anbar.registry import load_registry

pytestmark = pytest.mark.integration


def _ledger(conn, org, dataset, period):
    with conn.cursor() as cur:
        cur.execute(
            "select submission_id, version, status, reason, message, rows_manifest, rows_counted, rows_loaded, "
            "rows_rejected, landing_path from anbar.submissions where org = %s and dataset = %s "
            "and period = %s order by version",
            (org, dataset, period),
        )
        cols = [d.name for d in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    conn.commit()
    return rows


def _count(conn, sql, *args):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        (n,) = cur.fetchone()
    conn.commit()
    return n


def test_good_sftp_delivery_is_accepted_and_balances(fresh_warehouse, simulators):
    conn = fresh_warehouse
    step = ingest.run_steps("sso", "insured_persons", "1404-07")
    assert step.state == "accepted", step
    [sub] = _ledger(conn, "sso", "insured_persons", "1404-07")
    assert sub["status"] == "accepted" and sub["version"] == 1
    assert sub["rows_manifest"] == sub["rows_loaded"] + sub["rows_rejected"] > 0
    assert (
        _count(conn, "select count(*) from clean.sso__insured_persons where _submission_id = %s", sub["submission_id"])
        == sub["rows_loaded"]
    )
    # The landed delivery: manifest, file list and outcome report, files read-only.
    landing = Path(sub["landing_path"])
    report = json.loads((landing / "report.json").read_text())
    assert report["status"] == "accepted"
    for f in json.loads((landing / "files.json").read_text()):
        obj = landing.parents[4] / f["object"]
        assert obj.exists() and not obj.stat().st_mode & 0o222


def test_redelivery_of_the_same_bytes_is_a_noop(fresh_warehouse, simulators):
    conn = fresh_warehouse
    first = ingest.run_steps("sso", "workplaces", "1404-07")
    again = ingest.run_steps("sso", "workplaces", "1404-07")
    assert first.state == "accepted" and again.state == "noop"
    assert len(_ledger(conn, "sso", "workplaces", "1404-07")) == 1


def test_api_delivery_is_accepted(fresh_warehouse, simulators):
    conn = fresh_warehouse
    step = ingest.run_steps("tvto", "trainees", "2025-09")
    assert step.state == "accepted", step
    [sub] = _ledger(conn, "tvto", "trainees", "2025-09")
    assert sub["rows_manifest"] == sub["rows_loaded"] + sub["rows_rejected"] > 0
    # waiting for it put the period on the calendar, and its status follows the ledger
    assert (
        _count(
            conn,
            "select count(*) from anbar.submission_status where org = 'tvto' and dataset = 'trainees' "
            "and period = %s and status = 'loaded' and latest_submission_id = %s",
            "2025-09",
            sub["submission_id"],
        )
        == 1
    )


@pytest.mark.parametrize(
    ("org", "dataset", "period", "status", "reason", "words"),
    [
        ("sso", "workplaces", "1404-02", "rejected", "checksum_mismatch", "sha256"),
        ("sso", "workplaces", "1404-03", "rejected", "size_mismatch", "bytes"),
        ("sso", "workplaces", "1404-04", "rejected", "encoding_error", "utf-8"),
        ("sso", "workplaces", "1404-05", "rejected", "missing_column", "required columns missing"),
        ("sso", "workplaces", "1404-06", "rejected", "unsafe_file_name", "../"),
        ("sso", "insured_persons", "1404-08", "rejected", "validation", "quality"),
        ("tvto", "trainees", "2025-10", "rejected", "row_count_mismatch", "declares"),
        ("tvto", "trainees", "2025-11", "rejected", "validation", "quality"),
    ],
)
def test_bad_deliveries_end_rejected_with_a_reason_and_nothing_loaded(
    fresh_warehouse, simulators, mailbox, org, dataset, period, status, reason, words
):
    conn = fresh_warehouse
    step = ingest.run_steps(org, dataset, period)
    assert step.state == status
    [sub] = _ledger(conn, org, dataset, period)
    assert (sub["status"], sub["reason"]) == (status, reason)
    assert words in sub["message"]
    # Nothing reaches the warehouse: the ledger shows every row it counted rejected (a delivery refused
    # before its records were counted leaves both unknown), and staging only reads accepted submissions.
    assert sub["rows_loaded"] == 0 and sub["rows_rejected"] == sub["rows_counted"]
    if reason in {"checksum_mismatch", "size_mismatch", "unsafe_file_name"}:
        assert sub["rows_counted"] is None
    if reason in {"validation", "row_count_mismatch"}:
        assert sub["rows_counted"] > 0
    # The landed delivery is kept, with the outcome beside it.
    landing = Path(sub["landing_path"])
    assert (landing / "manifest.json").exists()
    assert json.loads((landing / "report.json").read_text())["reason"] == reason
    # ... and indexed in quarantine.
    assert (landing.parents[4] / "quarantine" / org / dataset / f"{period}-v{sub['version']}").resolve() == landing
    assert _count(conn, "select count(*) from anbar.quarantine where submission_id = %s", sub["submission_id"]) == 1
    # The supplier and the warehouse team were told, once: the one mail this test sent.
    [mail] = mailbox.received()
    assert f"REJECTED {org}/{dataset} {period} v{sub['version']}" in str(mail["subject"])
    focal_points = load_registry().org(org).focal_points
    assert [a.addr_spec for a in mail["to"].addresses] == [*focal_points, *settings.warehouse_team()]
    html = mail.get_body(("html",)).get_content()
    assert reason in html and 'dir="rtl"' in html


def test_missing_manifest_is_recorded_missing_after_the_deadline(fresh_warehouse, simulators, mailbox):
    conn = fresh_warehouse
    early = ingest.run_steps("sso", "workplaces", "1404-01", now=dt.datetime(2025, 4, 21, tzinfo=dt.UTC))
    assert early.state == "waiting"
    assert _ledger(conn, "sso", "workplaces", "1404-01") == []
    assert mailbox.received() == []  # waiting is no event to mail about
    late = ingest.run_steps("sso", "workplaces", "1404-01")
    assert late.state == "missing"
    [sub] = _ledger(conn, "sso", "workplaces", "1404-01")
    assert (sub["status"], sub["version"]) == ("missing", 0)
    assert "manifest.json" in sub["message"] and ".csv" in sub["message"]
    [mail] = mailbox.received()  # one mail, the missing notice
    assert "MISSING sso/workplaces 1404-01" in str(mail["subject"])


def test_ledger_counts_of_an_accepted_delivery_match_the_tables(fresh_warehouse, simulators):
    """The ledger's rejected count is the rejects table's, and loaded + rejected = the manifest's rows.

    (Rows rejected by conversion themselves are exercised in test_loader.py.)"""
    conn = fresh_warehouse
    step = ingest.run_steps("sso", "insured_persons", "1404-06")
    [sub] = _ledger(conn, "sso", "insured_persons", "1404-06")
    assert step.state == "accepted"
    rejected = _count(conn, "select count(*) from raw.rejected_rows where submission_id = %s", sub["submission_id"])
    loaded = _count(
        conn, "select count(*) from clean.sso__insured_persons where _submission_id = %s", sub["submission_id"]
    )
    assert (loaded, rejected) == (sub["rows_loaded"], sub["rows_rejected"])
    assert sub["rows_manifest"] == loaded + rejected > 0


def test_an_empty_delivery_is_an_accepted_nil_return(fresh_warehouse, simulators):
    """A manifest with rows 0 and a header-only file means "nothing to report" for the period."""
    from anbar.sim import write_sftp_delivery

    ds = load_registry().dataset("sso", "workplaces")
    write_sftp_delivery(
        simulators.sftp_root,
        "sso",
        "workplaces",
        "1403-12",
        [],
        encoding="utf-8",
        delimiter=",",
        columns=ds.column_names,
    )
    step = ingest.run_steps("sso", "workplaces", "1403-12")
    assert step.state == "accepted", step
    [sub] = _ledger(fresh_warehouse, "sso", "workplaces", "1403-12")
    assert (sub["rows_manifest"], sub["rows_loaded"], sub["rows_rejected"]) == (0, 0, 0)


def test_anbar_ingest_on_a_never_bootstrapped_warehouse_bootstraps_it(pg, simulators, monkeypatch, capsys):
    """`anbar ingest` on a new, empty database (no anbar schema): it used to stop with UndefinedTable on
    anbar.expected_submissions; it bootstraps the warehouse (idempotent, as every load does) and ingests."""
    import uuid

    import psycopg2

    from anbar.cli import main

    name = f"wh_never_bootstrapped_{uuid.uuid4().hex[:8]}"
    pg.create_database(name)
    monkeypatch.setenv("ANBAR_WAREHOUSE_URL", pg.url(name))
    conn = psycopg2.connect(pg.dsn(name))
    try:
        assert _count(conn, "select count(*) from pg_namespace where nspname = 'anbar'") == 0

        assert main(["ingest", "tvto", "trainees", "2025-09"]) == 0
        assert capsys.readouterr().out.strip() == "tvto/trainees/2025-09: accepted"
        [sub] = _ledger(conn, "tvto", "trainees", "2025-09")
        assert sub["status"] == "accepted" and sub["rows_manifest"] == sub["rows_loaded"] + sub["rows_rejected"]
        assert _count(conn, "select count(*) from anbar.expected_submissions where org = 'tvto'") == 1

        assert main(["ingest", "tvto", "trainees", "2025-09"]) == 0  # again: bootstrapped already, nothing new
        assert capsys.readouterr().out.strip() == "tvto/trainees/2025-09: noop"
    finally:
        conn.close()
