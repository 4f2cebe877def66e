"""(d) The warehouse DAG run end to end (``airflow dags test`` = ``dag.test()``) against the
real PostgreSQL: an Airflow metadata database of its own, the ``anbar_warehouse``
connection from ``AIRFLOW_CONN_ANBAR_WAREHOUSE``, Cosmos running dbt on the prod target.

It runs in a subprocess: Airflow reads its configuration once per process, and this
test needs a metadata database and a DAG folder of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest
from anbar_dbt_testdata import EXPECTED_TASKS, PSEUDONYM_KEY, make_warehouse

from anbar.dbt import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DAG_ID = "anbar_warehouse"
WAREHOUSE_DB = "dbt_wh_dag"
AIRFLOW_DB = "dbt_airflow"  # a metadata database of its own, apart from the session's


def _airflow_env(pg, home: Path, dags: Path, dbname: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ANBAR_WH_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.url(AIRFLOW_DB),
            "AIRFLOW_CONN_ANBAR_WAREHOUSE": json.dumps(
                {
                    "conn_type": "postgres",
                    "host": "127.0.0.1",
                    "port": pg.port,
                    "login": "anbar_admin",
                    "password": pg.password,
                    "schema": dbname,
                }
            ),
            "ANBAR_PSEUDONYM_KEY": PSEUDONYM_KEY,
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        }
    )
    return env


def _airflow(args: list[str], env: dict[str, str], log: Path, timeout: float) -> float:
    airflow = Path(sys.executable).parent / "airflow"
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.run([str(airflow), *args], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-6000:]
        pytest.fail(f"airflow {' '.join(args)} exited {proc.returncode}:\n{tail}")
    return elapsed


@pytest.fixture(scope="module")
def dag_run(local_pg, registry, dbt_manifest, tmp_path_factory):
    synthetic = make_warehouse(local_pg, registry, WAREHOUSE_DB)
    local_pg.create_database(AIRFLOW_DB)
    tmp = tmp_path_factory.mktemp("airflow")
    dags = tmp / "dags"
    dags.mkdir()
    shutil.copy(REPO_ROOT / "dags" / "anbar_warehouse.py", dags / "anbar_warehouse.py")
    env = _airflow_env(local_pg, tmp / "home", dags, WAREHOUSE_DB)

    migrate = _airflow(["db", "migrate"], env, tmp / "migrate.log", timeout=300)
    print(f"\n[timing] airflow db migrate in {migrate:.1f}s")
    run = _airflow(["dags", "test", DAG_ID], env, tmp / "dags_test.log", timeout=600)
    print(f"[timing] airflow dags test {DAG_ID} in {run:.1f}s (log: {tmp / 'dags_test.log'})")

    conn = psycopg2.connect(local_pg.dsn(AIRFLOW_DB))
    try:
        with conn.cursor() as cur:
            cur.execute("select run_id, state from dag_run where dag_id = %s", (DAG_ID,))
            runs = cur.fetchall()
            cur.execute("select task_id, state from task_instance where dag_id = %s", (DAG_ID,))
            tasks = dict(cur.fetchall())
    finally:
        conn.close()
    return {"synthetic": synthetic, "runs": runs, "tasks": tasks, "log": tmp / "dags_test.log"}


def test_dag_run_succeeds(dag_run):
    assert [state for _, state in dag_run["runs"]] == ["success"], dag_run["runs"]
    assert set(dag_run["tasks"]) == EXPECTED_TASKS
    failed = {t: s for t, s in dag_run["tasks"].items() if s != "success"}
    assert not failed, f"{failed}; see {dag_run['log']}"


def test_dag_run_built_the_mart(dag_run, local_pg):
    expected = dag_run["synthetic"].expected_mart()
    conn = psycopg2.connect(local_pg.dsn(WAREHOUSE_DB))
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select period, province_code, sex, insured_persons, insured_jobs,"
                " total_insured_wage_rials, avg_insured_wage_rials, total_days_worked"
                " from core.fct_insured_employment_monthly"
            )
            got = {r[:3]: r[3:] for r in cur.fetchall()}
            cur.execute("select count(*) from core.dim_person")
            persons = cur.fetchone()[0]
    finally:
        conn.close()
    assert got == {k: tuple(v.values()) for k, v in expected.items()}
    assert persons == len(dag_run["synthetic"].expected_persons())


def test_one_dbt_build_ran_every_model_and_test(dag_run, dbt_manifest):
    """Cosmos' watcher mode: the producer's `dbt build` is the run's only dbt process (the model tasks read what
    it did), and it ran every model and every data test of the project."""
    import re

    log = dag_run["log"].read_text(errors="replace")
    commands = re.findall(r"Running command: \[([^\]]*)\]", log)
    assert len(commands) == 1, commands
    argv = [a.strip(" '") for a in commands[0].split(",")]
    assert Path(argv[0]).name == "dbt" and argv[1] == "build"
    assert "--select" not in argv and "--resource-type" not in argv
    (done,) = re.findall(r"Done\. PASS=(\d+) WARN=(\d+) ERROR=(\d+) SKIP=(\d+) NO-OP=\d+ TOTAL=(\d+)", log)
    passed, warned, errors, skipped, total = map(int, done)
    assert (errors, skipped) == (0, 0) and passed + warned == total
    manifest = json.loads(dbt_manifest.read_text())
    kinds = [n["resource_type"] for n in manifest["nodes"].values()]
    assert total >= kinds.count("model") + kinds.count("test") > kinds.count("model") > 0
    # the model tasks only read the build's outcome
    assert log.count("Success criteria met") >= len(EXPECTED_TASKS) - 2
