"""Access tiers enforced by PostgreSQL: each test connects as a role and proves what it can and cannot
read or write (the warehouse is built by dbt as anbar_transformer after the plan was applied)."""

from __future__ import annotations

import datetime as dt
import json

import psycopg2
import pytest
from psycopg2 import errors

from anbar import access, ddl
from anbar.registry import AccessTier, load_registry

from .access_warehouse import USERS, access_warehouse

pytestmark = pytest.mark.integration

DENIED = errors.InsufficientPrivilege
FAR = dt.date.today() + dt.timedelta(days=365)
# a decision on the SSO and TVTO datasets covers the models deriving only from them
SSO_TVTO = ["sso/insured_persons", "sso/workplaces", "tvto/trainees"]


@pytest.fixture(scope="module")
def wh(pg):
    return access_warehouse(pg)


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture(scope="module")
def manifest(wh):
    return json.loads(wh.manifest.read_text(encoding="utf-8"))


def can(conn, query: str, *args) -> bool:
    """Whether ``query`` runs; False on a permission error (anything else fails the test)."""
    try:
        with conn.cursor() as cur:
            cur.execute(query, args)
        return True
    except DENIED:
        return False


def one(conn, query: str, *args):
    with conn.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchone()[0]


def decide(wh, registry, manifest, **kwargs):
    with wh.session() as conn:
        kwargs.setdefault("purpose", "labour market transitions of vocational trainees")
        kwargs.setdefault("decision_ref", "1404/09/12-17")
        kwargs.setdefault("expires_on", FAR)
        return access.decide(conn, registry, manifest, **kwargs)


def revoke(wh, decision_id: int) -> None:
    with wh.session() as conn:
        access.revoke(conn, decision_id, "end of test")


# --- the tiers of the models ------------------------------------------------------------------------


def test_every_warehouse_model_declares_its_tier(manifest):
    models = access.load_models(manifest)
    layers = ("staging", "intermediate", "core", "marts")
    assert [m.name for m in models.values() if m.layer in layers and m.tier is None] == []
    assert {m.tier for m in models.values() if m.layer == "marts"} <= {AccessTier.open, AccessTier.internal}
    assert models["dim_person"].column_tiers["birth_date"] is AccessTier.enclave
    assert models["fct_training"].datasets == {"tvto__trainees", "sso__insured_persons", "sso__workplaces"}


def test_a_published_model_above_internal_is_refused(wh, registry, manifest):
    bad = json.loads(json.dumps(manifest))
    bad["nodes"]["model.anbar.mart_trainees"]["config"]["meta"]["access_tier"] = "licensed"
    with wh.session() as conn, pytest.raises(access.AccessError, match="mart_trainees is published"):
        access.build_plan(conn, registry, bad)


def test_a_registry_confidential_column_is_never_granted(registry, manifest):
    models = access.load_models(manifest)
    stg = models["stg_sso__insured_persons"]
    # a column named like the registry's national ID is confidential whatever the model says
    inherited = access.registry_column_tiers(registry, stg.datasets)
    assert stg.column_tier("national_id", inherited) is AccessTier.confidential
    cols = access.decision_columns(stg, AccessTier.enclave, registry, ["person_key", "national_id", "birth_date"], [])
    assert cols == ["person_key", "birth_date"]


# --- the functional roles ---------------------------------------------------------------------------


def test_analyst_reads_marts_and_nothing_below(wh):
    with wh.session("ana") as conn:
        assert one(conn, "select count(*) from marts.mart_insured_employment") > 0
        assert can(conn, "select * from marts.mart_compliance limit 1")
        for query in (
            "select * from core.dim_person limit 1",
            "select * from intermediate.int_person_records limit 1",
            "select * from staging.stg_sso__insured_persons limit 1",
            "select * from clean.sso__insured_persons limit 1",
            "select * from raw.sso__insured_persons limit 1",
            "select * from anbar.submissions limit 1",
            "select * from anbar.access_decisions limit 1",
            "select anbar.pseudonymise('0076229645')",
        ):
            assert not can(conn, query), query
        assert not can(conn, "delete from marts.mart_insured_employment")


