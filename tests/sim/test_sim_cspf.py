"""CSPF pensioners: valid rows, the same persons as SSO, and a few pensioners with an insured job."""

from __future__ import annotations

from pathlib import Path

from anbar.ids import is_valid_person_id
from anbar.periods import Period
from anbar.sim.defects import SimConfig, apply_row_defect
from anbar.sim.delivery import publish_sftp_periods
from anbar.sim.extracts import extract_rows
from anbar.sim.population import RETIREMENT_AGE, add_years

from .helpers import CSPF_PERIODS, context_problems, delivery_context, inspect_delivery, parse_date, value_problems


def _pensioners(population, registry, period):
    return extract_rows(population, registry.dataset("cspf", "pensioners"), period, registry=registry)


def test_pensioner_rows_validate_against_the_registry(population, registry):
    ds = registry.dataset("cspf", "pensioners")
    assert registry.org("cspf").transport.kind == "sftp" and registry.org("cspf").calendar == "jalali"
    period = Period.parse("1405-06", "jalali")
    rows = _pensioners(population, registry, period.label)
    assert len(rows) > 20
    assert value_problems(rows, ds, registry) == set()
    types = registry.code_lists["cspf_pension_type"].codes
    assert set(types) == {"1", "2", "3"}
    for r in rows:
        assert list(r) == ds.column_names
        assert is_valid_person_id(r["national_id"])
        assert r["sex"] in registry.code_lists["sex"].codes
        assert r["pension_type"] in types
        assert r["province"] in registry.code_lists["province"].codes
        born = parse_date(r["birth_date"], "jalali")  # Jalali YYYY/MM/DD, real dates
        retired = parse_date(r["retirement_date"], "jalali")
        assert r["birth_date"][4] == "/" and born and retired
        assert add_years(born, RETIREMENT_AGE[0]) <= retired < period.end
        assert 0 < int(r["pension_amount"]) <= 2_000_000_000
    assert [r["national_id"] for r in rows] == sorted(r["national_id"] for r in rows)
    assert {r["pension_type"] for r in rows} >= {"1"}


def test_a_pensioner_stays_a_pensioner_and_amounts_rise_at_nowruz(population, registry):
    months = ["1404-10", "1404-11", "1404-12", "1405-01", "1405-02"]
    seen: dict[str, dict] = {}
    for label in months:
        rows = {r["national_id"]: r for r in _pensioners(population, registry, label)}
        assert set(seen) <= set(rows), "nobody leaves the fund"
        for nid, before in seen.items():
            now = rows[nid]
            assert (now["birth_date"], now["retirement_date"]) == (before["birth_date"], before["retirement_date"])
            same_year = label[:4] == before["_label"][:4]
            assert (now["pension_amount"] == before["pension_amount"]) == same_year
        seen = {nid: {**r, "_label": label} for nid, r in rows.items()}


def test_pensioners_are_the_persons_seen_by_sso(population, registry):
    """Linkage on the national ID: a pensioner who is insured at SSO has the same birth date and sex there."""
    config = SimConfig(seed=42)  # the default population: enough pensioners with an insured job
    pop = config.population()
    insured_ds = registry.dataset("sso", "insured_persons")
    persons = {p.national_id: p for p in pop.persons}
    linked = 0
    for label in ("1405-04", "1405-05", "1405-06"):
        pensioners = {r["national_id"]: r for r in _pensioners(pop, registry, label)}
        assert set(pensioners) <= set(persons)
        for r in extract_rows(pop, insured_ds, label, registry=registry):
            if r["national_id"] in pensioners:
                linked += 1
                p = pensioners[r["national_id"]]
                assert (r["birth_date"], r["sex"]) == (p["birth_date"], p["sex"])
    assert linked > 0
    for p in pop.pensions:
        assert p.start >= add_years(pop.persons[p.person].birth_date, RETIREMENT_AGE[0])


def test_a_normal_month_has_few_pensioners_insured_and_the_defect_many(registry):
    pop = SimConfig(seed=42).population()
    insured_ds = registry.dataset("sso", "insured_persons")
    for label in ("1404-08", "1405-06"):
        period = Period.parse(label, "jalali")
        pensioners = {r["national_id"] for r in _pensioners(pop, registry, label)}
        rows = extract_rows(pop, insured_ds, label, registry=registry)
        natural = [r for r in rows if r["national_id"] in pensioners]
        assert 1 <= len(natural) <= 0.01 * len(rows), "some, few: an insured job after retiring is legal"
        assert len(natural) <= 0.1 * len(pensioners)
        damaged = apply_row_defect(
            rows, insured_ds, "pensioners_hired", registry=registry, seed=42, period=label, population=pop
        )
        hired = [r for r in damaged if r["national_id"] in pensioners]
        assert len(hired) >= 3 * len(natural) and len(hired) - len(natural) >= 0.03 * len(rows)
        context = delivery_context(pop, registry, "sso", "insured_persons", label)
        assert context.pensioners == frozenset(pensioners) and context.period == period
        assert context_problems(rows, insured_ds, context) == set()
        assert context_problems(damaged, insured_ds, context) == {"pensioners_hired"}


def test_cspf_is_published_like_sso(tmp_path, population, registry, config):
    deliveries = publish_sftp_periods(tmp_path, population, registry, config, {"cspf": CSPF_PERIODS})
    assert [(d.org, d.dataset, d.period) for d in deliveries] == [("cspf", "pensioners", p) for p in CSPF_PERIODS]
    ds = registry.dataset("cspf", "pensioners")
    for d in deliveries:
        assert Path(d.path) == tmp_path / "cspf" / "outbox" / "pensioners" / d.period
        assert d.defect is None and d.rows > 20
        assert inspect_delivery(Path(d.path), ds, registry) == set()


def test_civil_servants_retire_every_month_and_change_nothing_else(registry):
    """The demo's extra civil servants: new pensioners every month, the rest of the population as it was."""
    plain = SimConfig(seed=42).population()
    with_cs = SimConfig(seed=42, civil_servants=2500).population()
    n = len(plain.persons)
    assert with_cs.persons[:n] == plain.persons and len(with_cs.persons) == n + 2500
    assert with_cs.employments == plain.employments and with_cs.trainings == plain.trainings
    assert set(plain.pensions) <= set(with_cs.pensions)
    assert len({p.national_id for p in with_cs.persons}) == len(with_cs.persons)
    employed = {e.person for e in with_cs.employments}
    assert not employed & set(range(n, n + 2500)), "a civil servant is never insured at SSO"
    for label in ("1405-04", "1405-05", "1405-06"):
        period = Period.parse(label, "jalali")
        rows = _pensioners(with_cs, registry, label)
        new = [r for r in rows if period.start <= parse_date(r["retirement_date"], "jalali") < period.end]
        assert len(new) >= 10, f"{label}: {len(new)} new pensioners"
        for r in rows:
            assert add_years(parse_date(r["birth_date"], "jalali"), RETIREMENT_AGE[0]) <= parse_date(
                r["retirement_date"], "jalali"
            )
