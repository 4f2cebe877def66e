"""The expected-submission calendar in the ledger and the status of every expected submission.

Against the real PostgreSQL: ``anbar.expected.sync`` fills ``anbar.expected_submissions`` from the
registry, and the view ``anbar.submission_status`` follows the ledger (driven through
``anbar.ledger`` as the ingest does) with the timestamps set by the test.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from anbar import expected, ledger
from anbar.registry import Organisation, Registry, load_registry

from .db import fetch

pytestmark = pytest.mark.integration

TEHRAN = ZoneInfo("Asia/Tehran")
D = dt.date


def _with_extension(registry: Registry, org: str, dataset: str, **extension) -> Registry:
    data = registry.org(org).model_dump(mode="json")
    for ds in data["datasets"]:
        if ds["name"] == dataset:
            ds["extensions"] = [extension]
    organisations = {**registry.organisations, org: Organisation.model_validate(data)}
    return Registry(root=registry.root, organisations=organisations, code_lists=registry.code_lists)


@pytest.fixture(scope="module")
def warehouse(pg):
    """One bootstrapped database for the module (a new one per test costs seconds each);
    ANBAR_WAREHOUSE_URL points at it for the commands and the page."""
    import psycopg2

    from anbar import ddl

    pg.create_database("wh_submission_status")
    conn = psycopg2.connect(pg.dsn("wh_submission_status"))
    ddl.bootstrap(conn, load_registry())
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ANBAR_WAREHOUSE_URL", pg.url("wh_submission_status"))
        yield conn
    conn.close()


@pytest.fixture
def empty_ledger(warehouse):
    """The module's warehouse with nothing on the calendar and nothing delivered."""
    with warehouse.cursor() as cur:
        cur.execute(
            "truncate anbar.expected_submissions, anbar.quality_scorecard, anbar.submission_events, "
            "anbar.submissions cascade"
        )
    warehouse.commit()
    return warehouse


def test_sync_writes_the_calendar_once_and_follows_the_registry(empty_ledger):
    conn = empty_ledger
    registry = load_registry()
    # The periods ending in Jalali year 1404 (2025-03-21 .. 2026-03-20): 12 per monthly dataset, 4 per quarterly.
    year = (D(2025, 3, 21), D(2026, 3, 21))
    per_year = {"monthly": 12, "quarterly": 4, "yearly": 1}
    assert expected.sync(conn, registry, *year) == sum(per_year[ds.period] for ds in registry.datasets)
    assert expected.sync(conn, registry, *year) == 0  # idempotent: nothing changed

    rows = fetch(
        conn,
        "select * from anbar.expected_submissions where org = 'sso' and dataset = 'insured_persons' "
        "and period = '1404-08'",
    )
    assert len(rows) == 1
    aban = rows[0]
    assert (aban["period_start"], aban["period_end"]) == (D(2025, 10, 23), D(2025, 11, 22))
    assert (aban["due_date"], aban["grace_until"], aban["extension_decision"]) == (
        D(2025, 12, 6),
        D(2025, 12, 11),
        None,
    )
    assert aban["timezone"] == "Asia/Tehran"
    esfand = fetch(
        conn,
        "select period_start, period_end from anbar.expected_submissions where org = 'cspf' and period = '1404-12'",
    )
    assert esfand == [{"period_start": D(2026, 2, 20), "period_end": D(2026, 3, 21)}]  # 29 days in 1404

    # The committee extends Aban 1404 of SSO insured persons: one row changes, and back again.
    extended = _with_extension(
        registry, "sso", "insured_persons", period="1404-08", due_date="2025-12-20", decision="1404/9/10-7"
    )
    assert expected.sync(conn, extended, *year) == 1
    (row,) = fetch(
        conn,
        "select due_date, grace_until, extension_decision from anbar.expected_submissions "
        "where org = 'sso' and dataset = 'insured_persons' and period = '1404-08'",
    )
    assert row == {"due_date": D(2025, 12, 20), "grace_until": D(2025, 12, 25), "extension_decision": "1404/9/10-7"}
    assert expected.sync(conn, registry, *year) == 1

    # The ingest DAG records the period it waits for; a period already on the calendar is left as is.
    sub = expected.record_expected(conn, registry, "tvto", "trainees", "2026-04")
    assert sub.due_date == D(2026, 5, 10)
    assert fetch(conn, "select due_date from anbar.expected_submissions where period = '2026-04'") == [
        {"due_date": D(2026, 5, 10)}
    ]
    expected.record_expected(conn, registry, "tvto", "trainees", "2026-04")
    year_of_periods = sum(per_year[ds.period] for ds in registry.datasets)
    assert fetch(conn, "select count(*) as n from anbar.expected_submissions")[0]["n"] == year_of_periods + 1


