"""Replay a period's delivery alerts on a simulated clock, with Airflow's own machinery.

Used by the month test (``tests/e2e/test_alert_month.py``) and by ``make demo`` (``anbar alerts-replay``).
The clock is ``time_machine``'s; everything else is what runs in production:

- the organisation's real ingest DAG, parsed from ``dags/`` and written to the Airflow metadata database
  (the DAGs stay paused, so the scheduler loop below schedules no task: it only handles deadlines);
- the period's **scheduled** run, created as the scheduler creates it at the end of the period, which
  evaluates the plugin's deadline reference (:class:`anbar.alerts.DatasetDueDate`) into deadline rows;
- at each tick, one iteration of the real ``SchedulerJobRunner._run_scheduler_loop`` (which marks the
  deadlines that have passed as missed and queues their callbacks for the triggerer), then each queued
  callback run exactly as the triggerer runs it (``CallbackTrigger.run`` + ``handle_event``): the
  notifier reads the warehouse ledger and mails through the ``anbar_smtp`` connection.

What happens to the deliveries meanwhile (accepted, recorded missing...) is scripted by the caller as
:class:`Event`s that write the ledger and set task states, since the simulated clock cannot run tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from anbar.periods import Period
from anbar.registry import Registry
from anbar.timetables import data_interval_for


def _when(instant: dt.datetime, timezone: str) -> str:
    """``2026-10-29 20:31 UTC (1405/08/08 00:01 Asia/Tehran)``."""
    from zoneinfo import ZoneInfo

    import jdatetime

    local = instant.astimezone(ZoneInfo(timezone))
    jalali = jdatetime.datetime.fromgregorian(datetime=local.replace(tzinfo=None))
    return f"{instant:%Y-%m-%d %H:%M} UTC ({jalali:%Y/%m/%d %H:%M} {timezone})"


@dataclass
class Event:
    at: dt.datetime
    what: str
    action: Callable[[AlertReplay], None] = field(repr=False)


@contextlib.contextmanager
def _unit_test_mode():
    """The scheduler loop sleeps a second per idle iteration unless [core] unit_test_mode is on."""
    old = os.environ.get("AIRFLOW__CORE__UNIT_TEST_MODE")
    os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
        else:
            os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = old


class AlertReplay:
    """One organisation's period on a simulated clock. Call inside ``time_machine.travel(..., tick=False)``."""

    def __init__(self, registry: Registry, org: str, period: str, clock, say: Callable[[str], None] = print):
        self.registry = registry
        self.org = registry.org(org)
        self.period = Period.parse(period, self.org.calendar)
        self.interval = data_interval_for(self.period, self.org.timezone)
        self.dag_id = f"anbar_ingest__{self.org.code}"
        self.clock = clock
        self.say = say
        self.run_ids: list[str] = []
        self.callbacks_run = 0

    # -- setup ---------------------------------------------------------------------------------------------
    def sync_dags(self) -> None:
        """Parse ``dags/anbar_ingest.py``; write its DAGs to the metadata DB, as the dag-processor does."""
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

        manager = DagBundlesManager()
        manager.sync_bundles_to_db()
        bundle = next(b for b in manager.get_all_dag_bundles() if b.name == "dags-folder")
        # Only the ingest DAGs' file: the warehouse DAG (Cosmos) takes seconds to parse and has no alerts.
        bag = BundleDagBag(dag_folder=bundle.path / "anbar_ingest.py", bundle_path=bundle.path, bundle_name=bundle.name)
        if bag.import_errors:
            raise RuntimeError(f"DAG import errors: {bag.import_errors}")
        sync_bag_to_db(bag, bundle.name, None)

    def create_run(self, period: Period | None = None, *, run_type: str = "scheduled", conf: dict | None = None) -> str:
        """Create a run of ``period`` (default: the replayed one) as the scheduler (or a trigger) would."""
        from airflow.models.dagbag import DBDagBag
        from airflow.utils.session import create_session
        from airflow.utils.state import DagRunState
        from airflow.utils.types import DagRunTriggeredByType, DagRunType

        period = period or self.period
        interval = data_interval_for(period, self.org.timezone)
        kind = DagRunType(run_type)
        run_id = f"{kind.value}__{interval.end.isoformat()}"
        with create_session() as session:
            dag = DBDagBag().get_latest_version_of_dag(self.dag_id, session=session)
            dag.create_dagrun(
                run_id=run_id,
                logical_date=interval.start,
                data_interval=interval,
                run_after=interval.end,
                run_type=kind,
                state=DagRunState.RUNNING,
                conf=conf or {},
                triggered_by=DagRunTriggeredByType.TIMETABLE
                if kind is DagRunType.SCHEDULED
                else DagRunTriggeredByType.TEST,
                session=session,
            )
        self.run_ids.append(run_id)
        return run_id

    def deadlines(self) -> list[tuple[dt.datetime, str, bool]]:
        """(deadline time, alert name, missed) of the replayed runs, by time."""
        from airflow.models import DagRun, Deadline
        from airflow.models.deadline_alert import DeadlineAlert
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            rows = session.execute(
                select(Deadline.deadline_time, DeadlineAlert.name, Deadline.missed)
                .join(DagRun, DagRun.id == Deadline.dagrun_id)
                .join(DeadlineAlert, DeadlineAlert.id == Deadline.deadline_alert_id)
                .where(DagRun.dag_id == self.dag_id, DagRun.run_id.in_(self.run_ids))
                .order_by(Deadline.deadline_time, DeadlineAlert.name)
            ).all()
        return [(t, name, missed) for t, name, missed in rows]

    # -- what the tasks would have done ----------------------------------------------------------------------
    def finish_run(self, run_id: str | None = None) -> str:
        """Every task of the run done: the run succeeds (and Airflow prunes its deadlines not yet passed)."""
        from airflow.models import DagRun
        from airflow.models.dagbag import DBDagBag
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState
        from sqlalchemy import select

        with create_session() as session:
            dr = session.scalar(
                select(DagRun).where(DagRun.dag_id == self.dag_id, DagRun.run_id == (run_id or self.run_ids[0]))
            )
            dr.dag = DBDagBag().get_dag_for_run(dr, session=session)
            for ti in dr.get_task_instances(session=session):
                ti.state = TaskInstanceState.SUCCESS
            session.flush()
            dr.update_state(session=session)
            return str(dr.state)

    def clear_run(self, run_id: str | None = None) -> None:
        """What "Clear" in the UI does to the run's tasks."""
        from airflow.models import DagRun
        from airflow.models.taskinstance import clear_task_instances
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            dr = session.scalar(
                select(DagRun).where(DagRun.dag_id == self.dag_id, DagRun.run_id == (run_id or self.run_ids[0]))
            )
            clear_task_instances(dr.get_task_instances(session=session), session)

    # -- the clock -------------------------------------------------------------------------------------------
    def _scheduler(self):
        from airflow.executors.local_executor import LocalExecutor
        from airflow.jobs.job import Job
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

        runner = SchedulerJobRunner(job=Job(), num_runs=1)
        runner.executors = [LocalExecutor(parallelism=1)]
        runner.executor = runner.executors[0]
        return runner

    def run_callbacks(self, *, again: bool = False) -> int:
        """Run the queued deadline callbacks of the replayed runs as the triggerer does (``again``: run the
        ones already run once more, as a triggerer that died before recording the outcome would)."""
        from airflow.models import DagRun, Deadline
        from airflow.models.callback import TriggererCallback
        from airflow.models.deadline_alert import DeadlineAlert
        from airflow.triggers.callback import CallbackTrigger
        from airflow.utils.session import create_session
        from sqlalchemy import select

        n = 0
        with create_session() as session:
            query = (
                select(TriggererCallback, DeadlineAlert.name)
                .join(Deadline, Deadline.callback_id == TriggererCallback.id)
                .join(DeadlineAlert, DeadlineAlert.id == Deadline.deadline_alert_id)
                .join(DagRun, DagRun.id == Deadline.dagrun_id)
                .where(DagRun.dag_id == self.dag_id, DagRun.run_id.in_(self.run_ids))
            )
            if not again:
                query = query.where(TriggererCallback.state == "queued")
            for callback, name in session.execute(query).all():
                if again:  # its trigger row is gone: rebuild it from what the scheduler queued
                    data = callback.data
                    trigger = CallbackTrigger(callback_path=data["path"], callback_kwargs=dict(data["kwargs"]))
                else:
                    trigger = CallbackTrigger(**callback.trigger.kwargs)

                async def drain(trigger=trigger):
                    return [event async for event in trigger.run()]

                for event in asyncio.run(drain()):
                    if not again:
                        callback.handle_event(event, session)
                session.flush()
                n += 1
                if not again:
                    self.say(f"{_when(dt.datetime.now(dt.UTC), self.org.timezone)}  {name}: {callback.output}")
        self.callbacks_run += n
        return n

    def replay(self, events: list[Event], until: dt.datetime, tick: dt.timedelta = dt.timedelta(hours=6)) -> None:
        """From now to ``until`` in ``tick`` steps: events due, one scheduler loop, the queued callbacks."""
        runner = self._scheduler()
        runner.executor.start()
        pending = sorted(events, key=lambda e: e.at)
        now = dt.datetime.now(dt.UTC)
        try:
            with _unit_test_mode():
                while now <= until:
                    self.clock.move_to(now)
                    while pending and pending[0].at <= now:
                        event = pending.pop(0)
                        self.say(f"{_when(now, self.org.timezone)}  {event.what}")
                        event.action(self)
                    runner._run_scheduler_loop()
                    self.run_callbacks()
                    now += tick
        finally:
            runner.executor.end()


