"""Load benchmark: anbar's streaming decode + COPY + SQL conversion against a bare COPY of the same file.

    .venv/bin/python bench/bench_load.py [--rows 1000000] [--encoding utf-8|windows-1256]

Both runs use the same server, the same file and the same process; the result is printed
as ratios (anbar / bare COPY), never asserted. Peak RSS is this process's (the loader's),
which must stay flat whatever the file size.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import psycopg2
from _common import bare_copy, peak_rss_mib, write_extract

from anbar import ddl
from anbar.devenv.postgres import LocalPostgres
from anbar.loader import FileToLoad, load_delivery
from anbar.registry import load_registry


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--encoding", default="utf-8", choices=["utf-8", "windows-1256"])
    parser.add_argument("--persian-share", type=float, default=0.25, help="share of workshops writing Persian digits")
    args = parser.parse_args()
    registry = load_registry()
    org = registry.org("sso")
    ds = org.dataset("insured_persons")
    with tempfile.TemporaryDirectory(prefix="anbar-bench-") as tmp:
        tmp = Path(tmp)
        pg = LocalPostgres(tmp / "pg").start()
        pg.create_database("bench")
        conn = psycopg2.connect(pg.dsn("bench"))
        ddl.bootstrap(conn, registry)
        csv_path = tmp / "extract.csv"
        extract = write_extract(csv_path, args.rows, args.encoding, args.persian_share)
        print(
            f"extract: {args.rows:,} rows, {extract.bytes / 1e6:.0f} MB, {args.encoding}, "
            f"{extract.persian_rows / args.rows:.0%} of rows in Persian digits"
        )

        bare = bare_copy(conn, ds, csv_path)

        with conn.cursor() as cur:
            cur.execute(
                "insert into anbar.submissions (org, dataset, period, version, transport, delivery_sha256, status)"
                " values ('sso', 'insured_persons', '1404-08', 1, 'sftp', 'bench', 'landed') returning submission_id"
            )
            (sid,) = cur.fetchone()
        conn.commit()
        t0 = time.perf_counter()
        result = load_delivery(
            conn, org, ds, sid, "1404-08", [FileToLoad("extract.csv", csv_path, args.rows)], args.encoding, ","
        )
        ours = time.perf_counter() - t0
        peak_mib = peak_rss_mib()
        conn.close()
        pg.stop()
    print(f"bare COPY (text table):              {bare:7.2f} s")
    print(f"anbar decode + COPY + convert:       {ours:7.2f} s   ratio {ours / bare:.2f}x bare COPY")
    print(f"rows loaded {result.rows_loaded:,}, rejected {result.rows_rejected:,}")
    print(f"peak RSS of the loading process:     {peak_mib:7.0f} MiB")


if __name__ == "__main__":
    main()