# -- the status view ------------------------------------------------------------------------------------


class Ledger:
    """Drives the ledger for SSO insured persons as the ingest would, then dates what happened."""

    org, dataset = "sso", "insured_persons"

    def __init__(self, conn, today: dt.date):
        self.conn = conn
        self.today = today

    def expect(self, period: str, due: dt.date, grace_days: int = 5) -> None:
        with self.conn.cursor() as cur:
            cur.execute(
                "insert into anbar.expected_submissions (org, dataset, period, period_start, period_end, due_date,"
                " grace_until, timezone) values (%s, %s, %s, %s, %s, %s, %s, 'Asia/Tehran')",
                (
                    self.org,
                    self.dataset,
                    period,
                    due - dt.timedelta(days=45),
                    due - dt.timedelta(days=14),
                    due,
                    due + dt.timedelta(days=grace_days),
                ),
            )
        self.conn.commit()

    def deliver(self, period: str, received_at: dt.datetime, *steps: tuple[str, dt.datetime]) -> int:
        """A new version received at ``received_at``, moved through ``steps`` (status, when)."""
        sub, created = ledger.open_submission(
            self.conn,
            org=self.org,
            dataset=self.dataset,
            period=period,
            transport="sftp",
            delivery_sha256=f"{period}-{received_at.isoformat()}",
            manifest={},
            rows_manifest=10,
            run_id=None,
        )
        assert created
        self._date("update anbar.submissions set received_at = %s where submission_id = %s", received_at, sub)
        self._date("update anbar.submission_events set at = %s where submission_id = %s", received_at, sub)
        for status, when in steps:
            self.move(sub.submission_id, status, when)
        return sub.submission_id

    def move(self, submission_id: int, status: str, when: dt.datetime) -> None:
        sub = ledger.get(self.conn, submission_id)
        rows = {"rows_loaded": 0, "rows_rejected": 10} if status == "rejected" else {}
        if status in ("loaded", "validated", "accepted"):
            rows = {"rows_loaded": 9, "rows_rejected": 1}
        ledger.update(self.conn, sub, status, status, reason="validation" if status == "rejected" else None, **rows)
        self._date(
            "update anbar.submission_events set at = %s where submission_id = %s and status = %s", when, sub, status
        )

    def record_missing(self, period: str, when: dt.datetime) -> None:
        sub = ledger.record_missing(self.conn, org=self.org, dataset=self.dataset, period=period, message="none")
        self._date("update anbar.submissions set received_at = %s where submission_id = %s", when, sub)

    def _date(self, query: str, when: dt.datetime, sub, *more) -> None:
        with self.conn.cursor() as cur:
            cur.execute(query, (when, sub.submission_id, *more))
        self.conn.commit()

    def status(self) -> dict[str, dict]:
        rows = fetch(self.conn, "select * from anbar.submission_status where org = %s", self.org)
        return {r["period"]: r for r in rows}


def tehran(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=TEHRAN)


@pytest.fixture
def book(empty_ledger) -> Ledger:
    (today,) = fetch(empty_ledger, "select (now() at time zone 'Asia/Tehran')::date as today")[0].values()
    return Ledger(empty_ledger, today)


def test_a_delivery_accepted_first_time_on_time_is_loaded(book):
    due = book.today - dt.timedelta(days=20)
    book.expect("1404-01", due)
    received = tehran(due, 23, 30)  # the last half hour of the due date in Tehran (20:00 UTC)
    accepted = tehran(due + dt.timedelta(days=1), 1, 15)
    book.deliver(
        "1404-01",
        received,
        ("landed", received),
        ("loaded", received),
        ("validated", accepted),
        ("accepted", accepted),
    )
    row = book.status()["1404-01"]
    assert row["status"] == "loaded"
    assert row["first_received_at"] == received and row["latest_received_at"] == received
    assert row["validated_at"] == accepted and row["accepted_at"] == accepted and row["rejected_at"] is None
    assert (row["on_time"], row["days_late"], row["versions"], row["resubmissions"]) == (True, 0, 1, 0)
    assert row["accepted_first_time"] is True
    assert row["latest_submission_id"] == row["in_use_submission_id"]
    assert (row["latest_ledger_status"], row["rows_loaded"], row["rows_rejected"]) == ("accepted", 9, 1)


