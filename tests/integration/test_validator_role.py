"""Statisticians' SQL rules run as anbar_validator (issue 16.5): under the access plan the ingest runs as
anbar_loader, and a suite's SQL rule the pass leaves to PostgreSQL runs on a read-only login of its own that reads
the submission's table and the partitions it is compared with, for the time of the validation, and nothing else:
not the pseudonym key, not the ledger, not the clean tables; no way to write, nor to become the loader.

A fresh warehouse of the test server, under the access plan (no audit logging), for each test."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from anbar import access, ingest, settings
from anbar.dbt import MANIFEST_PATH
from anbar.engine import delivery
from anbar.ids import make_person_id
from anbar.landing import LandingArchive

from .access_warehouse import apply_to_another_database, service_passwords
from .db import fetch

pytestmark = pytest.mark.integration

HEADER = "national_id,workshop_code,sex,birth_date,insurance_type,days_worked,insured_wage,employment_start"
PID = make_person_id(77)
# A rule comparing with the previous period (a workshop not in it), in PostgreSQL (~); it says who runs it.
NEW_WORKSHOP = (
    "with b as (select * from {batch}) select b._file, b._row_no, b.workshop_code, session_user as who from b "
    "where b.workshop_code ~ '^W' "
    "and not exists (select 1 from {previous} p where p.workshop_code = b.workshop_code)"
)
# What each refused rule tries, and what PostgreSQL says to anbar_validator.
REFUSED = {
    # the pseudonym key: the table of the keyed hash of national IDs
    "reads_the_key": (
        "select _file, _row_no from {batch} where _file ~ '.' and exists (select 1 from anbar_secret.pseudonym_key)",
        "permission denied for schema anbar_secret",
    ),
    # another schema: the ledger
    "reads_the_ledger": (
        "select _file, _row_no from {batch} where _file ~ '.' and exists (select 1 from anbar.submissions)",
        "permission denied for schema anbar",
    ),
    # the clean table of every period (the partitions it may read are the compared ones)
    "reads_every_period": (
        "select _file, _row_no from {batch} where _file ~ '.' and exists (select 1 from clean.sso__insured_persons)",
        "permission denied for table sso__insured_persons",
    ),
    # becoming the loader: what a login may do with its own roles
    "becomes_the_loader": (
        "select _file, _row_no, set_config('role', 'anbar_loader', false) as r from {batch} where _file ~ '.'",
        'permission denied to set role "anbar_loader"',
    ),
    # the way out of a SET ROLE (back to the session's own user), then the key through dynamic SQL (ts_stat runs
    # the query it is given): were the rules run under SET ROLE on the loader's connection, this would read it
    "undoes_a_set_role": (
        "select _file, _row_no, set_config('role', 'none', false) as r, (select string_agg(word, ' ') from "
        "ts_stat('select to_tsvector(''simple'', encode(ipad_key, ''hex'')) from anbar_secret.pseudonym_key')) as k "
        "from {batch} where _file ~ '.'",
        "permission denied for schema anbar_secret",
    ),
    # a write through a function: the ledger's sequence
    "writes_the_ledger": (
        "select _file, _row_no from {batch} where _file ~ '.' and nextval('anbar.backups_backup_id_seq') > 0",
        "permission denied for schema anbar",
    ),
}


@pytest.fixture
def planned(fresh_warehouse, pg, tmp_path, monkeypatch):
    """A fresh warehouse under the access plan; the ingest connects as anbar_loader, the SQL rules as
    anbar_validator (its Airflow connection); suites from a copy of expectations/."""
    conn = fresh_warehouse
    apply_to_another_database(conn, MANIFEST_PATH)
    dbname = conn.get_dsn_parameters()["dbname"]
    passwords = service_passwords()
    monkeypatch.setenv("ANBAR_WAREHOUSE_URL", pg.url(dbname, user=access.LOADER, password=passwords[access.LOADER]))
    validator = {
        "conn_type": "postgres",
        "host": "127.0.0.1",
        "port": pg.port,
        "login": access.VALIDATOR,
        "password": passwords[access.VALIDATOR],
        "schema": dbname,
    }
    monkeypatch.setenv("AIRFLOW_CONN_ANBAR_VALIDATOR", json.dumps(validator))
    monkeypatch.setattr(settings, "VALIDATOR_CONN_ID", "anbar_validator")
    monkeypatch.setenv("ANBAR_LANDING_DIR", str(tmp_path / "landing"))
    LandingArchive(tmp_path / "landing")
    suites = tmp_path / "expectations"
    shutil.copytree(settings.REPO_ROOT / "expectations", suites)
    monkeypatch.setenv("ANBAR_EXPECTATIONS_DIR", str(suites))
    return conn


def _suite_with(tmp_path, rules: dict[str, str], severity: str = "warning") -> None:
    """The SSO suite with SQL rules added (quality, ``severity``)."""
    path = tmp_path / "expectations" / "sso__insured_persons.json"
    suite = json.loads((settings.REPO_ROOT / "expectations" / path.name).read_text(encoding="utf-8"))
    for rule, query in rules.items():
        suite["expectations"].append(
            {
                "type": "unexpected_rows_expectation",
                "kwargs": {"unexpected_rows_query": query},
                "meta": {
                    "rule": rule,
                    "principle": "quality",
                    "severity": severity,
                    "columns": ["workshop_code"],
                    "description": {"fa": "آزمون", "en": "a test rule"},
                },
            }
        )
    path.write_text(json.dumps(suite, ensure_ascii=False), encoding="utf-8")


def _land(tmp_path, period: str, workshops: tuple[str, ...]) -> ingest.Step:
    """One insured person's month at ``workshops``, landed as a supplier's file."""
    lines = "".join(f"{PID},{w},1,1362/05/07,1,30,100,1399/01/01\n" for w in workshops)
    path = tmp_path / f"p-{period}.csv"
    path.write_text(f"{HEADER}\n{lines}", encoding="utf-8")
    step = ingest.land_files("sso", "insured_persons", period, [path])
    assert step.state == "landed", step
    return step


def _deliver(tmp_path, period: str, workshops: tuple[str, ...]) -> ingest.Step:
    return ingest.process(_land(tmp_path, period, workshops))


def _results(conn, step) -> dict[str, dict]:
    """GX's result of each rule of the delivery (kept beside it, for Data Docs), by rule."""
    [sub] = fetch(conn, "select landing_path from anbar.submissions where submission_id = %s", step.submission_id)
    document = json.loads((Path(sub["landing_path"]) / delivery.GX_RESULTS).read_text(encoding="utf-8"))
    return {r["expectation_config"]["meta"]["rule"]: r for r in document["results"]}


