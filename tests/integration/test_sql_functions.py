"""The SQL conversion functions against a real PostgreSQL 18, in agreement with the Python."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time

import jdatetime
import psycopg2
import pytest

from anbar import ids, normalize, sql_functions
from anbar.devenv.postgres import LocalPostgres

pytestmark = pytest.mark.integration

SEED = 20251023


@pytest.fixture(scope="module")
def own_pg(tmp_path_factory):
    """A server of this module's own (the functions are installed into fresh databases)."""
    server = LocalPostgres(tmp_path_factory.mktemp("sqlfn") / "pg").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def conn(own_pg):
    own_pg.create_database("sqlfn")
    connection = psycopg2.connect(own_pg.dsn("sqlfn"))
    started = time.perf_counter()
    sql_functions.install(connection)
    print(f"\ninstall with calendar load: {time.perf_counter() - started:.3f} s")
    connection.autocommit = True
    yield connection
    connection.close()


def sql_map(conn, function: str, values: list[str | None]) -> list:
    """``function`` applied in SQL to each value, in order."""
    with conn.cursor() as cur:
        cur.execute(
            f"select {function}(v) from unnest(%s::text[]) with ordinality as t(v, i) order by i",
            (values,),
        )
        return [r[0] for r in cur.fetchall()]


def assert_agree(conn, sql_function: str, python_function, values) -> None:
    got = sql_map(conn, sql_function, values)
    mismatches = [(v, g, python_function(v)) for v, g in zip(values, got, strict=True) if g != python_function(v)]
    assert not mismatches, f"{len(mismatches)} disagreements, e.g. (input, sql, python): {mismatches[:5]}"


# -- random inputs ------------------------------------------------------------------------------
ALPHABET = (
    list("abcXYZ019/-:.")
    + list(normalize.PERSIAN_DIGITS + normalize.ARABIC_INDIC_DIGITS + normalize.BENGALI_DIGITS)
    + list("\u064a\u0649\u0643\u06cc\u06a9\u0627\u0628\u0645\u0629\u0624")  # letters, old and new forms
    + [" "] * 6
    + ["\u200c"] * 4
    + list(normalize.WHITESPACE)
    + list(normalize.REMOVED)
    + ["\u200d", "\u0640", "'", "\\", "%", "_", "\u00e9", "\U0001f600"]  # untouched by the rules
)


def random_texts(n: int, rnd: random.Random) -> list[str]:
    return ["".join(rnd.choice(ALPHABET) for _ in range(rnd.randrange(0, 24))) for _ in range(n)]


def random_ids(n: int, rnd: random.Random) -> list[str]:
    out = []
    for _ in range(n):
        kind = rnd.randrange(6)
        if kind == 0:
            value = ids.make_person_id(rnd.randrange(10**9))
        elif kind == 1:
            value = ids.make_legal_entity_id(rnd.randrange(10**10))
        elif kind == 2:
            value = str(rnd.randrange(10 ** rnd.randrange(1, 13)))
        elif kind == 3:
            value = rnd.choice("0123456789") * rnd.choice([10, 11])
        elif kind == 4:  # a valid ID with one digit changed
            value = list(ids.make_person_id(rnd.randrange(10**9)))
            value[rnd.randrange(10)] = rnd.choice("0123456789")
            value = "".join(value)
        else:
            value = "".join(rnd.choice("0123456789 ۰۱x\u00a0\t") for _ in range(rnd.randrange(0, 13)))
        if rnd.random() < 0.2:
            value = rnd.choice([" ", "\u00a0", "\t", "\n", "\u3000"]) + value + rnd.choice(["", " ", "\r\n"])
        if rnd.random() < 0.05:
            value = normalize.PERSIAN_DIGITS[1] + value
        out.append(value)
    return out


def random_dates(n: int, rnd: random.Random, years: range) -> list[str]:
    to_script = [
        str.maketrans("0123456789", digits)
        for digits in ("0123456789", normalize.PERSIAN_DIGITS, normalize.ARABIC_INDIC_DIGITS, normalize.BENGALI_DIGITS)
    ]
    out = []
    for _ in range(n):
        y, m, d = rnd.choice(years), rnd.randrange(0, 14), rnd.randrange(0, 33)
        sep = rnd.choice("/-/-.")
        sep2 = sep if rnd.random() < 0.95 else rnd.choice("/-")
        ms = f"{m:02d}" if rnd.random() < 0.7 else str(m)
        ds = f"{d:02d}" if rnd.random() < 0.7 else str(d)
        text = f"{y}{sep}{ms}{sep2}{ds}"
        if rnd.random() < 0.3:
            text = text.translate(rnd.choice(to_script))
        if rnd.random() < 0.1:
            text = f" {text}\u00a0"
        if rnd.random() < 0.03:
            text = text + "x"
        out.append(text)
    return out


