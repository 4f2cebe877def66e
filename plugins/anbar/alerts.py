"""Reminders, late notices and escalations of deliveries, on Airflow's Deadline Alerts.

Each organisation's ingest DAG (:mod:`anbar.ingest_dag`) carries three ``DeadlineAlert`` per dataset:

=============  ==============================================  =====================================
kind           when (Airflow deadline = reference + interval)   to
=============  ==============================================  =====================================
``reminder``   the due date's end − N days                      the organisation's focal points
``late``       the due date's end (the delivery is now late)    the organisation's focal points
``escalation`` the due date's end + M days                      ``ministry.yml`` ``escalation``, focal
                                                                points in cc
=============  ==============================================  =====================================

N and M are ``reminder_days_before`` and ``escalation_days_after`` of ``registry/ministry.yml``. The
due date is :func:`anbar.expected.expected_submission`'s (a committee extension counts), and "the end of
the due date" is 00:00 of the next day in the organisation's time zone: the last day to deliver on
time is the due date itself.

- :class:`DatasetDueDate` is the custom deadline reference (registered by the plugin
  ``plugins/anbar_plugin.py``): evaluated when the scheduler creates a **scheduled** run, it
  returns the end of the dataset's due date for the run's period, or ``None`` (no alert) for manual
  and backfill runs and for a period whose escalation has already passed (a catch-up sends no burst of
  stale mail).
- :class:`DeliveryAlertNotifier` is the callback (an ``AsyncCallback``: it runs in the triggerer).
  Airflow fires a deadline once (a missed deadline is never re-created, not even by clearing the run);
  before sending, the notifier reads the ledger — no reminder or late notice once a delivery of that
  dataset and period was received, no escalation once one was accepted — and sends through
  :func:`anbar.notify.send` under the key ``<kind>:<org>/<dataset>/<period>``, so nothing goes out twice.
- Airflow drops the deadlines of a run that succeeds before them. A run is over as soon as every dataset
  is decided, which for a dataset never delivered or rejected can be before its escalation: the task
  ``escalation_window`` (:class:`EscalationWindow`) therefore keeps a scheduled run open — deferred in
  the triggerer, no worker slot — until the escalation time of each of its datasets that has no accepted
  delivery (:func:`escalation_hold`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import jdatetime
from airflow.sdk import BaseDeadlineReference, BaseNotifier, BaseOperator, deadline_reference
from jinja2 import Environment, PackageLoader, select_autoescape

from anbar import expected, notify, warehouse
from anbar.dag_defaults import label_map_index
from anbar.registry import Calendar, Organisation, Registry, default_root, load_registry
from anbar.timetables import resolve_run_period

log = logging.getLogger(__name__)

KINDS = ("reminder", "late", "escalation")
SCHEDULED = "scheduled"

_env = Environment(
    loader=PackageLoader("anbar", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_cached: tuple[tuple, Registry] | None = None


def current_registry() -> Registry:
    """The registry, read again only when one of its files changed: the scheduler evaluates the deadline
    reference once per dataset and alert kind of every new run, and the triggerer runs for months."""
    global _cached
    root = default_root()
    files = sorted([*root.glob("*.yml"), *root.glob("code_lists/*.yml")])
    stamp = (str(root), *((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files))
    if _cached is None or _cached[0] != stamp:
        _cached = (stamp, load_registry(root))
    return _cached[1]


# -- when ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertTimes:
    """The three alert instants (UTC) of one dataset's period, and what they derive from."""

    expected: expected.ExpectedSubmission
    due_end: dt.datetime  # 00:00 local after the due date: from now on the delivery is late
    reminder: dt.datetime
    late: dt.datetime
    escalation: dt.datetime
    reminder_days: int
    escalation_days: int

    def at(self, kind: str) -> dt.datetime:
        return getattr(self, kind)


