"""Validation benchmark: the committed sso insured-persons suite on a 1,000,000-row period, inside PostgreSQL.

    .venv/bin/python bench/bench_validation.py [--rows 1000000] [--bad-share 0.001]

Loads two periods of the same synthetic extract through anbar's loader (the first is accepted,
so the cross-period rules have something to compare with), then runs the second period's
validation step as the DAG does: every rule of the suite on the raw and clean partitions
(Great Expectations, SQL pushed down to the server), the offending rows written to
``anbar.row_findings``, the decision and the scorecard. Printed as ratios against a bare
COPY of the same file in the same process, never asserted. Peak RSS is this process's: a
million rows in a pandas frame would be several hundred MiB; validation inside the server
keeps it flat.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import psycopg2
from _common import bare_copy, peak_rss_mib, write_extract

from anbar import ddl, ledger, verdict
from anbar.devenv.postgres import LocalPostgres
from anbar.loader import FileToLoad, load_delivery
from anbar.registry import load_registry
from anbar.settings import REPO_ROOT
from anbar.suites import SuitePolicy, suite_path
from anbar.validation import run_suite


def _damage(path: Path, share: float) -> int:
    """Give a share of rows a wrong check digit (row-level findings to record); streams the file."""
    rng = random.Random(2)
    bad = 0
    damaged = path.with_suffix(".damaged")
    with open(path, encoding="utf-8") as src, open(damaged, "w", encoding="utf-8") as out:
        out.write(next(src))
        for line in src:
            if rng.random() < share:
                nid, rest = line.split(",", 1)
                line = nid[:-1] + str((int(nid[-1]) + 1) % 10) + "," + rest
                bad += 1
            out.write(line)
    damaged.replace(path)
    return bad


def _load(conn, org, ds, period: str, csv_path: Path, rows: int) -> ledger.Submission:
    with conn.cursor() as cur:
        cur.execute(
            "insert into anbar.submissions (org, dataset, period, version, transport, delivery_sha256, status, "
            "rows_manifest) values ('sso', 'insured_persons', %s, 1, 'sftp', %s, 'landed', %s) "
            "returning submission_id",
            (period, f"bench-{period}", rows),
        )
        (sid,) = cur.fetchone()
    conn.commit()
    result = load_delivery(conn, org, ds, sid, period, [FileToLoad("extract.csv", csv_path, rows)], "utf-8", ",")
    sub = ledger.get(conn, sid)
    return ledger.update(
        conn, sub, "load", "loaded", rows_loaded=result.rows_loaded, rows_rejected=result.rows_rejected
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bad-share", type=float, default=0.001, help="share of rows with a wrong check digit")
    args = parser.parse_args()
    registry = load_registry()
    org = registry.org("sso")
    ds = org.dataset("insured_persons")
    suite = suite_path(REPO_ROOT / "expectations", ds)
    with tempfile.TemporaryDirectory(prefix="anbar-bench-") as tmp:
        tmp = Path(tmp)
        pg = LocalPostgres(tmp / "pg").start()
        pg.create_database("bench")
        conn = psycopg2.connect(pg.dsn("bench"))
        ddl.bootstrap(conn, registry)
        csv_path = tmp / "extract.csv"
        size = write_extract(csv_path, args.rows, "utf-8", bad_share=0.0).bytes

        bare = bare_copy(conn, ds, csv_path)

        previous = _load(conn, org, ds, "1404-07", csv_path, args.rows)
        ledger.update(conn, ledger.update(conn, previous, "validate", "validated"), "publish", "accepted")
        bad = _damage(csv_path, args.bad_share)
        t0 = time.perf_counter()
        sub = _load(conn, org, ds, "1404-08", csv_path, args.rows)
        load = time.perf_counter() - t0

        t0 = time.perf_counter()
        context = verdict.context_tables(conn, registry, ds, sub.period)
        run = run_suite(pg.url("bench"), ds, sub.submission_id, suite, context)
        gx = time.perf_counter() - t0
        t0 = time.perf_counter()
        policy = SuitePolicy(**run.summary["policy"])
        decided = verdict.decide_and_record(conn, registry, ds, sub, run, policy)
        decide = time.perf_counter() - t0
        peak_mib = peak_rss_mib()
        with conn.cursor() as cur:
            cur.execute("select count(*) from anbar.row_findings where submission_id = %s", (sub.submission_id,))
            (findings,) = cur.fetchone()
        conn.close()
        pg.stop()
    s = run.summary
    print(f"extract: {args.rows:,} rows, {size / 1e6:.0f} MB; {bad:,} rows with a wrong check digit")
    print(f"suite: {suite.name}, {len(s['expectations'])} rules ({s['evaluated']} applicable), policy {policy}")
    print(f"bare COPY (text table):                 {bare:7.2f} s")
    print(f"anbar load (decode + COPY + convert):   {load:7.2f} s   {load / bare:5.1f}x bare COPY")
    print(f"suite run in PostgreSQL (GX):           {gx:7.2f} s   {gx / bare:5.1f}x bare COPY")
    print(f"findings + decision + scorecard:        {decide:7.2f} s   {decide / bare:5.1f}x bare COPY")
    print(f"validation in all:                      {gx + decide:7.2f} s   {(gx + decide) / bare:5.1f}x bare COPY")
    print(
        f"outcome: {decided.status} ({decided.message or 'no blocking failure'}); rows loaded {decided.rows_loaded:,}, "
        f"rejected {decided.rows_rejected:,} ({decided.rows_rejected_by_rules:,} by rules), "
        f"flagged {decided.rows_flagged:,}; {findings:,} row findings"
    )
    print(f"peak RSS of the validating process:     {peak_mib:7.0f} MiB")


if __name__ == "__main__":
    main()