def main(argv: list[str] | None = None) -> int:
    """``python -m anbar.devenv.alerts_replay ORG PERIOD``: replay one period of an organisation whose
    deliveries the ledger already holds (or not), from the end of the period to a day after its last
    escalation. Needs an Airflow metadata database of its own (AIRFLOW_HOME, migrated), the warehouse
    (ANBAR_WAREHOUSE_URL) and the ``anbar_smtp`` connection; ``make demo`` runs it for its late supplier."""
    import argparse

    import time_machine

    from anbar import alerts, expected

    parser = argparse.ArgumentParser(prog="python -m anbar.devenv.alerts_replay", description=main.__doc__)
    parser.add_argument("org")
    parser.add_argument("period")
    args = parser.parse_args(argv)
    registry = alerts.current_registry()
    org = registry.org(args.org)
    period = Period.parse(args.period, org.calendar)
    start = data_interval_for(period, org.timezone).end
    last = max(
        alerts.alert_times(registry, org.code, ds.name, ds_period.label).escalation
        for ds, ds_period in expected.due_in_run(org, period.label)
    )
    say = lambda line: print(f"[anbar]   {line}", flush=True)  # noqa: E731
    with time_machine.travel(start, tick=False) as clock:
        replay = AlertReplay(registry, org.code, period.label, clock, say=say)
        replay.sync_dags()
        replay.create_run()
        say(f"{_when(start, org.timezone)}  scheduled run of {replay.dag_id} for {period.label}; deadlines:")
        for moment, name, _ in replay.deadlines():
            say(f"    {_when(moment, org.timezone)}  {name}")
        clock.move_to(start + dt.timedelta(minutes=1))
        replay.replay([], until=last + dt.timedelta(days=1), tick=dt.timedelta(days=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