def test_researcher_without_a_decision_reads_nothing(wh):
    with wh.session("rob") as conn:
        for query in (
            "select * from marts.mart_insured_employment limit 1",
            "select person_key from core.fct_training limit 1",
            "select * from core.dim_workplace limit 1",
            "select * from clean.tvto__trainees limit 1",
            "select * from raw.tvto__trainees limit 1",
        ):
            assert not can(conn, query), query


def test_only_the_loader_writes_raw(wh, monkeypatch):
    from anbar_dbt_testdata import PSEUDONYM_KEY

    monkeypatch.setenv("ANBAR_PSEUDONYM_KEY", PSEUDONYM_KEY)  # the key the test warehouse was built with
    registry = load_registry()
    with wh.session("anbar_loader") as loader:
        loader.autocommit = False
        ddl.bootstrap(loader, registry)  # the ingest's first step, now as the loader
        with loader.cursor() as cur:
            cur.execute(
                "insert into anbar.submissions (org, dataset, period, version, transport, delivery_sha256, status) "
                "values ('sso', 'workplaces', '1499-01', 1, 'sftp', 'access-test', 'received') returning submission_id"
            )
            sid = cur.fetchone()[0]
            cur.execute(
                f"create table raw.sso__workplaces_access_test partition of raw.sso__workplaces for values in ({sid})"
            )
            cur.execute(
                "insert into raw.sso__workplaces (_submission_id, _file, _row_no, workshop_code) "
                "values (%s, 'f', 1, 'w')",
                (sid,),
            )
            cur.execute("insert into raw.rejected_rows values (%s, 'f', 2, '{bad}', '{}')", (sid,))
        loader.commit()

    for role in ("anbar_transformer", *USERS):
        with wh.session(role) as conn:
            assert not can(conn, "insert into raw.rejected_rows values (%s, 'f', 3, '{bad}', '{}')", sid), role
            assert not can(conn, "delete from raw.sso__workplaces"), role
            assert not can(conn, "select * from raw.sso__workplaces"), role
            assert not can(conn, f"create table raw.x_{role} (a int)"), role

    # and in the catalog: no role of the server but the loader holds a write privilege on any raw table
    with wh.session() as conn, conn.cursor() as cur:
        cur.execute(
            "select distinct r.rolname from pg_roles r cross join pg_class c join pg_namespace n "
            "on n.oid = c.relnamespace where n.nspname = 'raw' and c.relkind in ('r', 'p') "
            "and not r.rolsuper and r.rolname !~ '^pg_' "
            "and (has_table_privilege(r.oid, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE') "
            "     or has_schema_privilege(r.oid, n.oid, 'CREATE'))"
        )
        assert [r[0] for r in cur.fetchall()] == ["anbar_loader"]


def test_transformer_reads_clean_and_the_ledger_but_not_raw_nor_the_key(wh):
    with wh.session("anbar_transformer") as conn:
        assert one(conn, "select count(*) from clean.sso__insured_persons") > 0
        assert can(conn, "select * from anbar.submissions limit 1")
        assert len(one(conn, "select anbar.pseudonymise('0076229645')")) == 64
        assert not can(conn, "select * from anbar_secret.pseudonym_key")
        assert not can(conn, "select * from raw.sso__insured_persons limit 1")
        assert not can(conn, "insert into clean.sso__insured_persons (_submission_id) values (1)")
        assert not can(conn, "update anbar.submissions set status = 'accepted'")
        assert not can(conn, "select * from anbar.access_decisions")