def end_of_day(day: dt.date, timezone: str) -> dt.datetime:
    """00:00 of the day after ``day`` in ``timezone``, in UTC."""
    local = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=ZoneInfo(timezone))
    return local.astimezone(dt.UTC)


def alert_times(registry: Registry, org: str, dataset: str, period: str) -> AlertTimes:
    exp = expected.expected_submission(registry, org, dataset, period)
    ministry = registry.ministry
    due_end = end_of_day(exp.due_date, registry.org(org).timezone)
    n, m = ministry.reminder_days_before, ministry.escalation_days_after
    return AlertTimes(
        expected=exp,
        due_end=due_end,
        reminder=due_end - dt.timedelta(days=n),
        late=due_end,
        escalation=due_end + dt.timedelta(days=m),
        reminder_days=n,
        escalation_days=m,
    )


def intervals(registry: Registry) -> dict[str, dt.timedelta]:
    """The ``DeadlineAlert`` interval of each kind, added by Airflow to :class:`DatasetDueDate`."""
    ministry = registry.ministry
    return {
        "reminder": -dt.timedelta(days=ministry.reminder_days_before),
        "late": dt.timedelta(0),
        "escalation": dt.timedelta(days=ministry.escalation_days_after),
    }


def is_scheduled(run_type) -> bool:
    return str(getattr(run_type, "value", run_type) or "").lower() == SCHEDULED


def run_period(
    org: Organisation, dataset: str, *, run_type: str | None, data_interval_start, run_after, conf
) -> str | None:
    """The period of ``dataset`` a run ingests, or None if the run carries no alerts for it: only scheduled
    runs do (a manual run is a re-run or a demo, a backfill catches up on the past; the scheduled run of the
    period has them), and a quarterly or yearly dataset only in the run of the month its period ends with."""
    if not is_scheduled(run_type):
        return None
    month = resolve_run_period(
        org.calendar,
        data_interval_start=_as_datetime(data_interval_start),
        run_after=_as_datetime(run_after),
        conf=conf if isinstance(conf, dict) else None,
        timezone=org.timezone,
    )
    period = expected.dataset_period(org.dataset(dataset), month)
    return period.label if period is not None else None


def _as_datetime(value) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def due_for_run(registry: Registry, org: str, dataset: str, *, now: dt.datetime, **run: Any) -> dt.datetime | None:
    """The deadline base of a new run: the end of the dataset's due date, or None (see the module doc)."""
    period = run_period(registry.org(org), dataset, **run)
    if period is None:
        return None
    times = alert_times(registry, org, dataset, period)
    if now >= times.escalation:
        log.info(
            "%s/%s/%s: escalation time %s has passed; no alerts for this run", org, dataset, period, times.escalation
        )
        return None
    return times.due_end


@deadline_reference
@dataclass
class DatasetDueDate(BaseDeadlineReference):
    """Deadline reference: the end of ``dataset``'s due date for the run's period (see :func:`due_for_run`).

    Evaluated by Airflow when the scheduler creates a run; registered by ``plugins/anbar_plugin.py``.
    """

    org: str = ""
    dataset: str = ""

    required_kwargs: ClassVar[set[str]] = {"dag_id", "run_id"}

    def _evaluate_with(self, *, session, dag_id: str, run_id: str, **kwargs) -> dt.datetime | None:
        from airflow.models import DagRun
        from sqlalchemy import select

        try:
            row = session.execute(
                select(DagRun.run_type, DagRun.data_interval_start, DagRun.run_after, DagRun.conf).where(
                    DagRun.dag_id == dag_id, DagRun.run_id == run_id
                )
            ).one_or_none()
            if row is None:
                return None
            return due_for_run(
                current_registry(),
                self.org,
                self.dataset,
                now=_utcnow(),
                run_type=row.run_type,
                data_interval_start=row.data_interval_start,
                run_after=row.run_after,
                conf=row.conf,
            )
        except Exception:  # an alert must never stop the scheduler from creating the run
            log.exception("no deadline for %s/%s in %s %s", self.org, self.dataset, dag_id, run_id)
            return None

    def serialize_reference(self) -> dict[str, Any]:
        return {"reference_type": self.reference_name, "org": self.org, "dataset": self.dataset}

    @classmethod
    def deserialize_reference(cls, reference_data: dict[str, Any]) -> DatasetDueDate:
        return cls(org=reference_data["org"], dataset=reference_data["dataset"])


