"""Default arguments and callbacks shared by every anbar DAG (one place, by design)."""

from __future__ import annotations

import datetime as dt
import logging

from anbar import settings

log = logging.getLogger(__name__)

# A fixed date, not now(): DAG files do no work at parse time.
START_DATE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

# A mapped task's map index names what it works on: a task sets this key of its context, the template reads it.
MAP_LABEL_KEY = "anbar_map_label"
MAP_LABEL = "{{ " + MAP_LABEL_KEY + " }}"


def label_map_index(context, step_or_label) -> None:
    """The map index of the running task: ``<dataset> <period>`` of a step or due dataset, or a label as is."""
    if isinstance(step_or_label, dict):
        context[MAP_LABEL_KEY] = f"{step_or_label['dataset']} {step_or_label['period']}"
    else:
        context[MAP_LABEL_KEY] = str(step_or_label)


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
