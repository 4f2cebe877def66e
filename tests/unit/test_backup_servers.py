"""Where backups connect and which client programs they run: the password file, the database of a URL,
and the pg_dump that fits the server's major version."""

from __future__ import annotations

import pytest

from anbar import backup
from anbar.devenv.postgres import bin_path


def test_the_backup_url_takes_its_password_from_the_secret_file_and_never_passes_it_on_a_command_line(
    tmp_path, monkeypatch
):
    secret = tmp_path / "postgres_superuser_password"
    secret.write_text("s3cret:@/x\n")
    monkeypatch.setenv("ANBAR_BACKUP_URL", "postgresql+psycopg2://postgres@db.internal:5433/warehouse")
    monkeypatch.setenv("ANBAR_BACKUP_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("ANBAR_BACKUP_DATABASES", "warehouse, airflow")
    server = backup.source_server()
    assert server.params["password"] == "s3cret:@/x" and server.label == "db.internal:5433/warehouse"
    assert "s3cret" not in server.conninfo() and server.env()["PGPASSWORD"] == "s3cret:@/x"
    assert server.database("airflow").conninfo() == "user=postgres dbname=airflow host=db.internal port=5433"
    assert backup.databases() == ["warehouse", "airflow"]
    assert backup.verify_server().dbname == "postgres"

    monkeypatch.setenv("ANBAR_BACKUP_URL", "postgresql://backup:inline@db.internal/warehouse")
    assert backup.source_server().params["password"] == "inline"  # a password in the URL wins
    monkeypatch.delenv("ANBAR_BACKUP_DATABASES")
    assert backup.databases() == ["warehouse"]
    monkeypatch.setenv("ANBAR_BACKUP_URL", "postgresql://postgres@db.internal/warehouse")
    secret.unlink()
    with pytest.raises(backup.BackupError, match=r"ANBAR_BACKUP_PASSWORD_FILE=.*No such file"):
        backup.source_server()


def test_client_programs_fit_the_server_major_version(monkeypatch):
    monkeypatch.setenv("ANBAR_PG_BIN_DIR", str(bin_path("pg_dump").parent))
    tools = backup.find_tools(18)
    assert tools.major == 18 and tools["pg_restore"] == str(bin_path("pg_restore"))
    assert backup.find_tools(14).major == 18  # a newer pg_dump dumps an older server
    with pytest.raises(backup.BackupError, match=r"of version 19 or newer: tried .*pginstall/bin \(18\.\d+\)"):
        backup.find_tools(19)
