"""The pass on a landed file against a bare COPY of the same file, in one process, on one server.

    .venv/bin/python bench/bench_load.py [--rows 1000000] [--encoding utf-8|windows-1256] [--persian-share 0.1]

The extract (the SSO insured-persons month of bench/_common.py) is landed as a supplier would deliver it
(``anbar.ingest.land_files``) and the pass (``anbar.ingest.process``) takes it to its recorded decision;
the month before goes through first, untimed, so the cross-period rules apply. Prints seconds and ratios
(anbar / bare COPY) for the pass and each of its sub-steps, and this process's peak RSS (DuckDB's memory
included, PostgreSQL's not); never asserts. For the whole ingest with SFTP, ``make bench``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import psycopg2
from _common import bare_copy, peak_rss_mib, write_extract

from anbar import ddl, ingest
from anbar.devenv.postgres import LocalPostgres
from anbar.registry import load_registry

AFTER_DECISION = ("snapshot, results and rendering",)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--encoding", default="utf-8", choices=["utf-8", "windows-1256"])
    parser.add_argument("--persian-share", type=float, default=0.1, help="share of workshops writing Persian digits")
    args = parser.parse_args()
    registry = load_registry()
    ds = registry.dataset("sso", "insured_persons")
    with tempfile.TemporaryDirectory(prefix="anbar-bench-") as tmp:
        tmp = Path(tmp)
        pg = LocalPostgres(tmp / "pg").start()
        try:
            pg.create_database("bench")
            os.environ.update({"ANBAR_WAREHOUSE_URL": pg.url("bench"), "ANBAR_LANDING_DIR": str(tmp / "landing")})
            conn = psycopg2.connect(pg.dsn("bench"))
            ddl.bootstrap(conn, registry)
            share = args.persian_share if args.encoding == "utf-8" else 0.0
            files = {}
            for period in ("1404-06", "1404-07"):
                files[period] = tmp / f"insured_persons_{period}.csv"
                write_extract(files[period], args.rows, args.encoding, share, period=period)
            previous = ingest.process(
                ingest.land_files("sso", "insured_persons", "1404-06", [files["1404-06"]], encoding=args.encoding)
            )
            print(f"previous month: {previous.state}")
            bare = bare_copy(conn, ds, files["1404-07"])
            landed = ingest.land_files("sso", "insured_persons", "1404-07", [files["1404-07"]], encoding=args.encoding)
            started = time.perf_counter()
            step = ingest.process(landed)
            total = time.perf_counter() - started
            steps = step.detail["seconds"]
            to_decision = sum(v for k, v in steps.items() if k not in AFTER_DECISION)
            print(f"{args.rows:,} rows, {files['1404-07'].stat().st_size / 1e6:,.0f} MB, {args.encoding}: {step.state}")
            print(f"  bare COPY                          {bare:7.2f} s")
            for name, secs in steps.items():
                note = "(after the decision)" if name in AFTER_DECISION else f"{secs / bare:5.2f}x"
                print(f"  {name:34} {secs:7.2f} s  {note}")
            print(f"  landed file to recorded decision   {to_decision:7.2f} s  {to_decision / bare:5.2f}x bare COPY")
            print(f"  the whole step                     {total:7.2f} s  {total / bare:5.2f}x bare COPY")
            print(f"  peak RSS of this process: {peak_rss_mib():.0f} MiB")
            conn.close()
        finally:
            pg.stop()


if __name__ == "__main__":
    main()
