"""Person keys are HMAC-SHA256 computed inside PostgreSQL with a key callers cannot read."""

from __future__ import annotations

import hashlib
import hmac
import os

import psycopg2
import pytest

from anbar import cli, pseudonym

pytestmark = pytest.mark.integration


def _one(conn, query, *args):
    with conn.cursor() as cur:
        cur.execute(query, args)
        row = cur.fetchone()
    conn.commit()
    return row[0]


@pytest.mark.parametrize("key", ["short", "k" * 64, "a key longer than one sha-256 block " * 3, "کلید"])
def test_the_database_computes_rfc_2104_hmac_sha256(fresh_warehouse, key):
    conn = fresh_warehouse
    pseudonym.install_key(conn, key, rotate=True)
    for nid in ("0076229645", "1583250689"):
        expected = hmac.new(key.encode(), nid.encode(), hashlib.sha256).hexdigest()
        assert _one(conn, "select anbar.pseudonymise(%s)", nid) == expected


def test_bootstrap_installs_the_configured_key_and_never_another(fresh_warehouse):
    conn = fresh_warehouse
    configured = os.environ["ANBAR_PSEUDONYM_KEY"]
    assert pseudonym.installed_fingerprint(conn) == pseudonym.fingerprint(configured)
    assert _one(conn, "select anbar.require_pseudonym_key()") == pseudonym.fingerprint(configured)
    assert pseudonym.install_key(conn) == pseudonym.fingerprint(configured)  # the same again: a no-op
    with pytest.raises(pseudonym.PseudonymKeyError, match="changes every person_key"):
        pseudonym.install_key(conn, "another key")
    assert pseudonym.installed_fingerprint(conn) == pseudonym.fingerprint(configured)
    assert pseudonym.install_key(conn, "another key", rotate=True) == pseudonym.fingerprint("another key")


def test_the_cli_reports_and_installs(fresh_warehouse, capsys, monkeypatch):
    assert cli.main(["pseudonym", "status"]) == 0
    assert pseudonym.fingerprint(os.environ["ANBAR_PSEUDONYM_KEY"]) in capsys.readouterr().out
    monkeypatch.setenv("ANBAR_PSEUDONYM_KEY", "rotated")
    assert cli.main(["pseudonym", "install"]) == 1
    assert "changes every person_key" in capsys.readouterr().err
    assert cli.main(["pseudonym", "install", "--rotate"]) == 0
    assert pseudonym.fingerprint("rotated") in capsys.readouterr().out


def _secrets_of(key: str) -> set[str]:
    """Every spelling of a key that would undo the pseudonymisation if a log held it."""
    ipad, opad = pseudonym.padded_keys(key)
    return {key, key.encode().hex(), ipad.hex(), opad.hex()}


class _LogsFromNow:
    """The server's log directory from the moment it is made on: every file less what it held then, up to its
    last complete line. Nothing written before can hold a key made after, and reading (and ingesting into the
    audit) everything the session's server logged before the test would take minutes."""

    def __init__(self, path):
        self.path = path
        self.start = {p.name: self._last_line_end(p) for p in path.iterdir() if p.is_file()}

    @staticmethod
    def _last_line_end(path) -> int:
        end = path.stat().st_size
        with open(path, "rb") as f:
            while end > 0:
                start = max(0, end - 65536)
                f.seek(start)
                newline = f.read(end - start).rfind(b"\n")
                if newline >= 0:
                    return start + newline + 1
                end = start
        return 0

    def text(self) -> str:
        """Every file's new part, as text."""
        return "\n".join(
            self.read(p.name, 0, p.stat().st_size).decode("utf-8", errors="replace")
            for p in sorted(self.path.iterdir())
            if p.is_file()
        )

    # What anbar.audit.ingest reads (the interface of audit.DirectorySource).
    def files(self) -> list[str]:
        return sorted(p.name for p in self.path.glob("*.json") if p.is_file())

    def read(self, name: str, offset: int, length: int) -> bytes:
        with open(self.path / name, "rb") as f:
            f.seek(self.start.get(name, 0) + offset)
            return f.read(length)

    def size(self, name: str) -> int:
        return (self.path / name).stat().st_size - self.start.get(name, 0)


def test_no_log_holds_the_key_installed_or_rotated_under_full_statement_logging(pg, fresh_warehouse):
    """Issue 16.1: with the audit's ``log_statement = 'all'`` on, installing and rotating the key leaves it in
    neither the server's log files nor ``audit.statement_log`` (hex, padded halves, the key itself)."""
    import secrets
    import time

    from anbar import audit

    conn = fresh_warehouse
    database = conn.info.dbname
    assert audit.install(conn) == []
    assert audit.database_logs_all(conn)
    conn.close()  # log_statement = 'all' applies to sessions opened from now on
    logs = _LogsFromNow(pg.log_dir)  # before any key is made
    conn = psycopg2.connect(pg.dsn(database))
    first, second = f"install-{secrets.token_hex(16)}", f"rotate-{secrets.token_hex(16)}"
    pseudonym.install_key(conn, first, rotate=True)
    pseudonym.install_key(conn, second, rotate=True)
    with pytest.raises(pseudonym.PseudonymKeyError):
        pseudonym.install_key(conn, first)  # refused: the refusal logs nothing of it either
    marker = f"pseudonym-log-marker-{secrets.token_hex(8)}"
    assert _one(conn, f"select '{marker}'") == marker

    deadline = time.monotonic() + 20
    while True:  # the logging collector writes asynchronously
        logged = logs.text()
        if marker in logged:
            break
        assert time.monotonic() < deadline, "the server's log never showed the test's statements"
        time.sleep(0.3)
    assert "pseudonym_key" in logged  # the statements were logged: the test looks where the key would be
    leaked = [s for s in _secrets_of(first) | _secrets_of(second) if s.lower() in logged.lower()]
    assert leaked == []

    audit.ingest(conn, logs)
    with conn.cursor() as cur:
        cur.execute(
            "select coalesce(statement, '') || ' ' || coalesce(parameters, '') || ' ' || coalesce(error, '') "
            "from audit.statement_log"
        )
        trail = "\n".join(r[0] for r in cur.fetchall()).lower()
    conn.commit()
    assert "pseudonym_key" in trail
    assert [s for s in _secrets_of(first) | _secrets_of(second) if s.lower() in trail] == []
    conn.close()
