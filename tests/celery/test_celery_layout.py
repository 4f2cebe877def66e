"""The production executor, run for real: Redis, Airflow's CeleryExecutor, and the two workers of
docker-compose.yml — the default queue's (it parses the suppliers' files; no administrator's password) and
the governance queue's (access expiry, audit, backup; the only one with the superuser's password).

One supplier delivery goes through it: the ingest on the default worker, the warehouse build its accepted
Asset event starts (a second event for the same dataset right after it makes no second build), then a
backup on the governance worker. Each worker writes the logs of the tasks it runs in a folder of its own
(anbar.devenv.celery_layout), so the files say which worker ran what. Needs Debian's redis-server, which
`make test` installs when it is absent.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import psutil
import psycopg2
import pytest

from anbar import settings
from anbar.devenv import demo
from anbar.devenv.celery_layout import CeleryLayout
from anbar.devenv.progress import Stages
from anbar.devenv.stack import WAREHOUSE_DB, Stack, demo_periods

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ORG, DATASET = "cspf", "pensioners"
INGEST_DAG, WAREHOUSE_DAG, BACKUP_DAG = f"anbar_ingest__{ORG}", "anbar_warehouse", "anbar_backup"
QUIET = 20  # the warehouse build waits this long after the last Asset event (ANBAR_WAREHOUSE_QUIET_SECONDS)
TIMEOUT = 600


def wait_for(what: str, probe, timeout: float = TIMEOUT, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while not (result := probe()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(every)
    return result


def finished(api, dag_id: str) -> list[dict]:
    runs = api.runs(dag_id)
    return runs if runs and all(r["state"] in ("success", "failed") for r in runs) else []


def task_instances(api, dag_id: str, run_id: str) -> list[dict]:
    return api._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=200")["task_instances"]


def post_asset_event(api, uri: str) -> dict:
    assets = api._request("GET", "/api/v2/assets?limit=100")["assets"]
    (asset,) = [a for a in assets if a["uri"] == uri]
    return api._request("POST", "/api/v2/assets/events", {"asset_id": asset["id"], "extra": {"from": "tests/celery"}})


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    state = tmp_path_factory.mktemp("celery-layout")
    with pytest.MonkeyPatch.context() as mp:
        # the layout's own settings only (not the session's warehouse, connections or Airflow home)
        for key in list(os.environ):
            if key.startswith(("AIRFLOW", "ANBAR_")):
                mp.delenv(key)
        stack = Stack(state_dir=state)
        celery = CeleryLayout(stack)
        try:
            # the period the scheduler would run now: unpausing the ingest DAG then makes no run of its own
            period = demo_periods(stack.registry, dt.date.today(), 1)[ORG][0]
            env = demo.prepare(stack, {ORG: [period]}, Stages(say=lambda _: None))
            env |= {"ANBAR_WAREHOUSE_QUIET_SECONDS": str(QUIET), "ANBAR_WAREHOUSE_MAX_WAIT_SECONDS": "300"}
            celery.up(env)
            celery.period = period
            yield celery
        finally:
            celery.down()
            stack.stop()


@pytest.fixture(scope="module")
def story(layout):
    """An ingest, the warehouse build it starts (and an Asset event right after it), then a backup."""
    stack = layout.stack
    api = demo.AirflowApi(stack.airflow_url(), "admin", stack.admin_password)
    wait_for("the DAGs to be parsed", lambda: {INGEST_DAG, WAREHOUSE_DAG, BACKUP_DAG} <= set(api.dag_ids()))
    api.unpause(WAREHOUSE_DAG)
    ingest_run = demo.trigger_period(api, stack.registry, ORG, layout.period)
    api.unpause(INGEST_DAG)
    # The accepted delivery's Asset event starts a warehouse run; a second event for the same dataset while
    # that run waits for a quiet moment (as a delivery accepted a few seconds later would) must not build again.
    (first,) = wait_for("the warehouse run of the accepted delivery", lambda: api.runs(WAREHOUSE_DAG))
    (dataset,) = [d for d in stack.registry.datasets if d.key == f"{ORG}__{DATASET}"]
    second_event = post_asset_event(api, dataset.asset_uri)
    ingest = wait_for("the ingest", lambda: finished(api, INGEST_DAG))
    warehouse = wait_for("the warehouse runs", lambda: len(runs := finished(api, WAREHOUSE_DAG)) == 2 and runs)
    backup = demo.run_dag(api, BACKUP_DAG, "celery__backup", TIMEOUT)
    # Unpausing the backup DAG also made its scheduled run of the last night, which may still be verifying.
    wait_for("every backup run", lambda: finished(api, BACKUP_DAG))
    return {
        "api": api,
        "ingest": {r["dag_run_id"]: r for r in ingest}[ingest_run],
        "first_build": first["dag_run_id"],
        "warehouse": {r["dag_run_id"]: r for r in warehouse},
        "second_event": second_event,
        "backup": backup,
    }


def log_files(layout, worker: str, dag_id: str, run_id: str) -> set[str]:
    """The tasks of a run that have a log in that worker's folder (mapped ones under map_index=N/)."""
    run_dir = layout.log_folder(worker) / f"dag_id={dag_id}" / f"run_id={run_id}"
    return {
        part.removeprefix("task_id=")
        for log in run_dir.rglob("attempt=*.log")
        for part in log.relative_to(run_dir).parts
        if part.startswith("task_id=")
    }


