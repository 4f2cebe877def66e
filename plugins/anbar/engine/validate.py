"""A dataset's suite, run by the pass: each expectation where it is cheapest, GX's semantics everywhere.

- The expectation types :mod:`anbar.engine.expectations` evaluates run in DuckDB over the delivery
  already in memory (one scan for all the column-map ones), cross-period and cross-supplier ones against
  the typed snapshots of the accepted deliveries they compare with (:mod:`anbar.engine.snapshot`).
- SQL written by statisticians (GX's ``unexpected_rows_expectation``) runs in PostgreSQL, the dialect it
  is written in, on the delivery's unattached table, as GX runs it: the rows the query returns are the
  unexpected ones, their count the observed value, the first 200 the details; a read-only transaction, as
  ``anbar_validator``, which reads the tables :func:`tables_read` names and nothing else
  (:mod:`anbar.engine.validator`).
- Anything else is left to Great Expectations itself on PostgreSQL (imported only then).

The suite file is read as JSON; GX checks it once per version (its sha256, recorded in
``anbar.suite_versions``), not on every delivery. Every outcome is kept as GX's own validation result
(:class:`RuleResult.gx`), from which Data Docs are rendered, and as anbar's summary
(:func:`anbar.validation.summarise`), which the ledger, the feedback and the scorecard read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from psycopg2 import sql

from anbar.engine import expectations
from anbar.engine.convert import ident
from anbar.engine.read import DELIVERY
from anbar.expectation_kinds import CONTEXT_KINDS, NotApplicable, placeholders, resolve_query
from anbar.registry import Dataset
from anbar.suites import ROW_QUERY_TYPE, SuiteError, SuitePolicy, expectation_table

log = logging.getLogger(__name__)

# What GX's COMPLETE result format keeps of a query's rows (great_expectations.constants.MAX_RESULT_RECORDS).
MAX_RESULT_RECORDS = 200
CLEAN_VIEW, RAW_VIEW = "clean_rows", "raw_rows"
_NO_EXCEPTION = {"raised_exception": False, "exception_traceback": None, "exception_message": None}


@dataclass
class Suite:
    name: str
    meta: dict[str, Any]
    expectations: list[dict[str, Any]]  # each with a fresh ``id``
    sha256: str
    source: str  # the file, or "generated from the registry"

    @property
    def policy(self) -> SuitePolicy:
        return SuitePolicy.from_meta(self.meta)


@dataclass
class RuleResult:
    """One expectation's outcome: GX's result (JSON), and where its offending rows can be read."""

    config: dict[str, Any]
    gx: dict[str, Any]
    rows: tuple[str, str] | None = None  # ("duckdb" | "postgres", SQL selecting _file, _row_no of every one)
    skipped: str | None = None  # not applicable to this delivery, and why
    engine: str = "duckdb"


@dataclass
class SuiteRun:
    suite: Suite
    results: list[RuleResult] = field(default_factory=list)
    row_count: int | None = None
    seconds: float = 0.0


# -- reading the suite --------------------------------------------------------------------------------


def load(
    conn, ds: Dataset, path: Path | None, generated: dict[str, Any] | None = None, *, record: bool = True
) -> Suite:
    """The suite of a dataset: its file (or, without one, the suite its registry entry implies).

    GX checks a suite the first time this warehouse sees its bytes; later runs read the JSON only.
    ``record=False`` (``anbar suites try``, which writes nothing) checks an unknown version without
    recording it."""
    if path is not None:
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            raise SuiteError(f"{path}: suite file not found") from None
        source = path.name
    else:
        text = json.dumps(generated, ensure_ascii=False, sort_keys=True).encode()
        source = "generated from the registry (no file in expectations/)"
    sha = hashlib.sha256(text).hexdigest()
    if not _checked(conn, ds, sha):
        _check_with_gx(ds, path, generated)
        if record:
            _record_checked(conn, ds, sha, source)
    data = json.loads(text)
    exps = []
    for exp in data["expectations"]:
        config = json.loads(json.dumps(exp))
        config["id"] = str(uuid.uuid4())
        config.setdefault("kwargs", {})
        config.setdefault("meta", {})
        exps.append(config)
    return Suite(data["name"], data.get("meta") or {}, exps, sha, source)


def _checked(conn, ds: Dataset, sha: str) -> bool:
    with conn.cursor() as cur:
        cur.execute("select 1 from anbar.suite_versions where dataset = %s and sha256 = %s", (ds.key, sha))
        found = cur.fetchone() is not None
    conn.commit()
    return found


def _check_with_gx(ds: Dataset, path: Path | None, generated: dict[str, Any] | None) -> None:
    from anbar.suites import load_suite

    if path is not None:
        load_suite(path, ds)
        return
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        drafted = Path(tmp) / f"{ds.key}.json"
        drafted.write_text(json.dumps(generated, ensure_ascii=False), encoding="utf-8")
        load_suite(drafted, ds)


def _record_checked(conn, ds: Dataset, sha: str, source: str) -> None:
    from importlib.metadata import version

    with conn.cursor() as cur:
        cur.execute(
            "insert into anbar.suite_versions (dataset, sha256, source, great_expectations_version) "
            "values (%s, %s, %s, %s) on conflict do nothing",
            (ds.key, sha, source, version("great_expectations")),
        )
    conn.commit()


# -- running it ------------------------------------------------------------------------------------------


def prepare_views(con: duckdb.DuckDBPyConnection, ds: Dataset) -> None:
    """The relations the evaluator reads: converted rows (typed) and every row as delivered (text)."""
    cols = ", ".join(ident(c) for c in ds.column_names)
    raw = ", ".join(f"{ident('r:' + c)} as {ident(c)}" for c in ds.column_names)
    con.execute(
        f"create or replace temporary view {CLEAN_VIEW} as select _file, _row_no, {cols} from {DELIVERY} "
        "where _problems is null"
    )
    con.execute(f"create or replace temporary view {RAW_VIEW} as select _file, _row_no, {raw} from {DELIVERY}")


def _gx_result(config: dict[str, Any], success: bool, result: dict[str, Any], exception: dict | None = None):
    return {
        "success": success,
        "expectation_config": config,
        "result": result,
        "meta": {},
        "exception_info": exception or dict(_NO_EXCEPTION),
    }


def _exception(exc: BaseException) -> dict[str, Any]:
    return {"raised_exception": True, "exception_traceback": None, "exception_message": str(exc).strip()}


@dataclass
class Plan:
    """Where each expectation of a suite runs, and the relations the pass evaluates them on."""

    relations: expectations.Relations
    in_duckdb: list[dict] = field(default_factory=list)
    in_postgres: list[dict] = field(default_factory=list)  # SQL the pass cannot read (PostgreSQL's dialect)
    by_gx: list[dict] = field(default_factory=list)  # types the pass does not evaluate
    why: dict[str, str] = field(default_factory=dict)  # expectation id -> why not in DuckDB


def context_keys(suite: Suite) -> set[str]:
    """The compared deliveries the suite's checks name (``previous``, other datasets' keys)."""
    keys: set[str] = set()
    for config in suite.expectations:
        kwargs = config.get("kwargs") or {}
        if config["type"] in CONTEXT_KINDS:
            other = kwargs.get("other_dataset")
            keys.add(other if isinstance(other, str) else "previous")
        query = kwargs.get("unexpected_rows_query")
        if isinstance(query, str):
            with contextlib.suppress(ValueError):  # an unpaired brace: the suite check reports it
                keys |= {k for k in placeholders(query) if k not in ("batch", "raw", "period_start", "period_end")}
    return keys


def plan(
    con: duckdb.DuckDBPyConnection,
    ds: Dataset,
    suite: Suite,
    context: dict[str, str | None],
    period_start: dt.date,
    period_end: dt.date,
) -> Plan:
    """Decide, for each expectation, whether the pass evaluates it (its type, kwargs and the column types of
    the relations it reads) or PostgreSQL does."""
    prepare_views(con, ds)
    tables = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
    relations = expectations.Relations(
        clean=CLEAN_VIEW,
        raw=RAW_VIEW,
        context=context,
        period_start=period_start,
        period_end=period_end,
        lookups={"anbar_jalali_days", "anbar_gregorian_days"} <= tables,
    )
    schema = expectations.relation_schema(con, relations)
    out = Plan(relations)
    for config in suite.expectations:
        why = expectations.why_not_evaluable(config, schema)
        if why is None:
            out.in_duckdb.append(config)
            continue
        out.why[config["id"]] = why
        if config["type"] == ROW_QUERY_TYPE or config["type"] in CONTEXT_KINDS:
            out.in_postgres.append(config)
        else:
            out.by_gx.append(config)
    for config in out.in_postgres + out.by_gx:
        log.info("%s: %s runs in PostgreSQL: %s", ds.key, _label(config), out.why[config["id"]])
    return out


def _label(config: dict[str, Any]) -> str:
    return (config.get("meta") or {}).get("rule") or config["type"]


def _not_applicable(name: str) -> str:
    if name == "previous":
        return "not applicable: no accepted delivery of an earlier period to compare with"
    return f"not applicable: no accepted delivery of {name} yet"


def run_in_duckdb(con: duckdb.DuckDBPyConnection, where: Plan) -> list[RuleResult]:
    """The expectations the pass evaluates, on the delivery in ``con``."""
    if not where.in_duckdb:
        return []
    return [
        RuleResult(
            ev.config,
            _gx_result(ev.config, ev.success, ev.result, ev.exception_info or None),
            ("duckdb", ev.failing_rows) if ev.failing_rows and not ev.success else None,
            skipped=_not_applicable(ev.not_applicable) if ev.not_applicable else None,
        )
        for ev in expectations.evaluate(con, where.in_duckdb, where.relations)
    ]


def run_in_postgres(conn, ds: Dataset, submission_id: int, configs: list[dict], context: dict[str, str | None]):
    """SQL rules on the submission's table in PostgreSQL (loaded, not attached)."""
    partition = f'clean."{ds.key}_s{int(submission_id)}"'
    return [_run_in_postgres(conn, config, partition, context) for config in configs]


