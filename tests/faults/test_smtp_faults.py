"""The mail server is down when a mail is due: nothing is recorded as sent, the mail waits in the outbox
(``anbar.notifications``), and once the server is back it is delivered exactly once — never again on reruns.

A deadline alert matters most: Airflow fires a deadline once, and a failed callback is not retried."""

from __future__ import annotations

import datetime as dt
import email
from email import policy

import pytest
from integration.db import fetch

from anbar import alerts, ingest, notify
from anbar.registry import load_registry

pytestmark = pytest.mark.integration


def _received(simulators, subject_part: str) -> int:
    """Mails in the simulated mail server's mailbox whose subject has ``subject_part``."""
    return sum(
        subject_part in str(email.message_from_bytes(p.read_bytes(), policy=policy.default)["subject"])
        for p in simulators.maildir.glob("*.eml")
    )


def _outbox(conn, key: str) -> dict:
    [row] = fetch(
        conn,
        "select sent_at is not null as sent, attempts, last_error from anbar.notifications where dedup_key = %s",
        key,
    )
    return row


def test_a_deadline_alert_due_during_an_outage_is_sent_once_when_the_server_is_back(fresh_warehouse, simulators):
    conn = fresh_warehouse
    registry = load_registry()
    times = alerts.alert_times(registry, "sso", "workplaces", "1404-08")
    key, subject = "late:sso/workplaces/1404-08", "LATE sso/workplaces 1404-08"
    before = _received(simulators, subject)

    with simulators.smtp_outage():
        said = alerts.send_alert("late", "sso", "workplaces", "1404-08", now=times.late, registry=registry)
        assert said.startswith("queued: the mail server failed")
        pending = _outbox(conn, key)
        assert (pending["sent"], pending["attempts"]) == (False, 1)
        assert "Connection refused" in pending["last_error"]
        assert notify.send_pending(conn) == {"sent": [], "failed": [key]}  # the outbox's run during the outage
    assert _received(simulators, subject) == before

    # The server is back: the outbox DAG's next run sends it, once.
    assert notify.send_pending(conn) == {"sent": [key], "failed": []}
    assert _received(simulators, subject) == before + 1
    sent = _outbox(conn, key)
    assert (sent["sent"], sent["attempts"], sent["last_error"]) == (True, 3, None)
    # Reruns of everything change nothing: the callback fired again, the outbox again.
    assert (
        alerts.send_alert("late", "sso", "workplaces", "1404-08", now=times.late, registry=registry) == "already sent"
    )
    assert notify.send_pending(conn) == {"sent": [], "failed": []}
    assert _received(simulators, subject) == before + 1


def test_a_feedback_mail_during_an_outage_does_not_fail_the_ingest_and_goes_out_once(fresh_warehouse, simulators):
    """No delivery by the deadline (CSPF 1403-01 was never published): the missing notice meets the outage."""
    conn = fresh_warehouse
    key, subject = "missing:cspf/pensioners/1403-01", "MISSING cspf/pensioners 1403-01"
    before = _received(simulators, subject)
    with simulators.smtp_outage():
        step = ingest.run_steps("cspf", "pensioners", "1403-01", now=dt.datetime.now(dt.UTC))
        assert (step.state, step.detail["mail"]) == ("missing", "queued")  # decided and recorded all the same
        assert _outbox(conn, key)["sent"] is False
    assert _received(simulators, subject) == before

    assert notify.send_pending(conn) == {"sent": [key], "failed": []}  # anbar_mail_outbox's task
    assert _received(simulators, subject) == before + 1 and _outbox(conn, key)["sent"] is True
    # Airflow retries or clears the conclude task, the outbox runs again: still one mail.
    assert ingest.conclude(step).detail["mail"] == "already sent"
    assert notify.send_pending(conn) == {"sent": [], "failed": []}
    assert _received(simulators, subject) == before + 1