def _validator_grants(conn) -> list[str]:
    return [
        r["t"]
        for r in fetch(
            conn,
            "select c.oid::regclass::text as t from pg_class c "
            "where exists (select from aclexplode(c.relacl) a where a.grantee = %s::regrole) order by 1",
            access.VALIDATOR,
        )
    ]


def _key_forms(conn) -> list[str]:
    """The pseudonym key's pads as a query would show them: hex, and base64 (as query_to_xml writes bytea)."""
    [row] = fetch(
        conn,
        "select encode(ipad_key, 'hex') as a, encode(opad_key, 'hex') as b, encode(ipad_key, 'base64') as c, "
        "encode(opad_key, 'base64') as d from anbar_secret.pseudonym_key",
    )
    return [v.replace("\n", "") for v in row.values()]


def test_a_rule_reads_its_delivery_and_the_compared_period_and_nothing_else(planned, tmp_path):
    conn = planned
    assert _deliver(tmp_path, "1404-07", ("W1", "W2", "W4")).state == "accepted"
    backups_before = fetch(conn, "select last_value, is_called from anbar.backups_backup_id_seq")
    # and one reading the values as delivered ({raw}: a table made for the run)
    as_delivered = (
        "with b as (select * from {batch}) select b._file, b._row_no from b join {raw} r using (_file, _row_no) "
        "where r.workshop_code ~ '3$'"
    )
    rules = {"new_workshop": NEW_WORKSHOP, "w3_as_delivered": as_delivered}
    _suite_with(tmp_path, {**rules, **{rule: query for rule, (query, _) in REFUSED.items()}})

    step = _deliver(tmp_path, "1404-08", ("W1", "W2", "W3"))

    assert step.state == "accepted", step.message
    results = _results(conn, step)
    # Every rule reaching beyond the delivery and the period it is compared with failed with PostgreSQL's
    # refusal, recorded as the rule's error ...
    for rule, (_, refusal) in REFUSED.items():
        res = results[rule]
        assert not res["success"], rule
        assert res["exception_info"]["raised_exception"], rule
        assert res["exception_info"]["exception_message"].startswith(refusal), (rule, res["exception_info"])
    # ... while the rule comparing with the previous period works, as anbar_validator: W3 is new this month
    # (and so does the one reading the values as delivered).
    for rule in rules:
        assert not results[rule]["exception_info"]["raised_exception"], (rule, results[rule]["exception_info"])
    legit = results["new_workshop"]
    assert [(r["workshop_code"], r["who"]) for r in legit["result"]["details"]["unexpected_rows"]] == [
        ("W3", access.VALIDATOR)
    ]
    flags = fetch(
        conn,
        "select workshop_code, _flags from clean.sso__insured_persons where _submission_id = %s order by 1",
        step.submission_id,
    )
    assert [(r["workshop_code"], r["_flags"]) for r in flags] == [
        ("W1", None),
        ("W2", None),
        ("W3", ["quality: new_workshop", "quality: w3_as_delivered"]),
    ]
    [summary] = fetch(
        conn, "select validation_summary from anbar.submissions where submission_id = %s", step.submission_id
    )
    errors = {e["rule"]: e.get("error") for e in summary["validation_summary"]["expectations"]}
    assert all(errors[rule] and refusal in errors[rule] for rule, (_, refusal) in REFUSED.items()), errors
    # Nothing of the key anywhere in what the validation kept, nothing written, no grant left.
    kept = json.dumps(results) + json.dumps(summary, default=str)
    assert not [k for k in _key_forms(conn) if k in kept]
    assert fetch(conn, "select last_value, is_called from anbar.backups_backup_id_seq") == backups_before
    assert _validator_grants(conn) == []


