"""How much do the SQL conversion functions cost per row? Prints timings; asserts nothing.

    .venv/bin/python bench/bench_sql_conversion.py [--rows 1000000] [--state-dir DIR] [--parallel]

Starts a LocalPostgres (under a temporary directory unless --state-dir), installs
``anbar.sql_functions``, fills a table with synthetic supplier values (Persian names with
Arabic letter forms and stray spaces, national IDs in mixed digits, Jalali and Gregorian
dates) and times each function in a ``select count(f(col))`` over the table, relative to a
bare ``count(*)`` and to a bare ``translate()`` of the same column; then the
``update ... set col = anbar.normalize_text(col)`` the brief asks about, against
``update ... set col = translate(col, ...)``. Parallel query is off unless --parallel, so the
numbers are single-core cost per row.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import psycopg2

from anbar import sql_functions
from anbar.devenv.postgres import LocalPostgres
from anbar.ids import make_legal_entity_id, make_person_id
from anbar.normalize import PERSIAN_DIGITS

NAMES = ["علي", "محمد", "زهرا", "فاطمه", "حسين", "مريم", "كاظم", "يوسف", "نرگس", "رضا"]
SEPARATORS = ["  ", " ", "\u00a0", " \u200c"]
FAMILY = ["احمدي", "كريمي", "حسيني", "موسوي", "رضايي", "جعفري", "مي\u200cخواه", "كاظمي"]


def fake_rows(n: int, seed: int = 7):
    rnd = random.Random(seed)
    to_persian = str.maketrans("0123456789", PERSIAN_DIGITS)
    for i in range(n):
        name = rnd.choice(NAMES) + rnd.choice(SEPARATORS) + rnd.choice(FAMILY)
        if rnd.random() < 0.2:
            name = " " + name + "\u200b "
        pid = make_person_id(rnd.randrange(10**9))
        if rnd.random() < 0.3:
            pid = pid.translate(to_persian)
        legal = make_legal_entity_id(rnd.randrange(10**10))
        y, m, d = rnd.randrange(1360, 1405), rnd.randrange(1, 13), rnd.randrange(1, 32)
        jalali = f"{y}/{m:02d}/{d:02d}" if i % 2 else f"{y}-{m}-{d}"
        greg = f"{rnd.randrange(1980, 2026)}-{rnd.randrange(1, 13):02d}-{rnd.randrange(1, 32):02d}"
        yield "\t".join((name, pid, legal, jalali, greg)) + "\n"


class _Lines:
    """File-like object over a generator of lines (for copy_expert)."""

    def __init__(self, lines):
        self._lines, self._buf = lines, ""

    def read(self, size=-1):
        while size < 0 or len(self._buf) < size:
            try:
                self._buf += next(self._lines)
            except StopIteration:
                break
        out, self._buf = (self._buf, "") if size < 0 else (self._buf[:size], self._buf[size:])
        return out

    readline = read


def timed(cur, statement: str, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        cur.execute(statement)
        if cur.description:
            cur.fetchall()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--state-dir", type=Path)
    ap.add_argument("--parallel", action="store_true")
    args = ap.parse_args()

    tmp = None
    state = args.state_dir
    if state is None:
        tmp = tempfile.TemporaryDirectory(prefix="anbar-bench-")
        state = Path(tmp.name) / "pg"
    pg = LocalPostgres(state).start()
    try:
        pg.create_database("bench")
        conn = psycopg2.connect(pg.dsn("bench"))
        t = time.perf_counter()
        sql_functions.install(conn)
        print(f"install (functions + {66_109:,}-day calendar): {time.perf_counter() - t:.3f} s")
        conn.autocommit = True
        cur = conn.cursor()
        if not args.parallel:
            cur.execute("set max_parallel_workers_per_gather = 0")
        cur.execute("drop table if exists bench_src")
        cur.execute(
            "create unlogged table bench_src (name text, person_id text, legal_id text, jalali text, greg text)"
        )
        t = time.perf_counter()
        cur.copy_expert("copy bench_src from stdin", _Lines(fake_rows(args.rows)))
        cur.execute("vacuum analyze bench_src")
        print(f"loaded {args.rows:,} rows in {time.perf_counter() - t:.1f} s\n")

        tr = f"translate({{}}, {sql_functions._TEXT_FROM}, {sql_functions._TEXT_TO})"
        base = timed(cur, "select count(*) from bench_src")
        bare_tr = timed(cur, f"select count({tr.format('name')}) from bench_src")
        cases = {
            "count(*)": base,
            "translate(name) [bare]": bare_tr,
            "anbar.normalize_digits(person_id)": None,
            "anbar.normalize_text(name)": None,
            "anbar.is_valid_person_id(person_id)": None,
            "anbar.is_valid_legal_entity_id(legal_id)": None,
            "anbar.jalali_to_date(jalali)": None,
            "anbar.gregorian_to_date(greg)": None,
            # what a per-row lookup of the calendar table would cost instead of jalali_to_date
            "(select gregorian from anbar.jalali_calendar c where c.jalali = bench_src.jalali)": None,
        }
        for expr in list(cases):
            if cases[expr] is None:
                cases[expr] = timed(cur, f"select count({expr}) from bench_src")
        n = args.rows
        print(f"{'select count(f(col)) over the table':45} {'s':>7} {'ns/row':>8} {'x count':>8} {'x transl':>8}")
        for expr, secs in cases.items():
            print(f"{expr[:45]:45} {secs:7.3f} {secs / n * 1e9:8.0f} {secs / base:8.1f} {secs / bare_tr:8.2f}")

        print("\nupdate bench_upd set name = ... (fresh copy each time, best of 2)")
        results = {}
        for label, expr in [
            ("translate(name)", tr.format("name")),
            ("anbar.normalize_text(name)", "anbar.normalize_text(name)"),
        ]:
            best = float("inf")
            for _ in range(2):
                cur.execute("drop table if exists bench_upd")
                cur.execute("create unlogged table bench_upd as select * from bench_src")
                cur.execute("vacuum analyze bench_upd")
                best = min(best, timed(cur, f"update bench_upd set name = {expr}", repeat=1))
            results[label] = best
            print(f"  {label:43} {best:7.3f} s  {best / n * 1e9:6.0f} ns/row")
        ratio = results["anbar.normalize_text(name)"] / results["translate(name)"]
        print(f"  normalize_text / translate update ratio: {ratio:.2f}")
        cur.execute("drop table if exists bench_upd")
        cur.execute("drop table if exists bench_src")
        conn.close()
    finally:
        if tmp is not None:
            pg.stop()
            tmp.cleanup()


if __name__ == "__main__":
    main()