# -- installation ---------------------------------------------------------------------------------
def test_calendar_is_complete_and_matches_jdatetime(conn):
    with conn.cursor() as cur:
        cur.execute(
            "select jalali, jalali_year, jalali_month, jalali_day, gregorian "
            "from anbar.jalali_calendar order by gregorian"
        )
        rows = cur.fetchall()
    first = jdatetime.date(1300, 1, 1).togregorian()
    last = jdatetime.date(1481, 1, 1).togregorian() - dt.timedelta(days=1)
    assert len(rows) == (last - first).days + 1 == 66_109
    assert rows[0][4] == first and rows[-1][4] == last
    for jalali, y, m, d, gregorian in rows:
        assert jalali == f"{y:04d}/{m:02d}/{d:02d}"
        assert jdatetime.date(y, m, d).togregorian() == gregorian
    assert {r[0] for r in rows if r[0].endswith("12/30")} == {
        f"{y}/12/30" for y in range(1300, 1481) if jdatetime.date(y, 1, 1).isleap()
    }


def test_install_is_idempotent_and_fast_when_filled(conn):
    with conn.cursor() as cur:
        cur.execute("select xmin::text from anbar.jalali_calendar limit 1")
        before = cur.fetchone()
    started = time.perf_counter()
    sql_functions.install(conn)  # autocommit connection this time
    elapsed = time.perf_counter() - started
    assert conn.autocommit
    with conn.cursor() as cur:
        cur.execute("select xmin::text from anbar.jalali_calendar limit 1")
        assert cur.fetchone() == before  # not reloaded
        cur.execute("select count(*) from anbar.jalali_calendar")
        assert cur.fetchone()[0] == 66_109
    print(f"\nsecond install: {elapsed:.3f} s")


def test_calendar_load_is_fast(own_pg):
    own_pg.create_database("sqlfn_load")
    connection = psycopg2.connect(own_pg.dsn("sqlfn_load"))
    try:
        sql_functions.install(connection)
        with connection.cursor() as cur:
            cur.execute("truncate anbar.jalali_calendar")
            started = time.perf_counter()
            assert sql_functions._fill_calendar(cur)
            elapsed = time.perf_counter() - started
        connection.commit()
    finally:
        connection.close()
    print(f"\ncalendar load (66,109 rows by COPY): {elapsed:.3f} s")
    assert elapsed < 5  # ~0.2 s on a quiet machine; generous for shared CI


def test_concurrent_installs_do_not_collide(own_pg):
    own_pg.create_database("sqlfn_race")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            connection = psycopg2.connect(own_pg.dsn("sqlfn_race"))
            try:
                sql_functions.install(connection)
            finally:
                connection.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    connection = psycopg2.connect(own_pg.dsn("sqlfn_race"))
    try:
        with connection.cursor() as cur:
            cur.execute("select count(*) from anbar.jalali_calendar")
            assert cur.fetchone()[0] == 66_109
    finally:
        connection.close()


def test_functions_are_immutable_parallel_safe_and_inlined(conn):
    names = [
        "normalize_digits",
        "normalize_text",
        "spreadsheet_safe",
        "is_valid_person_id",
        "is_valid_legal_entity_id",
        "jalali_to_date",
        "gregorian_to_date",
    ]
    with conn.cursor() as cur:
        cur.execute(
            "select p.proname, p.provolatile, p.proparallel, l.lanname from pg_proc p "
            "join pg_namespace n on n.oid = p.pronamespace join pg_language l on l.oid = p.prolang "
            "where n.nspname = 'anbar' and p.proname = any(%s)",
            (names,),
        )
        found = {r[0]: r[1:] for r in cur.fetchall()}
        assert found == dict.fromkeys(names, ("i", "s", "sql"))
        cur.execute("create temp table inline_probe (v text)")
        for name in names:
            cur.execute(f"explain verbose select anbar.{name}(v) from inline_probe")
            plan = "".join(r[0] for r in cur.fetchall())
            assert f"anbar.{name}(" not in plan, f"{name} is not inlined"


# -- agreement with Python -----------------------------------------------------------------------------
def test_normalize_text_agrees_with_python(conn):
    rnd = random.Random(SEED)
    fixed = [
        "",
        "  علي   كاظمي  ",
        "\ufeff\u200fکد\u00a0ملی:  ۰۰۷۶٢٢৯৬۴۵\u200c ",
        "می\u200c\u200cخواهم",
        "\u200c \u200c",
        "a\u200b \u200bb",
        "x\t\n\r\u000b\u000c\u001c\u0085\u2028y",
    ]
    values = fixed + random_texts(20_000, rnd)
    assert_agree(conn, "anbar.normalize_text", normalize.normalize_text, values)
    assert_agree(conn, "anbar.normalize_digits", normalize.normalize_digits, values)
    formulas = ["=cmd|' /C calc'!A0", "+98", "-", "@x", "a=b", " =x", "", "'=x"]
    assert_agree(conn, "anbar.spreadsheet_safe", normalize.spreadsheet_safe, values + formulas)


