"""The synthetic population: valid identifiers, plausible values, determinism by seed."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

from anbar.ids import is_valid_legal_entity_id, is_valid_person_id
from anbar.periods import Period
from anbar.sim.extracts import extract_rows
from anbar.sim.population import REFERENCE_DATE, WAGE_RANGE, Population, add_years
from anbar.sim.text import cp1256_safe


def test_every_identifier_passes_its_check_digit(population, registry):
    ids = [p.national_id for p in population.persons]
    assert len(ids) == len(set(ids)) == len(population.persons)
    assert all(len(i) == 10 and i.isdigit() and is_valid_person_id(i) for i in ids)
    assert any(i.startswith("00") for i in ids), "some national IDs have leading zeros"

    legal = [w.legal_id for w in population.workplaces]
    filled = [x for x in legal if x]
    assert all(len(x) == 11 and is_valid_legal_entity_id(x) for x in filled)
    assert len(filled) == len(set(filled))
    assert 0.02 <= legal.count("") / len(legal) <= 0.25, "about 10% have no legal ID"
    codes = [w.workshop_code for w in population.workplaces]
    assert len(codes) == len(set(codes)) and all(len(c) == 10 and c.isdigit() for c in codes)


def test_person_and_workplace_attributes_use_the_code_lists(population, registry):
    provinces = set(registry.code_lists["province"].codes)
    sections = set(registry.code_lists["isic_section"].codes)
    for p in population.persons:
        assert p.sex in registry.code_lists["sex"].codes
        assert p.province in provinces
        assert add_years(REFERENCE_DATE, -76) < p.birth_date <= add_years(REFERENCE_DATE, -16)
    for w in population.workplaces:
        assert w.isic_section in sections and w.province in provinces
        assert w.name.startswith(("شرکت", "کارگاه", "مؤسسه"))
        cp1256_safe(w.name).encode("cp1256")  # representable in the legacy code page
    names = " ".join(w.name for w in population.workplaces)
    assert "ی" in names and "ک" in names  # Persian yeh and keheh, not the Arabic forms
    assert "ي" not in names and "ك" not in names


def test_employment_spells_are_consistent(population):
    persons, workplaces = population.persons, population.workplaces
    assert len(population.employments) > len(persons) // 2
    for e in population.employments:
        assert WAGE_RANGE[0] <= e.wage <= WAGE_RANGE[1]
        assert e.insurance_type in {"1", "2", "3", "4", "5"}
        assert e.end is None or e.end > e.start
        assert e.start >= workplaces[e.workplace].registered_on
        assert e.start >= add_years(persons[e.person].birth_date, 18)


def test_some_trainees_become_insured_employees(config, population, registry):
    """Linkage on the national ID: trainees of a month show up at SSO months later."""
    trainees = registry.dataset("tvto", "trainees")
    insured = registry.dataset("sso", "insured_persons")
    passed = {
        r["national_id"] for r in extract_rows(population, trainees, "2026-06", registry=registry) if r["result"] == "P"
    }
    before = {r["national_id"] for r in extract_rows(population, insured, "1405-03")}
    later = set()
    for label in ("1405-06", "1405-07", "1405-08", "1405-09"):
        later |= {r["national_id"] for r in extract_rows(population, insured, label)}
    hired = (passed & later) - before
    assert hired, "some passed trainees are insured employees after the course"
    assert passed - later, "and some are not"


def test_same_seed_same_population(config, population):
    again = Population(config.seed, config.persons, config.workplaces)
    assert again.fingerprint() == population.fingerprint()
    assert again.persons == population.persons
    assert again.employments == population.employments


def test_population_does_not_depend_on_the_hash_seed(config, population):
    """Python's hash() is randomised per process; the population must not be."""
    code = (
        "from anbar.sim.population import Population;"
        f"print(Population({config.seed}, {config.persons}, {config.workplaces}).fingerprint())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == population.fingerprint()


def test_different_seed_different_population(config, population):
    other = Population(config.seed + 1, config.persons, config.workplaces)
    assert other.fingerprint() != population.fingerprint()
    same = {p.national_id for p in other.persons} & {p.national_id for p in population.persons}
    assert len(same) < len(population.persons) // 10


def test_trainings_end_in_the_month_asked_for(population):
    period = Period.parse("2026-10", "gregorian")
    trainings = population.trainings_ending(period.start, period.end)
    assert trainings
    for t in trainings:
        assert period.start <= t.end < period.end
        assert t.start <= t.end
        assert t.start > t.end - dt.timedelta(days=400)
