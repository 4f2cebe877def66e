"""Fixtures for validation tests: a bootstrapped warehouse, clean partitions built to order."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from anbar.ids import make_legal_entity_id, make_person_id
from anbar.registry import ColumnType, Dataset, Identifier, Registry, load_registry

REPO = Path(__file__).resolve().parents[2]
EXPECTATIONS = REPO / "expectations"

# Used only when anbar.sql_functions cannot be imported: the rules of docs/domain.md in SQL.
FALLBACK_FUNCTIONS = r"""
create schema if not exists anbar;
create or replace function anbar.is_valid_person_id(value text) returns boolean
language sql immutable parallel safe as $$
  select case when p !~ '^[0-9]{10}$' or p ~ '^(.)\1{9}$' then false
    else substr(p, 10, 1)::int = (select case when r < 2 then r else 11 - r end from (select (
        substr(p,1,1)::int*10 + substr(p,2,1)::int*9 + substr(p,3,1)::int*8
      + substr(p,4,1)::int*7 + substr(p,5,1)::int*6 + substr(p,6,1)::int*5
      + substr(p,7,1)::int*4 + substr(p,8,1)::int*3 + substr(p,9,1)::int*2) % 11 as r) s) end
  from (select case when btrim(value) ~ '^[0-9]{1,10}$' then lpad(btrim(value), 10, '0')
                    else 'x' end as p) t
$$;
create or replace function anbar.is_valid_legal_entity_id(value text) returns boolean
language sql immutable parallel safe as $$
  select case when p !~ '^[0-9]{11}$' or substr(p, 4, 6) = '000000' then false
    else substr(p, 11, 1)::int = (select case when r = 10 then 0 else r end from (select (
        (substr(p,1,1)::int + d)*29 + (substr(p,2,1)::int + d)*27 + (substr(p,3,1)::int + d)*23
      + (substr(p,4,1)::int + d)*19 + (substr(p,5,1)::int + d)*17 + (substr(p,6,1)::int + d)*29
      + (substr(p,7,1)::int + d)*27 + (substr(p,8,1)::int + d)*23 + (substr(p,9,1)::int + d)*19
      + (substr(p,10,1)::int + d)*17) % 11 as r
      from (select substr(p,10,1)::int + 2 as d) dd) s) end
  from (select coalesce(btrim(value), '') as p) t
