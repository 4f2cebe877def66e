"""The supplier API fails: 500s and a 429 are retried inside the hook (bounded, honouring Retry-After), a read
timeout too; a malformed page rejects the delivery with its reason and loads nothing; a page sequence broken in
the middle lands nothing, and the rerun loads the extract exactly once."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from integration.db import fetch

from anbar import ingest
from anbar.hooks import SupplierUnavailable, retry_after_seconds
from anbar.sim.faults import HttpFault

from .conftest import API_PAGE_SIZE

pytestmark = pytest.mark.integration

ORG, DATASET, PERIOD = "tvto", "trainees", "2025-09"
RECORDS = f"/v1/extracts/{DATASET}/{PERIOD}"
MANIFEST = f"{RECORDS}/manifest"


def _probed() -> dict:
    step = ingest.probe(ORG, DATASET, PERIOD, now=dt.datetime.now(dt.UTC))
    assert step.state == "received"
    return step.to_xcom()


def _receive(probed: dict) -> ingest.Step:
    return ingest.receive(ingest.Step.from_xcom(probed), run_id="fault-test")


def _submissions(conn) -> list[dict]:
    return fetch(
        conn,
        "select submission_id, version, status, reason, message, rows_manifest, rows_counted, rows_loaded, "
        "rows_rejected, landing_path from anbar.submissions where org = %s and dataset = %s and period = %s "
        "order by version",
        ORG,
        DATASET,
        PERIOD,
    )


def _loaded_once(conn, step: ingest.Step) -> dict:
    """Run the pass on the landed delivery; the ledger balances and the clean table holds it once."""
    step = ingest.process(step)
    assert step.state == "accepted", step
    [sub] = [s for s in _submissions(conn) if s["submission_id"] == step.submission_id]
    [clean] = fetch(conn, "select count(*) as n, count(distinct _submission_id) as s from clean.tvto__trainees")
    assert sub["rows_manifest"] == sub["rows_loaded"] + sub["rows_rejected"] > API_PAGE_SIZE  # more than one page
    assert clean == {"n": sub["rows_loaded"], "s": 1}
    return sub


def test_server_errors_are_retried_and_the_extract_lands_complete(
    fresh_warehouse, api_faults, landing, quick_api_retries
):
    probed = _probed()
    api_faults.http(RECORDS, HttpFault.status(500), HttpFault.status(503), after=1)  # page 2: twice, then it answers
    step = _receive(probed)
    assert step.state == "landed"
    assert [r.fault for r in api_faults.requests_for(RECORDS)][:4] == [None, "status 500", "status 503", None]
    _loaded_once(fresh_warehouse, step)


def test_429_waits_the_retry_after_it_asks_for_and_one_too_long_fails_at_once(
    fresh_warehouse, api_faults, landing, quick_api_retries
):
    probed = _probed()
    api_faults.http(MANIFEST, HttpFault.status(429, retry_after=1))
    assert _receive(probed).state == "landed"
    refused, answered = api_faults.requests_for(MANIFEST)[-2:]
    assert (refused.fault, answered.fault) == ("status 429 retry-after 1", None)
    assert answered.at - refused.at >= 1.0  # it waited what the server asked, not its own 50 ms backoff

    before = len(api_faults.requests_for(MANIFEST))
    api_faults.http(MANIFEST, HttpFault.status(429, retry_after=3600))
    with pytest.raises(SupplierUnavailable, match=r"retry after 3600 s, longer than a task waits \(5 s"):
        _receive(probed)
    assert len(api_faults.requests_for(MANIFEST)) == before + 1  # no second try: the task's retry comes back later


def test_a_read_timeout_is_retried_and_bounded(
    fresh_warehouse, paged_api, api_faults, landing, quick_api_retries, monkeypatch
):
    conn_id = "anbar_api_tvto"
    patient = {**paged_api.connections[conn_id]}
    patient["extra"] = {**patient["extra"], "timeout": 1}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(patient))
    probed = _probed()

    api_faults.http(RECORDS, HttpFault.delay(3))  # the first page answers after the client gave up
    step = _receive(probed)
    assert step.state == "landed"
    assert api_faults.requests_for(RECORDS)[0].fault == "delay 3s"
    _loaded_once(fresh_warehouse, step)

    api_faults.http(RECORDS, *[HttpFault.delay(3)] * 3)
    before = len(api_faults.requests_for(RECORDS))
    with pytest.raises(SupplierUnavailable, match=r"failed 3 times \(last: (ReadTimeout|ConnectionError)"):
        _receive(probed)
    assert len(api_faults.requests_for(RECORDS)) == before + 3


def test_a_malformed_page_rejects_the_delivery_and_loads_nothing(
    fresh_warehouse, api_faults, landing, quick_api_retries
):
    conn = fresh_warehouse
    probed = _probed()
    api_faults.http(RECORDS, HttpFault.malformed(), after=1)
    step = _receive(probed)
    assert (step.state, step.reason) == ("rejected", "malformed_records")
    assert "page 2 is not a valid records page" in step.message
    [sub] = _submissions(conn)
    assert (sub["status"], sub["reason"], sub["rows_loaded"]) == ("rejected", "malformed_records", 0)
    # Refused before its records were counted: the manifest's claim stays apart, nothing is said rejected.
    assert (sub["rows_counted"], sub["rows_rejected"]) == (None, None) and sub["rows_manifest"] > API_PAGE_SIZE
    assert ingest.process(step).state == "rejected"
    assert fetch(conn, "select count(*) as n from raw.tvto__trainees")[0]["n"] == 0
    assert fetch(conn, "select count(*) as n from anbar.quarantine where submission_id = %s", sub["submission_id"])
    # The page before the broken one is kept with the manifest, as evidence.
    [kept] = json.loads((landing.root / sub["landing_path"] / "files.json").read_text())
    assert len((landing.root / kept["object"]).read_text(encoding="utf-8").splitlines()) == API_PAGE_SIZE

    # The supplier fixes its API: the next run lands the whole extract as a new version, and it loads.
    step = _receive(probed)
    assert (step.state, step.version) == ("landed", 2)
    _loaded_once(conn, step)


def test_a_page_sequence_broken_in_the_middle_lands_nothing_and_the_rerun_loads_once(
    fresh_warehouse, api_faults, landing, quick_api_retries
):
    conn = fresh_warehouse
    probed = _probed()
    api_faults.http(RECORDS, *[HttpFault.status(502)] * 3, after=1)  # page 2 fails for good within the task
    with pytest.raises(SupplierUnavailable, match=r"failed 3 times \(last: HTTP 502\).*task's retry"):
        _receive(probed)
    assert _submissions(conn) == []
    assert [p for p in landing.root.rglob("*") if p.is_file()] == []  # the first page was not kept either
    [failed] = fetch(
        conn,
        "select submission_id, detail->>'error' as error from anbar.submission_events "
        "where org = %s and period = %s and step = 'receive' and status = 'failed'",
        ORG,
        PERIOD,
    )
    assert failed["submission_id"] is None and "HTTP 502" in failed["error"]

    step = _receive(probed)  # Airflow's retry of the task
    assert (step.state, step.version) == ("landed", 1)
    _loaded_once(conn, step)
    assert [s["version"] for s in _submissions(conn)] == [1]


def test_retry_after_is_read_as_seconds_or_as_a_date():
    now = dt.datetime(2015, 10, 21, 7, 27, tzinfo=dt.UTC)
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 60.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:00:00 GMT", now=now) == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
