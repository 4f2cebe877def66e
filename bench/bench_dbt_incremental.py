"""Warehouse build benchmark: the dbt build when month 24 arrives against when month 2 arrives.

    .venv/bin/python bench/bench_dbt_incremental.py [--months 24] [--scale 10]

A scratch PostgreSQL gets the registry's layout and one simulated population (``anbar.sim``,
``--scale`` times the demo's 4,000 persons). Month by month, every registry dataset's extract
is loaded through anbar's loader and accepted in the ledger, as the ingest DAG does. The
warehouse is built with ``dbt build`` (models and tests, the warehouse DAG's work) after
month 1 (the first, full build), after month 2 (timed), after months 3..N-1 (one catch-up
build) and after month N (timed). With every model rebuilding only what the new month
changed, month N costs about what month 2 cost: the ratio is printed, with the slowest
models of each timed build from dbt's run_results.json. Never asserted: a benchmark.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
from _common import load_accepted

from anbar import ddl, pseudonym
from anbar.dbt import dbt_env, run_dbt
from anbar.devenv.postgres import LocalPostgres
from anbar.periods import Period
from anbar.registry import Registry, load_registry
from anbar.sim.defects import SimConfig
from anbar.sim.extracts import extract_rows

BENCH_KEY = "bench-pseudonym-key-not-for-production"
# The last month of each calendar: Jalali suppliers end at Mehr 1405, TVTO six months earlier
# so that its trainees' follow-up month is among the SSO months loaded.
LAST = {"jalali": "1405-07", "gregorian": "2026-04"}


def months(registry: Registry, n: int) -> list[dict[str, Period]]:
    """``n`` months, oldest first: for each, the period of every organisation."""
    out: list[dict[str, Period]] = []
    current = {
        code: Period.parse(LAST[org.calendar.value], org.calendar) for code, org in registry.organisations.items()
    }
    for _ in range(n):
        out.append(dict(current))
        current = {code: p.previous() for code, p in current.items()}
    return out[::-1]


def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def load_month(conn, registry: Registry, population, month: dict[str, Period], tmp: Path) -> int:
    """Every dataset's extract of one month, loaded and accepted; returns the rows loaded."""
    total = 0
    for ds in registry.datasets:
        org = registry.org(ds.org)
        period = month[ds.org]
        rows = extract_rows(population, ds, period, registry=registry)
        path = tmp / f"{ds.key}_{period.label}.csv"
        _write_csv(path, rows, ds.column_names)
        loaded = load_accepted(conn, registry, ds, period.label, path, org.transport.kind, tmp / "engine")
        path.unlink()
        total += loaded
    return total


def build(env: dict[str, str], target_dir: Path) -> tuple[float, list[tuple[str, float]]]:
    """``dbt build``: wall time and each node's time, slowest first."""
    started = time.perf_counter()
    run_dbt(["build", "--quiet", "--target-path", str(target_dir)], env=env, capture=True)
    wall = time.perf_counter() - started
    results = json.loads((target_dir / "run_results.json").read_text(encoding="utf-8"))["results"]
    nodes = sorted(((r["unique_id"].split(".")[-1], r["execution_time"]) for r in results), key=lambda x: -x[1])
    return wall, nodes


def _report(label: str, wall: float, nodes: list[tuple[str, float]], out: Callable[[str], None] = print) -> None:
    out(f"{label}: dbt build {wall:6.1f} s; slowest: " + ", ".join(f"{n} {t:.1f}s" for n, t in nodes[:5]))


def _timed_months(n: int) -> Iterator[tuple[int, str]]:
    for i in range(1, n + 1):
        yield i, ("full" if i == 1 else "timed" if i in (2, n) else "catch-up" if i == n - 1 else "")


def measure(months_n: int = 24, scale: float = 10.0, out: Callable[[str], None] = print) -> dict:
    """Load ``months_n`` months, building after months 1, 2, N-1 and N; returns the timed builds."""
    if months_n < 3:
        raise ValueError("months must be at least 3")
    registry = load_registry()
    population = SimConfig(
        seed=42, persons=round(4000 * scale), workplaces=round(300 * scale), civil_servants=2500
    ).population()
    with tempfile.TemporaryDirectory(prefix="anbar-bench-dbt-") as tmp:
        tmp = Path(tmp)
        pg = LocalPostgres(tmp / "pg").start()
        try:
            pg.create_database("bench")
            conn = psycopg2.connect(pg.dsn("bench"))
            ddl.bootstrap(conn, registry)
            pseudonym.install_key(conn, BENCH_KEY, rotate=True)
            env = dbt_env(
                host="127.0.0.1", port=pg.port, user="anbar_admin", password=pg.password, dbname="bench", target="dev"
            )
            timed: dict[int, float] = {}
            slowest: dict[int, list[tuple[str, float]]] = {}
            loaded_rows = 0
            calendar = months(registry, months_n)
            for i, kind in _timed_months(months_n):
                month = calendar[i - 1]
                t0 = time.perf_counter()
                rows = load_month(conn, registry, population, month, tmp)
                loaded_rows += rows
                load_s = time.perf_counter() - t0
                out(
                    f"month {i:2d} ({', '.join(f'{o} {p.label}' for o, p in month.items())}): "
                    f"{rows:,} rows loaded in {load_s:.1f} s"
                )
                if kind:
                    wall, nodes = build(env, tmp / f"target-{i}")
                    _report(
                        f"  build after month {i} ({kind}, {loaded_rows:,} rows in the warehouse)", wall, nodes, out
                    )
                    if kind == "timed":
                        timed[i], slowest[i] = wall, nodes[:5]
            conn.close()
        finally:
            pg.stop()
    first, last = timed[2], timed[months_n]
    out(
        f"dbt build when month {months_n} arrives / when month 2 arrives: "
        f"{last:.1f} s / {first:.1f} s = {last / first:.2f} (target <= 1.3)"
    )
    return {
        "months": months_n,
        "scale": scale,
        "month_2": first,
        "month_n": last,
        "rows": loaded_rows,
        "slowest": slowest,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--scale", type=float, default=10.0, help="population: this times 4,000 persons")
    args = parser.parse_args()
    if args.months < 3:
        parser.error("--months must be at least 3")
    measure(args.months, args.scale)


if __name__ == "__main__":
    main()
