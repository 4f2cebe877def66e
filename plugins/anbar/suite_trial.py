"""``anbar suites try``: run a suite as it is on disk against a period already landed, change nothing.

A statistician edits ``expectations/<org>__<dataset>.json`` and wants to see, before
committing, what the new rules find in a real delivery: which rules pass and fail, how many
rows each would reject or flag, and what the decision would be. The trial is the ingest's own
pass (:mod:`anbar.engine.delivery`) without its writes: the delivery is read back from the
columnar rendering of its delivered values beside it in the landing archive (or, for one landed
before renderings existed, from its landed files), converted, and the suite evaluated in DuckDB;
a rule the pass cannot read runs in PostgreSQL on the delivery's own table when it was accepted, as the
ingest runs it: as ``anbar_validator``, granted that table and the ones it compares with for the time of the
trial (:mod:`anbar.engine.validator`). Every other PostgreSQL connection is read-only: the ledger, the findings
and the scorecard stay as they were.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anbar import ledger, settings, verdict, warehouse
from anbar.registry import Dataset, Registry
from anbar.suites import suite_path

# The ledger says a version's values were read: it reached the load step (accepted, or rejected by its rules).
_READ = ("loaded", "validated", "accepted")


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


def _submission(conn, ds: Dataset, period: str, version: int | None) -> ledger.Submission:
    with conn.cursor() as cur:
        cur.execute(
            "select submission_id, status, reason from anbar.submissions "
            "where org = %s and dataset = %s and period = %s and version > 0 "
            "and (%s::int is null or version = %s) order by version desc",
            (ds.org, ds.name, period, version, version),
        )
        candidates = cur.fetchall()
    conn.rollback()
    for sid, status, reason in candidates:
        if status in _READ or (status == "rejected" and reason == "validation"):
            return ledger.get(conn, sid)
    if not candidates:
        which = f"version {version} of " if version else ""
        raise TrialError(f"no delivery of {which}{ds.key} for period {period} in the ledger")
    raise TrialError(
        f"no version of {ds.key} {period} reached the load step (the latest was {candidates[0][1]}): "
        "there are no rows to run the suite on"
    )


def _read(con, archive, registry: Registry, ds: Dataset, sub: ledger.Submission, tmp: Path):
    from anbar.engine import read
    from anbar.engine.delivery import RENDERING
    from anbar.periods import Period

    org = registry.org(ds.org)
    delivery_dir = Path(sub.landing_path)
    if (delivery_dir / RENDERING).exists():
        info = json.loads((delivery_dir / RENDERING).read_text())
        return read.read_rendering(con, org, ds, archive.root / info["object"])
    period = Period.parse(sub.period, org.calendar, ds.period)
    return read.read_landed(con, org, ds, read.landed_delivery(archive, org, ds, period, sub), tmp / "read")


def try_suite(
    registry: Registry, ds: Dataset, period: str, *, suite: Path | None = None, version: int | None = None
) -> Trial:
    from anbar.engine import delivery, duck, validate
    from anbar.landing import LandingArchive

    suite = suite or suite_path(settings.expectations_dir(), ds)
    archive = LandingArchive(settings.landing_dir())
    tmp = archive.tmp / f"try-{uuid.uuid4().hex[:12]}"
    conn = warehouse.connect()
    conn.set_session(readonly=True)
    con = duck.connect(tmp / "spill", registry=registry)
    try:
        sub = _submission(conn, ds, period, version)
        delivered = _read(con, archive, registry, ds, sub, tmp)
        trial_suite = validate.load(conn, ds, suite, record=False)
        where, results, rows_failing = delivery.evaluate(con, conn, registry, ds, sub, trial_suite, tmp)
        if where.in_postgres or where.by_gx:
            if sub.status == "accepted":  # its rows are in its own table: PostgreSQL reads them there
                late, late_rows = delivery.evaluate_in_postgres(con, conn, registry, ds, sub, trial_suite, where, tmp)
                results |= late
                rows_failing |= late_rows
            else:
                index = {c["id"]: n for n, c in enumerate(trial_suite.expectations)}
                for config in where.in_postgres + where.by_gx:
                    why = f"not tried: it runs in PostgreSQL ({where.why[config['id']]}), on accepted deliveries only"
                    results[index[config["id"]]] = validate.RuleResult(
                        config, validate._gx_result(config, True, {}), skipped=why
                    )
        run = validate.SuiteRun(
            trial_suite, [results[n] for n in range(len(trial_suite.expectations))], validate.row_count(con)
        )
        rows_in = delivered.rows_in
        outcomes = delivery.outcomes_of(con, conn, registry, ds, sub, run, rows_failing, rows_in)
        to_reject = delivery.blocking_rows(con)
        conn.rollback()
    finally:
        con.close()
        conn.close()
        shutil.rmtree(tmp, ignore_errors=True)
    from anbar.validation import summarise

    summary = summarise(
        outcomes,
        dataset=ds.key,
        submission_id=int(sub.submission_id),
        table=f"clean.{ds.key}_s{int(sub.submission_id)}",
        suite=trial_suite.source,
        suite_sha256=trial_suite.sha256,
        row_count=run.row_count,
        duration_seconds=run.seconds,
        policy=trial_suite.policy,
    )
    trial = Trial(ds.key, period, sub.version, sub.submission_id, sub.status, str(suite), summary, rows_in)
    builtins = 2  # conversion.types and quality.timeliness come first
    trial.rows_failing = {n + builtins: rows for n, rows in rows_failing.items()}
    trial.rows_failing[0] = delivered.rows_not_converted
    for n, rows in trial.rows_failing.items():
        summary["expectations"][n]["rows_failing"] = rows
    trial.rows_to_reject = to_reject
    reason = verdict.decide(summary["expectations"], trial_suite.policy, rows_in, to_reject)
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
