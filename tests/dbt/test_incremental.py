"""The warehouse builds period by period, and what it builds equals a build from scratch.

In a warehouse of its own, deliveries are accepted in three steps, as months arrive: after
each incremental ``dbt build`` every table of intermediate, core and marts must hold exactly
what ``dbt build --full-refresh`` then produces from the same ledger. The steps cover the
three paths of the incremental models: new partitions only (folded into the registers),
a dataset period older than what the registers have seen (persons recomputed), and a newer
version of a period already built (rebuilt). A run with nothing new rewrites no row.
"""

from __future__ import annotations

import psycopg2
import pytest
from anbar_dbt_testdata import make_warehouse, warehouse_env

from anbar.dbt import run_dbt

DBNAME = "dbt_wh_incremental"
BUILT_SCHEMAS = ("intermediate", "core", "marts")


@pytest.fixture(scope="module")
def warehouse(local_pg, registry):
    make_warehouse(local_pg, registry, DBNAME)
    conn = psycopg2.connect(local_pg.dsn(DBNAME))
    # Start with SSO 1405-06, and 1405-07 in its first (wrong, tomans) version only.
    _set_status(conn, "tvto", "trainees", "2026-09", 1, "validated")
    _set_status(conn, "sso", "workplaces", "1405-07", 1, "validated")
    _set_status(conn, "sso", "insured_persons", "1405-07", 2, "validated")
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def env(local_pg):
    return warehouse_env(local_pg, DBNAME)


def _set_status(conn, org, dataset, period, version, status):
    with conn.cursor() as cur:
        cur.execute(
            "update anbar.submissions set status = %s, updated_at = now() "
            "where org = %s and dataset = %s and period = %s and version = %s",
            (status, org, dataset, period, version),
        )
        assert cur.rowcount == 1
    conn.commit()


def _build(env, tmp_path, *extra):
    proc = run_dbt(
        ["build", *extra, "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
        env=env,
        check=False,
        capture=True,
    )
    assert proc.returncode == 0, proc.stdout[-5000:]


def _compiled_test(build_dir, name: str) -> str:
    """The SQL dbt ran for a data test in the build written to ``build_dir``."""
    (path,) = (build_dir / "target" / "compiled").rglob(f"{name}.sql")
    return path.read_text(encoding="utf-8")


def _tables(conn) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(
            "select table_schema || '.' || table_name from information_schema.tables "
            "where table_schema = any(%s) and table_type = 'BASE TABLE' order by 1",
            (list(BUILT_SCHEMAS),),
        )
        return [r[0] for r in cur.fetchall()]


def _each_table(conn, query: str) -> dict[str, list[str]]:
    """``query`` (``{table}`` in it) run on every built table: its first column, as a list."""
    out = {}
    with conn.cursor() as cur:
        for table in _tables(conn):
            cur.execute(query.format(table=table))
            out[table] = [r[0] for r in cur.fetchall()]
    conn.commit()
    return out


def _contents(conn) -> dict[str, list[str]]:
    """Every row of every built table, as sorted text (column order as in the table)."""
    return _each_table(conn, "select t::text from {table} as t order by 1")


def _row_versions(conn) -> dict[str, list[str]]:
    """The transaction that wrote each row: unchanged when a run rewrites nothing."""
    return _each_table(conn, "select xmin::text from {table} order by ctid")


def _assert_same_as_full_refresh(conn, env, tmp_path):
    incremental = _contents(conn)
    _build(env, tmp_path, "--full-refresh")
    full = _contents(conn)
    assert set(incremental) == set(full)
    for table in full:
        assert incremental[table] == full[table], table
    assert sum(map(len, full.values())) > 0


def test_incremental_builds_equal_full_builds(warehouse, env, tmp_path):
    _build(env, tmp_path / "1")  # the first build: everything
    before = _contents(warehouse)
    assert before["core.fct_insured_employment"], "SSO 1405-06 and 1405-07 (v1) are built"

    # Nothing new: no row of any table is rewritten.
    versions = _row_versions(warehouse)
    _build(env, tmp_path / "2")
    assert _row_versions(warehouse) == versions

    # TVTO 2026-09 arrives: a new partition; persons 20..30 were seen by SSO in a later month.
    _set_status(warehouse, "tvto", "trainees", "2026-09", 1, "accepted")
    _build(env, tmp_path / "3")
    # The data tests look at what the run built: the new delivery in staging, the new period
    # in the facts; not at the history.
    with warehouse.cursor() as cur:
        cur.execute("select submission_id from anbar.submissions where org = 'tvto' and status = 'accepted'")
        (tvto_sid,) = cur.fetchone()
    warehouse.commit()
    assert f"submission_id in ({tvto_sid})" in _compiled_test(
        tmp_path / "3", "unique_stg_tvto__trainees_trainee_course_id"
    )
    assert "period in ('2026-09')" in _compiled_test(tmp_path / "3", "unique_fct_training_trainee_course_id")
    assert "false" in _compiled_test(tmp_path / "3", "unique_stg_sso__insured_persons_insured_job_id")
    with warehouse.cursor() as cur:
        cur.execute("select count(*) from core.dim_person where is_linked")
        assert cur.fetchone()[0] == 10  # persons 20..29: in 1405-07 v1 and trainees
    warehouse.commit()
    _assert_same_as_full_refresh(warehouse, env, tmp_path / "4")

    # 1405-07's workplaces and a corrected version of its insured persons: partitions built
    # before change their lineage.
    _set_status(warehouse, "sso", "workplaces", "1405-07", 1, "accepted")
    _set_status(warehouse, "sso", "insured_persons", "1405-07", 2, "accepted")
    _build(env, tmp_path / "5")
    with warehouse.cursor() as cur:
        cur.execute("select distinct submission_id from core.fct_insured_employment where period = '1405-07'")
        (sid,) = cur.fetchone()
        cur.execute("select version from anbar.submissions where submission_id = %s", (sid,))
        assert cur.fetchone()[0] == 2
        cur.execute("select count(*) from core.dim_person where is_linked")
        assert cur.fetchone()[0] == 11  # person 30 is in v2 only
    warehouse.commit()
    _assert_same_as_full_refresh(warehouse, env, tmp_path / "6")
