"""Organisations added to the registry later are simulated too (generic by column types)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from anbar.registry import load_registry
from anbar.sim.api_server import ApiServer, create_api_app
from anbar.sim.defects import SimConfig, applicable_defects
from anbar.sim.delivery import publish_sftp_periods

from .helpers import DETECTED_AS, inspect_delivery, value_problems

# Imam Khomeini Relief Foundation: not in the registry (SWO is, with its own extract builder).
IKRF = """
code: ikrf
names: {fa: کمیته امداد امام خمینی, en: Imam Khomeini Relief Foundation}
kind: agency
focal_points: [stats@ikrf.example.ir]
transport: {kind: sftp, conn_id: anbar_sftp_ikrf}
calendar: jalali
datasets:
  - name: beneficiaries
    schema_version: 2
    description: {fa: مددجویان, en: Beneficiaries}
    due_day: 20
    access_tier: licensed
    primary_key: [national_id]
    columns:
      - {name: national_id, type: text, required: true, identifier: person,
         description: {fa: کد ملی, en: National ID}}
      - {name: province, type: text, required: true, code_list: province,
         description: {fa: استان, en: Province}}
      - {name: centre_name, type: text, required: true, description: {fa: مرکز, en: Centre}}
      - {name: support_amount, type: bigint, min: 0, max: 90000000,
         description: {fa: مبلغ, en: Amount}}
      - {name: admitted_on, type: date, required: true, description: {fa: پذیرش, en: Admitted}}
"""

FARMERS = """
code: farmers
names: {fa: صندوق بیمه اجتماعی کشاورزان، روستاییان و عشایر, en: Farmers fund}
kind: fund
focal_points: [it@farmers.example.ir]
transport: {kind: api, conn_id: anbar_api_farmers, page_size: 50}
calendar: gregorian
datasets:
  - name: insured_farmers
    schema_version: 1
    description: {fa: بیمه‌شدگان, en: Insured farmers}
    due_day: 10
    access_tier: licensed
    primary_key: [national_id]
    columns:
      - {name: national_id, type: text, required: true, identifier: person,
         description: {fa: کد ملی, en: National ID}}
      - {name: sex, type: text, required: true, code_list: sex, description: {fa: جنس, en: Sex}}
      - {name: contribution_class, type: integer, required: true, min: 1, max: 9,
         description: {fa: طبقه, en: Class}}
"""


@pytest.fixture(scope="module")
def custom(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("registry")
    shutil.copytree(Path(load_registry().root), root, dirs_exist_ok=True)
    (root / "ikrf.yml").write_text(IKRF, encoding="utf-8")
    (root / "farmers.yml").write_text(FARMERS, encoding="utf-8")
    return root


def test_new_sftp_organisation_is_published(custom, tmp_path):
    config = SimConfig(seed=3, persons=600, workplaces=40, registry_root=custom)
    registry = config.registry
    ds = registry.dataset("ikrf", "beneficiaries")
    assert "wrong_encoding" in applicable_defects(ds, "sftp")
    deliveries = publish_sftp_periods(tmp_path, config.population(), registry, config, {"ikrf": ["1405-06"]})
    assert [d.dataset for d in deliveries] == ["beneficiaries"] and deliveries[0].rows > 20
    assert inspect_delivery(Path(deliveries[0].path), ds, registry) == set()
    bad = SimConfig(
        seed=3,
        persons=600,
        workplaces=40,
        registry_root=custom,
        overrides={"ikrf/beneficiaries/1405-07": "wrong_encoding"},
    )
    (d,) = publish_sftp_periods(tmp_path, bad.population(), registry, bad, {"ikrf": ["1405-07"]})
    assert DETECTED_AS["wrong_encoding"] <= inspect_delivery(Path(d.path), ds, registry)


def test_new_api_organisation_is_served(custom, loop):
    config = SimConfig(
        seed=3,
        persons=600,
        workplaces=40,
        registry_root=custom,
        overrides={"farmers/insured_farmers/2026-09": "unknown_codes"},
    )
    registry = config.registry
    app = create_api_app(
        config.population(),
        registry,
        config,
        {"farmers": ["2026-08", "2026-09"]},
        {"farmers": "tok"},
    )
    server = loop.run(ApiServer.start(app))
    ds = registry.dataset("farmers", "insured_farmers")
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{server.port}",
            headers={"Authorization": "Bearer tok"},
            trust_env=False,
        ) as client:
            for period, problems in (("2026-08", set()), ("2026-09", {"unknown_codes"})):
                manifest = client.get(f"/v1/extracts/insured_farmers/{period}/manifest").json()
                assert manifest["page_size"] == 50
                records, cursor = [], None
                while True:
                    body = client.get(
                        f"/v1/extracts/insured_farmers/{period}",
                        params={"cursor": cursor} if cursor else {},
                    ).json()
                    records += body["records"]
                    cursor = body["next_cursor"]
                    if not cursor:
                        break
                assert len(records) == manifest["rows"] > 50
                assert value_problems(records, ds, registry) == problems
                assert all(1 <= int(r["contribution_class"]) <= 9 for r in records)
    finally:
        loop.run(server.close())
