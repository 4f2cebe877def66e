"""Person keys are HMAC-SHA256 computed inside PostgreSQL with a key callers cannot read."""

from __future__ import annotations

import hashlib
import hmac
import os

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
