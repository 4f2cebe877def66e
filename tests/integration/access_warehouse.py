"""A small warehouse built by dbt *as anbar_transformer* after the access plan was applied, shared by
the access tests (tests/integration/test_access.py, tests/e2e/test_access_expiry_dag.py)."""

from __future__ import annotations

import secrets
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS / "dbt") not in sys.path:
    sys.path.insert(0, str(TESTS / "dbt"))

from anbar_dbt_testdata import make_warehouse  # noqa: E402

DBNAME = "access_wh"
USERS = {"ana": "analyst", "rita": "researcher", "rob": "researcher", "audrey": "auditor"}


@dataclass
class AccessWarehouse:
    pg: object
    dbname: str
    manifest: Path
    target: Path
    passwords: dict[str, str] = field(default_factory=dict)

    def admin(self):
        return psycopg2.connect(self.pg.dsn(self.dbname))

    def connect(self, role: str):
        """A connection as ``role`` (its own password: scram-sha-256, as in production)."""
        conn = psycopg2.connect(
            host="127.0.0.1",
            port=self.pg.port,
            user=role,
            password=self.passwords[role],
            dbname=self.dbname,
        )
        conn.autocommit = True
        return conn

    @contextmanager
    def session(self, role: str | None = None):
        """A connection as ``role`` (None: the administrator), closed at the end of the block."""
        conn = self.admin() if role is None else self.connect(role)
        try:
            yield conn
        finally:
            conn.close()

    def dbt(self, *args: str) -> str:
        """dbt as anbar_transformer against this database; returns its output."""
        from anbar.dbt import dbt_env, run_dbt

        env = dbt_env(
            host="127.0.0.1",
            port=self.pg.port,
            user="anbar_transformer",
            password=self.passwords["anbar_transformer"],
            dbname=self.dbname,
            target="dev",
        )
        proc = run_dbt(
            [*args, "--target-path", str(self.target), "--log-path", str(self.target / "logs")],
            env=env,
            check=False,
            capture=True,
        )
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
        return proc.stdout


_BUILT: dict[str, AccessWarehouse] = {}
_SERVICE_PASSWORDS: dict[str, str] = {}


def service_passwords() -> dict[str, str]:
    """The service roles' passwords in this test session. Roles are the cluster's: every database of the test
    server the plan is applied to gives them these, so that each test logs in with them whatever ran before."""
    from anbar import access

    if not _SERVICE_PASSWORDS:
        _SERVICE_PASSWORDS.update({role: secrets.token_urlsafe(12) for role in access.SERVICE_ROLES})
    return dict(_SERVICE_PASSWORDS)


def apply(wh: AccessWarehouse) -> None:
    from anbar import access
    from anbar.registry import load_registry

    conn = wh.admin()
    try:
        access.apply_plan(conn, access.build_plan(conn, load_registry(), wh.manifest))
        access.set_service_passwords(conn, {var: wh.passwords[role] for role, var in access.PASSWORD_ENV.items()})
    finally:
        conn.close()


def apply_to_another_database(conn, manifest: Path) -> None:
    """The access plan applied to another warehouse database of the test server (``conn``: as its administrator),
    with :func:`service_passwords`. Decision roles are the cluster's too: this database's plan would drop the
    access warehouse's (its decisions are not this database's), so its statements about them are left out."""
    from anbar import access
    from anbar.registry import load_registry

    plan = access.build_plan(conn, load_registry(), manifest)
    others = (f"drop role if exists {access.DECISION_ROLE_PREFIX}", f"drop owned by {access.DECISION_ROLE_PREFIX}")
    for step in plan.steps:
        step.statements = [s for s in step.statements if not s.startswith(others)]
    access.apply_plan(conn, plan)
    access.set_service_passwords(conn, {var: service_passwords()[role] for role, var in access.PASSWORD_ENV.items()})


def access_warehouse(pg) -> AccessWarehouse:
    """Synthetic deliveries loaded, the access plan applied, users added, every model built by dbt as the
    transformer, the plan applied again (as after a deployment). Built once per test session."""
    if DBNAME in _BUILT:
        return _BUILT[DBNAME]
    from anbar import access
    from anbar.registry import load_registry

    started = time.monotonic()
    make_warehouse(pg, load_registry(), DBNAME)
    target = Path(tempfile.mkdtemp(prefix="anbar-access-dbt-"))
    wh = AccessWarehouse(pg=pg, dbname=DBNAME, manifest=target / "manifest.json", target=target)
    wh.passwords = {**{name: secrets.token_urlsafe(12) for name in USERS}, **service_passwords()}
    wh.dbt("parse")
    apply(wh)
    conn = wh.admin()
    try:
        for name, kind in USERS.items():
            access.add_user(conn, name, kind, wh.passwords[name])
    finally:
        conn.close()
    wh.dbt("run")
    apply(wh)
    print(f"\n[timing] access warehouse built in {time.monotonic() - started:.1f}s")
    _BUILT[DBNAME] = wh
    return wh
