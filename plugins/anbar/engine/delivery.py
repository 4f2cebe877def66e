"""One delivery through the pass, from its landed bytes to the recorded decision.

1. **Read** (:mod:`anbar.engine.read`): every file into DuckDB, values as delivered and converted; the
   columnar rendering of the delivered values is written beside the landed files (:func:`render`).
2. **Evaluate** the suite (:mod:`anbar.engine.validate`): in DuckDB what the pass knows, the rest in
   PostgreSQL; the offending rows of every failed row-level rule go to a findings table in DuckDB.
3. **Load**: one COPY of the converted rows into the submission's own table, unattached. When every rule
   runs in DuckDB it runs *while the rules run* (:class:`EarlyLoad`, on another core, in the decision's
   transaction); otherwise before the rules in PostgreSQL, which read it. The rows that could not be
   converted go, with their delivered values, to ``raw.rejected_rows``; the ledger says ``loaded``.
4. **Decide** (one transaction): the findings to ``anbar.row_findings``; by the suite's policy, accept
   (rows a blocking rule rejects one by one leave the table for ``raw.rejected_rows``, the warning rules'
   flags are written to ``_flags``, the table is attached to the clean table staging reads) or reject
   (the table is dropped: nothing of the delivery was ever visible); the ledger, with rows in = rows
   loaded + rows rejected, and the scorecard.
5. After the decision: the typed snapshot of an accepted delivery, for the checks of later ones, and
   GX's validation results beside the delivery, for Data Docs.

Great Expectations is not imported on this path unless a suite holds a type the pass does not evaluate
(or a suite file this warehouse has not seen before is checked).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import psycopg2
import pyarrow.parquet as pq
from psycopg2 import sql

from anbar import ledger, verdict
from anbar.engine import duck, load, read, snapshot, validate, validator
from anbar.engine.convert import ident
from anbar.engine.duck import literal, scalar
from anbar.engine.read import DELIVERY
from anbar.landing import LandingArchive
from anbar.registry import Dataset, Organisation, Registry
from anbar.rules import CONVERSION_TYPES
from anbar.validation import ExpectationOutcome, _outcome, _skipped, identifier_columns, summarise

log = logging.getLogger(__name__)

RENDERING = "rendering.json"
GX_RESULTS = "validation-results.json"
FINDINGS = "findings"
SAMPLE_SIZE = 5


@dataclass
class Timings:
    """Seconds per sub-step of the pass (printed by the bench, logged by the task), and the process's peak
    resident memory so far at the end of each (MiB, its high-water mark: the step where it grows is the step
    that needed it)."""

    steps: dict[str, float] = field(default_factory=dict)
    peak_rss_mib: dict[str, int] = field(default_factory=dict)
    _last: float = field(default_factory=time.monotonic)

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.steps[name] = round(self.steps.get(name, 0.0) + now - self._last, 3)
        self._last = now
        peak = _peak_rss_mib()
        if peak is not None:
            self.peak_rss_mib[name] = peak


def _peak_rss_mib() -> int | None:
    """This process's resident high-water mark (Linux's VmHWM). Not getrusage's ru_maxrss: across fork and
    exec that keeps the parent's peak, and a task process starts from a large supervisor."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            line = next((x for x in fh if x.startswith("VmHWM:")), None)
    except OSError:
        return None
    return int(line.split()[1]) // 1024 if line else None


@dataclass
class Outcome:
    verdict: verdict.Verdict
    read: read.DeliveryRead
    run: validate.SuiteRun
    timings: Timings


def _tmp(archive: LandingArchive, submission_id: int) -> Path:
    return archive.tmp / f"pass-{int(submission_id)}-{os.getpid()}"


# -- 1. read and render ------------------------------------------------------------------------------------