def tables_read(ds: Dataset, submission_id: int, configs: list[dict], context: dict[str, str | None]) -> list[str]:
    """The tables the SQL rules ``configs`` read: the submission's, and those their placeholders name in
    ``context`` (``{raw}``, ``{previous}``, other datasets' partitions)."""
    tables = {f'clean."{ds.key}_s{int(submission_id)}"'}
    for config in configs:
        with contextlib.suppress(ValueError):  # a query that cannot be read: its rule reports it
            names = placeholders(_query_of(config)) - {"batch", "period_start", "period_end"}
            tables |= {context[k] for k in names if context.get(k)}
    return sorted(tables)


def row_count(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute(f"select count(*) from {CLEAN_VIEW}").fetchall()[0][0]


def _query_of(config: dict[str, Any]) -> str:
    kind = CONTEXT_KINDS.get(config["type"])
    return kind.query_for(config["kwargs"]) if kind else config["kwargs"]["unexpected_rows_query"]


def _run_in_postgres(conn, config: dict[str, Any], partition: str, context: dict[str, str | None]) -> RuleResult:
    """An ``unexpected_rows_expectation`` (or a context check written as one), as GX runs it on PostgreSQL."""
    try:
        query = resolve_query(_query_of(config), context)
    except NotApplicable as exc:
        return RuleResult(
            config, _gx_result(config, True, {}), skipped=_not_applicable(exc.placeholder), engine="postgres"
        )
    body = query.format(batch=partition)
    try:
        with conn.cursor() as cur:
            cur.execute("set transaction read only")
            cur.execute(f"select count(*) from ({body}) as substituted_batch_subquery")
            (count,) = cur.fetchone()
            rows: list[dict] = []
            if count:
                cur.execute(f"select * from ({body}) as substituted_batch_subquery limit {MAX_RESULT_RECORDS}")
                names = [d.name for d in cur.description]
                rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        conn.rollback()
    except Exception as exc:  # a statistician's SQL that does not run: a failed expectation with its error
        conn.rollback()
        return RuleResult(config, _gx_result(config, False, {}, _exception(exc)), engine="postgres")
    result = {"observed_value": count, "details": {"unexpected_rows": rows}}
    kind = CONTEXT_KINDS.get(config["type"])
    row_level = kind.row_level if kind else True
    finding = ("postgres", f"select q._file, q._row_no from ({body}) q") if count and row_level else None
    return RuleResult(config, _gx_result(config, count == 0, result), finding, engine="postgres")


def raw_copy(ds: Dataset, submission_id: int) -> sql.Identifier:
    """The table of the values as delivered that a rule run in PostgreSQL on them needs (only for one)."""
    return sql.Identifier("raw", f"{ds.key}_s{int(submission_id)}")


def copy_raw(conn, con: duckdb.DuckDBPyConnection, ds: Dataset, submission_id: int) -> str:
    """The values as delivered into PostgreSQL for the rules there that read them (a GX type the pass does
    not evaluate on the raw table, a SQL rule naming ``{raw}``); dropped with the decision. Returns its SQL
    name."""
    from anbar.engine import load

    table = raw_copy(ds, submission_id)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("drop table if exists {}").format(table))
        cols = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in ds.column_names)
        cur.execute(sql.SQL("create table {} (_file text, _row_no bigint, {})").format(table, cols))
        query = f"select _file, _row_no, {', '.join(ident(c) for c in ds.column_names)} from {RAW_VIEW}"
        load.copy_query(cur, con, query, table, ["_file", "_row_no", *ds.column_names])
    conn.commit()
    return f'raw."{ds.key}_s{int(submission_id)}"'


