"""What the backup's fingerprint and verification cost, against a bare pg_dump and pg_restore.

    .venv/bin/python bench/bench_backup.py [--rows 1000000] [--workdir DIR]

A table shaped like a clean SSO insured-persons month (``--rows`` rows) in a database of its own on an
embedded PostgreSQL; then, each timed once on the same server:

- ``pg_dump -Fc`` alone (the baseline) against :func:`anbar.backup.take` (the same dump on an exported
  snapshot, the fingerprint of every table computed meanwhile, the roles, the sha256 of the file);
- the fingerprint alone (one scan of every table), in rows per second;
- ``pg_restore`` into a new database alone against :func:`anbar.backup.verify` (sha256, the same restore
  into a scratch database, the fingerprint again, the scratch database dropped).

Nothing is asserted: ratios are printed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from anbar import backup
from anbar.devenv.postgres import LocalPostgres

TABLE = """
create table persons as
select lpad((i::bigint * 7919 % 9999999999)::text, 10, '0') as national_id,
       'W' || (i % 600000) as workshop_code,
       (1 + i % 2)::smallint as sex,
       date '1960-01-01' + (i % 15000) as birth_date,
       (1 + i % 4)::text as insurance_type,
       (i % 31)::integer as days_worked,
       (100000000 + i % 900000000)::bigint as insured_wage,
       case when i % 5 = 0 then null else date '2000-01-01' + (i % 9000) end as employment_start,
       1::bigint as _submission_id,
       i::bigint as _row_no,
       case when i % 50 = 0 then array['days_worked_plausible'] end as _flags
from generate_series(1, {rows}) as i
"""


def _timed(what):
    start = time.perf_counter()
    out = what()
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, help="server and dumps (default: a temp dir, removed)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="anbar-bench-backup-") as tmp:
        work = args.workdir or Path(tmp)
        pg = LocalPostgres(work / "pg").start()
        try:
            return _bench(pg, work, args.rows)
        finally:
            pg.stop("fast")


def _bench(pg: LocalPostgres, work: Path, rows: int) -> int:
    import psycopg2

    pg.create_database("bench")
    conn = psycopg2.connect(pg.dsn("bench"))
    with conn.cursor() as cur:
        cur.execute(TABLE.format(rows=int(rows)))
        cur.execute("select pg_total_relation_size('persons')")
        (table_bytes,) = cur.fetchone()
    conn.commit()
    conn.close()
    server = backup.Server.from_url(pg.dsn("bench"))
    tools = backup.find_tools(18)
    env = server.env()

    bare_dump, _ = _timed(
        lambda: subprocess.run(
            [tools["pg_dump"], "-Fc", "-w", "-f", str(work / "bare.dump"), "-d", server.conninfo()], env=env, check=True
        )
    )
    take, manifest = _timed(lambda: backup.take(directory=work / "backups", server=server))
    scan, prints = _timed(lambda: backup.database_fingerprint(server))
    pg.create_database("bare_restore")
    target = server.database("bare_restore")
    bare_restore, _ = _timed(
        lambda: subprocess.run(
            [tools["pg_restore"], "--no-owner", "--no-acl", "-w", "-d", target.conninfo(), str(work / "bare.dump")],
            env=env,
            check=True,
        )
    )
    verify, result = _timed(lambda: backup.verify(manifest, server=server.database("postgres")))
    assert result.ok, result.problems
    size = backup.read_manifest(manifest)["size_bytes"]
    version = backup.read_manifest(manifest)["server_version"]
    print(f"{rows:,} rows, table {table_bytes / 2**20:.1f} MiB, dump {size / 2**20:.1f} MiB, PostgreSQL {version}")
    print(f"pg_dump -Fc alone        {bare_dump:7.2f} s")
    print(f"backup.take              {take:7.2f} s   x{take / bare_dump:.2f} of pg_dump")
    print(f"fingerprint alone        {scan:7.2f} s   {rows / scan:,.0f} rows/s ({len(prints)} table)")
    print(f"pg_restore alone         {bare_restore:7.2f} s")
    print(f"backup.verify            {verify:7.2f} s   x{verify / bare_restore:.2f} of pg_restore")
    return 0


if __name__ == "__main__":
    sys.exit(main())
