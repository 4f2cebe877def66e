"""`anbar access apply --bootstrap` as docker-compose.yml's anbar-access-apply runs it at every `up`: the
administrator's connection carries no password (it is in a secret file), the service roles' passwords come from
the environment. Afterwards each service role logs in with the new password, and only with it.

On the access tests' warehouse (tests/integration/access_warehouse.py): decision roles are the cluster's, so a
plan applied to a second warehouse database of the same cluster would drop that warehouse's decision roles.
(The administrator is named by ANBAR_ACCESS_ADMIN_URL here; the compose file's Airflow connection, read with the
same secret file, is tests/deploy/test_compose.py's.)"""

from __future__ import annotations

import secrets

import psycopg2
import pytest

from anbar import access, audit
from anbar.cli import main
from anbar.devenv.postgres import SUPERUSER

from .access_warehouse import access_warehouse

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def wh(pg):
    return access_warehouse(pg)


@pytest.fixture
def restored(wh):
    """Gives the service roles back the passwords the other access tests use."""
    yield
    conn = wh.admin()
    try:
        access.set_service_passwords(conn, {var: wh.passwords[role] for role, var in access.PASSWORD_ENV.items()})
    finally:
        conn.close()


def test_apply_bootstrap_as_the_compose_file_runs_it(wh, restored, tmp_path, monkeypatch, capsys):
    from anbar_dbt_testdata import PSEUDONYM_KEY

    secret = tmp_path / "postgres_superuser_password"
    secret.write_text(wh.pg.password + "\n")  # as `openssl rand -hex 32 | tee` writes it
    monkeypatch.setenv("ANBAR_ACCESS_ADMIN_URL", f"postgresql://{SUPERUSER}@127.0.0.1:{wh.pg.port}/{wh.dbname}")
    monkeypatch.setenv(access.ADMIN_PASSWORD_FILE_ENV, str(secret))
    monkeypatch.setenv("ANBAR_PSEUDONYM_KEY", PSEUDONYM_KEY)  # the warehouse's own key (the bootstrap checks it)
    passwords = {role: secrets.token_urlsafe(12) for role in access.PASSWORD_ENV}
    for role, var in access.PASSWORD_ENV.items():
        monkeypatch.setenv(var, passwords[role])

    argv = ["access", "apply", "--bootstrap", "--manifest", str(wh.manifest)]
    assert main([*argv, "--dry-run"]) == 1  # a dry run changes nothing
    assert "--bootstrap" in capsys.readouterr().err
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "tables are up to date; every statement of the warehouse is logged for the audit" in out
    assert f"access plan applied to {wh.dbname}" in out
    assert all(f"password of {role} set from {var}" in out for role, var in access.PASSWORD_ENV.items())

    def connect(role: str, password: str):
        return psycopg2.connect(host="127.0.0.1", port=wh.pg.port, user=role, password=password, dbname=wh.dbname)

    for role in access.PASSWORD_ENV:
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            connect(role, wh.passwords[role]).close()
    loader, transformer = (
        connect(access.LOADER, passwords[access.LOADER]),
        connect(access.TRANSFORMER, passwords[access.TRANSFORMER]),
    )
    try:
        with loader.cursor() as cur:
            # the bootstrap ran as the administrator, and the plan handed its tables back to the loader
            cur.execute("select distinct tableowner from pg_tables where schemaname in ('raw', 'clean')")
            assert cur.fetchall() == [(access.LOADER,)]
            cur.execute("select count(*) > 0 from anbar.submissions")
            assert cur.fetchone() == (True,)
        with transformer.cursor() as cur:
            cur.execute("select has_schema_privilege('raw', 'usage'), has_schema_privilege('clean', 'usage')")
            assert cur.fetchone() == (False, True)  # only the loader reads raw
    finally:
        loader.close()
        transformer.close()
    with wh.session() as conn:
        assert audit.database_logs_all(conn)  # every statement logged for the audit