def test_is_valid_ids_agree_with_python(conn):
    rnd = random.Random(SEED + 1)
    values = random_ids(20_000, rnd)
    assert_agree(conn, "anbar.is_valid_person_id", ids.is_valid_person_id, values)
    assert_agree(conn, "anbar.is_valid_legal_entity_id", ids.is_valid_legal_entity_id, values)
    # the generator must produce both outcomes, or the agreement means little
    assert 0 < sum(map(ids.is_valid_person_id, values)) < len(values)
    assert 0 < sum(map(ids.is_valid_legal_entity_id, values)) < len(values)


def test_dates_agree_with_python(conn):
    rnd = random.Random(SEED + 2)
    jalali = random_dates(20_000, rnd, range(1295, 1486))
    gregorian = random_dates(20_000, rnd, [*range(1895, 2110), 1, 4, 100, 400, 1600, 9999])
    assert_agree(conn, "anbar.jalali_to_date", normalize.jalali_to_date, jalali)
    assert_agree(conn, "anbar.gregorian_to_date", normalize.gregorian_to_date, gregorian)
    assert sum(normalize.jalali_to_date(v) is not None for v in jalali) > 5_000


def test_jalali_to_date_agrees_with_the_table_every_day(conn):
    with conn.cursor() as cur:
        cur.execute(
            "select count(*) from anbar.jalali_calendar where "
            "anbar.jalali_to_date(jalali) is distinct from gregorian "
            "or anbar.jalali_to_date(format('%s-%s-%s', jalali_year, jalali_month, jalali_day)) "
            "   is distinct from gregorian "
            "or anbar.jalali_to_date(translate(jalali, '0123456789', '۰۱۲۳۴۵۶۷۸۹')) is distinct from gregorian"
        )
        assert cur.fetchone()[0] == 0


# -- the domain's examples, in SQL ---------------------------------------------------------------------
def one(conn, expression: str, *args):
    with conn.cursor() as cur:
        cur.execute(f"select {expression}", args)
        return cur.fetchone()[0]


@pytest.mark.parametrize("value", ["0076229645", "1583250689", "0011537027", "11537027"])
def test_sql_valid_person_ids(conn, value):
    assert one(conn, "anbar.is_valid_person_id(%s)", value) is True


@pytest.mark.parametrize("value", ["9999999999", "0076229646", "", "00076229645", "۰۰۷۶۲۲۹۶۴۵"])
def test_sql_invalid_person_ids(conn, value):
    assert one(conn, "anbar.is_valid_person_id(%s)", value) is False


def test_sql_legal_entity_ids(conn):
    assert one(conn, "anbar.is_valid_legal_entity_id(%s)", "10380284790") is True
    assert one(conn, "anbar.is_valid_legal_entity_id(%s)", "10380284791") is False
    assert one(conn, "anbar.is_valid_legal_entity_id(%s)", "10300000090") is False


def test_sql_nulls_stay_null(conn):
    for fn in [
        "normalize_digits",
        "normalize_text",
        "spreadsheet_safe",
        "is_valid_person_id",
        "is_valid_legal_entity_id",
        "jalali_to_date",
        "gregorian_to_date",
    ]:
        assert one(conn, f"anbar.{fn}(null::text)") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1400/02/05", dt.date(2021, 4, 25)),
        ("1404-08-01", dt.date(2025, 10, 23)),
        ("۱۴۰۴/۸/۱", dt.date(2025, 10, 23)),
        ("1403/12/30", dt.date(2025, 3, 20)),
        ("1403/07/31", None),
        ("1404/12/30", None),
        ("1404/1/32", None),
        ("garbage", None),
    ],
)
def test_sql_jalali_to_date(conn, value, expected):
    assert one(conn, "anbar.jalali_to_date(%s)", value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-10-23", dt.date(2025, 10, 23)),
        ("2024/2/29", dt.date(2024, 2, 29)),
        ("2025-02-29", None),
        ("2025-02-30", None),
        ("0000-01-01", None),
        ("10/23/2025", None),
        ("epoch", None),
        ("", None),
    ],
)
def test_sql_gregorian_to_date_never_raises(conn, value, expected):
    assert one(conn, "anbar.gregorian_to_date(%s)", value) == expected


def test_update_with_normalize_text(conn):
    with conn.cursor() as cur:
        cur.execute("create temp table people (name text)")
        cur.execute("insert into people values (%s), (%s), (null)", ("  علي\u00a0كريمي ", "۱۲\u200b"))
        cur.execute("update people set name = anbar.normalize_text(name)")
        cur.execute("select name from people order by name nulls last")
        assert [r[0] for r in cur.fetchall()] == ["12", "علی کریمی", None]
