"""Pseudonymisation of person IDs inside PostgreSQL, with a key that never appears in SQL text.

``anbar.pseudonymise(national_id)`` returns HMAC-SHA256(key, national_id) in hex: the same person
gets the same ``person_key`` in every source, so files link without their national IDs.

The key is installed once per warehouse (:func:`install_key`) into ``anbar_secret.pseudonym_key``,
a table no role but its owner can read; the function is ``SECURITY DEFINER``, so models that
call it compute person keys without being able to read the key. dbt's compiled SQL, the server
log of a slow statement and the catalog hold only the function's name. The key itself comes
from the environment (``ANBAR_PSEUDONYM_KEY``, or a file named by ``ANBAR_PSEUDONYM_KEY_FILE``) or the
Airflow connection ``anbar_pseudonym`` (its password), never from the repository.

PostgreSQL has no HMAC without pgcrypto (not shipped with every server), so the key is stored as
its two padded halves (key XOR ipad, key XOR opad; RFC 2104) and the function composes two
built-in ``sha256`` calls: sha256(opad_key || sha256(ipad_key || message)).

The key is sent in a way no log can hold: no statement text carries it or its padded halves
(:func:`_store_pads`), so the statement log of the audit never sees it.

Changing the key changes every ``person_key``: :func:`install_key` refuses a different key
unless ``rotate=True``.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

CONN_ID = "anbar_pseudonym"
BLOCK = 64  # SHA-256 block size in bytes

DDL = """
create schema if not exists anbar_secret;
revoke all on schema anbar_secret from public;
create table if not exists anbar_secret.pseudonym_key (
    only_row     boolean primary key default true check (only_row),
    ipad_key     bytea not null,
    opad_key     bytea not null,
    fingerprint  text not null,
    installed_at timestamptz not null default now()
);
revoke all on anbar_secret.pseudonym_key from public;

create or replace function anbar.pseudonymise(national_id text) returns text
language sql stable strict parallel safe security definer
set search_path = pg_catalog, pg_temp
as $$
    select encode(sha256(k.opad_key || sha256(k.ipad_key || convert_to(national_id, 'UTF8'))), 'hex')
    from anbar_secret.pseudonym_key as k
$$;
comment on function anbar.pseudonymise(text) is
    'HMAC-SHA256 of a person ID with the warehouse pseudonym key (anbar_secret, unreadable to callers).';

create or replace function anbar.require_pseudonym_key() returns text
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    found text;
begin
    select fingerprint into found from anbar_secret.pseudonym_key;
    if found is null then
        raise exception 'the pseudonym key is not installed in this warehouse'
            using hint = 'run `anbar pseudonym install` with ANBAR_PSEUDONYM_KEY set '
                         '(or the Airflow connection anbar_pseudonym); never change it afterwards';
    end if;
    return found;
end
$$;
comment on function anbar.require_pseudonym_key() is
    'Fails unless the pseudonym key is installed; returns its fingerprint (not the key).';
"""


class PseudonymKeyError(RuntimeError):
    """No key to install, or a different key than the one the warehouse already uses."""


def padded_keys(key: str) -> tuple[bytes, bytes]:
    """RFC 2104's inner and outer padded keys."""
    raw = key.encode("utf-8")
    if len(raw) > BLOCK:
        raw = hashlib.sha256(raw).digest()
    raw = raw.ljust(BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in raw), bytes(b ^ 0x5C for b in raw)


def fingerprint(key: str) -> str:
    """Names a key in logs and audits without revealing it."""
    return hashlib.sha256(b"anbar-pseudonym-key-fingerprint:" + key.encode("utf-8")).hexdigest()[:16]


