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


def _outbox_run(conn, now: dt.datetime) -> dict:
    """What anbar_mail_outbox's task does (the ledger asked again for deadline alerts), on the clock ``now``."""
    return notify.send_pending(conn, withdraw=lambda c, mail: alerts.outbox_withdrawal(c, mail, now=now))


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
        # the outbox's run during the outage
        assert _outbox_run(conn, times.late) == {"sent": [], "failed": [key], "withdrawn": []}
    assert _received(simulators, subject) == before

    # The server is back: the outbox DAG's next run sends it, once.
    assert _outbox_run(conn, times.late) == {"sent": [key], "failed": [], "withdrawn": []}
    assert _received(simulators, subject) == before + 1
    sent = _outbox(conn, key)
    assert (sent["sent"], sent["attempts"], sent["last_error"]) == (True, 3, None)
    # Reruns of everything change nothing: the callback fired again, the outbox again.
    assert (
        alerts.send_alert("late", "sso", "workplaces", "1404-08", now=times.late, registry=registry) == "already sent"
    )
    assert _outbox_run(conn, times.late) == {"sent": [], "failed": [], "withdrawn": []}
    assert _received(simulators, subject) == before + 1


def test_a_reminder_queued_in_an_outage_is_withdrawn_if_the_delivery_arrives_before_the_server_is_back(
    fresh_warehouse, simulators
):
    """The reminder fired while the mail server was down; SSO delivered meanwhile: the outbox asks the ledger
    again and takes the reminder out unsent."""
    conn = fresh_warehouse
    registry = load_registry()
    times = alerts.alert_times(registry, "sso", "workplaces", "1404-07")
    key, subject = "reminder:sso/workplaces/1404-07", "REMINDER sso/workplaces 1404-07"
    before = _received(simulators, subject)
    with simulators.smtp_outage():
        said = alerts.send_alert("reminder", "sso", "workplaces", "1404-07", now=times.reminder, registry=registry)
        assert said.startswith("queued")
    assert ingest.run_steps("sso", "workplaces", "1404-07", now=times.reminder).state == "accepted"
    assert _outbox_run(conn, times.reminder) == {"sent": [], "failed": [], "withdrawn": [key]}
    row = _outbox(conn, key)
    assert row["sent"] is False and row["last_error"].startswith("withdrawn, not sent: a delivery was received")
    assert _outbox_run(conn, times.reminder) == {"sent": [], "failed": [], "withdrawn": []}
    assert _received(simulators, subject) == before


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

    assert _outbox_run(conn, dt.datetime.now(dt.UTC)) == {"sent": [key], "failed": [], "withdrawn": []}
    assert _received(simulators, subject) == before + 1 and _outbox(conn, key)["sent"] is True
    # Airflow retries or clears the conclude task, the outbox runs again: still one mail.
    assert ingest.conclude(step).detail["mail"] == "already sent"
    assert _outbox_run(conn, dt.datetime.now(dt.UTC)) == {"sent": [], "failed": [], "withdrawn": []}
    assert _received(simulators, subject) == before + 1
