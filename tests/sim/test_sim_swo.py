"""SWO beneficiaries: valid rows, the county within the province, a stable population of the same
persons as the other suppliers, served over the API on Jalali months."""

from __future__ import annotations

import dataclasses
import datetime as dt

import httpx
import pytest

from anbar.ids import is_valid_person_id
from anbar.periods import Period
from anbar.sim.api_server import create_api_app
from anbar.sim.defects import ROW_COUNT_SURPLUS, SimConfig
from anbar.sim.extracts import extract_rows
from anbar.sim.population import CASH_SUPPORTS, ELDERLY_AGE, ORPHAN_END_AGE, Population, add_years

from .helpers import (
    ALSO_DETECTED,
    SWO_PERIODS,
    api_client,
    context_problems,
    delivery_context,
    parse_date,
    value_problems,
)

TOKEN = "test-token-swo"
PAGE = 10
DISABILITY_SUPPORTS = {"1", "2", "3", "4", "7"}  # disability pension, rehabilitation, home care, loan, residential
MONTHS = [f"1404-{m:02d}" for m in range(1, 13)] + [f"1405-{m:02d}" for m in range(1, 8)]


def _rows(population, registry, period):
    return extract_rows(population, registry.dataset("swo", "beneficiaries"), period, registry=registry)


def test_swo_is_a_jalali_api_supplier(registry):
    org = registry.org("swo")
    assert (org.transport.kind, org.transport.conn_id, org.calendar) == ("api", "anbar_api_swo", "jalali")
    ds = org.dataset("beneficiaries")
    assert ds.primary_key == ["national_id", "support_type"]
    assert {c.name for c in ds.columns if not c.required} == {"disability_type", "monthly_amount"}
    assert {c.name: c.calendar for c in ds.date_columns} == {"birth_date": "jalali", "support_start": "jalali"}
    assert 5 <= len(registry.code_lists["swo_support_type"].codes) <= 8
    assert set(CASH_SUPPORTS) < set(registry.code_lists["swo_support_type"].codes)


@pytest.mark.parametrize("label", ["1404-03", "1405-06"])
def test_beneficiary_rows_validate_against_the_registry(population, registry, label):
    ds = registry.dataset("swo", "beneficiaries")
    period = Period.parse(label, "jalali")
    rows = _rows(population, registry, label)
    assert len(rows) > 20
    assert value_problems(rows, ds, registry) == set()
    lists = registry.code_lists
    persons = population.person_by_id
    for r in rows:
        assert list(r) == ds.column_names
        assert is_valid_person_id(r["national_id"])
        person = persons[r["national_id"]]
        assert (r["sex"], r["province"]) == (person.sex, person.province), "the person's own province"
        assert r["county"] in lists["iran_county"].codes and r["county"][:2] == r["province"]
        assert r["support_type"] in lists["swo_support_type"].codes
        assert r["disability_type"] == "" or r["disability_type"] in lists["swo_disability_type"].codes
        if r["support_type"] in DISABILITY_SUPPORTS:
            assert r["disability_type"], "a disability support names the disability"
        assert bool(r["monthly_amount"]) == (r["support_type"] in CASH_SUPPORTS), "services and loans pay nothing"
        if r["monthly_amount"]:
            assert 0 < int(r["monthly_amount"]) < 100_000_000 and int(r["monthly_amount"]) % 10_000 == 0
        born = parse_date(r["birth_date"], "jalali")
        started = parse_date(r["support_start"], "jalali")
        assert r["birth_date"][4] == "/" == r["support_start"][4] and born and started
        assert born < started < period.end
        if r["support_type"] == "5":  # orphans: children
            assert period.start < add_years(born, ORPHAN_END_AGE)
        if r["support_type"] == "6":  # needy elderly
            assert add_years(born, ELDERLY_AGE) <= started
    keys = [(r["national_id"], r["support_type"]) for r in rows]
    assert keys == sorted(set(keys)), "sorted by the primary key, which is unique"