def assert_ran_on(layout, api, dag_id: str, run_id: str, worker: str, queue: str) -> list[dict]:
    """Every task instance of the run that ran, ran on `queue`, and its log is in `worker`'s folder alone."""
    tis = task_instances(api, dag_id, run_id)
    ran = {t["task_id"] for t in tis if t["state"] not in ("skipped", "upstream_failed", None)}
    assert ran, (dag_id, run_id)
    assert {t["queue"] for t in tis} == {queue}, (dag_id, {t["task_id"]: t["queue"] for t in tis})
    others = set(layout.workers) - {worker}
    assert log_files(layout, worker, dag_id, run_id) >= ran
    for other in others:
        assert not log_files(layout, other, dag_id, run_id), (dag_id, other)
    return tis


def test_the_ingest_runs_on_the_default_worker(layout, story):
    run = story["ingest"]
    assert run["state"] == "success"
    assert_ran_on(layout, story["api"], INGEST_DAG, run["dag_run_id"], "default", "default")
    conn = psycopg2.connect(layout.stack.pg.dsn(WAREHOUSE_DB))
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select status from anbar.submissions where org = %s and dataset = %s and period = %s",
                (ORG, DATASET, layout.period),
            )
            assert [r[0] for r in cur.fetchall()] == ["accepted"]
    finally:
        conn.close()


def test_the_warehouse_is_built_once_on_the_default_worker(layout, story):
    api, runs = story["api"], story["warehouse"]
    first = runs[story["first_build"]]
    assert first["state"] == "success"
    ran = assert_ran_on(layout, api, WAREHOUSE_DAG, first["dag_run_id"], "default", "default")
    tis = {t["task_id"]: t for t in ran}
    assert tis["dbt_producer_watcher"]["state"] == "success"
    assert {t["state"] for t in tis.values()} == {"success"}
    # The run the second event queued found that build had read it: skipped, every task.
    (second,) = [r for r in runs.values() if r["dag_run_id"] != story["first_build"]]
    events = api._request("GET", f"/api/v2/dags/{WAREHOUSE_DAG}/dagRuns/{second['dag_run_id']}/upstreamAssetEvents")
    assert [e["id"] for e in events["asset_events"]] == [story["second_event"]["id"]]
    states = {t["task_id"]: t["state"] for t in task_instances(api, WAREHOUSE_DAG, second["dag_run_id"])}
    assert states.pop("coalesce_deliveries") == "success"
    assert set(states.values()) == {"skipped"}
    conn = psycopg2.connect(layout.stack.pg.dsn(WAREHOUSE_DB))
    try:
        with conn.cursor() as cur:
            cur.execute("select count(*) from core.fct_pensions where period = %s", (layout.period,))
            assert cur.fetchone()[0] > 0
    finally:
        conn.close()


def test_the_backup_runs_on_the_governance_worker(layout, story):
    assert story["backup"] == "success"
    assert_ran_on(layout, story["api"], BACKUP_DAG, "celery__backup", "governance", settings.GOVERNANCE_QUEUE)
    conn = psycopg2.connect(layout.stack.pg.dsn(WAREHOUSE_DB))
    try:
        with conn.cursor() as cur:
            # (unpausing the DAG also makes its scheduled run of the last night: more backups, all verified)
            cur.execute("select distinct database, verification from anbar.backups")
            assert set(cur.fetchall()) == {("airflow", "passed"), ("warehouse", "passed")}
    finally:
        conn.close()


def environments(pid: int) -> list[str]:
    """The environment of a process and of every process under it, as one string each."""
    processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    out = []
    for p in processes:
        try:
            out.append(Path(f"/proc/{p.pid}/environ").read_bytes().decode(errors="replace"))
        except (OSError, psutil.NoSuchProcess):
            continue
    return out


def test_only_the_governance_worker_holds_the_administrator_s_password(layout, story):
    password = layout.stack.pg.password
    processes = layout.processes()
    assert {"worker-default", "worker-governance", "scheduler", "api-server"} <= set(processes)
    for name, pid in processes.items():
        holds = any(password in env for env in environments(pid))
        assert holds == (name == "worker-governance"), name