def run_with_gx(conn, ds: Dataset, submission_id: int, configs: list[dict], con) -> list[RuleResult]:
    """Types the pass does not evaluate: Great Expectations itself, on PostgreSQL (the raw values, if an
    expectation wants them, copied into a table for the time of the run)."""
    from anbar import validation, warehouse

    runs: dict[tuple[str, str], list[dict]] = {}
    for config in configs:
        runs.setdefault((expectation_table(config), "map"), []).append(config)
    if ("raw", "map") in runs:
        copy_raw(conn, con, ds, submission_id)
    # The raw table stays until the findings are recorded (anbar.engine.decide drops it).
    suite_results = validation._run_gx(warehouse.sqlalchemy_url(), ds, submission_id, runs)
    by_id = {c["id"]: c for c in configs}
    out = []
    for suite_result in suite_results:
        for r in suite_result.results:
            res = r.to_json_dict()
            config = by_id.get(res["expectation_config"]["id"])
            if config is None:
                continue
            table = (
                f'clean."{ds.key}_s{int(submission_id)}"'
                if expectation_table(config) == "clean"
                else f'raw."{ds.key}_s{int(submission_id)}"'
            )
            query = None if res.get("success") else validation.failing_rows_sql(config, table)
            out.append(RuleResult(config, res, ("postgres", query) if query else None, engine="gx"))
    return out