# -- whether ---------------------------------------------------------------------------------------------


def ledger_statuses(conn, org: str, dataset: str, period: str) -> set[str]:
    with conn.cursor() as cur:
        cur.execute(
            "select distinct status from anbar.submissions where org = %s and dataset = %s and period = %s",
            (org, dataset, period),
        )
        return {r[0] for r in cur.fetchall()}


def decide(kind: str, statuses: set[str], times: AlertTimes, now: dt.datetime) -> str | None:
    """Why not to send (a short reason), or None to send."""
    if kind in ("reminder", "late"):
        received = statuses - {"missing"}
        if received:
            return f"a delivery was received ({', '.join(sorted(received))})"
        following = times.late if kind == "reminder" else times.escalation
        if now >= following:  # a run created late: the next alert says more
            return f"stale: the {'late notice' if kind == 'reminder' else 'escalation'} time has passed"
    elif kind == "escalation":
        if "accepted" in statuses:
            return "a delivery was accepted"
    else:
        raise ValueError(f"unknown alert kind {kind!r}")
    return None


# -- what ------------------------------------------------------------------------------------------------

SUBJECTS = {
    "reminder": "[anbar] REMINDER {where}: due by {due} | یادآوری مهلت تحویل",
    "late": "[anbar] LATE {where}: not delivered by {due} | تأخیر در تحویل",
    "escalation": "[anbar] ESCALATION {where}: {days} days overdue | گزارش تأخیر به وزارتخانه",
}
PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


def show_date(day: dt.date, calendar: Calendar) -> str:
    """A date as the supplier writes it: ``1404/09/15`` (Jalali) or ``2025-12-06``."""
    if calendar is Calendar.jalali:
        return jdatetime.date.fromgregorian(date=day).strftime("%Y/%m/%d")
    return day.isoformat()


def alert_mail(registry: Registry, kind: str, times: AlertTimes, statuses: set[str]) -> notify.Mail:
    exp = times.expected
    org = registry.org(exp.org)
    ds = org.dataset(exp.dataset)
    cal = org.calendar
    due = show_date(exp.due_date, cal)
    subject = SUBJECTS[kind].format(
        where=f"{org.code}/{ds.name} {exp.period.label}", due=due, days=times.escalation_days
    )
    dates = {
        "due": due,
        "due_fa": due.translate(PERSIAN_DIGITS),
        "due_gregorian": exp.due_date.isoformat(),
        "grace": show_date(exp.grace_until, cal),
        "grace_fa": show_date(exp.grace_until, cal).translate(PERSIAN_DIGITS),
        "grace_gregorian": exp.grace_until.isoformat(),
    }
    html = _env.get_template(f"alert_{kind}.html").render(
        subject=subject,
        org=org,
        ds=ds,
        period=exp.period.label,
        period_fa=exp.period.label.translate(PERSIAN_DIGITS),
        jalali=cal is Calendar.jalali,
        extension=exp.extension,
        days=times.reminder_days if kind == "reminder" else times.escalation_days,
        days_fa=str(times.reminder_days if kind == "reminder" else times.escalation_days).translate(PERSIAN_DIGITS),
        rejected="rejected" in statuses,
        **dates,
    )
    if kind == "escalation":
        to, cc = list(registry.ministry.escalation), list(org.focal_points)
    else:
        to, cc = list(org.focal_points), []
    return notify.Mail(
        dedup_key=f"{kind}:{org.code}/{ds.name}/{exp.period.label}",
        kind=kind,
        recipients=to,
        cc=cc,
        subject=subject,
        html=html,
    )


