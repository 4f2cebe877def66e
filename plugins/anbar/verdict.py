"""What becomes of a validated delivery: the decision, the offending rows, the scorecard.

After the suite has run (:mod:`anbar.validation`), :func:`decide_and_record`, in one
transaction:

1. adds anbar's own rules to the outcomes (``conversion.types``: rows the loader could not
   convert; ``quality.timeliness``: delivered by the due date; see :mod:`anbar.rules`);
2. writes every row a failed row-level rule found to ``anbar.row_findings`` (file, row number,
   rule), by running the rule's SQL inside PostgreSQL;
3. decides, by the suite's policy (:class:`anbar.suites.SuitePolicy`): under ``file``, any
   blocking failure rejects the delivery; under ``rows``, rows failing a blocking row-level rule
   move to ``raw.rejected_rows`` with the rules they broke and the rest is accepted, unless too
   many rows go or a blocking rule about the whole table failed;
4. flags accepted rows that failed a warning rule (``clean.<partition>._flags``);
5. updates the ledger (rows in = rows loaded + rows rejected holds in every outcome) and
   writes the quality scorecard, one row per principle.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from psycopg2 import sql

from anbar import expected, ledger
from anbar.periods import Period
from anbar.registry import Dataset, Registry
from anbar.rules import CONVERSION_TYPES, TIMELINESS, Rule, rule_for_reason
from anbar.suites import PRINCIPLES, SuitePolicy
from anbar.validation import ExpectationOutcome, SuiteRun, partition_table, summarise

log = logging.getLogger(__name__)


@dataclass
class Verdict:
    status: str  # accepted | rejected
    message: str | None
    rows_loaded: int
    rows_rejected: int
    rows_rejected_by_rules: int  # of rows_rejected, those rejected for a blocking rule (not at load)
    rows_flagged: int
    summary: dict[str, Any]


# -- the tables a suite's context checks read --------------------------------------------------------


def _accepted(cur, org: str, dataset: str) -> list[tuple[str, int, str | None, int | None]]:
    """The accepted version in use of each period (the latest accepted one), latest period first."""
    cur.execute(
        "select distinct on (period) period, submission_id, landing_path, rows_loaded from anbar.submissions "
        "where org = %s and dataset = %s and status = 'accepted' order by period desc, version desc",
        (org, dataset),
    )
    return cur.fetchall()


@dataclass(frozen=True)
class Compared:
    """An accepted delivery a context check compares with."""

    dataset: Dataset
    submission_id: int
    landing_path: str | None


def compared_deliveries(conn, registry: Registry, dataset: Dataset, period: str) -> dict[str, Compared | None]:
    """The accepted deliveries the context checks of ``dataset`` for ``period`` compare with.

    ``previous``: the accepted delivery in use of the latest earlier period of the same dataset that delivered
    rows — a nil return (an accepted delivery of no rows, exchange standard §12.4) is passed over, so that a
    month with nothing to report does not switch the cross-period checks off for the month after it;
    ``<org>__<dataset>``: the latest accepted delivery of that dataset whose period started before this
    period ended; None where there is none."""
    org = registry.org(dataset.org)
    this = Period.parse(period, org.calendar)
    found: dict[str, Compared | None] = {"previous": None}
    with conn.cursor() as cur:
        for label, sid, landing, rows in _accepted(cur, dataset.org, dataset.name):
            if Period.parse(label, org.calendar).start < this.start and rows:
                found["previous"] = Compared(dataset, sid, landing)
                break
        for other in registry.datasets:
            if other.key == dataset.key:
                continue
            other_calendar = registry.org(other.org).calendar
            found[other.key] = None
            for label, sid, landing, _rows in _accepted(cur, other.org, other.name):
                if Period.parse(label, other_calendar).start < this.end:
                    found[other.key] = Compared(other, sid, landing)
                    break
    conn.commit()
    return found


def period_bounds(registry: Registry, dataset: Dataset, period: str) -> tuple[dt.date, dt.date]:
    """The period's first day and the first day after it."""
    this = Period.parse(period, registry.org(dataset.org).calendar)
    return this.start, this.end


def context_tables(conn, registry: Registry, dataset: Dataset, period: str) -> dict[str, str | None]:
    """SQL for the placeholders of context checks (see :mod:`anbar.gx_custom`), for one period: the clean
    partitions of :func:`compared_deliveries`, and ``period_start`` / ``period_end`` as date literals."""
    start, end = period_bounds(registry, dataset, period)
    tables: dict[str, str | None] = {
        "period_start": f"date '{start.isoformat()}'",
        "period_end": f"date '{end.isoformat()}'",
    }
    for key, compared in compared_deliveries(conn, registry, dataset, period).items():
        tables[key] = _clean(compared.dataset, compared.submission_id) if compared else None
    return tables