def test_the_ledger_reader_reads_the_status_views_and_nothing_else(wh):
    """The Airflow api-server's login (the Submissions page): the ledger views it shows, nothing else."""
    with wh.session(access.LEDGER_READER) as conn:
        for view in access.LEDGER_READER_VIEWS:
            assert can(conn, f"select * from anbar.{view} limit 1"), view
        assert one(conn, "select count(*) from anbar.submission_status") >= 0
        for query in (
            "select * from anbar.submissions limit 1",
            "select * from anbar.submission_events limit 1",
            "select * from anbar.notifications limit 1",
            "select * from anbar.access_decisions limit 1",
            "select * from anbar_secret.pseudonym_key",
            "select * from raw.sso__insured_persons limit 1",
            "select * from clean.sso__insured_persons limit 1",
            "select * from marts.mart_insured_employment limit 1",
            "select * from core.fct_insured_employment limit 1",
            "select anbar.pseudonymise('0076229645')",
            "update anbar.submissions set status = 'accepted'",
            "insert into anbar.submission_events (submission_id) values (1)",
            "create table anbar.mine (x int)",
        ):
            assert not can(conn, query), query


def test_the_validator_reads_nothing_by_itself_and_writes_nothing(wh):
    """The login statisticians' SQL rules run as (anbar.engine.validator): the plan gives it CONNECT and USAGE on
    clean and raw, read-only sessions, and nothing else; a validation grants it its tables for its time."""
    with wh.session() as conn:
        partition = one(
            conn,
            "select c.oid::regclass::text from pg_inherits i join pg_class c on c.oid = i.inhrelid "
            "where i.inhparent = 'clean.sso__insured_persons'::regclass limit 1",
        )
    with wh.session(access.VALIDATOR) as conn:
        assert one(conn, "show transaction_read_only") == "on"
        assert one(conn, "select has_schema_privilege('clean', 'usage') and has_schema_privilege('raw', 'usage')")
        readable = (  # a table it may select from, in a schema it may use
            "select string_agg(c.oid::regclass::text, ', ') from pg_class c join pg_namespace n "
            "on n.oid = c.relnamespace where c.relkind in ('r', 'p', 'v', 'm', 'f') "
            "and n.nspname not in ('pg_catalog', 'information_schema') "
            "and has_schema_privilege(n.oid, 'usage') and has_table_privilege(c.oid, 'select')"
        )
        assert one(conn, readable) is None
        with conn.cursor() as cur:
            cur.execute("set default_transaction_read_only = off")  # not even a read-write session writes
        for query in (
            f"select * from {partition} limit 1",
            "select * from clean.sso__insured_persons limit 1",
            "select * from raw.rejected_rows limit 1",
            "select * from anbar_secret.pseudonym_key",
            "select * from anbar.submissions limit 1",
            "select * from anbar.submission_status limit 1",
            "select * from ref.code_list_values limit 1",
            "select * from staging.stg_sso__insured_persons limit 1",
            "select * from core.fct_insured_employment limit 1",
            "select * from marts.mart_insured_employment limit 1",
            "select anbar.pseudonymise('0076229645')",
            "select nextval('anbar.submissions_submission_id_seq')",
            "select set_config('role', 'anbar_loader', false)",
            f"delete from {partition}",
            "insert into anbar.submission_events (submission_id) values (1)",
            "create table clean.mine (x int)",
            "create table raw.mine (x int)",
        ):
            assert not can(conn, query), query


def test_loader_does_not_read_the_warehouse_models(wh):
    with wh.session("anbar_loader") as conn:
        assert not can(conn, "select * from marts.mart_insured_employment limit 1")
        assert not can(conn, "select * from core.dim_person limit 1")


def test_auditor_reads_the_audit_schema_only(wh, registry):
    with wh.session() as conn:
        with conn.cursor() as cur:
            cur.execute("create schema if not exists audit")
            cur.execute("create table if not exists audit.access_test_log (at timestamptz, who text)")
        conn.commit()
        access.apply_plan(conn, access.build_plan(conn, registry, wh.manifest))
    auditor = wh.connect("audrey")
    analyst = wh.connect("ana")
    try:
        assert can(auditor, "select * from audit.access_test_log")
        assert not can(auditor, "insert into audit.access_test_log values (now(), 'me')")
        assert not can(auditor, "select * from marts.mart_insured_employment limit 1")
        assert not can(analyst, "select * from audit.access_test_log")
    finally:
        auditor.close()
        analyst.close()