$$;
"""


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry()


def _bootstrap(conn, registry: Registry) -> None:
    from anbar import ddl

    try:
        import anbar.sql_functions  # noqa: F401
    except ImportError:
        ddl._bootstrap_locked(conn, registry)
        with conn.cursor() as cur:
            cur.execute(FALLBACK_FUNCTIONS)
        conn.commit()
        return
    ddl.bootstrap(conn, registry)


def _as_delivered(ds: Dataset, column: str, value: Any) -> str | None:
    """A clean value as the supplier would have written it (dates in the dataset's calendar)."""
    if value is None:
        return None
    if isinstance(value, dt.date):
        from anbar.sim.extracts import format_date

        return format_date(value, ds.column(column).calendar or ("jalali" if ds.org == "sso" else "gregorian"))
    return str(value)


def _add_partition(cur, schema: str, ds: Dataset, sid: int, meta: list[str], values: list[tuple]) -> None:
    from psycopg2 import sql
    from psycopg2.extras import execute_values

    part = sql.Identifier(schema, f"{ds.key}_s{sid}")
    parent = sql.Identifier(schema, ds.key)
    cur.execute(sql.SQL("create table {} (like {} including defaults)").format(part, parent))
    if values:
        cols = [*meta, *ds.column_names]
        insert = sql.SQL("insert into {} ({}) values %s").format(part, sql.SQL(", ").join(map(sql.Identifier, cols)))
        execute_values(cur, insert.as_string(cur), values)
    cur.execute(sql.SQL("alter table {} attach partition {} for values in ({})").format(parent, part, sql.Literal(sid)))


class Warehouse:
    """One bootstrapped database; each partition gets a fresh submission id."""

    def __init__(self, pg, name: str) -> None:
        self.pg = pg
        self.name = name
        self.url = pg.url(name)
        self.dsn = pg.dsn(name)
        self._ids = itertools.count(1000)

    def connect(self):
        import psycopg2

        return psycopg2.connect(self.dsn)

    def partition(self, ds: Dataset, rows: list[dict[str, Any]]) -> int:
        """Load ``rows`` into a new clean partition the way the loader does; returns its id."""

        sid = next(self._ids)
        clean_values = [
            (sid, "part-1.csv", i + 1, "2025-10", *(r.get(c) for c in ds.column_names)) for i, r in enumerate(rows)
        ]
        # The raw partition holds the same rows as the supplier wrote them (text, dates in its calendar).
        raw_values = [
            (sid, "part-1.csv", i + 1, *(_as_delivered(ds, c, r.get(c)) for c in ds.column_names))
            for i, r in enumerate(rows)
        ]
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                _add_partition(cur, "clean", ds, sid, ["_submission_id", "_file", "_row_no", "_period"], clean_values)
                _add_partition(cur, "raw", ds, sid, ["_submission_id", "_file", "_row_no"], raw_values)
            conn.commit()
        finally:
            conn.close()
        return sid

    def connections(self, prefix: str = "anbar-validate") -> int:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "select count(*) from pg_stat_activity where application_name like %s",
                    (prefix + "%",),
                )
                return cur.fetchone()[0]
        finally:
            conn.close()


@pytest.fixture(scope="session")
def warehouse(pg, registry) -> Warehouse:
    name = f"validation_{uuid.uuid4().hex[:8]}"
    pg.create_database(name)
    wh = Warehouse(pg, name)
    conn = wh.connect()
    try:
        _bootstrap(conn, registry)
    finally:
        conn.close()
    return wh


# -- synthetic rows that pass every check of the drafted suites ---------------------------------


def good_value(ds: Dataset, col, i: int, registry: Registry) -> Any:
    if col.identifier is Identifier.person:
        return make_person_id(123_000_000 + i * 7)
    if col.identifier is Identifier.legal_entity:
        return make_legal_entity_id(1_038_028_479 + i * 13)
    if col.code_list:
        codes = sorted(registry.code_lists[col.code_list].codes)
        return codes[i % len(codes)]
    if col.type is ColumnType.date:
        if col.name == "birth_date":
            return dt.date(1970, 1, 1) + dt.timedelta(days=(i * 37) % 9000)
        if col.name.endswith("_start"):
            return dt.date(2024, 1, 1) + dt.timedelta(days=i % 60)
        if col.name.endswith("_end"):
            return dt.date(2024, 6, 1) + dt.timedelta(days=i % 60)
        return dt.date(2015, 3, 1)
    if col.name.endswith(("wage", "amount")):
        return 80_000_000 + i * 1_000_000  # rials: a plausible monthly wage or pension
    if col.type in (ColumnType.integer, ColumnType.bigint, ColumnType.numeric):
        lo = int(col.min) if col.min is not None else 0
        hi = int(col.max) if col.max is not None else lo + 1_000_000
        return lo + i % (hi - lo + 1)
    return f"{col.name[:4].upper()}{i:06d}"


@pytest.fixture
def good_rows(registry):
    def make(ds: Dataset, n: int = 40) -> list[dict[str, Any]]:
        return [{c.name: good_value(ds, c, i, registry) for c in ds.columns} for i in range(n)]

    return make


@pytest.fixture
def write_suite_file(tmp_path):
    """Write a suite dict as ``<tmp>/<name>.json`` and return the path."""

    def write(data: dict, name: str | None = None) -> Path:
        path = tmp_path / f"{name or data['name']}.json"
        path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
        return path

    return write
