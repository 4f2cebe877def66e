"""Default arguments and callbacks shared by every anbar DAG (one place, by design)."""

from __future__ import annotations

import datetime as dt
import logging

from anbar import settings

log = logging.getLogger(__name__)

# A fixed date, not now(): DAG files do no work at parse time.
START_DATE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def on_task_failure(context) -> None:
    """Tell the warehouse team once per failed task instance (after its last retry)."""
    from anbar import notify, warehouse

    ti = context["ti"]
    mail = notify.task_failure_mail(ti.dag_id, ti.task_id, ti.map_index, context["run_id"], context.get("exception"))
    key = mail.dedup_key
    try:
        conn = warehouse.connect()
        try:
            notify.send(conn, mail)
        finally:
            conn.close()
    except Exception:  # a failing alert must not hide the original failure
        log.exception("could not send the failure alert %s", key)


def default_args(owner: str = settings.OWNER, queue: str | None = None) -> dict:
    """Owner, retries with backoff, a mail on failure; ``queue`` (e.g. ``settings.GOVERNANCE_QUEUE``) routes the
    DAG's tasks to other Celery workers than the default queue's."""
    args = {
        "owner": owner,
        "retries": 2,
        "retry_delay": dt.timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=30),
        "on_failure_callback": on_task_failure,
    }
    if queue is not None:
        args["queue"] = queue
    return args