# --- decisions ----------------------------------------------------------------------------------


def test_a_licensed_decision_grants_its_pseudonymised_columns_only(wh, registry, manifest):
    decision_id, grants = decide(wh, registry, manifest, researcher="rita", datasets=SSO_TVTO)
    granted = {table: cols for _, _, table, cols, _ in grants}
    assert set(granted) == {"fct_training", "fct_insured_employment", "fct_insured_employment_monthly", "dim_workplace"}
    assert "birth_date" not in granted["fct_training"] and "person_key" in granted["fct_training"]
    rita = wh.connect("rita")
    rob = wh.connect("rob")
    try:
        assert one(rita, "select count(distinct person_key) from core.fct_training") > 0
        assert can(rita, "select person_key, age_band, isco_code from core.fct_training")
        assert not can(rita, "select birth_date from core.fct_training")  # enclave column
        assert not can(rita, "select * from core.fct_training")
        assert not can(rita, "select * from core.dim_person limit 1")  # derives from CSPF and SWO too
        assert not can(rita, "select * from core.fct_pensions limit 1")
        assert not can(rita, "select * from staging.stg_tvto__trainees limit 1")
        assert not can(rita, "select * from clean.tvto__trainees limit 1")
        assert not can(rita, "select * from raw.tvto__trainees limit 1")
        assert not can(rita, "select anbar.pseudonymise('0076229645')")
        assert not can(rita, "select * from marts.mart_trainees limit 1")  # a researcher is not an analyst
        assert not can(rita, "update core.fct_training set person_key = null")
        assert not can(rob, "select person_key from core.fct_training limit 1")  # another researcher
    finally:
        rita.close()
        rob.close()
    revoke(wh, decision_id)
    with wh.session("rita") as rita:
        assert not can(rita, "select person_key from core.fct_training limit 1")


def test_an_enclave_decision_adds_enclave_columns_and_survives_a_rebuild(wh, registry, manifest):
    decision_id, _ = decide(
        wh, registry, manifest, researcher="rita", models=["dim_person", "fct_welfare_benefits"], tier="enclave"
    )
    wh.dbt("run", "--select", "dim_person", "fct_welfare_benefits", "--full-refresh")  # new tables, as dbt makes them
    with wh.session("rita") as rita:
        assert can(rita, "select person_key, birth_date, known_birth_date from core.dim_person")
        assert can(rita, "select disability_type, birth_date from core.fct_welfare_benefits")
        assert not can(rita, "select * from core.fct_training limit 1")
    revoke(wh, decision_id)


def test_a_licensed_decision_cannot_name_an_enclave_or_published_model(wh, registry, manifest):
    with pytest.raises(access.AccessError, match="microdata models"):
        decide(wh, registry, manifest, researcher="rita", models=["mart_trainees"])
    with pytest.raises(access.AccessError, match="login role"):
        decide(wh, registry, manifest, researcher="ana", models=["dim_person"])  # an analyst
    with pytest.raises(access.AccessError, match="before today"):
        decide(wh, registry, manifest, researcher="rita", models=["dim_person"], expires_on=dt.date(2020, 1, 1))