def render(con: duckdb.DuckDBPyConnection, ds: Dataset, archive: LandingArchive, delivery_dir: Path) -> dict:
    """The values as delivered, one row per record (``_file``, ``_row_no``, every column as text), as a
    Parquet object of the landing archive; ``rendering.json`` beside the delivery names it by sha256.
    Written once: a delivery's rendering never changes."""
    marker = delivery_dir / RENDERING
    if marker.exists():
        return json.loads(marker.read_text())
    cols = ", ".join(f"{ident('r:' + c)} as {ident(c)}" for c in ds.column_names) + ", _read_problem"
    tmp = archive.tmp / f"rendering-{os.getpid()}-{delivery_dir.name[:12]}.parquet"
    con.execute(
        # In the files' order without a sort: DuckDB keeps insertion order, and DELIVERY is in that order.
        f"copy (select _file, _row_no, {cols} from {DELIVERY}) "
        f"to {literal(str(tmp))} (format parquet, compression zstd)"
    )
    digest = hashlib.sha256()
    with open(tmp, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    landed = archive.store_file(tmp, digest.hexdigest())
    info = {
        "format": "parquet",
        "object": str(landed.relative_to(archive.root)),
        "sha256": digest.hexdigest(),
        "rows": pq.ParquetFile(landed).metadata.num_rows,
        "columns": ["_file", "_row_no", *ds.column_names, "_read_problem"],
        "engine": f"duckdb {duckdb.__version__}",
    }
    archive.write_once(delivery_dir, RENDERING, json.dumps(info, indent=2).encode())
    return info


# -- 2. findings in DuckDB ----------------------------------------------------------------------------------


def _rule_name(config: dict[str, Any], index: int) -> str:
    return (config.get("meta") or {}).get("rule") or f"{config['type']}[{index}]"


def _create_findings(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        f"create or replace temporary table {FINDINGS} "
        "(file varchar, row_no bigint, rule varchar, principle varchar, severity varchar, late boolean)"
    )
    con.execute(
        f"insert into {FINDINGS} select _file, _row_no, {literal(CONVERSION_TYPES.rule)}, "
        f"{literal(CONVERSION_TYPES.principle)}, 'blocking', false from {DELIVERY} where _problems is not null"
    )


def _add_findings(
    con: duckdb.DuckDBPyConnection, query: str, rule: str, principle: str, severity: str, late: bool
) -> int:
    """The distinct rows ``query`` names, as findings of one rule; returns how many."""
    before = scalar(con, f"select count(*) from {FINDINGS}")
    con.execute(
        f"insert into {FINDINGS} select distinct q._file, q._row_no, {literal(rule)}, {literal(principle)}, "
        f"{literal(severity)}, {'true' if late else 'false'} from ({query}) q"
    )
    return scalar(con, f"select count(*) from {FINDINGS}") - before


def _postgres_rows(conn, con: duckdb.DuckDBPyConnection, query: str, tmp: Path) -> str:
    """The rows a PostgreSQL query names, as a DuckDB relation (through a CSV file beside the pass)."""
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"rows-{len(list(tmp.iterdir()))}.csv"
    with conn.cursor() as cur, open(path, "wb") as out:
        cur.execute("set transaction read only")
        cur.copy_expert(f"copy (select distinct q._file, q._row_no from ({query}) q) to stdout with (format csv)", out)
    conn.rollback()
    return (
        f"(select * from read_csv({literal(str(path))}, header=false, auto_detect=false, "
        "columns={'_file': 'VARCHAR', '_row_no': 'BIGINT'}))"
    )


def _record_findings(con, conn, results: dict[int, validate.RuleResult], tmp: Path, *, late: bool) -> dict[int, int]:
    """The offending rows of each failed row-level rule (by its index in the suite); rows per rule."""
    rows: dict[int, int] = {}
    for n, res in results.items():
        if res.rows is None:
            continue
        meta = res.config.get("meta") or {}
        rule = _rule_name(res.config, n)
        in_duckdb = res.rows[0] == "duckdb"
        try:
            query = res.rows[1] if in_duckdb else _postgres_rows(conn, con, res.rows[1], tmp)
            rows[n] = _add_findings(con, query, rule, meta["principle"], meta["severity"], late)
        except Exception as exc:  # a query that names no rows: a finding about the table as a whole
            if not in_duckdb:  # (conn may be busy with the early load otherwise: see EarlyLoad)
                conn.rollback()
            log.warning("rule %s: its rows cannot be named (%s); a finding about the table", rule, exc)
            res.rows = None
    return rows


# -- 3. load ------------------------------------------------------------------------------------------------


def _flags_sql(ds: Dataset, submission_id: int, period: str) -> str:
    cols = ", ".join(f"d.{ident(c)}" for c in ds.column_names)
    flags = (
        f"select file, row_no, list(principle || ': ' || rule order by rule) as flags from {FINDINGS} "
        "where severity = 'warning' group by file, row_no"
    )
    return (
        f"select {int(submission_id)} as _submission_id, d._file, d._row_no, {literal(period)} as _period, {cols}, "
        f"case when f.flags is not null then {load.pg_text_array('f.flags')} end as _flags "
        f"from {DELIVERY} d left join ({flags}) f on f.file = d._file and f.row_no = d._row_no "
        "where d._problems is null"
    )


def _load(conn, con, ds: Dataset, sub: ledger.Submission, delivered: read.DeliveryRead) -> ledger.Submission:
    """The converted rows into the submission's own table, the others to raw.rejected_rows, and the ledger's
    word on them: one transaction, so a load killed half way leaves nothing (and its retry starts again)."""
    try:
        with conn.cursor() as cur:
            cur.execute("delete from raw.rejected_rows where submission_id = %s", (sub.submission_id,))
            load.create_partition(cur, ds, sub.submission_id)
            columns = ["_submission_id", "_file", "_row_no", "_period", *ds.column_names, "_flags"]
            part = load.partition(ds, sub.submission_id)
            load.copy_query(cur, con, _flags_sql(ds, sub.submission_id, sub.period), part, columns)
            cur.execute(sql.SQL("analyze {}").format(part))
            if delivered.rows_not_converted:
                not_converted = f"(select *, _problems as _reasons from {DELIVERY} where _problems is not null)"
                load.copy_rejected_rows(cur, con, ds, sub.submission_id, not_converted)
        return ledger.update(
            conn,
            sub,
            "load",
            "loaded",
            rows_counted=delivered.rows_in,
            rows_loaded=delivered.rows_converted,
            rows_rejected=delivered.rows_not_converted,
            message="; ".join(delivered.warnings) or None,
        )
    except BaseException as exc:
        _failed_write(conn, sub, exc, "the load is one transaction")
        raise


def _failed_write(conn, sub: ledger.Submission, exc: BaseException, transaction: str) -> None:
    """A write of the pass failed: its transaction rolled back (the caller raises ``exc``), or, when the
    server went away and rolled it back itself, :class:`~anbar.engine.load.WarehouseConnectionLost` raised."""
    if not conn.closed:
        conn.rollback()
        return
    if isinstance(exc, psycopg2.Error):
        raise load.WarehouseConnectionLost(
            f"the connection to the warehouse was lost during the load of submission {sub.submission_id} "
            f"({type(exc).__name__}: {str(exc).strip()}); {transaction}, so nothing of it was kept: the task's "
            "retry runs the pass again"
        ) from exc


class _InThread:
    """``work()`` in a thread of its own; :meth:`join` waits for it and raises what it raised."""

    def __init__(self, work: Callable[[], object], name: str):
        self.error: BaseException | None = None
        self._work = work
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # raised by join(), in the caller's thread
            self.error = exc

    def join(self, *, raise_error: bool = True) -> None:
        self._thread.join()
        if self.error is not None and raise_error:
            raise self.error


class EarlyLoad:
    """The converted rows COPYed into the submission's table (unattached, without their flags) while the
    rules run in DuckDB: PostgreSQL parses the rows on one core while DuckDB evaluates on the others.

    The COPY is part of the decision's transaction on ``conn`` (nothing is committed before the decision),
    so the caller must not use ``conn`` until :meth:`join`. It reads the delivery through a DuckDB
    connection of its own (a cursor of ``con``: DuckDB runs the two side by side). The decision then only
    removes the rows a blocking rule rejects and writes the warning flags (:func:`_decide`), or drops the
    table with the rest of a rejected delivery."""

    def __init__(self, conn, con: duckdb.DuckDBPyConnection, ds: Dataset, sub: ledger.Submission):
        self._conn, self._sub = conn, sub
        self._duck = con.cursor()

        def copy() -> None:
            with conn.cursor() as cur:
                cur.execute("delete from raw.rejected_rows where submission_id = %s", (sub.submission_id,))
                load.create_partition(cur, ds, sub.submission_id)
                load.copy_typed_rows(cur, self._duck, ds, sub.submission_id, sub.period)

        self._copy = _InThread(copy, f"early-load-{int(sub.submission_id)}")

    def join(self, *, raise_error: bool = True) -> None:
        """Wait for the COPY; if it failed, its transaction is rolled back and its error raised. With
        ``raise_error`` False (the pass is failing for another reason) the caller rolls back."""
        self._copy.join(raise_error=False)
        self._duck.close()
        if self._copy.error is not None and raise_error:
            _failed_write(self._conn, self._sub, self._copy.error, "the load and the decision are one transaction")
            raise self._copy.error


# -- 4. decide ----------------------------------------------------------------------------------------------


def _outcomes(run: validate.SuiteRun, ds: Dataset, rows_failing: dict[int, int]) -> list[ExpectationOutcome]:
    ids = identifier_columns(ds)
    out: list[ExpectationOutcome] = []
    for n, res in enumerate(run.results):
        if res.skipped:
            out.append(_skipped(res.config, res.skipped))
            continue
        outcome = _outcome(res.config, res.gx, ids)
        if outcome["unexpected_percent"] is None and outcome["unexpected_count"] is not None:
            outcome["unexpected_percent"] = (
                100.0 * outcome["unexpected_count"] / run.row_count if run.row_count else 0.0
            )
        if not outcome["success"] and res.rows is not None:
            outcome["row_level"] = True
            outcome["rows_failing"] = rows_failing.get(n)
        out.append(outcome)
    return out


def _copy_findings(cur, con, submission_id: int) -> None:
    query = f"select distinct {int(submission_id)}, file, row_no, rule, principle, severity from {FINDINGS}"
    columns = ["submission_id", "file", "row_no", "rule", "principle", "severity"]
    load.copy_query(cur, con, query, sql.Identifier("anbar", "row_findings"), columns)


def _rule_rejects(con, reject_rows: bool) -> int:
    """Rows a blocking rule rejects one by one (``rule_rejects``: none unless ``reject_rows``)."""
    con.execute(
        "create or replace temporary table rule_rejects as "
        "select file as _file, row_no as _row_no, list(principle || ': ' || rule order by rule) as _reasons "
        f"from {FINDINGS} where {'true' if reject_rows else 'false'} and severity = 'blocking' "
        f"and rule <> {literal(CONVERSION_TYPES.rule)} group by all"
    )
    return scalar(con, "select count(*) from rule_rejects")


def _move_rejected(cur, con, ds: Dataset, submission_id: int) -> None:
    """The rows of ``rule_rejects``: out of the submission's table, into raw.rejected_rows with their values.

    The server's DELETE (a scan of the table) and DuckDB's fetch of the rows' delivered values (a scan of the
    delivery) run side by side: each is seconds for a large delivery, on a core of its own."""
    cur.execute("create temporary table rejected_keys (file text, row_no bigint) on commit drop")
    load.copy_query(
        cur, con, "select _file, _row_no from rule_rejects", sql.Identifier("rejected_keys"), ["file", "row_no"]
    )
    cur.execute("analyze rejected_keys")  # unanalysed, the planner hashes the whole table instead of the keys
    delete = sql.SQL("delete from {} c using rejected_keys k where c._file = k.file and c._row_no = k.row_no").format(
        load.partition(ds, submission_id)
    )
    deleting = _InThread(lambda: cur.execute(delete), "rule-rejects-out")
    try:
        con.execute(
            "create or replace temporary table rule_rejected_rows as "
            f"select d.*, r._reasons from {DELIVERY} d join rule_rejects r using (_file, _row_no)"
        )
    finally:
        deleting.join()
    load.copy_rejected_rows(cur, con, ds, submission_id, "rule_rejected_rows")


def _write_flags(cur, con, ds: Dataset, submission_id: int, *, late_only: bool) -> None:
    """The flags of rows a warning rule found, written again whole, in a table loaded before the decision:
    every flagged row (``late_only`` False: loaded without flags, :class:`EarlyLoad`), or only the rows a
    rule run in PostgreSQL after the load found."""
    late = (
        f"select distinct file, row_no from {FINDINGS} where {'late' if late_only else 'true'} and severity = 'warning'"
    )
    if not scalar(con, f"select count(*) from ({late})"):
        return
    flags = load.pg_text_array("list(f.principle || ': ' || f.rule order by f.rule)")
    query = (
        f"select f.file, f.row_no, {flags} from {FINDINGS} f join ({late}) l using (file, row_no) "
        "where f.severity = 'warning' group by f.file, f.row_no"
    )
    cur.execute("create temporary table new_flags (file text, row_no bigint, flags text[]) on commit drop")
    load.copy_query(cur, con, query, sql.Identifier("new_flags"), ["file", "row_no", "flags"])
    cur.execute("analyze new_flags")
    cur.execute(
        sql.SQL(
            "update {} c set _flags = f.flags from new_flags f where c._file = f.file and c._row_no = f.row_no"
        ).format(load.partition(ds, submission_id))
    )


def _conversion_outcome(con, rows_in: int) -> ExpectationOutcome:
    """anbar's rule conversion.types: every delivered value converts to its type (rows that do not are set
    aside with their reasons; samples without the values, which may be identifiers)."""
    count = scalar(con, f"select count(*) from {DELIVERY} where _problems is not null")
    rows = con.execute(
        f"select _file, _row_no, _problems from {DELIVERY} where _problems is not null order by _file, _row_no "
        f"limit {SAMPLE_SIZE}"
    ).fetchall()
    samples = [
        {"_file": f, "_row_no": r, "reasons": [verdict._without_value(x) for x in reasons]} for f, r, reasons in rows
    ]
    return verdict.builtin_outcome(
        CONVERSION_TYPES,
        "blocking",
        success=count == 0,
        unexpected_count=count,
        unexpected_percent=(100.0 * count / rows_in) if rows_in else 0.0,
        samples=samples,
        row_level=True,
        rows_failing=count,
    )


def _final_rows_sql(ds: Dataset, submission_id: int, period: str) -> str:
    """The rows an accepted delivery puts in the clean table: converted, not rejected by a rule, flagged."""
    rejected = "select 1 from rule_rejects x where x._file = r._file and x._row_no = r._row_no"
    return f"select * from ({_flags_sql(ds, submission_id, period)}) r where not exists ({rejected})"


def _decide(
    conn,
    con,
    registry: Registry,
    ds: Dataset,
    sub: ledger.Submission,
    run: validate.SuiteRun,
    rows_failing: dict[int, int],
    delivered: read.DeliveryRead,
    *,
    loaded: str,
    timings: Timings | None = None,
) -> verdict.Verdict:
    """Accept or reject, and record everything, in one transaction.

    ``loaded`` says where the converted rows are: ``committed`` in the submission's table before the
    rules in PostgreSQL ran (flagged by the rules that ran before them); ``early`` in the table by the
    COPY of this transaction (:class:`EarlyLoad`, no flags); ``no``: not yet, and an accepted delivery's
    rows go in one COPY here. Either way a rejected delivery's rows are never visible in the clean table
    and leave nothing but their rejects."""
    lap = timings.lap if timings is not None else lambda name: None
    preloaded = loaded == "committed"
    rows_in = delivered.rows_in
    outcomes = outcomes_of(con, conn, registry, ds, sub, run, rows_failing, rows_in)
    policy = run.suite.policy
    reason = verdict.decide(outcomes, policy, rows_in, blocking_rows(con))
    moved = _rule_rejects(con, reason is None and policy.rejection == "rows")
    flagged = 0
    if reason is None:
        flagged = scalar(
            con,
            f"select count(*) from (select distinct f.file, f.row_no from {FINDINGS} f join {DELIVERY} d "
            "on d._file = f.file and d._row_no = f.row_no where f.severity = 'warning' and d._problems is null "
            "and not exists (select 1 from rule_rejects x where x._file = f.file and x._row_no = f.row_no))",
        )
    rejected_at_load = delivered.rows_not_converted
    lap("decide: outcomes and counts")
    try:
        with conn.cursor() as cur:
            if not preloaded:
                cur.execute("delete from raw.rejected_rows where submission_id = %s", (sub.submission_id,))
                if rejected_at_load:
                    not_converted = f"(select *, _problems as _reasons from {DELIVERY} where _problems is not null)"
                    load.copy_rejected_rows(cur, con, ds, sub.submission_id, not_converted)
                sub = ledger.update(
                    conn,
                    sub,
                    "load",
                    "loaded",
                    commit=False,
                    rows_counted=delivered.rows_in,
                    rows_loaded=delivered.rows_converted,
                    rows_rejected=rejected_at_load,
                    message="; ".join(delivered.warnings) or None,
                )
            cur.execute("delete from anbar.row_findings where submission_id = %s", (sub.submission_id,))
            _copy_findings(cur, con, sub.submission_id)
            lap("decide: findings")
            if reason is None:
                if loaded != "no":
                    if moved:
                        _move_rejected(cur, con, ds, sub.submission_id)
                        lap("decide: rows rejected by rules out of the table")
                    _write_flags(cur, con, ds, sub.submission_id, late_only=preloaded)
                    lap("decide: warning flags written")
                else:
                    load.create_partition(cur, ds, sub.submission_id)
                    part = load.partition(ds, sub.submission_id)
                    columns = ["_submission_id", "_file", "_row_no", "_period", *ds.column_names, "_flags"]
                    load.copy_query(cur, con, _final_rows_sql(ds, sub.submission_id, sub.period), part, columns)
                    cur.execute(sql.SQL("analyze {}").format(part))
                    if moved:
                        rows = f"(select d.*, r._reasons from {DELIVERY} d join rule_rejects r using (_file, _row_no))"
                        load.copy_rejected_rows(cur, con, ds, sub.submission_id, rows)
                load.attach(cur, ds, sub.submission_id)
            else:
                load.drop(cur, ds, sub.submission_id)
            cur.execute(sql.SQL("drop table if exists {}").format(validate.raw_copy(ds, sub.submission_id)))
        summary = summarise(
            outcomes,
            dataset=ds.key,
            submission_id=int(sub.submission_id),
            table=f"clean.{ds.key}_s{int(sub.submission_id)}",
            suite=run.suite.source,
            suite_sha256=run.suite.sha256,
            row_count=run.row_count,
            duration_seconds=run.seconds,
            policy=policy,
        )
        if reason is None:
            rows_rejected = rejected_at_load + moved
            outcome = verdict.Verdict("accepted", None, rows_in - rows_rejected, rows_rejected, moved, flagged, summary)
        else:
            outcome = verdict.Verdict("rejected", reason, 0, rows_in, 0, 0, summary)
        summary["decision"] = {
            "status": outcome.status,
            "message": reason,
            "rows_in": rows_in,
            "rows_loaded": outcome.rows_loaded,
            "rows_rejected": outcome.rows_rejected,
            "rows_rejected_at_load": rejected_at_load,
            "rows_rejected_by_rules": moved,
            "rows_flagged": flagged,
        }
        verdict.record(conn, sub, outcome, outcomes)
        conn.commit()
    except BaseException as exc:
        _failed_write(conn, sub, exc, "the load and the decision are one transaction")
        raise
    return outcome


# -- the pass ---------------------------------------------------------------------------------------------


def _suite(conn, registry: Registry, ds: Dataset) -> validate.Suite:
    from anbar import settings
    from anbar.suites import generate_suite, suite_path

    path = suite_path(settings.expectations_dir(), ds)
    if path.exists():
        return validate.load(conn, ds, path)
    log.warning("no suite file %s; validating with the suite generated from the registry", path)
    return validate.load(conn, ds, None, generate_suite(ds, registry))


def evaluate(
    con: duckdb.DuckDBPyConnection,
    conn,
    registry: Registry,
    ds: Dataset,
    sub: ledger.Submission,
    suite: validate.Suite,
    tmp: Path,
    on_planned: Callable[[validate.Plan], None] | None = None,
) -> tuple[validate.Plan, dict[int, validate.RuleResult], dict[int, int]]:
    """The suite's expectations the pass evaluates, on the delivery in ``con``, their offending rows in the
    findings table; returns the plan (where the others run), the results and the rows each found, by index.

    ``on_planned`` is called with the plan before the rules run (from then on ``conn`` is not used unless a
    rule's rows are named by a query in PostgreSQL)."""
    compared = verdict.compared_deliveries(conn, registry, ds, sub.period)
    start, end = verdict.period_bounds(registry, ds, sub.period)
    context = snapshot.context_views(con, conn, compared, validate.context_keys(suite), tmp / "snapshots")
    where = validate.plan(con, ds, suite, context, start, end)
    if on_planned is not None:
        on_planned(where)
    _create_findings(con)
    index = {c["id"]: n for n, c in enumerate(suite.expectations)}
    results = {index[r.config["id"]]: r for r in validate.run_in_duckdb(con, where)}
    return where, results, _record_findings(con, conn, results, tmp / "rows", late=False)


def evaluate_in_postgres(
    con: duckdb.DuckDBPyConnection,
    conn,
    registry: Registry,
    ds: Dataset,
    sub: ledger.Submission,
    suite: validate.Suite,
    where: validate.Plan,
    tmp: Path,
) -> tuple[dict[int, validate.RuleResult], dict[int, int]]:
    """The expectations the pass leaves to PostgreSQL, on the submission's table there (loaded, unattached):
    statisticians' SQL (and the queries naming its rows) as ``anbar_validator``, on the tables it reads only."""
    index = {c["id"]: n for n, c in enumerate(suite.expectations)}
    pg_context = verdict.context_tables(conn, registry, ds, sub.period)
    if any("{raw}" in str((c.get("kwargs") or {}).get("unexpected_rows_query", "")) for c in where.in_postgres):
        pg_context["raw"] = validate.copy_raw(conn, con, ds, sub.submission_id)
    late: dict[int, validate.RuleResult] = {}
    rows: dict[int, int] = {}
    if where.in_postgres:
        tables = validate.tables_read(ds, sub.submission_id, where.in_postgres, pg_context)
        with validator.session(tables) as reader:
            late = {
                index[r.config["id"]]: r
                for r in validate.run_in_postgres(reader, ds, sub.submission_id, where.in_postgres, pg_context)
            }
            rows = _record_findings(con, reader, late, tmp / "rows", late=True)
    if where.by_gx:
        by_gx = {index[r.config["id"]]: r for r in validate.run_with_gx(conn, ds, sub.submission_id, where.by_gx, con)}
        rows |= _record_findings(con, conn, by_gx, tmp / "rows", late=True)
        late |= by_gx
    return late, rows


def outcomes_of(
    con,
    conn,
    registry: Registry,
    ds: Dataset,
    sub: ledger.Submission,
    run: validate.SuiteRun,
    rows_failing: dict[int, int],
    rows_in: int,
) -> list[ExpectationOutcome]:
    """anbar's own rules (conversion, timeliness) and the suite's, as the summary and the decision read them."""
    return [
        _conversion_outcome(con, rows_in),
        verdict._timeliness(conn, registry, ds, sub),
        *_outcomes(run, ds, rows_failing),
    ]


def blocking_rows(con) -> int:
    """Distinct rows a blocking rule (conversion.types included) found."""
    return scalar(
        con, f"select count(*) from (select distinct file, row_no from {FINDINGS} where severity = 'blocking')"
    )


def process(
    conn,
    archive: LandingArchive,
    registry: Registry,
    org: Organisation,
    ds: Dataset,
    sub: ledger.Submission,
    landed: read.Landed,
) -> Outcome:
    """The pass for one landed submission (see the module doc). Raises DeliveryRejected for what rejects the
    delivery before its values are checked (the caller records it); anything else leaves the ledger as it
    was, for a rerun to start again."""
    timings = Timings()
    tmp = _tmp(archive, sub.submission_id)
    con = duck.connect(tmp / "spill", registry=registry)
    try:
        delivered = read.read_landed(con, org, ds, landed, tmp / "read")
        timings.lap("read and convert")
        suite = _suite(conn, registry, ds)
        early: list[EarlyLoad] = []

        def load_beside_the_rules(where: validate.Plan) -> None:
            if not (where.in_postgres or where.by_gx) and delivered.rows_converted:
                early.append(EarlyLoad(conn, con, ds, sub))

        try:
            where, results, rows_failing = evaluate(con, conn, registry, ds, sub, suite, tmp, load_beside_the_rules)
        except BaseException:
            for started in early:  # the rules failed: the load waited for, its transaction rolled back
                started.join(raise_error=False)
                if not conn.closed:
                    conn.rollback()
            raise
        timings.lap("validate")
        for started in early:
            started.join()
            timings.lap("the COPY beside the rules, after them")
        preloaded = bool(where.in_postgres or where.by_gx)
        loaded = "committed" if preloaded else "early" if early else "no"
        if preloaded:  # some rules read the rows in PostgreSQL: load them first (unattached)
            sub = _load(conn, con, ds, sub, delivered)
            timings.lap("load for the rules in PostgreSQL")
            late, late_rows = evaluate_in_postgres(con, conn, registry, ds, sub, suite, where, tmp)
            rows_failing |= late_rows
            results |= late
            timings.lap("validate in PostgreSQL")
        run = validate.SuiteRun(suite, [results[n] for n in range(len(suite.expectations))], validate.row_count(con))
        run.seconds = round(sum(v for k, v in timings.steps.items() if k.startswith("validate")), 3)
        outcome = _decide(conn, con, registry, ds, sub, run, rows_failing, delivered, loaded=loaded, timings=timings)
        timings.lap("load, decide and record")
        delivery_dir = Path(sub.landing_path)
        if outcome.status == "accepted":
            snapshot.write(con, ds, delivery_dir, "rule_rejects")
        write_gx_results(delivery_dir, run)
        render(con, ds, archive, delivery_dir)
        timings.lap("snapshot, results and rendering")
        log.info("pass of %s %s v%s: %s", ds.key, sub.period, sub.version, timings.steps)
        return Outcome(outcome, delivered, run, timings)
    finally:
        con.close()
        shutil.rmtree(tmp, ignore_errors=True)


def write_gx_results(delivery_dir: Path, run: validate.SuiteRun) -> Path:
    """GX's validation results of the run (ExpectationSuiteValidationResult as JSON), for Data Docs."""
    from anbar.landing import write_derived

    results = [r.gx for r in run.results if not r.skipped]
    evaluated = len(results)
    successful = sum(1 for r in results if r["success"])
    document = {
        "success": successful == evaluated,
        "suite_name": run.suite.name,
        "results": results,
        "statistics": {
            "evaluated_expectations": evaluated,
            "successful_expectations": successful,
            "unsuccessful_expectations": evaluated - successful,
            "success_percent": 100.0 * successful / evaluated if evaluated else None,
        },
        "meta": {"suite_sha256": run.suite.sha256, "active_batch_definition": {"data_asset_name": run.suite.name}},
    }
    text = json.dumps(document, ensure_ascii=False, default=str).encode()
    return write_derived(delivery_dir / GX_RESULTS, lambda p: p.write_bytes(text))