def _clean(ds: Dataset, submission_id: int) -> str:
    return f'clean."{partition_table(ds, submission_id)}"'


# -- anbar's own rules as outcomes --------------------------------------------------------------------


def builtin_outcome(rule: Rule, severity: str, *, success: bool, **result: Any) -> ExpectationOutcome:
    outcome = ExpectationOutcome(
        rule=rule.rule,
        type="anbar",
        column=None,
        columns=[],
        principle=rule.principle,
        severity=severity,
        description={"fa": rule.fa, "en": rule.en},
        success=success,
        unexpected_count=None,
        unexpected_percent=None,
        observed_value=None,
        samples=[],
        error=None,
        table="raw",
        skipped=None,
        row_level=False,
        rows_failing=None,
    )
    outcome.update(result)  # type: ignore[typeddict-item]
    return outcome


def builtin_outcomes(conn, registry: Registry, dataset: Dataset, sub: ledger.Submission) -> list[ExpectationOutcome]:
    """anbar's own rules for a loaded submission: values convert to their types; delivered on time."""
    return [_conversion(conn, sub, int(sub.rows_manifest or 0)), _timeliness(conn, registry, dataset, sub)]


def _timeliness(conn, registry: Registry, dataset: Dataset, sub: ledger.Submission) -> ExpectationOutcome:
    org = registry.org(dataset.org)
    # The due date of the calendar: a committee-approved extension moves it.
    due = expected.expected_submission(registry, dataset.org, dataset.name, sub.period).due_date
    with conn.cursor() as cur:
        cur.execute("select received_at from anbar.submissions where submission_id = %s", (sub.submission_id,))
        (received_at,) = cur.fetchone()
    received = received_at.astimezone(ZoneInfo(org.timezone)).date()
    days_late = max(0, (received - due).days)
    return builtin_outcome(
        TIMELINESS,
        "warning",
        success=days_late == 0,
        observed_value={"due_date": due.isoformat(), "received": received.isoformat(), "days_late": days_late},
    )


def _conversion(conn, sub: ledger.Submission, rows_in: int) -> ExpectationOutcome:
    with conn.cursor() as cur:
        cur.execute(
            "select file, row_no, reasons from raw.rejected_rows where submission_id = %s "
            "order by file, row_no limit 5",
            (sub.submission_id,),
        )
        samples = [{"_file": f, "_row_no": r, "reasons": reasons} for f, r, reasons in cur.fetchall()]
        cur.execute("select count(*) from raw.rejected_rows where submission_id = %s", (sub.submission_id,))
        (count,) = cur.fetchone()
    # The reasons quote the value, which may be an identifier: keep the column and the complaint only.
    for s in samples:
        s["reasons"] = [_without_value(r) for r in s["reasons"]]
    return builtin_outcome(
        CONVERSION_TYPES,
        "blocking",
        success=count == 0,
        unexpected_count=count,
        unexpected_percent=(100.0 * count / rows_in) if rows_in else 0.0,
        samples=samples,
        row_level=True,
        rows_failing=count,
    )


def _without_value(reason: str) -> str:
    """``birth_date: '1404/13/01' is not a valid jalali date`` -> ``birth_date: is not a valid jalali date``."""
    column, _, rest = reason.partition(": ")
    if rest.startswith("'") and "' " in rest[1:]:
        rest = rest[rest.index("' ", 1) + 2 :]
    return f"{column}: {rest}" if rest else reason


# -- findings -----------------------------------------------------------------------------------------


def _record_findings(cur, submission_id: int, outcomes: list[ExpectationOutcome], row_queries: dict[int, str]) -> None:
    cur.execute("delete from anbar.row_findings where submission_id = %s", (submission_id,))
    for n, query in row_queries.items():
        o = outcomes[n]
        rule = o["rule"] or f"{o['type']}[{n}]"
        cur.execute("savepoint finding")
        try:
            cur.execute(
                sql.SQL(
                    "insert into anbar.row_findings (submission_id, file, row_no, rule, principle, severity) "
                    "select distinct {}, q._file, q._row_no, {}, {}, {} from ({}) q on conflict do nothing"
                ).format(
                    sql.Literal(submission_id),
                    sql.Literal(rule),
                    sql.Literal(o["principle"]),
                    sql.Literal(o["severity"]),
                    sql.SQL(query),  # written by anbar from the suite (validation.failing_rows_sql)
                )
            )
            o["rows_failing"] = cur.rowcount
            cur.execute("release savepoint finding")
        except Exception as exc:  # a statistician's SQL that names no rows: a finding about the table
            cur.execute("rollback to savepoint finding")
            log.warning("rule %s: its rows cannot be named (%s); treated as a finding about the table", rule, exc)
            o["row_level"] = False
    cur.execute(
        "insert into anbar.row_findings (submission_id, file, row_no, rule, principle, severity) "
        "select submission_id, file, row_no, %s, %s, 'blocking' from raw.rejected_rows where submission_id = %s "
        "on conflict do nothing",
        (CONVERSION_TYPES.rule, CONVERSION_TYPES.principle, submission_id),
    )


