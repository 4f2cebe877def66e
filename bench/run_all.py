"""``make bench``: the benchmarks of issues 7 and 14 in one run, each printed as a ratio against its target.

    .venv/bin/python bench/run_all.py [--rows 10000000] [--quick] [--naive-rows 1000000]
                                      [--months 24] [--scale 10] [--only ingest,small,parse,dbt] [--workdir DIR]

- ingest (``bench_ingest.py``): a synthetic SSO insured-persons month of ``--rows`` rows through anbar's
  ingest steps, against a bare COPY of the same file and against the naive path (pandas + GX on pandas +
  to_sql, on ``--naive-rows`` rows and compared per row when fewer), each in a process of its own; the
  SFTP receive against OpenSSH's own ``sftp`` client from a real sshd on loopback (when installed);
- small (``bench_small.py``): one SSO month of about 2,000 rows through the ingest DAG with ``dag.test()``:
  the run's wall time and the validate sub-step of its deliveries;
- parse (``bench_parse.py``): Airflow parsing dags/ against a registry of 20 organisations x 5 datasets,
  the real registry as the baseline;
- dbt (``bench_dbt_incremental.py``): the build when month 24 arrives against when month 2 arrives.

``--quick`` is 200,000 rows, a 6-month dbt run at the demo's scale and one parse per file. Nothing is
asserted; a target missed is printed as MISS with by how much. Results: bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import bench_dbt_incremental
import bench_ingest
import bench_parse
import bench_small
from _common import machine


def _verdict(value: float, limit: float, *, at_most: bool = True, strict: bool = False, unit: str = "") -> str:
    ok = (value < limit if strict else value <= limit) if at_most else value >= limit
    if ok:
        return "PASS"
    miss = value - limit if at_most else limit - value
    return f"MISS by {miss:.2f}{unit} ({abs(miss) / limit:.0%})"


def _say(text: str = "") -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the ingest bench's extract")
    parser.add_argument("--naive-rows", type=int, default=1_000_000, help="rows the naive path runs on")
    parser.add_argument("--quick", action="store_true", help="200,000 rows, 6 dbt months at scale 1, one parse")
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--scale", type=float, default=10.0, help="dbt bench population: this times 4,000 persons")
    parser.add_argument("--orgs", type=int, default=20)
    parser.add_argument("--datasets", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3, help="parses per DAG file (the median is kept)")
    parser.add_argument("--only", default="ingest,small,parse,dbt", help="comma-separated: ingest, small, parse, dbt")
    parser.add_argument("--workdir", type=Path, help="where servers, deliveries and logs go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, PostgreSQL's log)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.naive_rows, args.months, args.scale, args.repeat = 200_000, 200_000, 6, 1.0, 1
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    unknown = only - {"ingest", "small", "parse", "dbt"}
    if unknown:
        parser.error(f"--only: unknown {', '.join(sorted(unknown))}")

    started = time.perf_counter()
    rows_out: list[tuple[str, str, str, str]] = []
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    keep = contextlib.nullcontext(tempfile.mkdtemp(prefix="anbar-bench-", dir=args.workdir)) if args.keep else None
    with keep or tempfile.TemporaryDirectory(prefix="anbar-bench-", dir=args.workdir) as tmp:
        workdir = Path(tmp)
        _say(f"anbar bench: {' '.join(sys.argv[1:]) or '(defaults)'}; work directory {workdir}")
        for key, value in machine(workdir=workdir).items():
            _say(f"  {key}: {value}")

        if "ingest" in only:
            _say(f"\n== ingest: {args.rows:,} rows ==")
            r = bench_ingest.measure(args.rows, args.naive_rows, workdir / "ingest", out=_say)
            _say(f"  {r['machine_before']['postgresql']}")
            s = bench_ingest.summarise(r, out=_say)
            pct = f" on {s['naive_rows']:,} rows, per row" if s["naive_rows"] < args.rows else ""
            rows_out += [
                (
                    "anbar, landed file to recorded decision / bare COPY (read, convert, validate, COPY, decide)",
                    f"{s['decision_over_copy']:.2f}x ({s['decision_seconds']:.1f} s / {s['bare_seconds']:.1f} s)",
                    "<= 2x",
                    _verdict(s["decision_over_copy"], 2.0, unit="x"),
                ),
                (
                    "anbar, all the ingest steps / bare COPY (SFTP, snapshot, rendering, Data Docs, mail included)",
                    f"{s['anbar_over_copy']:.2f}x ({s['anbar_seconds']:.1f} s; SFTP transfer alone "
                    f"{s['transfer_seconds']:.1f} s)",
                    "(reference)",
                    "",
                ),
                (
                    "anbar receive step (SFTP, sha256, landing) / OpenSSH sftp client, same file, same sshd",
                    f"{s['receive_over_openssh']:.2f}x "
                    f"({s['receive_seconds']:.1f} s / {s['openssh_client_seconds']:.1f} s)"
                    if s["receive_over_openssh"]
                    else "OpenSSH not installed (apt-get install openssh-server)",
                    "<= 1.5x",
                    _verdict(s["receive_over_openssh"], 1.5, unit="x") if s["receive_over_openssh"] else "NOT MEASURED",
                ),
                (
                    "anbar suites try on the landed month / bare COPY",
                    f"{s['trial_over_copy']:.2f}x ({s['trial_seconds']:.1f} s)",
                    "<= 1.5x",
                    _verdict(s["trial_over_copy"], 1.5, unit="x"),
                ),
                (
                    "peak RSS of the anbar processes (PostgreSQL server not included)",
                    f"{s['anbar_rss_gib']:.2f} GiB",
                    "<= 1 GiB",
                    _verdict(s["anbar_rss_gib"], 1.0, unit=" GiB"),
                ),
                (
                    f"naive path / anbar, time{pct}",
                    f"{s['naive_over_anbar']:.1f}x",
                    ">= 10x",
                    _verdict(s["naive_over_anbar"], 10.0, at_most=False, unit="x"),
                ),
            ]

        if "small" in only:
            _say("\n== a small delivery through the ingest DAG (dag.test()) ==")
            s = bench_small.summarise(bench_small.measure(workdir / "small", out=_say), out=_say)
            rows_out += [
                (
                    f"a {s['rows']:,}-row delivery: the validate sub-step of its process task",
                    f"{s['validate']:.2f} s",
                    "<= 1 s",
                    _verdict(s["validate"], 1.0, unit=" s"),
                ),
                (
                    "one month (two deliveries) through the ingest DAG, wall time in dag.test()",
                    f"{s['wall']:.1f} s",
                    "<= 10 s",
                    _verdict(s["wall"], 10.0, unit=" s"),
                ),
            ]

        if "parse" in only:
            _say(f"\n== DAG parse: {args.orgs} organisations x {args.datasets} datasets ==")
            r = bench_parse.measure(args.orgs, args.datasets, args.repeat, workdir / "parse", out=_say)
            s = bench_parse.summarise(r, out=_say)
            rows_out += [
                (
                    f"DAG parse, {args.orgs}x{args.datasets} registry, slowest file ({s['slowest_file']})",
                    f"{s['slowest_file_seconds']:.2f} s",
                    "< 2 s",
                    _verdict(s["slowest_file_seconds"], 2.0, strict=True, unit=" s"),
                ),
                (
                    f"DAG parse, {args.orgs}x{args.datasets} registry, dags/ in one process",
                    f"{s['folder_seconds']:.2f} s (real registry {s['real_folder_seconds']:.2f} s)",
                    "< 2 s",
                    _verdict(s["folder_seconds"], 2.0, strict=True, unit=" s"),
                ),
            ]

        if "dbt" in only:
            _say(f"\n== dbt: {args.months} months at scale {args.scale:g} ==")
            r = bench_dbt_incremental.measure(args.months, args.scale, out=_say)
            ratio = r["month_n"] / r["month_2"]
            rows_out.append(
                (
                    f"dbt build, month {args.months} / month 2",
                    f"{ratio:.2f} ({r['month_n']:.1f} s / {r['month_2']:.1f} s)",
                    "<= 1.3",
                    _verdict(ratio, 1.3),
                )
            )

        _say(f"\n== targets (issue 7), {time.perf_counter() - started:,.0f} s in all ==")
        _say("| measure | measured | target | result |")
        _say("|---|---|---|---|")
        for row in rows_out:
            _say("| " + " | ".join(row) + " |")
        _say(f"load average at the end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())} (1 / 5 / 15 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
