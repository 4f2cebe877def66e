"""End to end: an approved access decision stops working once the expiry DAG has run after its last day."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest
from psycopg2 import errors

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the access warehouse helper

from integration.access_warehouse import access_warehouse

from anbar import access
from anbar.registry import load_registry

pytestmark = pytest.mark.e2e


def reads_training(wh, role: str) -> bool:
    conn = wh.connect(role)
    try:
        with conn.cursor() as cur:
            cur.execute("select count(person_key) from core.fct_training")
        return True
    except errors.InsufficientPrivilege:
        return False
    finally:
        conn.close()


def test_an_expired_grant_stops_working_after_the_dag_runs(pg, airflow_db, monkeypatch):
    from anbar.access_dag import build_access_expiry_dag

    wh = access_warehouse(pg)
    monkeypatch.setenv("ANBAR_ACCESS_ADMIN_URL", pg.dsn(wh.dbname))
    last_day = access.tehran_today() + dt.timedelta(days=1)
    manifest = json.loads(wh.manifest.read_text(encoding="utf-8"))
    decided = {}
    with wh.session() as conn:
        for researcher, ref, expires_on in (
            ("rob", "1404/09/30-2", last_day),
            ("rita", "1404/09/30-3", last_day + dt.timedelta(days=30)),
        ):
            decided[researcher], _ = access.decide(
                conn,
                load_registry(),
                manifest,
                researcher=researcher,
                models=["fct_training"],
                purpose="pilot",
                decision_ref=ref,
                expires_on=expires_on,
            )
    expiring, lasting = decided["rob"], decided["rita"]
    assert reads_training(wh, "rob") and reads_training(wh, "rita")

    dag = build_access_expiry_dag()
    # the scheduled run at 00:30 Tehran of the day after the last day
    run_at = dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(0, 30), tzinfo=access.TEHRAN)
    run = dag.test(logical_date=run_at)
    assert run.state == "success"

    assert not reads_training(wh, "rob")  # expired: the grant no longer works
    assert reads_training(wh, "rita")  # not yet
    report = run.get_task_instance("report").xcom_pull(task_ids="report")
    assert f"decision {expiring} (1404/09/30-2) of rob" in report and f"decision {lasting} " not in report
    with wh.session() as conn:
        status = {d.decision_id: d.status for d in access.list_decisions(conn)}
    assert (status[expiring], status[lasting]) == ("expired", "approved")

    with wh.session() as conn:
        access.revoke(conn, lasting, "end of test")
