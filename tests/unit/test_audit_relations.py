"""What the audit makes of a logged statement: its command, the microdata relations it names
(anbar.audit.relations), and the records of PostgreSQL's jsonlog it keeps."""

from __future__ import annotations

import pytest

from anbar.audit import command_tags, parse_record, redact, relations

CATALOG = {
    "dim_person": ["core"],
    "sso__insured_persons": ["raw", "clean"],
    "int_employment": ["intermediate"],
}


def refs(sql: str) -> set[tuple[str, str, str, bool]]:
    return {(r.schema, r.relation, r.command, r.qualified) for r in relations(sql, CATALOG)}


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        # schema-qualified, quoted and unicode-escaped identifiers
        ('select * from "core"."Dim Person"', {("core", "Dim Person", "SELECT", True)}),
        ("SELECT * FROM Core.DIM_PERSON", {("core", "dim_person", "SELECT", True)}),
        ('select * from u&"r\\0061w".sso__insured_persons', {("raw", "sso__insured_persons", "SELECT", True)}),
        ("select * from warehouse.clean.sso__insured_persons", {("clean", "sso__insured_persons", "SELECT", True)}),
        (
            "select raw.sso__insured_persons.wage from raw.sso__insured_persons",
            {("raw", "sso__insured_persons", "SELECT", True)},
        ),
        # comments, strings and dollar quotes are not names
        (
            "/* from raw.a */ select 'from raw.b', $x$ raw.c $x$ -- from raw.d\n from core.dim_person",
            {("core", "dim_person", "SELECT", True)},
        ),
        # a CTE named like a microdata relation is not one; the relation inside it is
        (
            "with dim_person as (select * from intermediate.int_employment) select * from dim_person",
            {("intermediate", "int_employment", "SELECT", True)},
        ),
        (
            "with recursive x(n) as materialized (select 1) select * from x, dim_person",
            {("core", "dim_person", "SELECT", False)},
        ),
        # unqualified names where a relation goes, in every schema that has one so named
        (
            "select * from only sso__insured_persons join lateral (select 1) d on true",
            {("raw", "sso__insured_persons", "SELECT", False), ("clean", "sso__insured_persons", "SELECT", False)},
        ),
        # a column or a function named like a relation is not a read
        ("select dim_person, raw.f(1) from public.t", set()),
        # extraction, writes and deletions keep their command
        (
            "copy (select * from clean.sso__insured_persons) to stdout; copy raw.sso__insured_persons from stdin",
            {("clean", "sso__insured_persons", "COPY TO", True), ("raw", "sso__insured_persons", "COPY FROM", True)},
        ),
        (
            "create table public.mine as select * from core.dim_person",
            {("core", "dim_person", "CREATE TABLE", True)},
        ),
        ("delete from raw.sso__insured_persons", {("raw", "sso__insured_persons", "DELETE", True)}),
        # privileges name relations without reading them
        ("grant select on raw.sso__insured_persons to alice", set()),
        ("comment on table raw.sso__insured_persons is 'x'", set()),
    ],
)
def test_relations(sql, expected):
    assert refs(sql) == expected


def test_command_tags():
    assert command_tags(
        "create role a login; grant x to a; alter default privileges in schema raw grant select "
        "on tables to b; with t as (select 1) insert into x select * from t; set role c"
    ) == [
        "CREATE ROLE",
        "GRANT",
        "ALTER DEFAULT PRIVILEGES",
        "INSERT",
        "SET ROLE",
    ]
    assert command_tags("create or replace view v as select 1; drop owned by x; alter system set a = 1") == [
        "CREATE VIEW",
        "DROP OWNED",
        "ALTER SYSTEM",
    ]


def test_passwords_are_redacted():
    assert redact("create role a login password 'p''w'; alter role b with encrypted password $$s$$") == (
        "create role a login password '***'; alter role b with encrypted password '***'"
    )


BASE = {
    "timestamp": "2026-11-21 21:25:08.032 UTC",
    "user": "alice",
    "dbname": "warehouse",
    "pid": 15936,
    "remote_host": "127.0.0.1",
    "remote_port": 39722,
    "session_id": "6b020c34.3e40",
    "line_num": 5,
    "backend_type": "client backend",
    "application_name": "psql",
}


def test_jsonlog_records():
    rec = parse_record({**BASE, "error_severity": "LOG", "message": "execute <unnamed>: select $1", "detail": "P"})
    assert (rec.kind, rec.statement, rec.parameters, rec.client) == ("statement", "select $1", "P", "127.0.0.1:39722")
    rec = parse_record({**BASE, "error_severity": "LOG", "message": "duration: 5012.5 ms  statement: select 1"})
    assert (rec.kind, rec.duration_ms, rec.statement) == ("duration", 5012.5, "select 1")
    rec = parse_record(
        {**BASE, "error_severity": "ERROR", "state_code": "42501", "message": "permission denied", "statement": "x"}
    )
    assert (rec.kind, rec.error, rec.statement) == ("error", "ERROR 42501: permission denied", "x")
    assert parse_record({**BASE, "error_severity": "LOG", "message": "connection authorized: user=alice"}).kind == (
        "connect"
    )
    assert parse_record({**BASE, "error_severity": "LOG", "message": "checkpoint starting"}) is None
    assert parse_record({**BASE, "backend_type": "checkpointer", "error_severity": "LOG", "message": "x"}) is None


def test_a_statement_of_over_ten_thousand_tokens_is_read_like_any_other():
    # dbt logs statements this long (a comment header, then hundreds of columns); sqlparse's grouping
    # refuses them, and the audit must not stop at one.
    columns = ", ".join(f"c{i} + [{i}]" for i in range(4000))
    sql = f'/* {{"app": "dbt"}} */ insert into core.big select {columns} from raw.sso__insured_persons'
    assert command_tags(sql) == ["INSERT"]
    assert ("raw", "sso__insured_persons") in {(r.schema, r.relation) for r in relations(sql)}


def test_every_unpublished_model_schema_is_a_microdata_schema():
    """A model outside the published layers holds person-level rows: reading it must be in the audit trail.
    The schemas come from dbt's manifest (a model's schema is its folder's), so a new layer cannot slip by."""
    from anbar import access
    from anbar.audit import MICRODATA_SCHEMAS

    models = access.load_models(access.manifest_path())
    unpublished = {m.schema for m in models.values() if m.layer not in access.PUBLISHED_LAYERS}
    assert unpublished - {access.DBT_TARGET_SCHEMA} <= set(MICRODATA_SCHEMAS)
    assert {"staging", "intermediate", "core"} <= unpublished
