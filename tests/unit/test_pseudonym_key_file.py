"""The pseudonym key from a file (ANBAR_PSEUDONYM_KEY_FILE): how production passes it, as a Compose secret."""

from __future__ import annotations

import pytest

from anbar import pseudonym


@pytest.fixture
def no_key(monkeypatch):
    monkeypatch.delenv("ANBAR_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("ANBAR_PSEUDONYM_KEY_FILE", raising=False)
    return monkeypatch


def test_the_key_is_read_from_the_file_without_its_newline(no_key, tmp_path):
    path = tmp_path / "anbar_pseudonym_key"
    path.write_text("  9f2c-secret-key\n")
    no_key.setenv("ANBAR_PSEUDONYM_KEY_FILE", str(path))
    assert pseudonym.configured_key() == "9f2c-secret-key"
    assert pseudonym.fingerprint(pseudonym.configured_key()) == pseudonym.fingerprint("9f2c-secret-key")


def test_the_variable_wins_over_the_file(no_key, tmp_path):
    path = tmp_path / "anbar_pseudonym_key"
    path.write_text("from-the-file\n")
    no_key.setenv("ANBAR_PSEUDONYM_KEY_FILE", str(path))
    no_key.setenv("ANBAR_PSEUDONYM_KEY", "from-the-variable")
    assert pseudonym.configured_key() == "from-the-variable"


@pytest.mark.parametrize("content", [None, "", "\n  \n"])
def test_a_named_file_that_gives_no_key_stops_rather_than_falls_back(no_key, tmp_path, content):
    path = tmp_path / "anbar_pseudonym_key"
    if content is not None:
        path.write_text(content)
    no_key.setenv("ANBAR_PSEUDONYM_KEY_FILE", str(path))
    # An Airflow connection anbar_pseudonym with another key must not be used instead.
    no_key.setenv("AIRFLOW_CONN_ANBAR_PSEUDONYM", '{"conn_type": "generic", "password": "another-key"}')
    with pytest.raises(pseudonym.PseudonymKeyError, match="ANBAR_PSEUDONYM_KEY_FILE"):
        pseudonym.configured_key()
