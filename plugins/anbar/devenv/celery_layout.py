"""The production executor on one machine: Redis, Airflow's CeleryExecutor and its two kinds of worker.

``docker-compose.yml`` runs Airflow with the CeleryExecutor and Redis as the broker, and splits the workers by
what they may hold:

* the **default queue**'s worker runs the ingest (it parses the suppliers' files), the warehouse build, alerts
  and reports, with the loader's and the transformer's passwords only;
* the **governance queue**'s worker (``anbar.settings.GOVERNANCE_QUEUE``) runs the DAGs that act as the
  warehouse's administrator — access expiry, audit, backup — and alone holds the superuser's password.

:class:`CeleryLayout` starts the same on this machine, on the demo's stack (``anbar.devenv.stack``): a real
``redis-server`` (Debian's package; ``make test`` installs it), the api-server, scheduler, dag-processor and
triggerer, and one Celery worker per queue, each with its own environment, task log folder and log-server
port (so the log files tell which worker ran a task). Airflow's metadata database is reached as a role of its
own (``airflow_meta``), never as the superuser: no component but the governance worker gets that password in
any form. ``tests/celery`` runs an ingest, a warehouse build and a backup through it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from anbar import access, settings
from anbar.devenv.postgres import free_port
from anbar.devenv.stack import AIRFLOW_DB, VENV_BIN, Service, Stack, say

METADATA_ROLE = "airflow_meta"
DEFAULT_QUEUE = "default"  # Airflow's [operators] default_queue
WORKERS = {"default": DEFAULT_QUEUE, "governance": settings.GOVERNANCE_QUEUE}
# What only the governance worker gets: the administrator's connection and the backup's URL (both log in as the
# superuser). Anything else holding the superuser's password is dropped from every environment.
GOVERNANCE_ONLY = (f"AIRFLOW_CONN_{access.ADMIN_CONN_ID.upper()}", "ANBAR_BACKUP_URL")


def redis_server() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise FileNotFoundError("redis-server not found: `make test` installs Debian's redis-server package")
    return found


@dataclass
class Redis:
    """A password-protected redis-server on 127.0.0.1, nothing persisted (the Celery broker)."""

    service: Service
    port: int
    password: str

    def start(self, timeout: float = 30) -> None:
        cmd = [redis_server(), "--bind", "127.0.0.1", "--port", str(self.port), "--requirepass", self.password]
        cmd += ["--save", "", "--appendonly", "no", "--dir", str(self.service.state_dir)]
        self.service.start(cmd, {"PATH": os.environ.get("PATH", "")})
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.service.pid() is None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {self.service.log_file}")
            time.sleep(0.2)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                reply = b""
                while b"+PONG" not in reply and b"-" not in reply:
                    chunk = s.recv(64)
                    if not chunk:
                        break
                    reply += chunk
                return b"+PONG" in reply
        except OSError:
            return False

    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"


class CeleryLayout:
    """Airflow with the CeleryExecutor on ``stack``: ``up(env)`` with the environment ``anbar.devenv.demo.prepare``
    returns (the superuser's password in it, where the demo's single process needs it), ``down()``."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.dir = stack.state_dir / "celery"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.redis = Redis(Service("redis", self.dir), free_port(), secrets.token_hex(16))
        self.components = {name: Service(name, self.dir) for name in ("api-server", "scheduler", "dag-processor")}
        self.components["triggerer"] = Service("triggerer", self.dir)
        self.workers = {name: Service(f"worker-{name}", self.dir) for name in WORKERS}
        self.metadata_password = secrets.token_hex(16)

    def log_folder(self, worker: str) -> Path:
        """Where the worker of that queue writes the logs of the tasks it runs."""
        return self.dir / f"logs-{worker}"

    # -- environments ----------------------------------------------------------------------------------------
    def environments(self, env: dict[str, str]) -> dict[str, dict[str, str]]:
        """Each process's environment: every component's, and the governance worker's with the administrator's
        connection and the backup's URL on top. Nothing in the others holds the superuser's password."""
        superuser_password = self.stack.pg.password
        common = {k: v for k, v in env.items() if k not in GOVERNANCE_ONLY and superuser_password not in v}
        metadata = self.stack.pg.url(AIRFLOW_DB, user=METADATA_ROLE, password=self.metadata_password)
        common.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
                "AIRFLOW__CELERY__BROKER_URL": self.redis.url(),
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata.replace("+psycopg2", ""),
                # One secret for all components: tasks on the workers authenticate to the api-server with it.
                "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt"),
                "AIRFLOW__API__SECRET_KEY": self._secret("api"),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.dir / "logs"),
                "AIRFLOW__TRIGGERER__DEFAULT_CAPACITY": "100",
            }
        )
        envs = {name: dict(common) for name in self.components}
        envs["triggerer"]["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] = str(free_port())
        for worker, queue in WORKERS.items():
            worker_env = dict(common)
            if queue == settings.GOVERNANCE_QUEUE:
                worker_env.update({k: env[k] for k in GOVERNANCE_ONLY if k in env})
            worker_env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] = str(self.log_folder(worker))
            worker_env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(free_port())
            envs[f"worker-{worker}"] = worker_env
        return envs

    def _secret(self, name: str) -> str:
        path = self.dir / f"{name}.secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(24))
        return path.read_text()

    # -- processes -------------------------------------------------------------------------------------------
    def up(self, env: dict[str, str], worker_concurrency: int = 2) -> None:
        say("starting Redis (the Celery broker) ...")
        self.redis.start()
        self._metadata_role()
        envs = self.environments(env)
        airflow = str(VENV_BIN / "airflow")
        (self.stack.state_dir / "airflow-passwords.json").write_text(json.dumps({"admin": self.stack.admin_password}))
        self.stack.airflow_home.mkdir(parents=True, exist_ok=True)
        say("migrating the Airflow metadata database ...")
        subprocess.run([airflow, "db", "migrate"], env=envs["scheduler"], check=True, capture_output=True)
        say("starting Airflow with the CeleryExecutor: api-server, scheduler, dag-processor, triggerer ...")
        for name, service in self.components.items():
            service.start([airflow, name], envs[name])
        for worker, queue in WORKERS.items():
            say(f"starting the Celery worker of the {queue!r} queue ...")
            self.workers[worker].start(
                [
                    airflow,
                    "celery",
                    "worker",
                    "--queues",
                    queue,
                    "--concurrency",
                    str(worker_concurrency),
                    "--celery-hostname",
                    f"{worker}@%h",
                    "--skip-serve-logs",
                ],
                envs[f"worker-{worker}"],
            )
        self.wait_healthy()

    def _metadata_role(self) -> None:
        """Airflow's metadata database owned by a role of its own (as deploy/postgres/initdb does)."""
        import psycopg2
        from psycopg2 import sql

        conn = psycopg2.connect(self.stack.pg.dsn())
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("select 1 from pg_roles where rolname = %s", (METADATA_ROLE,))
                verb = "alter" if cur.fetchone() else "create"
                cur.execute(
                    sql.SQL(verb + " role {} login password %s").format(sql.Identifier(METADATA_ROLE)),
                    (self.metadata_password,),
                )
                cur.execute(
                    sql.SQL("alter database {} owner to {}").format(
                        sql.Identifier(AIRFLOW_DB), sql.Identifier(METADATA_ROLE)
                    )
                )
        finally:
            conn.close()

    def processes(self) -> dict[str, int]:
        return {
            s.name: pid
            for s in (self.redis.service, *self.components.values(), *self.workers.values())
            if (pid := s.pid()) is not None
        }

    def wait_healthy(self, timeout: float = 300) -> None:
        """The api-server answers and reports every component healthy; the workers and Redis are alive."""
        deadline = time.monotonic() + timeout
        url = f"{self.stack.airflow_url()}/api/v2/monitor/health"
        while True:
            dead = {s.name for s in (*self.components.values(), *self.workers.values()) if s.pid() is None}
            if dead:
                raise RuntimeError(f"{', '.join(sorted(dead))} exited; see the logs in {self.dir}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    health = json.loads(r.read())
                states = {k: v.get("status") for k, v in health.items() if isinstance(v, dict)}
                if states and all(state in ("healthy", None) for state in states.values()):
                    return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Airflow did not become healthy in {timeout:.0f}s; see the logs in {self.dir}")
            time.sleep(2)

    def down(self) -> None:
        """Stop everything: asked all at once (Airflow's components take many seconds to shut down), then each
        waited for in turn."""
        services = (*self.workers.values(), *self.components.values(), self.redis.service)
        for service in services:
            if (pid := service.pid()) is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGTERM)
        for service in services:
            service.stop()