def test_every_county_is_within_its_province_and_persons_keep_theirs(population, registry):
    counties = registry.code_lists["iran_county"].codes
    for province, options in population.counties_by_province.items():
        assert options and all(c[:2] == province and c in counties for c in options)
    for s in population.supports:
        person = population.persons[s.person]
        assert s.county == population.county_of(person) and s.county[:2] == person.province


def test_the_population_is_stable_with_entries_and_exits(population, registry):
    config = SimConfig(seed=42)  # the default population
    pop = config.population()
    entries = exits = 0
    kinds = set()
    previous: dict[tuple[str, str], dict] | None = None
    for label in MONTHS:
        rows = {(r["national_id"], r["support_type"]): r for r in _rows(pop, registry, label)}
        kinds |= {k[1] for k in rows}
        if previous is not None:
            stay = rows.keys() & previous.keys()
            assert len(stay) >= 0.85 * len(previous), "month to month, most beneficiaries stay"
            assert abs(len(rows) - len(previous)) <= 0.1 * len(previous)
            entries += len(rows.keys() - previous.keys())
            exits += len(previous.keys() - rows.keys())
            for key in stay:
                now, before = rows[key], previous[key]
                same = ("sex", "birth_date", "province", "county", "support_start", "disability_type")
                assert all(now[c] == before[c] for c in same), key
                if label[:4] == before["_label"][:4]:
                    assert now["monthly_amount"] == before["monthly_amount"]
                elif now["monthly_amount"]:  # indexed on 1 Farvardin
                    assert int(now["monthly_amount"]) > int(before["monthly_amount"])
        previous = {k: {**r, "_label": label} for k, r in rows.items()}
    assert entries >= 10 and exits >= 10
    assert kinds == set(registry.code_lists["swo_support_type"].codes), "every support type occurs"


def test_beneficiaries_are_the_persons_seen_by_the_other_suppliers(registry):
    pop = SimConfig(seed=42).population()
    label = "1404-06"
    period = Period.parse(label, "jalali")
    swo = _rows(pop, registry, label)
    insured = {
        r["national_id"]
        for r in extract_rows(pop, registry.dataset("sso", "insured_persons"), label, registry=registry)
    }
    pensioners = {
        r["national_id"] for r in extract_rows(pop, registry.dataset("cspf", "pensioners"), label, registry=registry)
    }
    persons = {p.national_id for p in pop.persons}
    assert {r["national_id"] for r in swo} <= persons
    elderly = {r["national_id"] for r in swo if r["support_type"] == "6"}
    assert elderly and not elderly & (insured | pensioners), "needy elderly persons have no pension nor job"
    ages = [(period.start - parse_date(r["birth_date"], "jalali")).days / 365.25 for r in swo]
    assert min(ages) < 18 and max(ages) > 65, "children and elderly persons"
    # A disability pension that stopped, stopped when an insured job started.
    starts: dict[int, set[dt.date]] = {}
    for e in pop.employments:
        starts.setdefault(e.person, set()).add(e.start)
    stopped = [s for s in pop.supports if s.support_type == "1" and s.end is not None]
    assert stopped and all(s.end in starts[s.person] for s in stopped)


def test_the_other_suppliers_do_not_depend_on_the_welfare_histories(registry, config, monkeypatch):
    """SWO supports are drawn after everything else: without them, SSO, CSPF and TVTO are the same."""
    pop = Population(config.seed, config.persons, config.workplaces, registry=registry)
    monkeypatch.setattr(Population, "_make_supports", lambda self: ())
    bare = Population(config.seed, config.persons, config.workplaces, registry=registry)
    assert bare.supports == () and pop.supports
    for org, label in (("sso", "1405-06"), ("cspf", "1405-06"), ("tvto", "2026-09")):
        for ds in registry.org(org).datasets:
            assert extract_rows(pop, ds, label, registry=registry) == extract_rows(bare, ds, label, registry=registry)


# -- the API, on Jalali months --------------------------------------------------------------------