def send_alert(
    kind: str, org: str, dataset: str, period: str, *, now: dt.datetime | None = None, registry: Registry | None = None
) -> str:
    """Check the ledger and send one alert (at most once ever). Returns what happened, for the callback's output."""
    registry = registry or current_registry()
    now = now or _utcnow()
    times = alert_times(registry, org, dataset, period)
    where = f"{kind}:{org}/{dataset}/{period}"
    conn = warehouse.connect()
    try:
        statuses = ledger_statuses(conn, org, dataset, period)
        conn.commit()
        why_not = decide(kind, statuses, times, now)
        if why_not:
            log.info("%s not sent: %s", where, why_not)
            return f"not sent: {why_not}"
        try:
            sent = notify.send(conn, alert_mail(registry, kind, times, statuses))
        except notify.MailNotSent as exc:
            # Airflow fires a deadline once: the outbox (anbar_mail_outbox) sends it when the server is back
            log.warning("%s", exc)
            return "queued: the mail server failed; anbar_mail_outbox sends it when it is back"
    finally:
        conn.close()
    log.info("%s %s", where, "sent" if sent else "already sent before; not sent again")
    return "sent" if sent else "already sent"


def outbox_withdrawal(conn, mail: notify.Mail, *, now: dt.datetime | None = None) -> str | None:
    """Why a deadline alert waiting in the outbox (the mail server was down when it fired) should no longer
    go out — the ledger asked again, as when it fired — or None. Other mails always go out."""
    if mail.kind not in KINDS:
        return None
    org, dataset, period = mail.dedup_key.split(":", 1)[1].split("/")
    registry = current_registry()
    statuses = ledger_statuses(conn, org, dataset, period)
    conn.commit()
    return decide(mail.kind, statuses, alert_times(registry, org, dataset, period), now or _utcnow())


async def _sleep_until(moment: dt.datetime) -> None:
    while (left := (moment - _utcnow()).total_seconds()) > 0:
        await asyncio.sleep(min(left, 3600))


class DeliveryAlertNotifier(BaseNotifier):
    """The callback of the ingest DAGs' deadline alerts: ``AsyncCallback(DeliveryAlertNotifier, kwargs=...)``.

    Runs in the triggerer with the deadline's small context (``dag_run``, ``deadline``). If an extension
    approved after the run was created moved this alert later, it waits in the triggerer until then.
    """

    def __init__(self, *, kind: str, org: str, dataset: str, context=None):
        super().__init__(context)
        if kind not in KINDS:
            raise ValueError(f"unknown alert kind {kind!r}")
        self.kind, self.org, self.dataset = kind, org, dataset

    def period(self, context) -> str | None:
        dag_run = (context or {}).get("dag_run") or {}
        registry = current_registry()
        return run_period(
            registry.org(self.org),
            self.dataset,
            run_type=dag_run.get("run_type"),
            data_interval_start=dag_run.get("data_interval_start"),
            run_after=dag_run.get("run_after"),
            conf=dag_run.get("conf"),
        )

    def notify(self, context) -> str:
        period = self.period(context)
        if period is None:
            return "not sent: not a scheduled run, or none of this dataset's periods ends in it"
        return send_alert(self.kind, self.org, self.dataset, period)

    async def async_notify(self, context) -> str:
        from asgiref.sync import sync_to_async

        period = self.period(context)
        if period is None:
            return "not sent: not a scheduled run, or none of this dataset's periods ends in it"
        due = alert_times(current_registry(), self.org, self.dataset, period).at(self.kind)
        if due > _utcnow():
            log.info("%s:%s/%s/%s moved to %s (extension); waiting", self.kind, self.org, self.dataset, period, due)
            await _sleep_until(due)
        return await sync_to_async(send_alert)(self.kind, self.org, self.dataset, period)


