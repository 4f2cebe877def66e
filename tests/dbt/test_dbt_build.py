"""(b) ``dbt build`` against a real PostgreSQL 18 with superseded, rejected and in-flight
deliveries in the ledger: the warehouse uses only the latest accepted version per period."""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal

import psycopg2
import pytest
from anbar_dbt_testdata import MODELS, PSEUDONYM_KEY, _person, person_key

from anbar.dbt import PROJECT_DIR, run_dbt

pytestmark = pytest.mark.integration

SCHEMAS = ("staging", "intermediate", "core", "marts", "catalog")


@pytest.fixture(scope="module")
def built(warehouse, wh_env, dbt_artifacts):
    started = time.monotonic()
    proc = run_dbt(
        ["build", "--target-path", str(dbt_artifacts), "--log-path", str(dbt_artifacts / "logs")],
        env=wh_env,
        check=False,
        capture=True,
    )
    print(f"\n[timing] dbt build in {time.monotonic() - started:.1f}s")
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
    assert "ERROR=0" in proc.stdout and "WARN=0" in proc.stdout, proc.stdout[-3000:]
    return warehouse


@pytest.fixture()
def cur(local_pg, built):
    conn = psycopg2.connect(local_pg.dsn("dbt_wh"))
    try:
        with conn.cursor() as c:
            yield c
    finally:
        conn.close()