def configured_key() -> str | None:
    """The key from the environment (``ANBAR_PSEUDONYM_KEY``, else the file ``ANBAR_PSEUDONYM_KEY_FILE``
    names: a Compose secret in production), else from the Airflow connection ``anbar_pseudonym``."""
    key = os.environ.get("ANBAR_PSEUDONYM_KEY", "").strip()
    if key:
        return key
    key_file = os.environ.get("ANBAR_PSEUDONYM_KEY_FILE", "").strip()
    if key_file:
        try:
            key = Path(key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:  # named but unreadable: never fall back to another key
            raise PseudonymKeyError(f"ANBAR_PSEUDONYM_KEY_FILE={key_file}: {exc.strerror}") from exc
        if not key:
            raise PseudonymKeyError(f"ANBAR_PSEUDONYM_KEY_FILE={key_file} is empty")
        return key
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(CONN_ID)
    except Exception:  # no Airflow here, or no such connection
        return None
    return (conn.password or "").strip() or None


def install_functions(conn) -> None:
    with conn.cursor() as cur:
        cur.execute(DDL)
    conn.commit()


def installed_fingerprint(conn) -> str | None:
    with conn.cursor() as cur:
        cur.execute("select to_regclass('anbar_secret.pseudonym_key')")
        if cur.fetchone()[0] is None:
            conn.commit()
            return None
        cur.execute("select fingerprint from anbar_secret.pseudonym_key")
        row = cur.fetchone()
    conn.commit()
    return row[0] if row else None


def install_key(conn, key: str | None = None, *, rotate: bool = False) -> str:
    """Install the key (default: :func:`configured_key`); returns its fingerprint.

    Installing the key already installed is a no-op. A different key is refused unless
    ``rotate`` (every person_key changes: the warehouse models must be rebuilt from scratch).
    """
    key = key if key is not None else configured_key()
    if not key:
        raise PseudonymKeyError(
            "no pseudonym key configured: set ANBAR_PSEUDONYM_KEY (or ANBAR_PSEUDONYM_KEY_FILE) or the password of "
            "the Airflow connection "
            f"{CONN_ID!r}"
        )
    install_functions(conn)
    new = fingerprint(key)
    current = installed_fingerprint(conn)
    if current == new:
        return new
    if current is not None and not rotate:
        raise PseudonymKeyError(
            f"this warehouse uses the pseudonym key {current}, not {new}: a new key changes every person_key. "
            "Use the key the warehouse was built with, or rotate on purpose (`anbar pseudonym install --rotate`) "
            "and rebuild the warehouse models from scratch"
        )
    ipad, opad = padded_keys(key)
    with conn.cursor() as cur:
        _store_pads(cur, ipad, opad, new)
    conn.commit()
    return new


def _store_pads(cur, ipad: bytes, opad: bytes, fingerprint_: str) -> None:
    """Write the padded keys so that no statement text holds them.

    A parameter of a statement is part of its text in the server's log (psycopg2 interpolates it; a
    server-side bind is logged as ``parameters: $1 = ...``), and the warehouse logs every statement for
    the audit (``log_statement = 'all'``), which ``anbar_audit`` copies into ``audit.statement_log``. The
    rows of ``COPY ... FROM STDIN`` travel in the COPY protocol, which no log setting records; the COPY
    goes into a temporary table whose columns cannot reject what is sent (hex this function wrote), so no
    error context can quote a row either. The statements that move it into place name no key.
    """
    cur.execute(
        "create temporary table pseudonym_key_incoming (ipad_key bytea not null, opad_key bytea not null) "
        "on commit drop"
    )
    cur.copy_expert(
        "copy pg_temp.pseudonym_key_incoming (ipad_key, opad_key) from stdin with (format csv)",
        io.StringIO(f"\\x{ipad.hex()},\\x{opad.hex()}\n"),
    )
    cur.execute(
        "insert into anbar_secret.pseudonym_key (only_row, ipad_key, opad_key, fingerprint) "
        "select true, ipad_key, opad_key, %s from pg_temp.pseudonym_key_incoming "
        "on conflict (only_row) do update set ipad_key = excluded.ipad_key, "
        "opad_key = excluded.opad_key, fingerprint = excluded.fingerprint, installed_at = now()",
        (fingerprint_,),
    )