def test_the_grants_end_with_the_validation_whatever_happened_and_stale_ones_go_first(planned, tmp_path, monkeypatch):
    conn = planned
    assert _deliver(tmp_path, "1404-07", ("W1", "W2", "W4")).state == "accepted"
    [previous] = fetch(conn, "select submission_id from anbar.submissions where period = '1404-07'")
    stale = f"clean.sso__insured_persons_s{previous['submission_id']}"
    # A validation killed before its revoke left a grant behind (here: on last month's partition) ...
    with conn.cursor() as cur:
        cur.execute(f"grant select on {stale} to {access.VALIDATOR}")
    conn.commit()
    assert _validator_grants(conn) == [stale]
    # ... and this month's rule, which does not compare with last month, tries to read it.
    peeks = f"select _file, _row_no from {{batch}} where _file ~ '.' and exists (select 1 from {stale})"
    _suite_with(tmp_path, {"peeks_at_last_month": peeks})

    # A pass that fails while the rules' grants are held leaves none behind ...
    def fails(*args, **kwargs):
        assert _validator_grants(conn) == [f"clean.sso__insured_persons_s{step.submission_id}"]
        raise RuntimeError("the worker died")

    step = _land(tmp_path, "1404-08", ("W1", "W2", "W3"))
    with monkeypatch.context() as m:
        m.setattr(delivery, "_record_findings", lambda *a, late, **kw: fails() if late else {})
        with pytest.raises(RuntimeError, match="the worker died"):
            ingest.process(step)
    assert _validator_grants(conn) == []

    # ... and the rerun decides: the stale grant was revoked before any rule ran.
    with conn.cursor() as cur:
        cur.execute(f"grant select on {stale} to {access.VALIDATOR}")
    conn.commit()
    done = ingest.process(step)
    assert done.state == "accepted", done.message
    peeked = _results(conn, done)["peeks_at_last_month"]
    assert peeked["exception_info"]["exception_message"].startswith("permission denied for table")
    assert _validator_grants(conn) == []


def test_a_suite_tried_on_an_accepted_delivery_runs_its_sql_as_the_validator_too(planned, tmp_path):
    """``anbar suites try``: a suite not yet committed, run on a delivery already accepted (its partition attached
    to the clean table): its SQL rules get the same login, the same grants, and the same refusals."""
    from anbar import suite_trial
    from anbar.registry import load_registry

    conn = planned
    assert _deliver(tmp_path, "1404-07", ("W1", "W2", "W4")).state == "accepted"
    assert _deliver(tmp_path, "1404-08", ("W1", "W2", "W3")).state == "accepted"
    rules = {rule: query for rule, (query, _) in REFUSED.items()}
    rules["new_workshop"] = NEW_WORKSHOP
    _suite_with(tmp_path, rules)
    registry = load_registry()

    trial = suite_trial.try_suite(registry, registry.dataset("sso", "insured_persons"), "1404-08")

    outcomes = {e["rule"]: e for e in trial.summary["expectations"]}
    assert outcomes["new_workshop"]["error"] is None
    assert outcomes["new_workshop"]["unexpected_count"] == 1
    for rule, (_, refusal) in REFUSED.items():
        assert outcomes[rule]["error"] and outcomes[rule]["error"].startswith(refusal), (rule, outcomes[rule])
    assert _validator_grants(conn) == []


def test_a_rule_that_never_ends_is_stopped_as_its_own_error(planned, tmp_path, monkeypatch):
    """A rule that sleeps, or waits on the lock the validation holds, ends at the validator's statement timeout
    (ANBAR_VALIDATOR_STATEMENT_TIMEOUT) as that rule's error; the delivery is decided, no grant is left."""
    conn = planned
    monkeypatch.setenv("ANBAR_VALIDATOR_STATEMENT_TIMEOUT", "1s")
    assert _deliver(tmp_path, "1404-07", ("W1",)).state == "accepted"
    waits = {
        "sleeps": "select _file, _row_no from {batch} where pg_sleep(30) is not null",
        "waits_on_the_validations_lock": (
            f"select _file, _row_no from {{batch}} where pg_advisory_lock(hashtext('{access.VALIDATOR_LOCK}')) "
            "is not null"
        ),
    }
    _suite_with(tmp_path, waits)

    step = _deliver(tmp_path, "1404-08", ("W1",))

    assert step.state == "accepted", step.message  # warnings: the rules' errors do not block
    results = _results(conn, step)
    for rule in waits:
        info = results[rule]["exception_info"]
        assert info["raised_exception"] and "statement timeout" in info["exception_message"], (rule, info)
    assert _validator_grants(conn) == []
