"""A month on a simulated clock: the reminders, late notices and escalations of one organisation's period,
through Airflow's own Deadline Alerts, scheduler loop and callback trigger, into a real SMTP server.

SSO, Aban 1404 (2025-10-23 .. 2025-11-21): both datasets are due 15 days after the period, by the end of
1404/09/15 (2025-12-06, 00:00 Tehran = 2025-12-06T20:30Z), with 5 days of grace; ministry.yml has
N = 3 and M = 7. ``insured_persons`` is delivered and accepted on 2025-12-01; ``workplaces`` never comes.
"""

from __future__ import annotations

import datetime as dt
import email
import json
import os
from email import policy
from email.utils import parsedate_to_datetime

import pytest

from anbar.registry import load_registry

pytestmark = pytest.mark.e2e

UTC = dt.UTC
PERIOD = "1404-08"
PERIOD_END = dt.datetime(2025, 11, 21, 20, 30, tzinfo=UTC)  # 1404-09-01 00:00 Tehran
FOCAL = ["data-desk@sso.example.ir"]
MINISTRY = ["data-governance@mcls.example.ir", "anbar-team@mcls.example.ir"]


@pytest.fixture
def smtp(tmp_path, monkeypatch):
    """A real SMTP server (the simulators' sink) on 127.0.0.1, as the ``anbar_smtp`` connection."""
    from aiosmtpd.controller import Controller

    from anbar.devenv.postgres import free_port
    from anbar.sim.smtp_sink import MaildirHandler

    handler = MaildirHandler(tmp_path / "mail")
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_ANBAR_SMTP",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "anbar@warehouse.example.ir"},
            }
        ),
    )
    yield handler.maildir
    controller.stop()


