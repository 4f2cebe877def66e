"""The access-expiry DAG: every day, revoke the committee's access decisions whose last day has passed.

``anbar_access_expiry`` runs daily at 00:30 Tehran time:

    revoke_expired ─► report

* ``revoke_expired`` calls :func:`anbar.access.expire` as of the run's logical date or now, whichever
  is later (revoking more is always the safe direction; a cleared old run revokes what has expired
  by now), on the access administrator's connection (:func:`anbar.access.connect_admin`);
* ``report`` logs what was revoked (decision, researcher, models, last day) and returns it.
"""

from __future__ import annotations

import datetime as dt
import logging

from airflow.sdk import DAG, get_current_context, task
from airflow.timetables.trigger import CronTriggerTimetable

from anbar import settings
from anbar.dag_defaults import START_DATE, default_args

log = logging.getLogger(__name__)

DAG_ID = "anbar_access_expiry"
SCHEDULE = "30 0 * * *"
TIMEZONE = "Asia/Tehran"

DOC_MD = """
# Access expiry (`anbar_access_expiry`)

Every day at 00:30 Tehran time, revokes every approved access decision of the data-exchange
committee whose last day (`expires_on`, a Tehran day, inclusive) has passed: the researcher loses
the role `anbar_access_<id>`, the role's grants are dropped, the decision becomes `expired`
(kept in `anbar.access_decisions`, its history in `anbar.access_decision_history`).
`report` lists what was revoked. See `docs/access.md`.

A run revokes what expired by its logical date or by now, whichever is later.

## Triage: what to check when a task fails
1. **Connection errors**: the Airflow connection `anbar_access_admin` (if defined, else
   `anbar_warehouse`) must be the access administrator (a superuser of the warehouse, or a role
   with CREATEROLE that administers the `anbar_access_*` roles).
2. **`relation "anbar.access_decisions" does not exist`**: the access plan was never applied:
   `anbar access apply`.
3. **`permission denied to drop role`** / **`must be owner`**: the connection is not the access
   administrator (see 1).
4. **An expired grant still works**: `anbar access list --status approved` shows it? Run
   `anbar access expire` by hand; `anbar access revoke ID --reason ...` ends one decision now.
5. Nothing is ever deleted: a decision revoked by mistake is decided again (`anbar access decide`).

Owner: anbar-data-engineering. Retries: 2 with backoff, then a mail to the warehouse team.
"""


def as_of_for_run(context) -> dt.datetime:
    """The instant a run revokes as of: the later of its logical date and now."""
    now = dt.datetime.now(dt.UTC)
    logical = context.get("logical_date")
    return max(now, logical) if logical is not None else now


def revoke_expired(as_of: dt.datetime) -> list[dict]:
    from anbar import access

    conn = access.connect_admin()
    try:
        ended = access.expire(conn, as_of)
    finally:
        conn.close()
    return [
        {
            "decision_id": d.decision_id,
            "researcher": d.researcher,
            "models": list(d.models),
            "decision_ref": d.decision_ref,
            "expires_on": d.expires_on.isoformat(),
        }
        for d in ended
    ]


def format_report(revoked: list[dict], as_of: str) -> str:
    if not revoked:
        return f"no access decision had expired as of {as_of}"
    lines = [f"{len(revoked)} access decision(s) expired as of {as_of} and revoked:"]
    for d in revoked:
        lines.append(
            f"  decision {d['decision_id']} ({d['decision_ref']}) of {d['researcher']}: "
            f"{', '.join(d['models'])}; last day {d['expires_on']} (Tehran)"
        )
    return "\n".join(lines)


def build_access_expiry_dag() -> DAG:
    with DAG(
        dag_id=DAG_ID,
        description="Revoke the access decisions whose last day has passed (Tehran time)",
        schedule=CronTriggerTimetable(SCHEDULE, timezone=TIMEZONE),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(settings.OWNER, queue=settings.GOVERNANCE_QUEUE),  # the administrator's worker
        tags=["anbar", "access", "security"],
        doc_md=DOC_MD,
    ) as dag:

        @task
        def revoke() -> dict:
            as_of = as_of_for_run(get_current_context())
            revoked = revoke_expired(as_of)
            return {"as_of": as_of.isoformat(), "revoked": revoked}

        @task
        def report(result: dict) -> str:
            text = format_report(result["revoked"], result["as_of"])
            log.info("%s", text)
            return text

        report(revoke())
    return dag
