"""(a) The committed dbt sources file is what the registry renders to."""

from __future__ import annotations

import yaml

from anbar.dbt import sources


def test_sources_file_is_current(registry):
    assert sources.check(registry), (
        f"{sources.default_path()} is stale: run `python -m anbar.dbt sources` and commit it"
    )


def test_render_is_deterministic(registry):
    assert sources.render_sources(registry) == sources.render_sources(registry)


def test_every_registry_dataset_is_a_clean_source_table(registry):
    doc = yaml.safe_load(sources.render_sources(registry))
    by_name = {s["name"]: s for s in doc["sources"]}
    assert set(by_name) == {"clean", "anbar", "ref"}
    assert by_name["clean"]["schema"] == "clean"
    tables = {t["name"]: t for t in by_name["clean"]["tables"]}
    assert set(tables) == {ds.key for ds in registry.datasets}
    for ds in registry.datasets:
        table = tables[ds.key]
        meta = table["config"]["meta"]
        org = registry.org(ds.org)
        assert meta["org"] == ds.org
        assert meta["access_tier"] == ds.access_tier.value
        assert meta["calendar"] == org.calendar.value
        assert meta["asset_uri"] == ds.asset_uri
        assert ds.description.fa in table["description"] and ds.description.en in table["description"]
        columns = {c["name"]: c for c in table["columns"]}
        assert list(columns)[:4] == ["_submission_id", "_file", "_row_no", "_period"]
        for col in ds.columns:
            assert col.description.en in columns[col.name]["description"]
            assert columns[col.name]["config"]["meta"]["access_tier"] == col.access_tier.value
    ip = {c["name"]: c for c in tables["sso__insured_persons"]["columns"]}
    assert ip["national_id"]["config"]["meta"]["access_tier"] == "confidential"
    assert ip["national_id"]["config"]["meta"]["identifier"] == "person"
    assert {t["name"] for t in by_name["anbar"]["tables"]} == {
        "submissions",
        "jalali_calendar",
        "expected_submissions",
        "submission_status",
        "quality_scorecard_latest",
    }
    assert [t["name"] for t in by_name["ref"]["tables"]] == ["code_list_values"]


def test_check_notices_a_stale_file(registry, tmp_path):
    path = sources.write_sources(registry, tmp_path / "_sources.yml")
    assert sources.check(registry, path)
    path.write_text(path.read_text(encoding="utf-8") + "# edited by hand\n", encoding="utf-8")
    assert not sources.check(registry, path)
    assert not sources.check(registry, tmp_path / "missing.yml")