def _reject_rows(cur, dataset: Dataset, submission_id: int) -> int:
    """Move rows that failed a blocking rule from the clean partition to ``raw.rejected_rows``."""
    clean = sql.Identifier("clean", partition_table(dataset, submission_id))
    raw = sql.Identifier("raw", partition_table(dataset, submission_id))
    cur.execute(
        sql.SQL(
            "with failed as ("
            "  select file, row_no, array_agg(principle || ': ' || rule order by rule) as reasons"
            "  from anbar.row_findings where submission_id = {sid} and severity = 'blocking'"
            "  and rule <> {conversion} group by file, row_no), "
            "moved as (delete from {clean} c using failed f where c._file = f.file and c._row_no = f.row_no "
            "  returning c._file, c._row_no, f.reasons) "
            "insert into raw.rejected_rows (submission_id, file, row_no, reasons, record) "
            "select {sid}, m._file, m._row_no, m.reasons, to_jsonb(r) - '_submission_id' - '_file' - '_row_no' "
            "from moved m join {raw} r on r._file = m._file and r._row_no = m._row_no"
        ).format(sid=sql.Literal(submission_id), conversion=sql.Literal(CONVERSION_TYPES.rule), clean=clean, raw=raw)
    )
    return cur.rowcount


def _flag_rows(cur, dataset: Dataset, submission_id: int) -> int:
    clean = sql.Identifier("clean", partition_table(dataset, submission_id))
    cur.execute(
        sql.SQL(
            "update {clean} c set _flags = f.rules from ("
            "  select file, row_no, array_agg(principle || ': ' || rule order by rule) as rules"
            "  from anbar.row_findings where submission_id = {sid} and severity = 'warning' group by file, row_no) f "
            "where c._file = f.file and c._row_no = f.row_no"
        ).format(clean=clean, sid=sql.Literal(submission_id))
    )
    return cur.rowcount


def _distinct_failing_rows(cur, submission_id: int, severity: str) -> int:
    cur.execute(
        "select count(*) from (select distinct file, row_no from anbar.row_findings "
        "where submission_id = %s and severity = %s) r",
        (submission_id, severity),
    )
    return cur.fetchone()[0]


# -- the decision -----------------------------------------------------------------------------------------


def decide(outcomes: list[ExpectationOutcome], policy: SuitePolicy, rows_in: int, rows_to_reject: int) -> str | None:
    """None to accept, else the reason for rejecting the whole delivery."""
    blocking = [o for o in outcomes if not o["success"] and o["severity"] == "blocking"]
    if not blocking:
        return None
    names = ", ".join(f"{o['principle']}:{o['rule'] or o['type']}" for o in blocking)
    if policy.rejection == "file":
        return f"{len(blocking)} blocking rule(s) failed: {names}"
    table_level = [o for o in blocking if not o["row_level"]]
    if table_level:
        which = ", ".join(f"{o['principle']}:{o['rule'] or o['type']}" for o in table_level)
        return f"blocking rule(s) about the delivery as a whole failed: {which}"
    share = 100.0 * rows_to_reject / rows_in if rows_in else 0.0
    if share > policy.max_rejected_percent:
        return (
            f"{rows_to_reject} of {rows_in} rows ({share:.1f}%) failed blocking rules ({names}); "
            f"more than the {policy.max_rejected_percent:g}% the suite allows to reject row by row"
        )
    return None


