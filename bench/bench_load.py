"""Load benchmark: anbar's streaming decode + COPY + SQL conversion against a bare COPY of the same file.

    .venv/bin/python bench/bench_load.py [--rows 1000000] [--encoding utf-8|windows-1256]

Both runs use the same server, the same file and the same process; the result is printed
as ratios (anbar / bare COPY), never asserted. Peak RSS is this process's (the loader's),
which must stay flat whatever the file size.
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from pathlib import Path

import psycopg2

from anbar import ddl
from anbar.devenv.postgres import LocalPostgres
from anbar.ids import make_person_id
from anbar.loader import FileToLoad, load_delivery
from anbar.registry import load_registry

PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


def write_extract(path: Path, rows: int, encoding: str, persian_share: float = 0.25) -> int:
    rng = random.Random(1)
    with open(path, "w", encoding="cp1256" if encoding == "windows-1256" else "utf-8", newline="") as f:
        f.write("national_id,workshop_code,sex,birth_date,insurance_type,days_worked,insured_wage,employment_start\n")
        for i in range(rows):
            birth = f"13{rng.randint(40, 85)}/{rng.randint(1, 12):02d}/{rng.randint(1, 29):02d}"
            days = str(rng.randint(1, 31))
            if encoding == "utf-8" and rng.random() < persian_share:  # rows written with Persian digits
                birth, days = birth.translate(PERSIAN), days.translate(PERSIAN)
            f.write(
                f"{make_person_id(i * 7 + 13)},{1000000 + i % 50000},{1 + i % 2},{birth},{1 + i % 5},{days},"
                f"{rng.randint(100, 600) * 1_000_000},1399/0{1 + i % 9}/1{i % 10}\n"
            )
    return path.stat().st_size


def bare_copy(conn, ds, csv_path: Path) -> float:
    """Seconds to COPY the extract into a table of text columns: the baseline every ratio is against."""
    with conn.cursor() as cur:
        cur.execute(f"create table bare ({', '.join(f'{c} text' for c in ds.column_names)})")
    conn.commit()
    t0 = time.perf_counter()
    with conn.cursor() as cur, open(csv_path, "rb") as fh:
        cur.copy_expert("copy bare from stdin with (format csv, header true)", fh, size=1 << 20)
    conn.commit()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--encoding", default="utf-8", choices=["utf-8", "windows-1256"])
    parser.add_argument("--persian-share", type=float, default=0.25, help="share of rows with Persian digits")
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
        size = write_extract(csv_path, args.rows, args.encoding, args.persian_share)
        print(
            f"extract: {args.rows:,} rows, {size / 1e6:.0f} MB, {args.encoding}, "
            f"{args.persian_share:.0%} of rows in Persian digits"
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
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        conn.close()
        pg.stop()
    print(f"bare COPY (text table):              {bare:7.2f} s")
    print(f"anbar decode + COPY + convert:       {ours:7.2f} s   ratio {ours / bare:.2f}x bare COPY")
    print(f"rows loaded {result.rows_loaded:,}, rejected {result.rows_rejected:,}")
    print(f"peak RSS of the loading process:     {peak_mib:7.0f} MiB")


if __name__ == "__main__":
    main()