API_DEFECTS = {
    "1405-02": "row_count_mismatch",
    "1405-03": "duplicate_keys",
    "1405-04": "unknown_codes",
    "1405-05": "invalid_dates",
    "1405-07": "out_of_range",
    "1405-08": "inconsistent_dates",
    "1405-09": "count_drop",
    "1405-10": "rejuvenated_persons",
    "1405-11": "invalid_national_ids",
}


@pytest.fixture(scope="module")
def api(loop, population, registry, config):
    overrides = {f"swo/beneficiaries/{p}": d for p, d in API_DEFECTS.items()} | {"swo/beneficiaries/1405-06": None}
    cfg = dataclasses.replace(config, overrides=overrides)
    periods = {"swo": [*SWO_PERIODS, *API_DEFECTS]}
    app = create_api_app(population, registry, cfg, periods, {"swo": TOKEN}, page_size=PAGE)
    with api_client(loop, app, TOKEN) as client:
        yield client


def _pull(client: httpx.Client, period: str) -> tuple[dict, list[dict]]:
    manifest = client.get(f"/v1/extracts/beneficiaries/{period}/manifest")
    assert manifest.status_code == 200, manifest.text
    records, cursor = [], None
    while True:
        body = client.get(f"/v1/extracts/beneficiaries/{period}", params={"cursor": cursor} if cursor else {}).json()
        assert len(body["records"]) <= PAGE
        records += body["records"]
        cursor = body["next_cursor"]
        if cursor is None:
            return manifest.json(), records


def test_a_jalali_period_is_served_over_the_api(api, population, registry):
    manifest, records = _pull(api, "1405-06")
    assert manifest == {
        "org": "swo",
        "dataset": "beneficiaries",
        "period": "1405-06",
        "schema_version": 1,
        "rows": len(records),
        "page_size": PAGE,
    }
    ds = registry.dataset("swo", "beneficiaries")
    assert len(records) > PAGE
    for r in records:
        assert list(r) == ds.column_names
        assert r["monthly_amount"] is None or r["monthly_amount"].isdigit(), "no value: null, not an empty string"
    assert parse_date(records[0]["support_start"], "jalali")
    expected = [{k: (v or None) for k, v in r.items()} for r in _rows(population, registry, "1405-06")]
    assert records == expected
    assert value_problems(records, ds, registry) == set()
    # A Gregorian label is not a period of a Jalali supplier; an unpublished month is not found.
    assert api.get("/v1/extracts/beneficiaries/2026-09/manifest").status_code == 400
    assert api.get("/v1/extracts/beneficiaries/1405-12/manifest").status_code == 404


def test_row_count_mismatch_over_the_api(api):
    manifest, records = _pull(api, "1405-02")
    assert manifest["rows"] == len(records) + ROW_COUNT_SURPLUS


@pytest.mark.parametrize(("period", "defect"), [(p, d) for p, d in API_DEFECTS.items() if d != "row_count_mismatch"])
def test_record_defects_are_detectable(api, population, registry, period, defect):
    manifest, records = _pull(api, period)
    assert manifest["rows"] == len(records)
    ds = registry.dataset("swo", "beneficiaries")
    context = delivery_context(population, registry, "swo", "beneficiaries", period)
    found = value_problems(records, ds, registry) | context_problems(records, ds, context)
    assert found == {defect} | ALSO_DETECTED.get(("swo", "beneficiaries", defect), set())


def test_another_schema_under_the_same_code_is_simulated_generically(tmp_path, registry):
    """The builder knows schema 1; a registry file with other columns falls back to the generic extract."""
    import shutil

    shutil.copytree(registry.root, tmp_path, dirs_exist_ok=True)
    text = (tmp_path / "swo.yml").read_text(encoding="utf-8")
    (tmp_path / "swo.yml").write_text(text.replace("name: county", "name: district"), encoding="utf-8")
    config = SimConfig(seed=3, persons=600, workplaces=40, registry_root=tmp_path)
    ds = config.registry.dataset("swo", "beneficiaries")
    rows = extract_rows(config.population(), ds, "1405-06", registry=config.registry)
    assert rows and all(list(r) == ds.column_names for r in rows)
    assert value_problems(rows, ds, config.registry) == set()