def _dicts(cur, query, params=None) -> list[dict]:
    cur.execute(query, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_mart_equals_python_computation(built, cur):
    expected = built.expected_mart()
    rows = _dicts(cur, "select * from core.fct_insured_employment_monthly")
    got = {(r["period"], r["province_code"], r["sex"]): r for r in rows}
    assert set(got) == set(expected)
    for key, want in expected.items():
        row = got[key]
        for col, value in want.items():
            assert row[col] == value, f"{key} {col}: {row[col]} != {value}"
        assert row["is_small_cell"] == (want["insured_persons"] < 5)
    # The workshop missing from the 1405-07 workplaces delivery is reported, not dropped.
    assert any(k[0] == "1405-07" and k[1] == "_U" for k in got)
    tehran = got[("1405-06", "23", "1")]
    assert (tehran["province_name_en"], tehran["sex_label_en"]) == ("Tehran", "Male")


def test_superseded_rejected_and_inflight_versions_are_not_used(built, cur):
    used = {d.period: d for d in built.used("sso", "insured_persons")}
    assert used["1405-07"].version == 2
    cur.execute(
        "select period, array_agg(distinct submission_version), sum(insured_wage_rials), count(*)"
        " from staging.stg_sso__insured_persons group by period order by period"
    )
    rows = {r[0]: r[1:] for r in cur.fetchall()}
    for period, d in used.items():
        versions, wage, n = rows[period]
        assert versions == [d.version]
        assert (int(wage), n) == (sum(r["insured_wage"] for r in d.rows), len(d.rows))
    cur.execute("select period, sum(total_insured_wage_rials) from core.fct_insured_employment_monthly group by period")
    wages = dict(cur.fetchall())
    superseded = next(d for d in built.deliveries if d.period == "1405-07" and d.version == 1)
    assert wages["1405-07"] == sum(r["insured_wage"] for r in used["1405-07"].rows)
    assert wages["1405-07"] != sum(r["insured_wage"] for r in superseded.rows)


def test_average_wage_equals_python(built, cur):
    used = built.used("sso", "insured_persons")
    cur.execute(
        "select period, sum(total_insured_wage_rials) / sum(insured_jobs)"
        " from core.fct_insured_employment_monthly group by period"
    )
    overall = dict(cur.fetchall())
    for d in used:
        py = Decimal(sum(r["insured_wage"] for r in d.rows)) / Decimal(len(d.rows))
        assert abs(overall[d.period] - py) < Decimal("0.000001")


def test_dim_person(built, cur):
    expected = built.expected_persons()
    rows = {r["person_key"]: r for r in _dicts(cur, "select * from core.dim_person")}
    assert set(rows) == set(expected)
    for key, want in expected.items():
        row = rows[key]
        assert row["is_sso_insured"] == bool(want["sso"])
        assert row["is_tvto_trainee"] == bool(want["tvto"])
        assert row["datasets_seen"] == bool(want["sso"]) + bool(want["tvto"])
        assert row["is_linked"] == (row["datasets_seen"] > 1)
    # Persons only in superseded (45), rejected (40-42, 46, 47) or in-flight (43) deliveries.
    for i in (40, 41, 42, 43, 45, 46, 47):
        assert person_key(_person(i)) not in rows, i
    # Person 25 is insured (SSO's latest month is after the TVTO course month, so its sex wins)
    # and a trainee whose TVTO record disagrees.
    p25 = rows[person_key(_person(25))]
    assert p25["is_sso_insured"] and p25["is_tvto_trainee"] and p25["has_conflicting_demographics"]
    assert p25["sex"] == ("1" if 25 % 3 else "2")
    assert sum(r["is_sso_insured"] and r["is_tvto_trainee"] for r in rows.values()) == 11  # persons 20..30


def test_period_bounds(built, cur):
    cur.execute("select distinct period, period_start, period_end from staging.stg_sso__insured_persons")
    assert sorted(cur.fetchall()) == [
        ("1405-06", dt.date(2026, 8, 23), dt.date(2026, 9, 23)),
        ("1405-07", dt.date(2026, 9, 23), dt.date(2026, 10, 23)),
    ]
    cur.execute("select distinct period, period_start, period_end from staging.stg_tvto__trainees")
    assert cur.fetchall() == [("2026-09", dt.date(2026, 9, 1), dt.date(2026, 10, 1))]


def test_person_key_is_the_keyed_sha256(built, cur):
    cur.execute("select person_key from staging.stg_tvto__trainees")
    keys = {r[0] for r in cur.fetchall()}
    tvto = built.used("tvto", "trainees")[0]
    assert keys == {person_key(r["national_id"]) for r in tvto.rows}


def test_no_national_id_anywhere_in_the_models(built, cur):
    cur.execute(
        "select table_schema, table_name, column_name from information_schema.columns"
        " where table_schema = any(%s) and column_name ilike %s",
        (list(SCHEMAS), "%national%"),
    )
    assert cur.fetchall() == []
    ids = built.all_national_ids()
    cur.execute(
        "select table_schema, table_name from information_schema.tables where table_schema = any(%s)",
        (list(SCHEMAS),),
    )
    relations = cur.fetchall()
    assert len(relations) == len(MODELS)  # every model is read below
    for schema, table in relations:
        cur.execute(f'select row_to_json(t)::text from "{schema}"."{table}" as t')
        for (text,) in cur.fetchall():
            values = set(json.loads(text).values())
            assert not values & ids, f"{schema}.{table} holds a national ID"


def test_the_pseudonym_key_is_nowhere_but_in_its_locked_table(built, cur, dbt_artifacts, local_pg):
    # not in a view, nor a function body, nor anything dbt compiled or logged
    cur.execute("select viewname from pg_views where definition like %s", (f"%{PSEUDONYM_KEY}%",))
    assert cur.fetchall() == []
    cur.execute("select proname from pg_proc where prosrc like %s", (f"%{PSEUDONYM_KEY}%",))
    assert cur.fetchall() == []
    for path in dbt_artifacts.rglob("*"):
        if path.is_file():
            assert PSEUDONYM_KEY not in path.read_text(encoding="utf-8", errors="replace"), path
    # A role that may read the models cannot read the key, and still gets person keys.
    cur.execute("drop role if exists anbar_test_reader")
    cur.execute("create role anbar_test_reader")
    cur.execute("grant usage on schema anbar to anbar_test_reader")
    cur.connection.commit()
    cur.execute("set role anbar_test_reader")
    try:
        cur.execute("select anbar.pseudonymise('0076229645')")
        assert cur.fetchone()[0] == person_key("0076229645")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("select * from anbar_secret.pseudonym_key")
    finally:
        cur.connection.rollback()
        cur.execute("reset role")
        cur.execute("drop owned by anbar_test_reader")
        cur.execute("drop role anbar_test_reader")
        cur.connection.commit()


def test_documented_columns_are_the_built_columns(built, cur, dbt_artifacts):
    manifest = json.loads((dbt_artifacts / "manifest.json").read_text(encoding="utf-8"))
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model":
            continue
        cur.execute(
            "select column_name from information_schema.columns"
            " where table_schema = %s and table_name = %s order by ordinal_position",
            (node["schema"], node["name"]),
        )
        built_cols = [r[0] for r in cur.fetchall()]
        assert sorted(built_cols) == sorted(node["columns"]), node["name"]


def test_a_warehouse_without_the_pseudonym_key_stops_the_run_at_once(built, wh_env, dbt_artifacts, local_pg, registry):
    from anbar import ddl, pseudonym

    local_pg.create_database("dbt_wh_nokey")
    conn = psycopg2.connect(local_pg.dsn("dbt_wh_nokey"))
    try:
        ddl._bootstrap_locked(conn, registry)
        pseudonym.install_functions(conn)  # the functions, no key
    finally:
        conn.close()
    env = {**wh_env, "ANBAR_WH_DBNAME": "dbt_wh_nokey"}
    proc = run_dbt(
        [
            "run",
            "--select",
            "stg_ref__code_list_values",
            "--target-path",
            str(dbt_artifacts / "nokey"),
            "--log-path",
            str(dbt_artifacts / "logs"),
        ],
        env=env,
        check=False,
        capture=True,
    )
    assert proc.returncode != 0
    assert "the pseudonym key is not installed in this warehouse" in proc.stdout + proc.stderr
    assert PROJECT_DIR.is_dir()


# -- disclosure control ----------------------------------------------------------------------------


def _cells(cur, rows, scope="true"):
    cur.execute("drop table if exists pg_temp.cells")
    cur.execute(
        "create temp table cells (period text, province_code text, sex text, persons integer, "
        "avg_wage numeric, is_suppressed boolean default false)"
    )
    cur.executemany(
        "insert into cells (period, province_code, sex, persons, avg_wage) values (%s, %s, %s, %s, %s)", rows
    )
    cur.execute(
        "select anbar.apply_disclosure_control('pg_temp.cells'::regclass, array['period'], "
        "array['province_code', 'sex'], 'persons', array['avg_wage'], 5, %s)",
        (scope,),
    )
    suppressed = cur.fetchone()[0]
    result = {(p, prov, s): (n, w, hidden) for p, prov, s, n, w, hidden in _rows(cur, "select * from cells")}
    return suppressed, result


def _rows(cur, query):
    cur.execute(query)
    return cur.fetchall()


def test_a_small_cell_and_the_cells_that_would_reveal_it_are_hidden(built, cur):
    rows = [
        ("1404-07", "01", "1", 3, 10.0),  # small: hidden
        ("1404-07", "01", "2", 40, 11.0),  # the only other sex of province 01: hidden too
        ("1404-07", "02", "1", 50, 12.0),
        ("1404-07", "02", "2", 60, 13.0),
        ("1404-07", "03", "1", 20, 14.0),  # smallest other province of sex 1: hidden with 01/1
        ("1404-07", "03", "2", 70, 15.0),
        ("1404-07", "_T", "1", 73, 12.0),
        ("1404-07", "_T", "2", 170, 13.0),
        ("1404-07", "01", "_T", 43, 10.9),
        ("1404-07", "02", "_T", 110, 12.5),
        ("1404-07", "03", "_T", 90, 14.8),
        ("1404-07", "_T", "_T", 243, 12.7),
    ]
    _, cells = _cells(cur, rows)
    hidden = {k for k, (_, _, h) in cells.items() if h}
    assert ("1404-07", "01", "1") in hidden
    for key, (n, w, h) in cells.items():
        if h:
            assert n is None and w is None, key  # nothing of a hidden cell is published
    # complementary: no group differing in one dimension has exactly one hidden cell
    for dim in (1, 2):
        groups = {}
        for key, (_, _, h) in cells.items():
            if key[dim] == "_T":
                continue
            group = tuple(v for i, v in enumerate(key) if i != dim)
            groups.setdefault(group, []).append(h)
        assert all(sum(g) != 1 for g in groups.values() if len(g) > 1), groups
    assert ("1404-07", "02", "2") not in hidden  # no more than needed


def test_suppression_stays_within_a_period_and_its_scope(built, cur):
    """Months are never summed, so a hidden cell of one month hides nothing in another; and an
    incremental build protects only the months it rebuilt (the others were protected before)."""
    month = [("01", "1", 3), ("01", "2", 40), ("02", "1", 50), ("02", "2", 60), ("_T", "1", 53), ("_T", "2", 100)]
    month += [("01", "_T", 43), ("02", "_T", 110), ("_T", "_T", 153)]
    rows = [(p, prov, sex, n, 1.0) for p in ("1404-07", "1404-08") for prov, sex, n in month]
    rows += [("1404-09", "01", "1", 2, 1.0), ("1404-09", "_T", "1", 60, 1.0)]
    _, cells = _cells(cur, rows, scope="period in ('1404-07', '1404-08')")
    for period in ("1404-07", "1404-08"):
        hidden = {k[1:] for k, (_, _, h) in cells.items() if h and k[0] == period}
        assert hidden == {("01", "1"), ("01", "2"), ("02", "1"), ("02", "2")}, period
    # out of scope: left exactly as it was
    assert cells[("1404-09", "01", "1")] == (2, 1.0, False)


def test_a_total_that_equals_its_only_hidden_cell_is_hidden(built, cur):
    rows = [
        ("1404-07", "01", "1", 2, 9.0),
        ("1404-07", "01", "_T", 2, 9.0),  # province 01 has one cell: its total would show it
        ("1404-07", "02", "1", 30, 9.0),
        ("1404-07", "02", "_T", 30, 9.0),
    ]
    _, cells = _cells(cur, rows)
    assert cells[("1404-07", "01", "_T")][2] is True
    assert cells[("1404-07", "01", "1")][2] is True


def test_the_threshold_is_a_setting(built, cur):
    cur.execute("drop table if exists pg_temp.cells")
    cur.execute("create temp table cells (period text, sex text, persons integer, is_suppressed boolean)")
    cur.execute("insert into cells values ('1404-07', '1', 7, false), ('1404-07', '2', 9, false)")
    cur.execute(
        "select anbar.apply_disclosure_control('pg_temp.cells'::regclass, array['period'], array['sex'], 'persons', "
        "array[]::text[], 10)"
    )
    assert _rows(cur, "select sex, persons, is_suppressed from cells order by sex") == [
        ("1", None, True),
        ("2", None, True),
    ]


def test_published_marts_answer_from_core_and_hide_small_cells(built, cur):
    """The marts count what the core facts count (where a cell is published)."""
    facts = dict(
        _rows(cur, "select period, count(distinct person_key) from core.fct_insured_employment group by period")
    )
    published = dict(
        _rows(
            cur,
            "select period, insured_persons from marts.mart_insured_employment where province_code = '_T' "
            "and isic_section = '_T' and sex = '_T' and age_band = '_T'",
        )
    )
    assert facts and set(published) == set(facts)
    for period, n in published.items():
        assert n is None or n == facts[period]


def test_the_built_marts_export_to_sdmx_and_read_back(built, local_pg, tmp_path):
    from anbar.sdmx_export import export_marts, observation_rows, read_back

    conn = psycopg2.connect(local_pg.dsn("dbt_wh"))
    try:
        paths = export_marts(conn, tmp_path)
        with conn.cursor() as c:
            c.execute(
                "select count(*) from marts.mart_insured_employment where province_code = '_T' and isic_section = '_T' "
                "and sex = '_T' and age_band = '_T'"
            )
            periods = c.fetchone()[0]
    finally:
        conn.close()
    assert paths[0].name == "structure.xml"
    flows = {p.stem: observation_rows(read_back(p)) for p in paths[1:]}
    insured = flows["DF_INSURED_EMPLOYMENT"]
    totals = [
        r
        for r in insured
        if r["MEASURE"] == "INSURED_PERSONS"
        and all(r[d] == "_T" for d in ("PROVINCE", "ISIC_SECTION", "SEX", "AGE_BAND"))
    ]
    assert periods > 0 and len(totals) == periods


def test_an_unchanged_period_is_not_rebuilt(built, cur, wh_env, dbt_artifacts):
    """The facts are incremental by period: a second run with no new accepted delivery rewrites nothing."""
    query = "select period, min(xmin::text), count(*) from core.fct_insured_employment group by period order by period"
    before = _rows(cur, query)
    cur.connection.commit()
    proc = run_dbt(
        [
            "run",
            "--select",
            "fct_insured_employment",
            "--target-path",
            str(dbt_artifacts / "incremental"),
            "--log-path",
            str(dbt_artifacts / "logs"),
        ],
        env=wh_env,
        check=False,
        capture=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert before and _rows(cur, query) == before


def test_run_start_setup_survives_concurrent_dbt_processes(built, local_pg, dbt_artifacts):
    """Cosmos starts several dbt processes at once, each running the on-run-start hooks: their DDL
    (the disclosure-control function, the build state table) must not fail when they overlap."""
    import threading

    import psycopg2

    # the hook as the session's first build compiled it (later tests write builds of their own below)
    (hook,) = (dbt_artifacts / "compiled").rglob("anbar-on-run-start-1.sql")
    setup = hook.read_text(encoding="utf-8")
    assert "pg_advisory_xact_lock" in setup
    errors: list[str] = []

    def run_setup() -> None:
        conn = psycopg2.connect(local_pg.dsn("dbt_wh"))
        conn.autocommit = True
        try:
            for _ in range(5):
                with conn.cursor() as c:
                    c.execute(setup)
        except psycopg2.Error as exc:
            errors.append(str(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=run_setup) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
