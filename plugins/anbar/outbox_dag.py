"""The mail outbox DAG: mails the server refused, sent once it is back, every 15 minutes.

``anbar_mail_outbox`` has one task, ``send_pending`` (:func:`anbar.notify.send_pending`): every
mail recorded in ``anbar.notifications`` and never sent — a deadline alert fired while the mail
server was down, a feedback mail of an ingest whose ``conclude`` went on without it — is sent,
each at most once whatever else retries it.
"""

from __future__ import annotations

import datetime as dt
import logging

from airflow.sdk import DAG, task

from anbar.dag_defaults import START_DATE, default_args

log = logging.getLogger(__name__)

DAG_ID = "anbar_mail_outbox"

DOC_MD = """
# anbar_mail_outbox — mails the mail server refused, sent when it is back

Every 15 minutes, `send_pending` sends each mail of `anbar.notifications` that was recorded but
never sent (`sent_at` null): the mail server refused it or could not be reached. Deadline alerts
(reminder, late notice, escalation) fire once in Airflow, so this is how one that met a mail outage
still goes out; feedback mails, failure alerts and monthly reports land here too when their own task
could not send them. Each mail goes out at most once: the dedup key is locked while it is sent.

## Triage

- **The task succeeds but logs "still unsent"**: the mail server is still down or refuses the mail;
  `select dedup_key, attempts, last_attempt_at, last_error from anbar.notifications where sent_at is null;`
  says why. Fix the `anbar_smtp` connection or the server; the next run sends them. The task does not
  fail for an outage: a failure alert could not be mailed either, and would pile up.
- **"withdrawn, not sent"**: a deadline alert that waited here is checked against the ledger again
  before it goes: a reminder or late notice whose delivery arrived meanwhile, an escalation whose
  delivery was accepted, or a reminder whose late notice is already due is taken out of the outbox
  (`last_error` says why). Nothing to do.
- **Any other mail should not go out any more**:
  `delete from anbar.notifications where dedup_key = '...' and sent_at is null;` before the next run.
- Clearing a run is always safe: a sent mail is never sent again.
"""


def build_outbox_dag() -> DAG:
    with DAG(
        dag_id=DAG_ID,
        description="Mails the mail server refused, sent once it is back",
        schedule=dt.timedelta(minutes=15),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(),
        tags=["anbar", "mail"],
        doc_md=DOC_MD,
    ) as dag:

        @task
        def send_pending() -> dict:
            """Send the mails recorded but never sent (each at most once)."""
            from anbar import alerts, notify, warehouse

            conn = warehouse.connect()
            try:
                done = notify.send_pending(conn, withdraw=alerts.outbox_withdrawal)
            finally:
                conn.close()
            log.info("sent %d mail(s): %s", len(done["sent"]), ", ".join(done["sent"]) or "-")
            if done["withdrawn"]:
                log.info("withdrawn, not sent (no longer due, says the ledger): %s", ", ".join(done["withdrawn"]))
            if done["failed"]:
                log.warning("still unsent (the mail server failed): %s", ", ".join(done["failed"]))
            return done

        send_pending()
    return dag
