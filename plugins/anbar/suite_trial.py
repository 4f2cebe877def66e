"""``anbar suites try``: run a suite as it is on disk against a period already landed, change nothing.

A statistician edits ``expectations/<org>__<dataset>.json`` and wants to see, before
committing, what the new rules find in a real delivery: which rules pass and fail, how many
rows each would reject or flag, and what the decision would be. The delivery's raw and clean
partitions are kept for every version that reached the load step (accepted or not), so the
suite can run on them again. Every connection is read-only: the ledger, the findings and the
scorecard stay as they were.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from anbar import ledger, settings, verdict, warehouse
from anbar.registry import Dataset, Registry
from anbar.suites import SuitePolicy, suite_path
from anbar.validation import partition_table, run_suite

READ_ONLY = "-c default_transaction_read_only=on"


class TrialError(RuntimeError):
    """Nothing to try the suite on (no such period, or no version reached the load step)."""


@dataclass
class Trial:
    dataset: str
    period: str
    version: int
    submission_id: int
    recorded_status: str
    suite: str
    summary: dict[str, Any]
    rows_in: int
    rows_failing: dict[int, int] = field(default_factory=dict)  # expectation index -> distinct rows
    rows_to_reject: int = 0
    would_be: str = "accepted"
    because: str | None = None


def _read_only_url(url: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(READ_ONLY)}"


def _submission(conn, ds: Dataset, period: str, version: int | None) -> tuple[int, int, str, int]:
    with conn.cursor() as cur:
        cur.execute(
            "select submission_id, version, status, coalesce(rows_manifest, 0) from anbar.submissions "
            "where org = %s and dataset = %s and period = %s and version > 0 "
            "and (%s::int is null or version = %s) order by version desc",
            (ds.org, ds.name, period, version, version),
        )
        candidates = cur.fetchall()
        for sid, ver, status, rows in candidates:
            cur.execute("select to_regclass(%s)", (f'clean."{partition_table(ds, sid)}"',))
            if cur.fetchone()[0] is not None:
                return sid, ver, status, rows
    if not candidates:
        which = f"version {version} of " if version else ""
        raise TrialError(f"no delivery of {which}{ds.key} for period {period} in the ledger")
    raise TrialError(
        f"no version of {ds.key} {period} reached the load step (the latest was {candidates[0][2]}): "
        "there are no rows to run the suite on"
    )


def try_suite(
    registry: Registry, ds: Dataset, period: str, *, suite: Path | None = None, version: int | None = None
) -> Trial:
    suite = suite or suite_path(settings.expectations_dir(), ds)
    conn = warehouse.connect()
    try:
        conn.set_session(readonly=True)
        sid, ver, status, rows_in = _submission(conn, ds, period, version)
        context = verdict.context_tables(conn, registry, ds, period)
        run = run_suite(_read_only_url(warehouse.sqlalchemy_url()), ds, sid, suite, context)
        builtins = verdict.builtin_outcomes(conn, registry, ds, ledger.get(conn, sid))
        run.summary["expectations"] = builtins + run.summary["expectations"]
        run.row_queries = {n + len(builtins): q for n, q in run.row_queries.items()}
        trial = Trial(ds.key, period, ver, sid, status, str(suite), run.summary, rows_in)
        blocking = []
        with conn.cursor() as cur:
            for n, query in run.row_queries.items():
                cur.execute(f"select count(*) from (select distinct _file, _row_no from ({query}) q) d")
                trial.rows_failing[n] = cur.fetchone()[0]
                run.summary["expectations"][n]["rows_failing"] = trial.rows_failing[n]
                if run.summary["expectations"][n]["severity"] == "blocking":
                    blocking.append(query)
            if blocking:
                union = " union ".join(f"select _file, _row_no from ({q}) q{i}" for i, q in enumerate(blocking))
                cur.execute(f"select count(*) from ({union}) u")
                trial.rows_to_reject = cur.fetchone()[0]
        conn.rollback()
    finally:
        conn.close()
    policy = SuitePolicy(**run.summary["policy"]) if run.summary.get("policy") else SuitePolicy()
    rejected_at_load = run.summary["expectations"][0]["rows_failing"] or 0  # conversion.types
    reason = verdict.decide(run.summary["expectations"], policy, rows_in, trial.rows_to_reject + rejected_at_load)
    trial.would_be = "rejected" if reason else "accepted"
    trial.because = reason
    return trial


def format_trial(trial: Trial) -> str:
    s = trial.summary
    lines = [
        f"{trial.dataset} {trial.period} v{trial.version} (submission {trial.submission_id}, "
        f"recorded {trial.recorded_status}), {s['row_count']} rows, suite {trial.suite}",
        "",
        f"{'principle':<12} {'result':<8} {'severity':<9} {'rows':>7}  rule",
    ]
    for e in s["expectations"]:
        result = "n/a" if e.get("skipped") else ("pass" if e["success"] else "FAIL")
        rows = e.get("rows_failing") if e.get("rows_failing") is not None else e.get("unexpected_count")
        lines.append(
            f"{e['principle']:<12} {result:<8} {e['severity']:<9} {'' if rows is None else rows:>7}  "
            f"{e['rule'] or e['type']}"
        )
        if e.get("error"):
            lines.append(f"{'':<40}error: {e['error']}")
        elif e.get("skipped"):
            lines.append(f"{'':<40}{e['skipped']}")
        for sample in (e.get("samples") or [])[:3] if not e["success"] else []:
            lines.append(f"{'':<40}e.g. {json.dumps(sample, ensure_ascii=False, default=str)}")
    lines += [
        "",
        "by principle: "
        + ", ".join(f"{p} {c['failed']}/{c['evaluated']} failed" for p, c in s["by_principle"].items()),
        f"policy: {s.get('policy')}",
        f"would be {trial.would_be.upper()}"
        + (f": {trial.because}" if trial.because else "")
        + f" (recorded: {trial.recorded_status}); nothing was written",
    ]
    return "\n".join(lines)
