"""The access-decision history is append-only: no row of it is updated or deleted, and it cannot be
truncated, whoever asks (the administrator included: the triggers refuse the statement itself)."""

from __future__ import annotations

import psycopg2
import pytest

from anbar import access

pytestmark = pytest.mark.integration

REFUSED = psycopg2.errors.RaiseException


@pytest.fixture
def history(fresh_warehouse):
    """A warehouse with one decision, approved then revoked: two history rows."""
    conn = fresh_warehouse
    access.install(conn)
    with conn.cursor() as cur:
        cur.execute(
            "insert into anbar.access_decisions (researcher, models, tier, purpose, decision_ref, expires_on, "
            "expires_at) values ('rita', array['fct_training'], 'licensed', 'a study', '1404/09/12-17', "
            "date '2026-03-20', (date '2026-03-21')::timestamp at time zone 'Asia/Tehran') returning decision_id"
        )
        (decision_id,) = cur.fetchone()
        cur.execute(
            "update anbar.access_decisions set status = 'revoked', revoked_at = now(), revoked_by = 'x', "
            "revoke_reason = 'the project ended' where decision_id = %s",
            (decision_id,),
        )
    conn.commit()
    return conn


def rows(conn) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute("select history_id, status, decision->>'revoke_reason' from anbar.access_decision_history")
        found = sorted(cur.fetchall())
    conn.commit()
    return found


@pytest.mark.parametrize(
    "statement",
    [
        "update anbar.access_decision_history set status = 'approved'",  # the approved row stays approved ...
        "update anbar.access_decision_history set status = 'revoked' where status = 'approved'",  # ... too
        'update anbar.access_decision_history set decision = decision || \'{"purpose": "other"}\'',
        "delete from anbar.access_decision_history",
        "truncate anbar.access_decision_history",
    ],
)
def test_the_history_is_append_only(history, statement):
    before = rows(history)
    assert [s for _, s, _ in before] == ["approved", "revoked"]
    with pytest.raises(REFUSED, match="append-only"), history.cursor() as cur:
        cur.execute(statement)
    history.rollback()
    assert rows(history) == before


def test_installing_again_keeps_the_guards(history):
    access.install(history)  # anbar access apply runs the same DDL at every `up`
    history.commit()
    with pytest.raises(REFUSED, match="append-only"), history.cursor() as cur:
        cur.execute("truncate anbar.access_decision_history")
    history.rollback()
    assert len(rows(history)) == 2
