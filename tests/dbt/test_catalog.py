"""The data catalog built by dbt (models/catalog/) on a warehouse of its own, against the registry and
the manifest read here in Python: every registry dataset and column is listed with its tier and
personal-data flag, every warehouse model column with its tier, and the lineage reaches each mart
from the datasets it is built from.

The deliveries are the synthetic ones of the other dbt tests (SSO, TVTO; CSPF and SWO deliver
nothing), the calendar holds the periods ending from 2026-08-01 to 2026-10-31, and TVTO's last
delivery (2026-10, rejected) has a quality scorecard.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal

import psycopg2
import pytest
from anbar_dbt_testdata import dbt_build, fetch_dicts, make_warehouse, record_scorecard

from anbar import expected
from anbar.ddl import clean_type

pytestmark = pytest.mark.integration

DBNAME = "dbt_wh_catalog"
TIERS = {"open", "internal", "licensed", "enclave", "confidential"}


@pytest.fixture(scope="module")
def built(local_pg, registry, tmp_path_factory):
    synthetic = make_warehouse(local_pg, registry, DBNAME)
    ids = {(d.org, d.dataset, d.period, d.version): d.submission_id for d in synthetic.deliveries}
    conn = psycopg2.connect(local_pg.dsn(DBNAME))
    try:
        expected.sync(conn, registry, dt.date(2026, 8, 1), dt.date(2026, 11, 1))
        with conn.cursor() as cur:
            tvto = ids[("tvto", "trainees", "2026-10", 1)]
            record_scorecard(cur, tvto, conversion=(2, 0), system=(2, 0), consistency=(3, 3), quality=(4, 1))
        conn.commit()
    finally:
        conn.close()
    target = tmp_path_factory.mktemp("dbt-catalog")
    dbt_build(local_pg, DBNAME, "+tag:catalog", target)
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    conn = psycopg2.connect(local_pg.dsn(DBNAME))
    yield conn, manifest, ids
    conn.close()


def _warehouse_models(manifest) -> dict[str, dict]:
    return {
        n["unique_id"]: n
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and n["package_name"] == "anbar" and n["fqn"][1] != "catalog"
    }


def test_every_registry_dataset_is_listed_as_the_registry_describes_it(built, registry):
    conn, _, _ = built
    got = {r["dataset_key"]: r for r in fetch_dicts(conn, "select * from catalog.catalog_datasets")}
    assert set(got) == {ds.key for ds in registry.datasets}
    for ds in registry.datasets:
        org = registry.org(ds.org)
        row = got[ds.key]
        assert (row["org"], row["dataset"]) == (ds.org, ds.name)
        assert (row["org_name_fa"], row["org_name_en"]) == (org.names.fa, org.names.en)
        assert (row["description_fa"], row["description_en"]) == (ds.description.fa, ds.description.en)
        assert (row["periodicity"], row["calendar"], row["transport"]) == (ds.period, org.calendar, org.transport.kind)
        assert (row["due_day"], row["grace_days"]) == (ds.due_day, ds.grace_days)
        assert row["access_tier"] == ds.access_tier.value
        assert row["primary_key"] == ", ".join(ds.primary_key)
        assert row["variable_count"] == len(ds.columns)
        assert row["source_relation"] == f"clean.{ds.key}"


def test_last_periods_received_and_accepted_come_from_the_ledger(built):
    conn, _, ids = built
    got = {r["dataset_key"]: r for r in fetch_dicts(conn, "select * from catalog.catalog_datasets")}
    insured = got["sso__insured_persons"]
    # 1405-07: v1 and v2 accepted, v3 rejected, v4 validating: the warehouse uses v2; v4 is the latest received.
    assert insured["last_period_received"] == "1405-07"
    assert insured["last_received_submission_id"] == ids[("sso", "insured_persons", "1405-07", 4)]
    assert (insured["first_period_accepted"], insured["last_period_accepted"]) == ("1405-06", "1405-07")
    assert insured["last_accepted_submission_id"] == ids[("sso", "insured_persons", "1405-07", 2)]
    assert insured["periods_accepted"] == 2
    # Shahrivar 1405 starts on 2026-08-23; Mehr 1405 ends before 2026-10-23.
    assert (insured["coverage_start"], insured["coverage_end"]) == (dt.date(2026, 8, 23), dt.date(2026, 10, 23))
    trainees = got["tvto__trainees"]
    assert (trainees["last_period_received"], trainees["last_period_accepted"]) == ("2026-10", "2026-09")
    assert (trainees["coverage_start"], trainees["coverage_end"]) == (dt.date(2026, 9, 1), dt.date(2026, 10, 1))
    for nothing in ("cspf__pensioners", "swo__beneficiaries"):
        row = got[nothing]
        assert row["last_period_received"] is None and row["last_period_accepted"] is None, nothing
        assert row["periods_accepted"] == 0 and row["score_overall"] is None


def test_quality_scores_are_the_last_period_received(built):
    conn, _, _ = built
    (row,) = fetch_dicts(conn, "select * from catalog.catalog_datasets where dataset_key = 'tvto__trainees'")
    scores = (row["score_conversion"], row["score_system"], row["score_consistency"], row["score_quality"])
    assert scores == (Decimal("100.0"), Decimal("100.0"), Decimal("0.0"), Decimal("75.0"))
    assert row["score_overall"] == Decimal("68.8")  # (100 + 100 + 0 + 75) / 4
    (insured,) = fetch_dicts(conn, "select * from catalog.catalog_datasets where dataset_key = 'sso__insured_persons'")
    assert insured["score_overall"] is None  # its last period received has no scorecard


def test_every_registry_column_is_listed_with_its_tier_and_personal_data_flag(built, registry):
    conn, _, _ = built
    rows = fetch_dicts(conn, "select * from catalog.catalog_variables where variable_kind = 'dataset'")
    got = {(r["dataset_key"], r["column_name"]): r for r in rows}
    want = {(ds.key, c.name) for ds in registry.datasets for c in ds.columns}
    assert set(got) == want
    for ds in registry.datasets:
        person_level = any(c.identifier and c.identifier.value == "person" for c in ds.columns)
        for position, col in enumerate(ds.columns, start=1):
            row = got[(ds.key, col.name)]
            assert row["access_tier"] == col.access_tier.value and row["access_tier_source"] == "registry"
            assert row["data_type"] == clean_type(col)
            assert (row["description_fa"], row["description_en"]) == (col.description.fa, col.description.en)
            assert row["code_list"] == col.code_list
            assert row["is_required"] is col.required
            assert row["is_primary_key"] is (col.name in ds.primary_key)
            assert row["identifier_kind"] == (col.identifier.value if col.identifier else None)
            assert row["ordinal_position"] == position
            personal = (col.identifier is not None and col.identifier.value == "person") or (
                person_level and col.type.value == "date"
            )
            assert row["is_personal_data"] is personal, (ds.key, col.name)
            if col.code_list:
                assert row["code_count"] == len(registry.code_lists[col.code_list].codes)
    # The rule, on the cases it is about.
    assert got[("sso__insured_persons", "national_id")]["is_personal_data"]
    assert got[("sso__insured_persons", "birth_date")]["is_personal_data"]
    assert not got[("sso__insured_persons", "sex")]["is_personal_data"]
    assert not got[("sso__workplaces", "legal_id")]["is_personal_data"]  # a legal entity is no person
    assert not got[("sso__workplaces", "registered_on")]["is_personal_data"]  # workplaces are not persons
    assert got[("cspf__pensioners", "national_id")]["access_tier"] == "confidential"


def test_every_model_column_is_listed_with_its_tier(built):
    conn, manifest, _ = built
    rows = fetch_dicts(conn, "select * from catalog.catalog_variables where variable_kind = 'model'")
    got = {(r["model_name"], r["column_name"]): r for r in rows}
    layer_defaults = {"staging": "enclave", "intermediate": "enclave", "core": "enclave", "marts": "open"}
    want = {}
    for node in _warehouse_models(manifest).values():
        model_meta = {**node.get("meta", {}), **node["config"].get("meta", {})}
        for name, column in node["columns"].items():
            column_meta = {**column.get("meta", {}), **column.get("config", {}).get("meta", {})}
            if column_meta.get("access_tier"):
                want[(node["name"], name)] = (column_meta["access_tier"], "column meta")
            elif model_meta.get("access_tier"):
                want[(node["name"], name)] = (model_meta["access_tier"], "model meta")
            else:
                want[(node["name"], name)] = (layer_defaults[node["fqn"][1]], "layer default")
            assert got[(node["name"], name)]["description"] == column["description"]
    assert {k: (r["access_tier"], r["access_tier_source"]) for k, r in got.items()} == want
    assert {r["access_tier"] for r in rows} <= TIERS
    assert {"stg_sso__insured_persons", "dim_person", "mart_insured_employment", "mart_compliance"} <= {
        m for m, _ in got
    }
    assert not any(m.startswith("catalog_") for m, _ in got)  # the catalog does not list itself
    # person_key is a pseudonym: still personal data; birth_date carried through staging and core too.
    assert got[("stg_sso__insured_persons", "person_key")]["is_personal_data"]
    assert got[("dim_person", "birth_date")]["is_personal_data"]
    assert not got[("stg_sso__insured_persons", "insured_wage_rials")]["is_personal_data"]
    assert not any(r["is_personal_data"] for r in rows if r["layer"] == "marts")


def _datasets_reaching(manifest) -> dict[str, set[str]]:
    """model name -> the registry datasets (clean sources) it is built from, by walking depends_on."""
    models = _warehouse_models(manifest)
    memo: dict[str, set[str]] = {}

    def walk(unique_id: str) -> set[str]:
        if unique_id not in memo:
            found: set[str] = set()
            for parent in manifest["nodes"][unique_id]["depends_on"]["nodes"]:
                if parent.startswith("source.anbar.clean."):
                    found.add(parent.rsplit(".", 1)[1])
                elif parent in models:
                    found |= walk(parent)
            memo[unique_id] = found
        return memo[unique_id]

    return {node["name"]: walk(uid) for uid, node in models.items()}


def test_lineage_reaches_each_mart_from_its_source_datasets(built, registry):
    conn, manifest, _ = built
    edges = fetch_dicts(conn, "select * from catalog.catalog_lineage")
    models = _warehouse_models(manifest)
    want_edges = {(p, uid) for uid, node in models.items() for p in set(node["depends_on"]["nodes"])}
    assert {(e["parent_id"], e["child_id"]) for e in edges} == want_edges
    reached = defaultdict(set)
    for r in fetch_dicts(conn, "select dataset_key, model_name, layer from catalog.catalog_dataset_lineage"):
        reached[r["model_name"]].add(r["dataset_key"])
    expected_reach = {m: ds for m, ds in _datasets_reaching(manifest).items() if ds}
    assert dict(reached) == expected_reach
    reached_any = set().union(*reached.values())
    marts = {node["name"] for node in models.values() if node["fqn"][1] == "marts"}
    assert reached["mart_insured_employment"] == {"sso__insured_persons", "sso__workplaces"}
    assert reached["mart_new_pensioners"] == {"cspf__pensioners"}
    assert reached["mart_welfare_beneficiaries"] == {"swo__beneficiaries"}
    assert {"tvto__trainees", "sso__insured_persons"} <= reached["mart_trainees"]
    # A dataset's first step is the staging model that reads its clean source.
    first = fetch_dicts(
        conn, "select dataset_key, model_name from catalog.catalog_dataset_lineage where edge_count = 1"
    )
    readers = {
        (parent.rsplit(".", 1)[1], node["name"])
        for node in models.values()
        for parent in node["depends_on"]["nodes"]
        if parent.startswith("source.anbar.clean.")
    }
    assert {(r["dataset_key"], r["model_name"]) for r in first} == readers
    assert {m for _, m in readers} >= {f"stg_{ds.org}__{ds.name}" for ds in registry.datasets if ds.key in reached_any}
    assert {"sso__insured_persons", "sso__workplaces", "tvto__trainees", "cspf__pensioners", "swo__beneficiaries"} <= {
        ds for m in marts for ds in reached[m]
    }