def test_the_due_date_is_a_day_in_tehran(book):
    due = book.today - dt.timedelta(days=20)
    book.expect("1404-02", due)
    # 00:30 in Tehran on the day after the due date is still the due date in UTC (21:00): late by a day.
    book.deliver("1404-02", tehran(due + dt.timedelta(days=1), 0, 30))
    row = book.status()["1404-02"]
    assert (row["status"], row["on_time"], row["days_late"]) == ("received", False, 1)
    assert row["accepted_first_time"] is None  # its first version is not decided yet


def test_a_rejected_delivery_then_a_resubmission(book):
    due = book.today - dt.timedelta(days=30)
    book.expect("1404-03", due)
    first = tehran(due - dt.timedelta(days=2), 10)
    rejected = tehran(due - dt.timedelta(days=2), 11)
    book.deliver("1404-03", first, ("landed", first), ("loaded", first), ("rejected", rejected))
    row = book.status()["1404-03"]
    assert (row["status"], row["rejected_at"], row["accepted_at"], row["reason"]) == (
        "rejected",
        rejected,
        None,
        "validation",
    )
    assert (row["on_time"], row["days_late"], row["accepted_first_time"], row["in_use_submission_id"]) == (
        True,
        0,
        False,
        None,
    )

    second = tehran(due + dt.timedelta(days=3), 9)
    second_id = book.deliver("1404-03", second, ("landed", second))
    row = book.status()["1404-03"]
    assert (row["status"], row["versions"], row["resubmissions"], row["latest_version"]) == ("resubmitted", 2, 1, 2)
    assert row["rejected_at"] is None  # the latest version's decision, not yet made
    book.move(second_id, "loaded", second)
    book.move(second_id, "validated", second)
    assert book.status()["1404-03"]["status"] == "resubmitted"

    accepted = tehran(due + dt.timedelta(days=3), 9, 40)
    book.move(second_id, "accepted", accepted)
    row = book.status()["1404-03"]
    assert (row["status"], row["accepted_at"], row["in_use_submission_id"]) == ("loaded", accepted, second_id)
    # Punctuality is the first delivery's: on time, even though the accepted version came later.
    assert (row["first_received_at"], row["latest_received_at"]) == (first, second)
    assert (row["on_time"], row["days_late"], row["accepted_first_time"], row["resubmissions"]) == (True, 0, False, 1)


def test_a_new_version_rejected_after_an_accepted_one(book):
    due = book.today - dt.timedelta(days=30)
    book.expect("1404-04", due)
    first = tehran(due - dt.timedelta(days=1), 9)
    first_id = book.deliver("1404-04", first, ("validated", first), ("accepted", first))
    later = tehran(due + dt.timedelta(days=4), 9)
    book.deliver("1404-04", later, ("rejected", later))
    row = book.status()["1404-04"]
    assert (row["status"], row["in_use_submission_id"], row["accepted_at"]) == ("rejected", first_id, first)
    assert (row["accepted_first_time"], row["on_time"], row["resubmissions"]) == (True, True, 1)


def test_nothing_delivered_is_expected_then_late_then_missing(book):
    book.expect("1404-05", book.today)  # due today: not late yet
    book.expect("1404-06", book.today - dt.timedelta(days=1), grace_days=5)  # within the grace
    book.expect("1404-07", book.today - dt.timedelta(days=6), grace_days=5)  # grace over
    book.expect("1404-08", book.today - dt.timedelta(days=2), grace_days=5)  # recorded missing early
    book.record_missing("1404-08", tehran(book.today, 0, 5))
    status = book.status()
    assert {p: status[p]["status"] for p in status} == {
        "1404-05": "expected",
        "1404-06": "late",
        "1404-07": "missing",
        "1404-08": "missing",
    }
    assert [status[p]["on_time"] for p in sorted(status)] == [None, False, False, False]
    assert all(status[p]["days_late"] is None and status[p]["versions"] == 0 for p in status)
    assert status["1404-08"]["missing_recorded_at"] == tehran(book.today, 0, 5)
    assert status["1404-05"]["status_on"] == book.today

    # A delivery after the period was recorded missing: received, late.
    arrived = tehran(book.today, 8)
    book.deliver("1404-08", arrived)
    row = book.status()["1404-08"]
    assert (row["status"], row["on_time"], row["days_late"], row["versions"]) == ("received", False, 2, 1)
    assert row["latest_version"] == 1  # the missing record is version 0


