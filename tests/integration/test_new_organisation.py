"""Adding an organisation is adding one registry file: its DAG, tables and checks follow."""

from __future__ import annotations

import hashlib
import json
import shutil
import textwrap

import pytest

from anbar import ddl, ingest, ledger
from anbar.ids import make_person_id
from anbar.ingest_dag import build_ingest_dag
from anbar.landing import LandingArchive
from anbar.registry import default_root, load_registry

pytestmark = pytest.mark.integration

SWO = textwrap.dedent("""\
    code: swo
    names: {fa: سازمان بهزیستی کشور, en: State Welfare Organization}
    kind: agency
    focal_points: [stats@swo.example.ir]
    transport: {kind: sftp, conn_id: anbar_sftp_swo}
    calendar: jalali
    datasets:
      - name: beneficiaries
        schema_version: 1
        description: {fa: مددجویان, en: Welfare beneficiaries}
        due_day: 20
        access_tier: licensed
        primary_key: [national_id, service]
        columns:
          - {name: national_id, type: text, required: true, identifier: person, access_tier: confidential,
             description: {fa: کد ملی, en: National ID}}
          - {name: service, type: text, required: true, description: {fa: خدمت, en: Service}}
          - {name: province, type: text, required: true, code_list: province,
             description: {fa: استان, en: Province}}
          - {name: since, type: date, description: {fa: از تاریخ, en: Beneficiary since}}
""")


@pytest.fixture
def registry_with_swo(tmp_path, monkeypatch):
    root = tmp_path / "registry"
    shutil.copytree(default_root(), root)
    (root / "swo.yml").write_text(SWO, encoding="utf-8")
    monkeypatch.setenv("ANBAR_REGISTRY", str(root))
    monkeypatch.setenv("ANBAR_EXPECTATIONS_DIR", str(tmp_path / "no-suites-yet"))
    return load_registry(root)


def test_one_file_gives_a_dag_tables_and_checks(registry_with_swo, pg, fresh_warehouse, tmp_path, monkeypatch):
    registry = registry_with_swo
    org = registry.org("swo")
    dag = build_ingest_dag(org, registry)
    assert dag.dag_id == "anbar_ingest__swo" and "swo" in dag.tags and "State Welfare" in dag.doc_md

    conn = fresh_warehouse
    ddl.bootstrap(conn, registry)
    with conn.cursor() as cur:
        cur.execute("select count(*) from information_schema.tables where table_name = 'swo__beneficiaries'")
        assert cur.fetchone()[0] == 2  # raw and clean
    conn.commit()

    # A delivery with one bad check digit, landed, is rejected by the suite the registry implies.
    data = (
        f"national_id,service,province,since\n{make_person_id(42)},rehab,23,1400/01/01\n"
        "0076229646,rehab,23,1400/01/01\n"
    ).encode()
    archive = LandingArchive(tmp_path / "landing")
    monkeypatch.setenv("ANBAR_LANDING_DIR", str(archive.root))
    landed = archive.store_bytes("b.csv", data)
    manifest = {
        "org": "swo",
        "dataset": "beneficiaries",
        "period": "1404-08",
        "schema_version": 1,
        "encoding": "utf-8",
        "delimiter": ",",
        "files": [{"name": "b.csv", "bytes": len(data), "sha256": landed.sha256, "rows": 2}],
    }
    raw_manifest = json.dumps(manifest).encode()
    delivery_sha = hashlib.sha256(raw_manifest).hexdigest()
    sub, _ = ledger.open_submission(
        conn,
        org="swo",
        dataset="beneficiaries",
        period="1404-08",
        transport="sftp",
        delivery_sha256=delivery_sha,
        manifest=manifest,
        rows_manifest=2,
        run_id=None,
    )
    delivery = archive.record_delivery("swo", "beneficiaries", "1404-08", delivery_sha, raw_manifest, [landed])
    ledger.update(conn, sub, "land", "landed", landing_path=str(delivery))
    step = ingest.process(
        ingest.Step("swo", "beneficiaries", "1404-08", "landed", submission_id=sub.submission_id),
        registry=registry,
        archive=archive,
    )
    assert step.state == "rejected" and "national_id" in step.message
    with conn.cursor() as cur:
        cur.execute(
            "select validation_summary->>'suite' from anbar.submissions where submission_id = %s", (sub.submission_id,)
        )
        assert "generated from the registry" in cur.fetchone()[0]
