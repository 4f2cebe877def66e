"""The warehouse team's mail about a failed task: what comes from the run (its id, the exception) is escaped,
and no value of the data reaches the mail, though a database error quotes the row it failed on.

The callback runs as Airflow runs it after the last retry, against a real warehouse; the mail server is down
(a port nobody listens on), so the mail waits in the outbox (anbar.notifications), where its HTML is read.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass

import psycopg2
import pytest

from anbar import dag_defaults, notify

pytestmark = pytest.mark.integration

NATIONAL_ID = "0076229645"
HOSTILE_RUN_ID = 'manual__2025-11-01T00:00:00+00:00"><script>alert(1)</script>'


@dataclass(frozen=True)
class FailedTaskInstance:
    """The task instance fields Airflow's failure context gives the callback."""

    dag_id: str
    task_id: str
    map_index: int


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mail_server_down(monkeypatch):
    extra = {"disable_ssl": True, "disable_tls": True, "retry_limit": 0, "timeout": 5, "from_email": "a@b.c"}
    monkeypatch.setenv(
        "AIRFLOW_CONN_ANBAR_SMTP",
        json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": _closed_port(), "extra": extra}),
    )


def _database_error(conn) -> psycopg2.Error:
    """A real error of the warehouse that quotes a row's values, as a failed load's would."""
    with conn.cursor() as cur:
        cur.execute("create temporary table people (national_id text primary key, note text)")
        cur.execute("insert into people values (%s, 'first')", (NATIONAL_ID,))
        try:
            cur.execute("insert into people values (%s, %s)", (NATIONAL_ID, "<b>Reza</b>"))
        except psycopg2.Error as exc:
            conn.rollback()
            return exc
    raise AssertionError("the duplicate was accepted")


def test_the_failure_mail_escapes_the_run_and_carries_no_row_value(fresh_warehouse, mail_server_down):
    conn = fresh_warehouse
    error = _database_error(conn)
    assert NATIONAL_ID in str(error)  # PostgreSQL quotes the key: "Key (national_id)=(0076229645) ..."
    with conn.cursor() as cur:
        try:
            cur.execute("select 'Reza <script>x</script> 1583250689'::integer")
        except psycopg2.Error as exc:
            conversion = exc
    conn.rollback()

    for task_id, exc in (("load", error), ("validate", conversion)):
        dag_defaults.on_task_failure(
            {"ti": FailedTaskInstance("anbar_ingest__sso", task_id, 3), "run_id": HOSTILE_RUN_ID, "exception": exc}
        )
        html = _kept_unsent(conn, f"task-failed:anbar_ingest__sso:{HOSTILE_RUN_ID}:{task_id}:3")
        assert "<script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the run id, shown as text
        for value in (NATIONAL_ID, "1583250689", "Reza", "&lt;b&gt;"):
            assert value not in html, (task_id, value)
        assert type(exc).__name__ in html and "anbar_ingest__sso." + task_id in html


def _kept_unsent(conn, dedup_key: str) -> str:
    """The HTML of the mail the outbox keeps under ``dedup_key``, unsent."""
    with conn.cursor() as cur:
        cur.execute(
            "select mail->>'html' from anbar.notifications where dedup_key = %s and sent_at is null", (dedup_key,)
        )
        (html,) = cur.fetchone()
    conn.commit()
    return html


def test_error_summary_keeps_what_helps_triage():
    assert notify.error_summary(None) == "(no exception recorded)"
    assert (
        notify.error_summary(ValueError("size of persons.csv is 1234567 bytes, manifest says 'x'\nDETAIL: more"))
        == "ValueError: size of persons.csv is … bytes, manifest says «…»"
    )
    assert notify.error_summary(RuntimeError("connection refused")) == "RuntimeError: connection refused"
    assert len(notify.error_summary(RuntimeError("x" * 1000))) == notify.ERROR_SUMMARY_LENGTH