def test_deliveries_of_periods_not_on_the_calendar_are_not_listed(book):
    book.deliver("1403-01", tehran(book.today, 8))
    assert book.status() == {}


def test_the_commands_write_the_calendar_and_print_the_status(book, capsys):
    from anbar.cli import main

    assert main(["status"]) == 1  # nothing on the calendar yet
    assert "anbar calendar --sync" in capsys.readouterr().err

    assert main(["calendar", "--org", "tvto", "--from", "2025-09-01", "--to", "2025-12-01", "--sync"]) == 0
    assert "3 row(s) added or changed" in capsys.readouterr().out
    assert fetch(book.conn, "select org, period from anbar.expected_submissions order by period") == [
        {"org": "tvto", "period": p} for p in ("2025-09", "2025-10", "2025-11")
    ]

    due = book.today - dt.timedelta(days=20)
    book.expect("1404-01", due)
    received = tehran(due, 9)
    book.deliver("1404-01", received, ("validated", received), ("accepted", tehran(due, 10)))
    assert main(["status", "--org", "sso"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["org", "dataset", "period", "due", "date"]
    assert len(lines) == 3 and lines[-1] == "times in Asia/Tehran"
    cells = lines[1].split()
    assert cells[:5] == ["sso", "insured_persons", "1404-01", str(due), "loaded"]
    assert cells[5:10] == [str(due), "09:00", str(due), "10:00", "yes"]  # received, accepted, on time
    assert main(["status", "--org", "sso", "--period", "1404-02"]) == 1


# -- the Submissions page in the Airflow UI ---------------------------------------------------------------


@pytest.fixture
def airflow_tokens(airflow_db, monkeypatch):
    """Airflow's own JWTs and auth manager (the simple one): a viewer, and a user with no role."""
    from airflow.api_fastapi import app as api_app
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "anbar-test-" + "x" * 64)
    manager = SimpleAuthManager()
    monkeypatch.setattr(api_app._AuthManagerState, "instance", manager)
    return {
        "viewer": manager.generate_jwt(SimpleAuthManagerUser(username="statistician", role="viewer")),
        "nobody": manager.generate_jwt(SimpleAuthManagerUser(username="nobody", role=None)),
    }


def _client(may_read=None):
    from fastapi import FastAPI
    from starlette.testclient import TestClient

    from anbar import status_web, web

    app = status_web.create_app()
    if may_read is not None:
        app.dependency_overrides[web.org_access] = lambda: may_read
    server = FastAPI()
    server.mount(status_web.URL_PREFIX, app)
    return TestClient(server)


@pytest.fixture
def two_organisations(book):
    due = book.today - dt.timedelta(days=20)
    book.expect("1404-01", due)
    book.deliver("1404-01", tehran(due, 9), ("validated", tehran(due, 10)), ("accepted", tehran(due, 10)))
    book.expect("1404-02", book.today + dt.timedelta(days=3))
    expected.record_expected(book.conn, load_registry(), "tvto", "trainees", "2025-09")  # long past: missing
    return book


def test_the_page_needs_an_airflow_login(two_organisations, airflow_tokens):
    client = _client()
    assert client.get("/anbar-submissions/").status_code == 401
    bogus = client.get("/anbar-submissions/", headers={"Authorization": "Bearer not-a-token"})
    assert bogus.status_code == 403
    nobody = client.get("/anbar-submissions/", headers={"Authorization": f"Bearer {airflow_tokens['nobody']}"})
    assert nobody.status_code == 200 and "No expected submissions" in nobody.text and "sso" not in nobody.text

    client.cookies.set("_token", airflow_tokens["viewer"])  # how the UI's session reaches the app
    page = client.get("/anbar-submissions/")
    assert page.status_code == 200
    assert "insured_persons" in page.text and "trainees" in page.text
    assert client.post("/anbar-submissions/").status_code == 405  # read-only


def test_the_page_lists_the_status_of_each_expected_submission(two_organisations):
    due = two_organisations.today - dt.timedelta(days=20)
    client = _client(may_read=lambda org: True)
    page = client.get("/anbar-submissions/", params={"org": "sso"})
    assert page.status_code == 200 and "Submissions of sso" in page.text
    rows = page.text.split("<tbody>")[1].split("</tr>")[:-1]
    assert len(rows) == 2 and "trainees" not in page.text
    assert "1404-02" in rows[0] and ">expected<" in rows[0]  # latest due date first
    loaded = rows[1]
    assert '<span class="ok">loaded</span>' in loaded
    assert f"<td>{expected.jalali(due)}<br>{due}</td>" in loaded
    assert f"<td>{due} 09:00</td><td>{due} 10:00</td><td>yes</td><td>0</td><td>1</td><td>yes</td>" in loaded

    missing = client.get("/anbar-submissions/", params={"status": "missing"}).text
    assert "2025-09" in missing and "insured_persons" not in missing.split("<tbody>")[1]
    assert "missing (1)" in missing and "loaded (1)" in missing

    assert client.get("/anbar-submissions/", params={"status": "lost"}).status_code == 404
    assert client.get("/anbar-submissions/", params={"org": "nope"}).status_code == 404
    link = client.get("/anbar-submissions/dags/anbar_ingest__tvto", follow_redirects=False)
    assert link.status_code == 307 and link.headers["location"] == "../?org=tvto"
    assert "2025-09" in client.get("/anbar-submissions/dags/anbar_ingest__tvto").text


def test_a_user_sees_only_the_organisations_they_may_read(two_organisations):
    client = _client(may_read=lambda org: org == "tvto")
    page = client.get("/anbar-submissions/")
    assert "trainees" in page.text and "insured_persons" not in page.text
    assert client.get("/anbar-submissions/", params={"org": "sso"}).status_code == 403


def test_the_plugin_mounts_the_page_and_links_it_from_the_navigation():
    import anbar_plugin

    from anbar import status_web

    (entry,) = anbar_plugin.AnbarSubmissionsPlugin.fastapi_apps
    assert entry["url_prefix"] == "/anbar-submissions" and entry["app"] is status_web.app
    nav, dag = anbar_plugin.AnbarSubmissionsPlugin.external_views
    assert (nav["destination"], nav["href"]) == ("nav", "anbar-submissions/")
    assert dag["destination"] == "dag" and dag["href"] == "anbar-submissions/dags/{DAG_ID}"


def test_the_page_shows_the_rows_the_manifest_claimed_beside_those_counted(book):
    """Issue 16.8: a delivery whose manifest claims 301 rows for 300 records shows both figures; one rejected
    before its records were counted shows no count at all, not the manifest's claim."""
    due = book.today - dt.timedelta(days=20)
    for period, counted in (("1404-01", 300), ("1404-02", None)):
        book.expect(period, due)
        sid = book.deliver(period, tehran(due, 9))
        with book.conn.cursor() as cur:
            cur.execute(
                "update anbar.submissions set status = 'rejected', reason = 'row_count_mismatch', "
                "rows_manifest = 301, rows_counted = %s, rows_loaded = 0, rows_rejected = %s "
                "where submission_id = %s",
                (counted, counted, sid),
            )
        book.conn.commit()
    page = _client(may_read=lambda org: True).get("/anbar-submissions/", params={"org": book.org}).text
    head = page.split("<thead>")[1].split("</thead>")[0]
    assert "<th>rows declared</th><th>rows counted</th><th>rows loaded</th><th>rows rejected</th>" in head
    rows = {r.split("<td>")[3].split("<")[0]: r for r in page.split("<tbody>")[1].split("</tr>")[:-1]}
    assert rows["1404-01"].endswith("<td>301</td><td>300</td><td>0</td><td>300</td>")
    assert rows["1404-02"].endswith("<td>301</td><td></td><td>0</td><td></td>")
