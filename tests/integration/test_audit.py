"""The audit trail on the real PostgreSQL: a person reads microdata under their own login role, an
administrator grants and revokes, a delivery is loaded; the ingest of the server's jsonlog files
and the report say who read what and when, the grant, the revocation and the load, and a second
ingest (from the same files, or read again from the start through the server) adds nothing."""

from __future__ import annotations

import datetime as dt
import secrets
import time

import psycopg
import pytest

from anbar import audit, cli, ledger

from .db import fetch

pytestmark = pytest.mark.integration


def _counts(conn) -> dict[str, int]:
    return {
        t: fetch(conn, f"select count(*) as n from audit.{t}")[0]["n"]
        for t in ("statement_log", "microdata_reads", "grant_events")
    }


def _ingest_until(conn, source, predicate, timeout: float = 15) -> None:
    """The logging collector writes asynchronously: ingest until what the test did is in."""
    deadline = time.monotonic() + timeout
    while True:
        audit.ingest(conn, source)
        if predicate():
            return
        assert time.monotonic() < deadline, "the server's log never showed the test's statements"
        time.sleep(0.3)


def test_reads_grants_and_loads_are_reported_and_reingesting_adds_nothing(pg, fresh_warehouse, capsys):
    conn = fresh_warehouse
    database = conn.info.dbname
    settings = {r["name"]: r["setting"] for r in fetch(conn, "select name, setting from pg_settings")}
    assert settings["logging_collector"] == "on" and settings["log_destination"] == "jsonlog"
    assert settings["log_directory"] == str(pg.log_dir)

    assert audit.install(conn) == []
    assert audit.database_logs_all(conn)
    reader = f"aud_reader_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    with conn.cursor() as cur:
        cur.execute("create table raw.audit_probe (person text, wage bigint)")
        cur.execute("insert into raw.audit_probe values ('0076229645', 1200)")
        cur.execute(f"create role {reader} login password %s", (password,))
        cur.execute(f'grant connect on database "{database}" to {reader}')
        cur.execute(f"grant usage on schema raw, clean to {reader}")
        cur.execute(f"grant select on raw.audit_probe to {reader}")
    conn.commit()

    started = dt.datetime.now(dt.UTC)
    with psycopg.connect(
        pg.url(database, user=reader, password=password, driver="postgresql"), application_name="audit-test"
    ) as person:
        assert person.execute('select count(*) from "raw".audit_probe -- my count').fetchone() == (1,)
        person.commit()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            person.execute("select * from clean.sso__insured_persons")
        person.rollback()
    finished = dt.datetime.now(dt.UTC)

    with conn.cursor() as cur:
        cur.execute(f"revoke select on raw.audit_probe from {reader}")
    conn.commit()
    sub, _ = ledger.open_submission(
        conn,
        org="sso",
        dataset="insured_persons",
        period="1404-07",
        transport="sftp",
        delivery_sha256="ab" * 32,
        manifest=None,
        rows_manifest=3,
        run_id="audit-test-run",
    )
    conn.commit()

    source = audit.DirectorySource(pg.log_dir)
    _ingest_until(
        conn,
        source,
        lambda: fetch(
            conn, "select 1 from audit.grant_events where command_tag = 'REVOKE' and statement like %s", f"%{reader}%"
        ),
    )

    rows = audit.report_rows(conn, user=reader)
    reads = [r for r in rows if r["section"] == "reads"]
    assert {(r["object"], r["command"], r["database"]) for r in reads} == {
        ("raw.audit_probe", "SELECT", database),
        ("clean.sso__insured_persons", "SELECT", database),
    }
    ok = next(r for r in reads if r["object"] == "raw.audit_probe")
    assert started - dt.timedelta(seconds=1) <= ok["at"] <= finished + dt.timedelta(seconds=1)
    assert ok["count"] == 1 and "failed" not in ok["detail"] and "audit-test" in ok["detail"]
    denied = next(r for r in reads if r["object"] == "clean.sso__insured_persons")
    assert "1 failed" in denied["detail"]
    logins = [r for r in rows if r["section"] == "sessions"]
    assert [(r["command"], r["count"]) for r in logins] == [("login", 1)]

    statements = fetch(
        conn, "select statement, error from audit.statement_log where user_name = %s and kind = 'statement'", reader
    )
    assert any("audit_probe" in s["statement"] and s["error"] is None for s in statements)
    assert any("permission denied" in (s["error"] or "") for s in statements)

    everything = audit.report_rows(conn, since=started.date())
    grants = [(r["user"], r["command"], r["detail"]) for r in everything if r["section"] == "grants"]
    assert ("anbar_admin", "GRANT", f"grant select on raw.audit_probe to {reader}") in grants
    assert ("anbar_admin", "REVOKE", f"revoke select on raw.audit_probe from {reader}") in grants
    created = [g for g in grants if g[1] == "CREATE ROLE" and reader in g[2]]
    assert created and password not in created[0][2] and "'***'" in created[0][2]
    loads = [r for r in everything if r["section"] == "loads" and f"submission {sub.submission_id}" in r["detail"]]
    assert [(r["object"], r["user"]) for r in loads] == [("sso/insured_persons/1404-07 v1", "audit-test-run")]

    # Idempotent: again from the offsets, then again from the start of every file through the server.
    before = _counts(conn)
    again = audit.ingest(conn, source)
    assert again.reads == 0 and _counts(conn)["microdata_reads"] == before["microdata_reads"]
    with conn.cursor() as cur:
        cur.execute("delete from audit.log_files")
    conn.commit()
    audit.ingest(conn, audit.ServerSource(conn))
    after = _counts(conn)
    assert after["microdata_reads"] == before["microdata_reads"]
    assert after["grant_events"] == before["grant_events"]
    assert fetch(conn, "select count(*) as n from audit.log_files")[0]["n"] >= 1

    capsys.readouterr()
    assert cli.main(["audit", "report", "--user", reader, "--format", "csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ",".join(audit.REPORT_COLUMNS)
    assert any(line.startswith("reads,") and f",{reader},{database},raw.audit_probe,SELECT,1," in line for line in out)
    assert cli.main(["audit", "report", "--since", started.date().isoformat()]) == 0
    text = capsys.readouterr().out
    assert "== Grants, revocations and role changes" in text
    assert f"revoke select on raw.audit_probe from {reader}" in text
