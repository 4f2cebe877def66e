"""The role statisticians' SQL runs as: ``anbar_validator``, read-only, on the tables of one validation only.

A suite's SQL rules the pass cannot evaluate run in PostgreSQL (:func:`anbar.engine.validate.run_in_postgres`), and
so do the queries naming their offending rows. That SQL is the statisticians' text, run by the ingest; it never runs
as the loader, who owns ``raw``, ``clean``, the ledger and the pseudonym key. :func:`session` gives it a connection
of its own, logged in as ``anbar_validator`` (``settings.VALIDATOR_CONN_ID``), read-only; by the access plan that
role holds CONNECT on the warehouse and USAGE on ``clean`` and ``raw`` and nothing else (docs/access.md). For the
time of the block, the warehouse connection (the loader, owner of the tables) grants it SELECT on exactly the
tables the rules read — the submission's own, its ``{raw}`` copy, the partitions its placeholders compare with —
and revokes them afterwards, whatever happened.

A login of its own, not ``SET ROLE`` on the loader's connection: a query can undo a SET ROLE by itself
(``set_config('role', 'none', false)`` returns to the session's user), never change the login it runs under.

Validations take turns (an advisory lock held by the granting connection; ``anbar access apply``, which revokes
everything the role holds, waits for it too), so one never revokes what another is reading. Each starts by
revoking whatever the role still holds: the grants of a validation killed before its revoke (its lock went with
its connection), so a rerun after a crash starts clean and no rule ever reads a table granted for another delivery.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any

import psycopg2

log = logging.getLogger(__name__)

# The tables a validation may grant: anbar's own names of a submission's tables in clean and raw.
TABLE = re.compile(r'^(clean|raw)\."[a-z][a-z0-9_]*"$')


@contextlib.contextmanager
def session(tables: Iterable[str]) -> Iterator[Any]:
    """A read-only connection of ``anbar_validator`` that reads ``tables`` (SQL names, ``clean."…"`` or
    ``raw."…"``) and nothing else, for the time of the block.

    Where the validator's connection is not ``anbar_validator``'s (no access plan: the warehouse connection by
    default), a read-only connection of that login, granted nothing."""
    from anbar import access, settings, warehouse

    tables = sorted(set(tables))
    for table in tables:
        if not TABLE.match(table):
            raise ValueError(f"{table!r} is not a table of clean or raw a validation may grant")
    reader = warehouse.connect(settings.VALIDATOR_CONN_ID)
    try:
        reader.set_session(readonly=True)
        with reader.cursor() as cur:
            cur.execute("select session_user")
            (user,) = cur.fetchone()
            # Bounded, so a rule that sleeps or waits on a lock ends as that rule's error.
            cur.execute("select set_config('statement_timeout', %s, false)", (settings.validator_statement_timeout(),))
        reader.commit()
        if user != access.VALIDATOR:
            log.warning(
                "statisticians' SQL rules run as %s (read-only), not as %s: connection %s is not the validator's "
                "(ANBAR_VALIDATOR_CONN_ID, docs/access.md)",
                user,
                access.VALIDATOR,
                settings.VALIDATOR_CONN_ID,
            )
            yield reader
            return
        grantor = warehouse.connect()
        try:
            with grantor.cursor() as cur:
                cur.execute("select pg_advisory_lock(hashtext(%s))", (access.VALIDATOR_LOCK,))
                _revoke_all(cur, access.VALIDATOR)
                for table in tables:
                    cur.execute(f"grant select on {table} to {access.VALIDATOR}")
            grantor.commit()
            log.info("%s may read %s", access.VALIDATOR, ", ".join(tables))
            yield reader
        finally:
            _end(grantor, access.VALIDATOR)
    finally:
        reader.close()


def _revoke_all(cur, role: str) -> None:
    """Revoke every privilege ``role`` holds on a table this connection's login owns."""
    cur.execute(
        "select format('%%I.%%I', n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where c.relkind in ('r', 'p', 'v', 'm', 'f') and pg_has_role(c.relowner, 'USAGE') "
        "and exists (select from aclexplode(c.relacl) a where a.grantee = %s::regrole) order by 1",
        (role,),
    )
    held = [r[0] for r in cur.fetchall()]
    if held:
        cur.execute(f"revoke all on {', '.join(held)} from {role}")


def _end(grantor, role: str) -> None:
    """Revoke the validation's grants and let the next validation go (closing the connection ends its lock). A
    connection lost meanwhile cannot revoke them: the next validation does, before it grants anything."""
    try:
        grantor.rollback()
        with grantor.cursor() as cur:
            _revoke_all(cur, role)
        grantor.commit()
    except psycopg2.Error as exc:
        log.warning("the grants to %s could not be revoked now (%s): the next validation revokes them", role, exc)
    finally:
        grantor.close()