def _mails(maildir):
    out = []
    for path in sorted(maildir.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        out.append(
            (
                parsedate_to_datetime(msg["Date"]).astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
                str(msg["Subject"]),
                str(msg["To"]),
                str(msg["Cc"] or ""),
                msg,
            )
        )
    return out


def test_a_month_of_alerts_exactly_once(airflow_db, fresh_warehouse, smtp):
    import time_machine

    from anbar import ledger
    from anbar.devenv.alerts_replay import AlertReplay, Event
    from anbar.periods import Period

    registry = load_registry()
    assert (registry.ministry.reminder_days_before, registry.ministry.escalation_days_after) == (3, 7)
    conn = fresh_warehouse

    def delivered_and_accepted(replay):
        sub, _ = ledger.open_submission(
            conn, org="sso", dataset="insured_persons", period=PERIOD, transport="sftp",
            delivery_sha256="ab" * 32, manifest={}, rows_manifest=10, run_id=replay.run_ids[0],
        )  # fmt: skip
        ledger.update(conn, sub, "conclude", "accepted", rows_loaded=10, rows_rejected=0)

    def recorded_missing(replay):
        ledger.record_missing(conn, org="sso", dataset="workplaces", period=PERIOD, message="no manifest")

    log = []
    with time_machine.travel(PERIOD_END, tick=False) as clock:
        replay = AlertReplay(registry, "sso", PERIOD, clock, say=log.append)
        replay.sync_dags()
        run_id = replay.create_run()
        # Catch-up and manual runs carry no alerts: an older period's scheduled run, a re-run with a conf.
        replay.create_run(Period.parse("1404-06", "jalali"))
        replay.create_run(Period.parse("1404-07", "jalali"), run_type="manual", conf={"period": "1404-08"})
        assert [(t.isoformat(), name) for t, name, _ in replay.deadlines()] == [
            ("2025-12-03T20:30:00+00:00", "insured_persons reminder"),
            ("2025-12-03T20:30:00+00:00", "workplaces reminder"),
            ("2025-12-06T20:30:00+00:00", "insured_persons late"),
            ("2025-12-06T20:30:00+00:00", "workplaces late"),
            ("2025-12-13T20:30:00+00:00", "insured_persons escalation"),
            ("2025-12-13T20:30:00+00:00", "workplaces escalation"),
        ]
        t = lambda *a: dt.datetime(*a, tzinfo=UTC)  # noqa: E731
        clock.move_to(PERIOD_END + dt.timedelta(minutes=31))  # a tick a day at 21:01 UTC (00:31 Tehran)
        replay.replay(
            [
                Event(t(2025, 12, 1, 9), "insured_persons delivered and accepted", delivered_and_accepted),
                # ingest.deadline: the end of the grace, 1404/09/20 (2025-12-11T20:30Z): recorded missing.
                # The run stays open (escalation_window) until the escalation, then succeeds.
                Event(t(2025, 12, 11, 21), "workplaces recorded missing", recorded_missing),
                Event(t(2025, 12, 14, 3), "the run succeeds", lambda r: r.finish_run()),
                # An operator clears the run: no deadline comes back, nothing is sent again.
                Event(t(2025, 12, 15, 3), "the run is cleared", lambda r: r.clear_run()),
            ],
            until=t(2025, 12, 21),
            tick=dt.timedelta(days=1),
        )
        # A triggerer that dies after mailing runs its callbacks again: the dedup key holds.
        assert replay.run_callbacks(again=True) == 6
        assert all(missed for _, _, missed in replay.deadlines())
        assert replay.deadlines() and run_id

    mails = _mails(smtp)
    assert [(date, subject, to, cc) for date, subject, to, cc, _ in mails] == [
        (
            "2025-12-03 21:01",  # the tick after 2025-12-03T20:30Z (1404/09/13 00:00 Tehran)
            "[anbar] REMINDER sso/workplaces 1404-08: due by 1404/09/15 | یادآوری مهلت تحویل",
            ", ".join(FOCAL),
            "",
        ),
        (
            "2025-12-06 21:01",
            "[anbar] LATE sso/workplaces 1404-08: not delivered by 1404/09/15 | تأخیر در تحویل",
            ", ".join(FOCAL),
            "",
        ),
        (
            "2025-12-13 21:01",
            "[anbar] ESCALATION sso/workplaces 1404-08: 7 days overdue | گزارش تأخیر به وزارتخانه",
            ", ".join(MINISTRY),
            ", ".join(FOCAL),
        ),
    ]
    body = mails[2][4].get_body(("html",)).get_content()
    assert 'dir="rtl"' in body and body.index("گزارش تأخیر") < body.index("Escalation")
    assert "۱۴۰۴/۰۹/۱۵" in body and "2025-12-06" in body and "Nothing has been received" in body

    with conn.cursor() as cur:
        cur.execute("select dedup_key, sent_at is not null from anbar.notifications order by notification_id")
        assert cur.fetchall() == [
            ("reminder:sso/workplaces/1404-08", True),
            ("late:sso/workplaces/1404-08", True),
            ("escalation:sso/workplaces/1404-08", True),
        ]


def test_the_demo_replay_of_a_late_supplier(fresh_warehouse, smtp, tmp_path):
    """``make demo``'s replay (``python -m anbar.devenv.alerts_replay``) on an Airflow metadata DB of its own:
    SWO never delivers Mehr 1404 (2025-09-23 .. 2025-10-22, due 10 days after, 1404/08/10)."""
    import subprocess
    import sys
    from pathlib import Path

    home = tmp_path / "airflow"
    home.mkdir()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
    }
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env, check=True)
    out = subprocess.run(
        [sys.executable, "-m", "anbar.devenv.alerts_replay", "swo", "1404-07"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "beneficiaries escalation: sent" in out.stdout
    focal = str(load_registry().org("swo").focal_points[0])
    assert [(date, subject.split(":")[0], to.split(",")[0]) for date, subject, to, _, _ in _mails(smtp)] == [
        ("2025-10-29 20:31", "[anbar] REMINDER swo/beneficiaries 1404-07", focal),
        ("2025-11-01 20:31", "[anbar] LATE swo/beneficiaries 1404-07", focal),
        ("2025-11-08 20:31", "[anbar] ESCALATION swo/beneficiaries 1404-07", MINISTRY[0]),
    ]
