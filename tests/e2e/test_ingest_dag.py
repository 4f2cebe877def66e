"""End to end: an organisation's ingest DAG run with dag.test() against the real servers."""

from __future__ import annotations

import psycopg2
import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dags(airflow_db, simulators, dagbag):
    assert dagbag.import_errors == {}
    return dagbag.dags


def _query(dsn, sql, *args):
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def _mailed(mailbox) -> list[str]:
    """What the mails this test sent were about: their subjects up to the figures, sorted."""
    return sorted(s.split(":")[0] for s in mailbox.subjects())


def test_sso_dag_run_loads_a_good_period_and_quarantines_a_defective_one(
    dags, pg, simulators, fresh_warehouse, mailbox, tmp_path
):
    import os

    dsn = os.environ["ANBAR_WAREHOUSE_URL"].replace("postgresql+psycopg2://", "postgresql://")
    dag = dags["anbar_ingest__sso"]

    good = dag.test(run_conf={"period": "1404-07"})
    assert good.state == "success"
    ledger = _query(
        dsn,
        "select dataset, status, rows_manifest, rows_loaded, rows_rejected from anbar.submissions "
        "where org = 'sso' and period = '1404-07' order by dataset",
    )
    assert [(r[0], r[1]) for r in ledger] == [("insured_persons", "accepted"), ("workplaces", "accepted")]
    for _, _, manifest_rows, loaded, rejected in ledger:
        assert manifest_rows == loaded + rejected and loaded > 0

    bad = dag.test(run_conf={"period": "1404-08"})
    assert bad.state == "success"  # a supplier's defect is a decided outcome, not a failed run
    [(status, reason)] = _query(
        dsn,
        "select status, reason from anbar.submissions where org = 'sso' "
        "and dataset = 'insured_persons' and period = '1404-08'",
    )
    assert (status, reason) == ("rejected", "validation")
    # One feedback mail per delivery of the two runs, the rejection among them; nothing else.
    mailed = [
        "[anbar] ACCEPTED sso/insured_persons 1404-07 v1",
        "[anbar] ACCEPTED sso/workplaces 1404-07 v1",
        "[anbar] ACCEPTED sso/workplaces 1404-08 v1",
        "[anbar] REJECTED sso/insured_persons 1404-08 v1",
    ]
    assert _mailed(mailbox) == mailed

    # The warehouse build (dbt through Cosmos) turns the accepted period into mart rows.
    warehouse = dags["anbar_warehouse"]
    built = warehouse.test()
    assert built.state == "success"
    [(persons, periods)] = _query(
        dsn, "select sum(insured_persons), count(distinct period) from core.fct_insured_employment_monthly"
    )
    accepted = _query(
        dsn,
        "select count(distinct national_id) from clean.sso__insured_persons c "
        "join anbar.submissions s on s.submission_id = c._submission_id "
        "where s.status = 'accepted'",
    )[0][0]
    assert periods == 1 and persons >= accepted > 0
    assert _mailed(mailbox) == mailed  # the build mailed nobody


def test_the_run_of_a_quarters_last_month_ingests_the_quarterly_dataset_too(dags, pg, simulators, fresh_warehouse):
    import os

    dsn = os.environ["ANBAR_WAREHOUSE_URL"].replace("postgresql+psycopg2://", "postgresql://")
    dag = dags["anbar_ingest__swo"]

    mordad = dag.test(run_conf={"period": "1404-05"})  # no quarter ends with Mordad
    shahrivar = dag.test(run_conf={"period": "1404-06"})  # Shahrivar closes 1404-Q2 (Tir..Shahrivar)
    assert mordad.state == shahrivar.state == "success"
    ledger = _query(
        dsn,
        "select dataset, period, status, rows_manifest, rows_loaded + rows_rejected from anbar.submissions "
        "where org = 'swo' order by period, dataset",
    )
    assert [r[:3] for r in ledger] == [
        ("beneficiaries", "1404-05", "accepted"),
        ("beneficiaries", "1404-06", "accepted"),
        ("disability_assessments", "1404-Q2", "accepted"),
    ]
    assert all(manifest == landed > 0 for *_, manifest, landed in ledger)
    # The grid labels the mapped instances with the dataset and its own period.
    labels = {ti.rendered_map_index for ti in shahrivar.get_task_instances() if ti.task_id == "dataset.conclude"}
    assert labels == {"beneficiaries 1404-06: accepted", "disability_assessments 1404-Q2: accepted"}
    [(start, end)] = _query(
        dsn,
        "select period_start, period_end from anbar.expected_submissions "
        "where org = 'swo' and dataset = 'disability_assessments'",
    )
    assert (start.isoformat(), end.isoformat()) == ("2025-06-22", "2025-09-23")
