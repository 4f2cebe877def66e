"""One warehouse build for deliveries accepted close together: the first task of ``anbar_warehouse``.

Airflow makes an asset-triggered run as soon as one dataset's Asset is updated and, while that run is
going (``max_active_runs=1``), queues the events that follow into one more run. A month's deliveries
accepted a minute apart would so cost two builds, the second one started by events the first one could
have read. Before dbt starts, ``coalesce_deliveries``:

1. **skips the run** (and every task after it) when each Asset event that triggered it is older than the
   start of the last build, and that build succeeded: those deliveries were in the ledger when that build
   read it (an Asset event is published after its delivery is accepted in the ledger), so the build would
   change nothing;
2. otherwise **waits for a quiet moment**: until no Asset of the warehouse has been updated for
   ``ANBAR_WAREHOUSE_QUIET_SECONDS`` (default 60), at most ``ANBAR_WAREHOUSE_MAX_WAIT_SECONDS`` (default
   900) — deliveries accepted meanwhile are read by this build, and the run their events queue is skipped
   by (1);
3. records when this build starts (the Airflow Variable ``<dag_id>__last_build``: the run and the instant),
   for (1) in the next run.

A run started by hand (no Asset event) neither waits nor is skipped. A failed build is never taken as
covering anything: the next Asset event builds again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

TASK_ID = "coalesce_deliveries"


def quiet_seconds() -> float:
    """How long no Asset of the warehouse must have been updated before a build starts."""
    return float(os.environ.get("ANBAR_WAREHOUSE_QUIET_SECONDS", "60"))


def max_wait_seconds() -> float:
    """The longest a build waits for that quiet moment."""
    return float(os.environ.get("ANBAR_WAREHOUSE_MAX_WAIT_SECONDS", "900"))


def variable_key(dag_id: str) -> str:
    return f"{dag_id}__last_build"


@dataclass(frozen=True)
class LastBuild:
    """The run whose build started last, and when (just before its dbt read the ledger)."""

    run_id: str
    started_at: dt.datetime

    def dumps(self) -> str:
        return json.dumps({"run_id": self.run_id, "started_at": self.started_at.isoformat()})

    @classmethod
    def loads(cls, value: str | None) -> LastBuild | None:
        if not value:
            return None
        try:
            data = json.loads(value)
            started = dt.datetime.fromisoformat(data["started_at"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring an unreadable last-build record: %r", value)
            return None
        return cls(run_id=str(data["run_id"]), started_at=started)


def covered(event_times: Iterable[dt.datetime], last: LastBuild | None, last_state: str | None) -> bool:
    """Whether the deliveries behind these Asset events were all read by the last build, which succeeded."""
    times = list(event_times)
    return bool(times) and last is not None and last_state == "success" and max(times) <= last.started_at


def wait_for_quiet(
    latest_event: Callable[[], dt.datetime | None],
    *,
    quiet: float,
    max_wait: float,
    now: Callable[[], dt.datetime],
    sleep: Callable[[float], None] = time.sleep,
    poll: float = 5.0,
) -> dt.timedelta:
    """Wait until the newest Asset event is ``quiet`` seconds old, or ``max_wait`` seconds have passed;
    how long it waited."""
    started = now()
    deadline = started + dt.timedelta(seconds=max_wait)
    while True:
        current = now()
        latest = latest_event()
        settles = latest + dt.timedelta(seconds=quiet) if latest is not None else current
        if settles <= current:
            return current - started
        if current >= deadline:
            log.info("deliveries kept coming for %.0f s: building now", max_wait)
            return current - started
        pause = min(poll, (settles - current).total_seconds(), (deadline - current).total_seconds())
        log.info("last delivery accepted at %s: waiting %.0f s for more before building", latest, pause)
        sleep(max(pause, 0.1))


def coalesce_deliveries(**context) -> bool:
    """The ``coalesce_deliveries`` task (a short-circuit: False skips the build)."""
    from airflow.sdk import Variable

    ti = context["ti"]
    dag_id, run_id = ti.dag_id, context["run_id"]
    event_times = [e.timestamp for events in context["triggering_asset_events"].values() for e in events]
    last = LastBuild.loads(Variable.get(variable_key(dag_id), default=None))
    if event_times and last is not None:
        try:
            last_state = ti.get_dagrun_state(dag_id, last.run_id)
        except Exception:  # that run is gone (cleaned up): it proves nothing
            last_state = None
        if covered(event_times, last, last_state):
            log.info(
                "the %d Asset event(s) of this run (the last at %s) were all read by run %s, which started "
                "building at %s and succeeded: nothing to build",
                len(event_times),
                max(event_times),
                last.run_id,
                last.started_at,
            )
            return False
    if event_times:
        inlets = context["inlet_events"]

        def latest_event() -> dt.datetime | None:
            newest = [events[0].timestamp for events in (inlets[a].ascending(False).limit(1) for a in inlets) if events]
            return max(newest, default=None)

        waited = wait_for_quiet(
            latest_event, quiet=quiet_seconds(), max_wait=max_wait_seconds(), now=lambda: dt.datetime.now(dt.UTC)
        )
        log.info("building after waiting %.0f s for deliveries accepted close together", waited.total_seconds())
    Variable.set(variable_key(dag_id), LastBuild(run_id=run_id, started_at=dt.datetime.now(dt.UTC)).dumps())
    return True
