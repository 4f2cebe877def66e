"""anbar ddi-export against a real ledger: time periods and case counts come from anbar.submissions."""

from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree

from anbar import ddi_export
from anbar.registry import load_registry

pytestmark = pytest.mark.integration

NS = {"d": ddi_export.DDI_NS}


def _deliver(cur, period: str, version: int, status: str, rows: int) -> int:
    cur.execute(
        "insert into anbar.submissions (org, dataset, period, version, transport, delivery_sha256, rows_manifest,"
        " rows_loaded, rows_rejected, status, received_at) values ('sso', 'insured_persons', %s, %s, 'sftp', %s,"
        " %s, %s, 0, %s, %s) returning submission_id",
        (period, version, f"sha-{period}-{version}", rows, rows, status, dt.datetime(2026, 10, 1, tzinfo=dt.UTC)),
    )
    return cur.fetchone()[0]


def test_periods_and_cases_of_the_accepted_deliveries(fresh_warehouse, tmp_path):
    registry = load_registry()
    with fresh_warehouse.cursor() as cur:
        _deliver(cur, "1405-05", 1, "accepted", 10)
        _deliver(cur, "1405-06", 1, "accepted", 20)
        in_use = _deliver(cur, "1405-06", 2, "accepted", 25)  # the correction supersedes v1
        _deliver(cur, "1405-07", 1, "rejected", 30)  # never in the warehouse
    fresh_warehouse.commit()

    holdings = ddi_export.ledger_holdings(fresh_warehouse, registry, registry.dataset("sso", "insured_persons"))
    assert (holdings.first_period.label, holdings.last_period.label) == ("1405-05", "1405-06")
    assert (holdings.periods, holdings.cases, holdings.submission_id, holdings.version) == (2, 25, in_use, 2)
    assert ddi_export.ledger_holdings(fresh_warehouse, registry, registry.dataset("tvto", "trainees")) is None

    from anbar.cli import main

    assert main(["ddi-export", "--out", str(tmp_path)]) == 0  # reads the ledger through ANBAR_WAREHOUSE_URL
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{ds.key}.xml" for ds in registry.datasets)
    insured = etree.parse(str(tmp_path / "sso__insured_persons.xml"))
    assert ddi_export.validation_errors(insured) == []
    periods = insured.findall("d:stdyDscr/d:stdyInfo/d:sumDscr/d:timePrd", NS)
    # Mordad 1405 starts on 2026-07-23; Shahrivar 1405 ends on 2026-09-22.
    assert [(p.get("event"), p.get("date")) for p in periods] == [("start", "2026-07-23"), ("end", "2026-09-22")]
    assert insured.findtext("d:fileDscr/d:fileTxt/d:dimensns/d:caseQnty", namespaces=NS) == "25"
    trainees = etree.parse(str(tmp_path / "tvto__trainees.xml"))
    assert trainees.find("d:fileDscr/d:fileTxt/d:dimensns/d:caseQnty", NS) is None  # nothing accepted yet
