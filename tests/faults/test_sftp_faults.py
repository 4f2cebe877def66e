"""The SFTP server drops the connection in the middle of a file: receive fails with a clear, retryable
error and lands nothing; its retry (Airflow's) lands the exact bytes the manifest declares."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from integration.db import fetch

from anbar import ingest
from anbar.hooks import SupplierUnavailable

pytestmark = pytest.mark.integration

ORG, DATASET, PERIOD = "sso", "insured_persons", "1404-07"


def test_a_dropped_transfer_lands_nothing_and_the_retry_lands_the_exact_bytes(
    fresh_warehouse, simulators, faults, landing
):
    conn = fresh_warehouse
    served = simulators.sftp_root / ORG / "outbox" / DATASET / PERIOD / "manifest.json"
    manifest = json.loads(served.read_text())
    [declared] = manifest["files"]
    faults.drop_sftp(f"{DATASET}/{PERIOD}/{declared['name']}", after_bytes=declared["bytes"] // 2)

    probed = ingest.probe(ORG, DATASET, PERIOD, now=dt.datetime.now(dt.UTC)).to_xcom()
    assert probed["state"] == "received"
    with pytest.raises(SupplierUnavailable, match=rf"SFTP connection failed reading {declared['name']} .*retry"):
        ingest.receive(ingest.Step.from_xcom(probed), run_id="attempt-1")

    # The delivery is on the ledger, not landed and not rejected (a dropped line is not the supplier's fault),
    # and the step log says why the attempt failed.
    [sub] = fetch(
        conn,
        "select submission_id, status, landing_path from anbar.submissions where org = %s and dataset = %s "
        "and period = %s",
        ORG,
        DATASET,
        PERIOD,
    )
    assert (sub["status"], sub["landing_path"]) == ("received", None)
    [failed] = fetch(
        conn,
        "select detail->>'error' as error from anbar.submission_events where submission_id = %s "
        "and step = 'receive' and status = 'failed'",
        sub["submission_id"],
    )
    assert "SupplierUnavailable" in failed["error"] and declared["name"] in failed["error"]
    # Not a byte of it in the archive: no object, no delivery, no temporary file.
    assert [p for p in landing.root.rglob("*") if p.is_file()] == []

    # Airflow's retry runs the step again from the sensor's output; the server behaves this time.
    step = ingest.receive(ingest.Step.from_xcom(probed), run_id="attempt-2")
    assert (step.state, step.submission_id) == ("landed", sub["submission_id"])
    [landed] = fetch(
        conn, "select status, landing_path from anbar.submissions where submission_id = %s", step.submission_id
    )
    delivery = landing.delivery_dir(ORG, DATASET, PERIOD, hashlib.sha256(served.read_bytes()).hexdigest())
    assert landed == {"status": "landed", "landing_path": str(delivery)}
    [listed] = json.loads((delivery / "files.json").read_text())
    stored = landing.root / listed["object"]
    assert listed["sha256"] == declared["sha256"] == hashlib.sha256(stored.read_bytes()).hexdigest()
    assert listed["bytes"] == declared["bytes"] == stored.stat().st_size
    assert (delivery / "manifest.json").read_bytes() == served.read_bytes()
    assert list(landing.tmp.iterdir()) == []

    step = ingest.process(step)
    assert step.state == "accepted", step
    [loaded] = fetch(
        conn,
        "select rows_manifest, rows_loaded, rows_rejected, (select count(*) from clean.sso__insured_persons "
        "where _submission_id = %s) as in_clean from anbar.submissions where submission_id = %s",
        step.submission_id,
        step.submission_id,
    )
    assert loaded["rows_manifest"] == declared["rows"] == loaded["rows_loaded"] + loaded["rows_rejected"]
    assert loaded["in_clean"] == loaded["rows_loaded"] > 0
