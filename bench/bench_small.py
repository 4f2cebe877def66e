"""Small-delivery benchmark: the fixed cost of one delivery, through the real ingest DAG with ``dag.test()``.

    .venv/bin/python bench/bench_small.py [--persons 5000]

The simulated SSO supplier publishes two months (about 2,000 insured persons and a few hundred workplaces
a month at the default population). In a fresh process, the SSO ingest DAG runs the month before with
``dag.test()`` (untimed: Airflow warms up, the cross-period rules get a month to compare with), then the
month measured. Printed: the run's wall time, each task's, and the sub-steps of each delivery's ``process``
task (read and convert, validate, load and decide, after the decision) as the pass recorded them. Nothing
is asserted. ``measure()`` is what ``bench/run_all.py`` calls.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ORG = "sso"
PREVIOUS, CURRENT = "1404-06", "1404-07"


def _worker_dag(args: dict) -> dict:
    """Both months through ``dag.test()``; the second timed, with its tasks and the pass's sub-steps."""
    import psycopg2
    from airflow.dag_processing.dagbag import DagBag

    from anbar.settings import REPO_ROOT

    bag = DagBag(str(REPO_ROOT / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.dags[f"anbar_ingest__{ORG}"]
    warm = dag.test(run_conf={"period": PREVIOUS})
    if warm.state != "success":
        raise RuntimeError(f"the run of {PREVIOUS} ended {warm.state}")
    t0 = time.perf_counter()
    run = dag.test(run_conf={"period": CURRENT})
    wall = time.perf_counter() - t0

    tasks: dict[str, float] = {}
    for ti in run.get_task_instances():
        if ti.start_date and ti.end_date:
            name = ti.task_id.rsplit(".", 1)[-1]
            tasks[name] = tasks.get(name, 0.0) + (ti.end_date - ti.start_date).total_seconds()
    conn = psycopg2.connect(args["dsn"])
    with conn.cursor() as cur:
        cur.execute(
            "select s.dataset, s.status, s.rows_counted, e.detail from anbar.submissions s "
            "left join anbar.submission_events e on e.submission_id = s.submission_id and e.step = 'process' "
            "and e.status = 'timed' where s.org = %s and s.period = %s order by s.dataset",
            (ORG, CURRENT),
        )
        deliveries = [
            {"dataset": d, "status": st, "rows": n, "pass": (detail or {}).get("seconds") or {}}
            for d, st, n, detail in cur.fetchall()
        ]
    conn.close()
    return {"state": run.state, "wall": wall, "tasks": tasks, "deliveries": deliveries}


WORKERS = {"dag": _worker_dag}


def measure(workdir: Path, persons: int = 5000, out: Callable[[str], None] = print) -> dict:
    import psycopg2
    from _common import run_measured

    from anbar import ddl
    from anbar.devenv.postgres import LocalPostgres
    from anbar.registry import load_registry
    from anbar.settings import REPO_ROOT
    from anbar.sim.serve import airflow_env, start_simulators

    workdir.mkdir(parents=True, exist_ok=True)
    pg = LocalPostgres(workdir / "pg").start()
    sims = None
    try:
        pg.create_database("bench")
        pg.create_database("airflow")
        conn = psycopg2.connect(pg.dsn("bench"))
        ddl.bootstrap(conn, load_registry())
        conn.close()
        sims = start_simulators(
            workdir / "suppliers", periods={ORG: [PREVIOUS, CURRENT]}, defect_share=0.0, persons=persons
        )
        env = dict(os.environ)
        env.update(
            {
                "AIRFLOW_HOME": str(workdir / "airflow"),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.url("airflow"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
                "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
                "GX_ANALYTICS_ENABLED": "False",
                "ANBAR_LANDING_DIR": str(workdir / "landing"),
                "ANBAR_DATA_DOCS_DIR": str(workdir / "data_docs"),
                "ANBAR_WAREHOUSE_URL": pg.url("bench"),
                "ANBAR_PSEUDONYM_KEY": "bench-only-pseudonym-key",
                **sims.airflow_env(),
            }
        )
        warehouse = {"conn_type": "postgres", "host": "127.0.0.1", "port": pg.port, "login": "anbar_admin"}
        env.update(airflow_env({"anbar_warehouse": {**warehouse, "password": pg.password, "schema": "bench"}}))
        t0 = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True
        )
        out(f"  Airflow's metadata database migrated in {time.perf_counter() - t0:.0f} s (untimed)")
        result = run_measured("bench_small", "dag", {"dsn": pg.dsn("bench")}, env, workdir / "dag-test.log")
        out(f"  dag.test() of {PREVIOUS} then {CURRENT}: done ({result['peak_rss_mib']:.0f} MiB peak RSS)")
        return result
    finally:
        if sims is not None:
            sims.stop()
        pg.stop()


def summarise(r: dict, out: Callable[[str], None] = print) -> dict[str, float]:
    out(f"one {ORG} month through the ingest DAG with dag.test(): {r['state']}, {r['wall']:.1f} s wall")
    for name, seconds in sorted(r["tasks"].items(), key=lambda kv: -kv[1]):
        out(f"  task {name:40} {seconds:6.2f} s (summed over its mapped instances)")
    validate = 0.0
    for d in r["deliveries"]:
        passed = d["pass"]
        out(f"  {d['dataset']}: {d['status']}, {d['rows']:,} rows counted")
        for step, seconds in passed.items():
            out(f"      {step:44} {seconds:6.2f} s")
        validate = max(validate, passed.get("validate", 0.0))
    return {"wall": r["wall"], "validate": validate, "rows": max((d["rows"] or 0) for d in r["deliveries"])}


def main(argv: list[str] | None = None) -> None:
    from _common import worker_main

    argv = sys.argv[1:] if argv is None else argv
    if worker_main(argv, WORKERS):
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=5000, help="the simulated population (about 2,000 rows a month)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="anbar-bench-small-") as tmp:
        summarise(measure(Path(tmp), args.persons))


if __name__ == "__main__":
    main()