def decide_and_record(
    conn, registry: Registry, dataset: Dataset, sub: ledger.Submission, run: SuiteRun, policy: SuitePolicy
) -> Verdict:
    """Decide the submission's outcome from its suite run, and record everything (one transaction)."""
    rows_in = int(sub.rows_manifest or 0)
    builtins = builtin_outcomes(conn, registry, dataset, sub)
    suite_outcomes = list(run.summary["expectations"])
    outcomes = builtins + suite_outcomes
    row_queries = {n + len(builtins): q for n, q in run.row_queries.items()}
    try:
        with conn.cursor() as cur:
            _record_findings(cur, sub.submission_id, outcomes, row_queries)
            to_reject = _distinct_failing_rows(cur, sub.submission_id, "blocking")
            reason = decide(outcomes, policy, rows_in, to_reject)
            moved = flagged = 0
            if reason is None:
                moved = _reject_rows(cur, dataset, sub.submission_id) if policy.rejection == "rows" else 0
                flagged = _flag_rows(cur, dataset, sub.submission_id)
        fields = {k: v for k, v in run.summary.items() if k not in ("expectations", "by_principle", "evaluated")}
        for k in ("success", "blocking_failures", "warnings", "great_expectations_version"):
            fields.pop(k, None)
        summary = summarise(outcomes, **fields)
        summary["policy"] = policy.as_dict()
        rows_rejected_at_load = int(sub.rows_rejected or 0)
        if reason is None:
            rows_rejected = rows_rejected_at_load + moved
            verdict = Verdict("accepted", None, rows_in - rows_rejected, rows_rejected, moved, flagged, summary)
        else:
            verdict = Verdict("rejected", reason, 0, rows_in, 0, 0, summary)
        summary["decision"] = {
            "status": verdict.status,
            "message": reason,
            "rows_in": rows_in,
            "rows_loaded": verdict.rows_loaded,
            "rows_rejected": verdict.rows_rejected,
            "rows_rejected_at_load": rows_rejected_at_load,
            "rows_rejected_by_rules": moved,
            "rows_flagged": flagged,
        }
        _write(conn, sub, verdict)
        score(conn, sub, outcomes, verdict.status)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return verdict


def _write(conn, sub: ledger.Submission, verdict: Verdict) -> None:
    common = {
        "validation_summary": verdict.summary,
        "rows_loaded": verdict.rows_loaded,
        "rows_counted": verdict.rows_loaded + verdict.rows_rejected,
        "commit": False,
    }
    if verdict.status == "accepted":
        validated = ledger.update(
            conn, sub, "validate", "validated", rows_rejected=verdict.rows_rejected, **common
        )  # the balance check holds at every status
        ledger.update(conn, validated, "publish", "accepted", commit=False)
    else:
        ledger.update(
            conn,
            sub,
            "validate",
            "rejected",
            reason="validation",
            message=verdict.message,
            rows_rejected=verdict.rows_rejected,
            **common,
        )


def record(conn, sub: ledger.Submission, verdict: Verdict, outcomes: list[ExpectationOutcome]) -> None:
    """The decision in the ledger and the scorecard (in the caller's transaction)."""
    _write(conn, sub, verdict)
    score(conn, sub, outcomes, verdict.status)


# -- the scorecard -----------------------------------------------------------------------------------------


def score(conn, sub: ledger.Submission, outcomes: list[ExpectationOutcome], status: str) -> None:
    """One scorecard row per principle for the submission (replacing any earlier one)."""
    rows: list[tuple] = []
    with conn.cursor() as cur:
        for principle in PRINCIPLES:
            mine = [o for o in outcomes if o["principle"] == principle and not o.get("skipped")]
            cur.execute(
                "select count(*) from (select distinct file, row_no from anbar.row_findings "
                "where submission_id = %s and principle = %s) r",
                (sub.submission_id, principle),
            )
            (rows_failing,) = cur.fetchone()
            failed = [o for o in mine if not o["success"]]
            blocking = [o for o in failed if o["severity"] == "blocking"]
            rows.append(_score_row(sub, principle, len(mine), len(failed), len(blocking), rows_failing, status))
        _replace_scores(cur, sub.submission_id, rows)


def score_rejection(conn, sub: ledger.Submission, reason: str, rows_failing: int | None = None) -> None:
    """The scorecard of a delivery rejected before validation (or missing): the one rule it broke."""
    broken = rule_for_reason(reason)
    status = "missing" if reason == "missing" else "rejected"
    rows = [
        _score_row(sub, p, 1, 1, 1, rows_failing, status)
        if p == broken.principle
        else _score_row(sub, p, 0, 0, 0, None, status)
        for p in PRINCIPLES
    ]
    with conn.cursor() as cur:
        _replace_scores(cur, sub.submission_id, rows)
    conn.commit()


def _score_row(
    sub: ledger.Submission,
    principle: str,
    evaluated: int,
    failed: int,
    blocking: int,
    rows_failing: int | None,
    status: str,
) -> tuple:
    ident = (sub.submission_id, sub.org, sub.dataset, sub.period, sub.version)
    return (*ident, principle, evaluated, failed, blocking, rows_failing, status)


def _replace_scores(cur, submission_id: int, rows: list[tuple]) -> None:
    cur.execute("delete from anbar.quality_scorecard where submission_id = %s", (submission_id,))
    cur.executemany(
        "insert into anbar.quality_scorecard (submission_id, org, dataset, period, version, principle, "
        "rules_evaluated, rules_failed, blocking_failed, rows_failing, outcome) "
        "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        rows,
    )
