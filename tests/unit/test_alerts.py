"""Reminders, late notices and escalations: when (deadline reference), whether (ledger), what (mail).

The month on Airflow's own scheduler loop and triggerer, into a real SMTP server: tests/e2e/test_alert_month.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from anbar import alerts
from anbar.registry import Organisation, Registry, load_registry

UTC = dt.UTC
REG = load_registry()
# SSO, Aban 1404 (2025-10-23 .. 2025-11-21): due by the end of 1404/09/15 = 2025-12-06, 00:00 Tehran after it.
DUE_END = dt.datetime(2025, 12, 6, 20, 30, tzinfo=UTC)
SCHEDULED = {
    "run_type": "scheduled",
    "data_interval_start": "2025-10-22T20:30:00Z",
    "run_after": "2025-11-21T20:30:00Z",
    "conf": {},
}


def _with_extension(org: str, dataset: str, period: str, due: str) -> Registry:
    data = REG.org(org).model_dump(mode="json")
    for ds in data["datasets"]:
        if ds["name"] == dataset:
            ds["extensions"] = [{"period": period, "due_date": due, "decision": "1404/9/10-7"}]
    orgs = {**REG.organisations, org: Organisation.model_validate(data)}
    return Registry(root=REG.root, organisations=orgs, code_lists=REG.code_lists, ministry=REG.ministry)


def test_alert_times_are_n_days_before_at_and_m_days_after_the_end_of_the_due_date():
    times = alerts.alert_times(REG, "sso", "workplaces", "1404-08")
    assert times.expected.due_date == dt.date(2025, 12, 6)
    assert (times.reminder, times.late, times.escalation) == (
        DUE_END - dt.timedelta(days=3),
        DUE_END,
        DUE_END + dt.timedelta(days=7),
    )
    # Gregorian supplier, also in Tehran time: TVTO October 2025, due_day 10 -> 2025-11-10.
    tvto = alerts.alert_times(REG, "tvto", "trainees", "2025-10")
    assert tvto.late == dt.datetime(2025, 11, 10, 20, 30, tzinfo=UTC)


def test_an_approved_extension_moves_all_three():
    registry = _with_extension("sso", "workplaces", "1404-08", "2025-12-16")
    times = alerts.alert_times(registry, "sso", "workplaces", "1404-08")
    assert times.late == DUE_END + dt.timedelta(days=10)
    assert times.reminder == times.late - dt.timedelta(days=3)


def test_the_reference_gives_scheduled_runs_their_due_date_and_nothing_to_other_or_stale_runs():
    now = dt.datetime(2025, 11, 21, 20, 31, tzinfo=UTC)
    assert alerts.due_for_run(REG, "sso", "workplaces", now=now, **SCHEDULED) == DUE_END
    # a manual re-run or a demo run of the same period: the scheduled run carries the alerts
    assert alerts.due_for_run(REG, "sso", "workplaces", now=now, **{**SCHEDULED, "run_type": "manual"}) is None
    assert alerts.due_for_run(REG, "sso", "workplaces", now=now, **{**SCHEDULED, "run_type": "backfill"}) is None
    # created after the escalation time (catch-up after an outage): no burst of stale mail
    late = DUE_END + dt.timedelta(days=7, minutes=1)
    assert alerts.due_for_run(REG, "sso", "workplaces", now=late, **SCHEDULED) is None


def test_the_reference_round_trips_and_never_breaks_run_creation(monkeypatch):
    ref = alerts.DatasetDueDate(org="sso", dataset="workplaces")
    data = ref.serialize_reference()
    assert data == {"reference_type": "DatasetDueDate", "org": "sso", "dataset": "workplaces"}
    assert alerts.DatasetDueDate.deserialize_reference(data) == ref

    class Broken:
        def execute(self, *a, **k):
            raise RuntimeError("database went away")

    assert ref._evaluate_with(session=Broken(), dag_id="anbar_ingest__sso", run_id="x") is None


@pytest.mark.parametrize(
    ("kind", "statuses", "when", "why_not"),
    [
        ("reminder", set(), "reminder", None),
        ("reminder", {"missing"}, "reminder", None),
        ("reminder", {"received"}, "reminder", "a delivery was received (received)"),
        ("reminder", {"rejected"}, "reminder", "a delivery was received (rejected)"),
        ("reminder", set(), "late", "stale: the late notice time has passed"),
        ("late", set(), "late", None),
        ("late", {"accepted"}, "late", "a delivery was received (accepted)"),
        ("late", set(), "escalation", "stale: the escalation time has passed"),
        ("escalation", {"missing"}, "escalation", None),
        ("escalation", {"rejected"}, "escalation", None),
        ("escalation", {"rejected", "accepted"}, "escalation", "a delivery was accepted"),
    ],
)
def test_the_ledger_decides_whether_to_send(kind, statuses, when, why_not):
    times = alerts.alert_times(REG, "sso", "workplaces", "1404-08")
    assert alerts.decide(kind, statuses, times, times.at(when) + dt.timedelta(minutes=1)) == why_not


def test_reminder_and_late_notice_go_to_the_focal_points_in_their_calendar():
    times = alerts.alert_times(REG, "sso", "workplaces", "1404-08")
    mail = alerts.alert_mail(REG, "reminder", times, set())
    assert mail.dedup_key == "reminder:sso/workplaces/1404-08"
    assert (mail.recipients, mail.cc) == (REG.org("sso").focal_points, [])
    assert mail.subject == "[anbar] REMINDER sso/workplaces 1404-08: due by 1404/09/15 | یادآوری مهلت تحویل"
    assert mail.html.index('dir="rtl"') < mail.html.index('dir="ltr"')
    assert "۱۴۰۴/۰۹/۱۵" in mail.html and "2025-12-06" in mail.html and "in 3 days" in mail.html

    late = alerts.alert_mail(REG, "late", times, set())
    assert late.dedup_key == "late:sso/workplaces/1404-08" and late.recipients == REG.org("sso").focal_points
    assert "1404/09/20" in late.html  # the end of the grace, after which the period is recorded missing

    tvto = alerts.alert_mail(REG, "late", alerts.alert_times(REG, "tvto", "trainees", "2025-10"), set())
    assert "not delivered by 2025-11-10" in tvto.subject and "1404/" not in tvto.html


def test_the_escalation_goes_to_the_ministry_with_the_focal_points_in_copy():
    times = alerts.alert_times(REG, "sso", "workplaces", "1404-08")
    mail = alerts.alert_mail(REG, "escalation", times, {"rejected"})
    assert mail.recipients == REG.ministry.escalation and mail.cc == REG.org("sso").focal_points
    assert mail.subject.endswith("7 days overdue | گزارش تأخیر به وزارتخانه")
    assert "was rejected by the standards checks" in mail.html


def test_the_dag_carries_three_alerts_per_dataset_and_an_escalation_window():
    from anbar.ingest_dag import build_ingest_dag

    org = REG.org("sso")
    dag = build_ingest_dag(org, REG)
    assert sorted(a.name for a in dag.deadline) == sorted(
        f"{d.name} {k}" for d in org.datasets for k in ("reminder", "late", "escalation")
    )
    by_name = {a.name: a for a in dag.deadline}
    assert by_name["workplaces reminder"].interval == -dt.timedelta(days=3)
    assert by_name["workplaces escalation"].interval == dt.timedelta(days=7)
    assert by_name["workplaces late"].reference == alerts.DatasetDueDate(org="sso", dataset="workplaces")
    assert by_name["workplaces late"].callback.kwargs == {"kind": "late", "org": "sso", "dataset": "workplaces"}
    window = dag.get_task("dataset.escalation_window")
    assert [t.task_id for t in window.upstream_list] == ["dataset.escalation_due"]


def test_the_escalation_window_holds_only_scheduled_runs_of_datasets_not_accepted(monkeypatch):
    statuses: set[str] = set()

    class Conn:
        def close(self):
            pass

    monkeypatch.setattr(alerts.warehouse, "connect", Conn)
    monkeypatch.setattr(alerts, "ledger_statuses", lambda conn, *a: statuses)
    now = DUE_END + dt.timedelta(days=5)
    hold = lambda run_type="scheduled", at=now: alerts.escalation_hold(  # noqa: E731
        REG, "sso", "workplaces", "1404-08", run_type=run_type, now=at
    )
    assert hold() == (DUE_END + dt.timedelta(days=7)).isoformat()
    statuses.add("rejected")
    assert hold() == (DUE_END + dt.timedelta(days=7)).isoformat()
    assert hold(run_type="manual") == ""
    assert hold(at=DUE_END + dt.timedelta(days=8)) == ""
    statuses.add("accepted")
    assert hold() == ""


def test_the_escalation_window_defers_to_the_triggerer_until_then():
    from airflow.sdk.exceptions import TaskDeferred

    past = alerts.EscalationWindow(task_id="w", until="2020-01-01T00:00:00+00:00")
    assert past.execute({}) is None
    assert alerts.EscalationWindow(task_id="w2", until="").execute({}) is None
    future = dt.datetime.now(UTC) + dt.timedelta(days=2)
    with pytest.raises(TaskDeferred) as deferred:
        alerts.EscalationWindow(task_id="w3", until=future.isoformat()).execute({})
    assert deferred.value.trigger.moment == future


def test_the_notifier_sends_for_scheduled_runs_and_waits_for_an_extension(monkeypatch):
    sent, slept = [], []
    monkeypatch.setattr(alerts, "send_alert", lambda *a, **k: sent.append(a) or "sent")
    notifier = alerts.DeliveryAlertNotifier(kind="late", org="sso", dataset="workplaces", context={})
    monkeypatch.setattr(alerts, "_utcnow", lambda: DUE_END + dt.timedelta(minutes=1))
    assert asyncio.run(notifier.async_notify({"dag_run": SCHEDULED})) == "sent"
    assert sent == [("late", "sso", "workplaces", "1404-08")]
    assert asyncio.run(notifier.async_notify({"dag_run": {**SCHEDULED, "run_type": "manual"}})).startswith("not sent")

    # an extension approved after the run was created: the late notice waits in the triggerer for the new time
    extended = _with_extension("sso", "workplaces", "1404-08", "2025-12-16")
    monkeypatch.setattr(alerts, "current_registry", lambda: extended)

    async def sleep_until(moment):
        slept.append(moment)

    monkeypatch.setattr(alerts, "_sleep_until", sleep_until)
    assert asyncio.run(notifier.async_notify({"dag_run": SCHEDULED})) == "sent"
    assert slept == [DUE_END + dt.timedelta(days=10)]
    with pytest.raises(ValueError):
        alerts.DeliveryAlertNotifier(kind="nag", org="sso", dataset="workplaces")


def test_a_quarterly_dataset_has_deadlines_only_in_the_run_of_the_quarters_last_month():
    now = dt.datetime(2025, 11, 21, 20, 31, tzinfo=UTC)
    aban = SCHEDULED  # 1404-08: no quarter ends with Aban
    assert alerts.due_for_run(REG, "swo", "beneficiaries", now=now, **aban) == DUE_END - dt.timedelta(days=5)
    assert alerts.due_for_run(REG, "swo", "disability_assessments", now=now, **aban) is None
    azar = {**SCHEDULED, "data_interval_start": "2025-11-21T20:30:00Z", "run_after": "2025-12-21T20:30:00Z"}
    # 1404-Q3 (Mehr..Azar) ends 2025-12-21; due_day 20 -> 2026-01-10, the end of it at 00:00 Tehran.
    assert alerts.due_for_run(REG, "swo", "disability_assessments", now=now, **azar) == dt.datetime(
        2026, 1, 10, 20, 30, tzinfo=UTC
    )
    assert alerts.alert_times(REG, "swo", "disability_assessments", "1404-Q3").expected.period.label == "1404-Q3"