def test_decisions_are_kept_forever_with_their_history(wh, registry, manifest):
    decision_id, _ = decide(wh, registry, manifest, researcher="rita", models=["fct_training"])
    with wh.session() as conn:
        for statement in (
            "delete from anbar.access_decisions where decision_id = %s",
            "update anbar.access_decisions set expires_on = expires_on + 100 where decision_id = %s",
        ):
            with pytest.raises(psycopg2.errors.RaiseException), conn.cursor() as cur:
                cur.execute(statement, (decision_id,))
            conn.rollback()
        with pytest.raises(psycopg2.errors.RaiseException), conn.cursor() as cur:
            cur.execute("truncate anbar.access_decisions cascade")
        conn.rollback()
        access.revoke(conn, decision_id, "the project ended early")
        with pytest.raises(access.AccessError, match="not approved"):
            access.revoke(conn, decision_id, "twice")
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute(
                "select status, decision->>'revoke_reason' from anbar.access_decision_history "
                "where decision_id = %s order by history_id",
                (decision_id,),
            )
            assert cur.fetchall() == [("approved", None), ("revoked", "the project ended early")]
            cur.execute("select 1 from pg_roles where rolname = %s", (access.decision_role(decision_id),))
            assert cur.fetchone() is None
    (found,) = [d for d in _decisions(wh) if d.decision_id == decision_id]
    assert (found.status, found.revoked_by, found.purpose) == ("revoked", "anbar_admin", found.purpose)


def test_apply_is_idempotent_and_keeps_approved_decisions(wh, registry, manifest):
    decision_id, _ = decide(wh, registry, manifest, researcher="rita", models=["fct_training"])
    with wh.session() as conn:
        plan = access.build_plan(conn, registry, manifest)
        assert f"grant {access.decision_role(decision_id)} to rita" in plan.sql()
        access.apply_plan(conn, plan)
        access.apply_plan(conn, access.build_plan(conn, registry, manifest))
    with wh.session("rita") as rita:
        assert can(rita, "select person_key from core.fct_training")
        assert not can(rita, "select birth_date from core.fct_training")
    revoke(wh, decision_id)


def test_the_cli_adds_users_decides_lists_and_revokes(wh, monkeypatch, capsys):
    from anbar import cli

    monkeypatch.setenv("ANBAR_ACCESS_ADMIN_URL", wh.pg.dsn(wh.dbname))
    monkeypatch.setenv("CLI_TEST_PASSWORD", "s3cret-for-test")
    add = ["access", "user", "add", "reza", "--role", "researcher", "--password-env", "CLI_TEST_PASSWORD"]
    assert cli.main(add) == 0
    wh.passwords["reza"] = "s3cret-for-test"
    args = ["access", "decide", "--researcher", "reza", "--models", "fct_training", "--purpose", "thesis"]
    args += ["--decision", "1404/10/01-3", "--expires", "1499/01/01", "--manifest", str(wh.manifest)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("decision ")]
    decision_id = int(line.split()[1])
    assert "core.fct_training: " in out and "birth_date" not in out
    with wh.session("reza") as reza:
        assert can(reza, "select person_key from core.fct_training")
    assert cli.main(["access", "list", "--status", "approved"]) == 0
    assert "1404/10/01-3" in capsys.readouterr().out
    assert cli.main(["access", "revoke", str(decision_id), "--reason", "withdrawn"]) == 0
    assert cli.main(["access", "apply", "--dry-run", "--manifest", str(wh.manifest)]) == 0
    out = capsys.readouterr().out
    assert "begin;" in out and f"grant {access.decision_role(decision_id)}" not in out
    with wh.session("reza") as reza:
        assert not can(reza, "select person_key from core.fct_training")


def test_expire_revokes_what_ended_by_tehran_days(wh, registry, manifest):
    today = access.tehran_today()
    decision_id, _ = decide(wh, registry, manifest, researcher="rita", models=["fct_training"], expires_on=today)
    with wh.session() as conn:
        # valid through the whole of its last day in Tehran (20:29 UTC is 23:59 in Tehran, UTC+3:30)
        last_minute = dt.datetime.combine(today, dt.time(20, 29), tzinfo=dt.UTC)
        assert decision_id not in [d.decision_id for d in access.expire(conn, last_minute)]
        ended = access.expire(conn, last_minute + dt.timedelta(minutes=1))
        assert decision_id in [d.decision_id for d in ended]
    with wh.session("rita") as rita:
        assert not can(rita, "select person_key from core.fct_training")


def _decisions(wh):
    with wh.session() as conn:
        return access.list_decisions(conn)