def deadline_alerts(org: Organisation, registry: Registry) -> list:
    """The ``deadline=`` list of an organisation's ingest DAG: reminder, late notice, escalation per dataset."""
    from airflow.sdk import AsyncCallback, DeadlineAlert

    out = []
    for ds in org.datasets:
        for kind, interval in intervals(registry).items():
            out.append(
                DeadlineAlert(
                    reference=DatasetDueDate(org=org.code, dataset=ds.name),
                    interval=interval,
                    callback=AsyncCallback(
                        DeliveryAlertNotifier, kwargs={"kind": kind, "org": org.code, "dataset": ds.name}
                    ),
                    name=f"{ds.name} {kind}",
                )
            )
    return out


# -- keeping the run open until the escalation -------------------------------------------------------------


def escalation_hold(
    registry: Registry, org: str, dataset: str, period: str, *, run_type: str | None, now: dt.datetime | None = None
) -> str:
    """Until when ``escalation_window`` keeps the run open (ISO instant), or "" not to: a scheduled run whose
    dataset has no accepted delivery, before the escalation time."""
    if not is_scheduled(run_type):
        return ""
    times = alert_times(registry, org, dataset, period)
    if (now or _utcnow()) >= times.escalation:
        return ""
    conn = warehouse.connect()
    try:
        accepted = "accepted" in ledger_statuses(conn, org, dataset, period)
    finally:
        conn.close()
    return "" if accepted else times.escalation.isoformat()


class EscalationWindow(BaseOperator):
    """Keeps the run open until ``until`` (an ISO instant; empty: done at once), deferred in the triggerer.

    Airflow prunes the deadlines of a run that succeeds before them; this keeps the escalation of a
    dataset without an accepted delivery alive. Nothing is sent from here.
    """

    template_fields = ("until",)
    ui_color = "#f4e3c1"

    def __init__(self, *, until: str, **kwargs):
        super().__init__(**kwargs)
        self.until = until

    def execute(self, context) -> None:
        until = (self.until or "").strip()
        moment = dt.datetime.fromisoformat(until) if until and until != "None" else None
        label_map_index(context, f"open until {moment:%Y-%m-%d %H:%M} UTC" if moment else "not held")
        if moment is None or moment <= _utcnow():
            return
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        self.defer(trigger=DateTimeTrigger(moment=moment, end_from_trigger=True), method_name="execute_complete")

    def execute_complete(self, context, event=None) -> None:
        return None


# -- an Airflow 3.3.2 bug ------------------------------------------------------------------------------------


def patch_dag_test_deadline_pruning() -> None:
    """Work around apache/airflow#73428 (fix proposed in PR #73430, not in 3.3.2): ``DAG.test()`` and
    ``airflow dags test`` crash at the end of a successful run of any DAG with ``deadline=``, because their
    in-memory DAG holds the serialized alerts where the scheduler's holds ``deadline_alert`` ids, and
    ``DagRun.update_state`` looks each up with ``DeadlineAlert.get_by_id``. Given a serialized alert, the
    patched lookup returns it as an unsaved row (all ``update_state`` reads is its reference); ids take
    Airflow's own path. Applied by ``plugins/anbar_plugin.py``; remove once Airflow has the fix.
    """
    from airflow.models.deadline_alert import DeadlineAlert as DeadlineAlertModel

    original = DeadlineAlertModel.get_by_id
    if getattr(original, "anbar_airflow_73428", False):
        return

    def get_by_id(cls, deadline_alert_id, **kwargs):
        if isinstance(deadline_alert_id, dict):
            data = deadline_alert_id.get("__var", deadline_alert_id)
            return cls(
                name=data.get("name"),
                reference=data["reference"],
                interval=data.get("interval"),
                callback_def=data.get("callback"),
            )
        return original(deadline_alert_id, **kwargs)

    get_by_id.anbar_airflow_73428 = True
    DeadlineAlertModel.get_by_id = classmethod(get_by_id)
