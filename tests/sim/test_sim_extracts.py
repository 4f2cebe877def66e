"""Monthly extracts: registry columns, supplier date formats, plausible values."""

from __future__ import annotations

import datetime as dt
import re

import jdatetime
import pytest

from anbar.ids import is_valid_person_id
from anbar.periods import Period
from anbar.sim.defects import SimConfig
from anbar.sim.extracts import VARIANTS, extract_rows, represent, sftp_variant

JALALI = re.compile(r"^(\d{4})/(\d{2})/(\d{2})$")


def _jalali(value: str) -> dt.date:
    y, m, d = map(int, JALALI.match(value).groups())
    return jdatetime.date(y, m, d).togregorian()


@pytest.mark.parametrize(
    ("org", "dataset", "period"),
    [
        ("sso", "insured_persons", "1405-06"),
        ("sso", "workplaces", "1405-06"),
        ("tvto", "trainees", "2026-09"),
    ],
)
def test_rows_have_exactly_the_registry_columns(population, registry, org, dataset, period):
    ds = registry.dataset(org, dataset)
    rows = extract_rows(population, ds, period, registry=registry)
    assert rows
    for row in rows:
        assert list(row) == ds.column_names
        assert all(isinstance(v, str) for v in row.values())
        for col in ds.columns:
            if col.required:
                assert row[col.name] != "", (col.name, row)
    keys = [tuple(r[k] for k in ds.primary_key) for r in rows]
    assert len(keys) == len(set(keys))


def test_sso_insured_persons_values(population, registry):
    ds = registry.dataset("sso", "insured_persons")
    period = Period.parse("1405-06", "jalali")
    month_days = (period.end - period.start).days
    rows = extract_rows(population, ds, period)
    for r in rows:
        assert is_valid_person_id(r["national_id"])
        assert 1 <= int(r["days_worked"]) <= month_days
        assert 0 < int(r["insured_wage"]) <= 600_000_000
        birth = _jalali(r["birth_date"])  # Jalali YYYY/MM/DD, a real date
        if r["employment_start"]:
            start = _jalali(r["employment_start"])
            assert birth < start < period.end
    assert any(r["employment_start"] == "" for r in rows) or len(rows) < 100
    assert any(int(r["days_worked"]) < month_days for r in rows), "some partial months"


def test_sso_workplaces_are_those_with_insured_persons(population, registry):
    for label in ("1405-05", "1405-06"):
        insured = extract_rows(population, registry.dataset("sso", "insured_persons"), label)
        places = extract_rows(population, registry.dataset("sso", "workplaces"), label)
        assert {r["workshop_code"] for r in insured} == {r["workshop_code"] for r in places}
        for r in places:
            _jalali(r["registered_on"])
            assert r["legal_id"] == "" or len(r["legal_id"]) == 11


def test_tvto_trainees_values(population, registry):
    ds = registry.dataset("tvto", "trainees")
    period = Period.parse("2026-09", "gregorian")
    rows = extract_rows(population, ds, period, registry=registry)
    results = {r["result"] for r in rows}
    assert results <= {"P", "F", "A"} and "P" in results
    for r in rows:
        assert re.fullmatch(r"\d{4}", r["isco_code"])
        start = dt.date.fromisoformat(r["course_start"])  # Gregorian YYYY-MM-DD
        end = dt.date.fromisoformat(r["course_end"])
        assert start <= end and period.start <= end < period.end
        assert 1 <= int(r["hours"]) <= 2000
        dt.date.fromisoformat(r["birth_date"])


def test_default_population_gives_realistic_volumes(registry):
    config = SimConfig(seed=42)  # 4000 persons, 300 workplaces
    pop = config.population()
    counts = {
        key: len(extract_rows(pop, registry.dataset(*key[:2]), key[2], registry=registry))
        for key in [
            ("sso", "insured_persons", "1405-06"),
            ("sso", "workplaces", "1405-06"),
            ("tvto", "trainees", "2026-09"),
        ]
    }
    assert 1000 <= counts["sso", "insured_persons", "1405-06"] <= 3000
    assert 100 <= counts["sso", "workplaces", "1405-06"] <= 300
    assert 100 <= counts["tvto", "trainees", "2026-09"] <= 1000


def test_three_months_of_sso_show_every_variant(registry):
    seen = {
        sftp_variant(registry, "sso", ds, p).name
        for ds in ("insured_persons", "workplaces")
        for p in ("1405-05", "1405-06", "1405-07")
    }
    assert seen == {v.name for v in VARIANTS}


def test_representations(population, registry):
    ds = registry.dataset("sso", "workplaces")
    rows = extract_rows(population, ds, "1405-06")
    by_name = {v.name: v for v in VARIANTS}

    arabic = represent(rows, ds, by_name["windows1256_arabic_letters"], seed=1, period="1405-06")
    text = "".join(r["workshop_name"] for r in arabic)
    assert "ي" in text and "ك" in text and "ی" not in text and "ک" not in text

    local = represent(rows, ds, by_name["utf8_local_digits"], seed=1, period="1405-06")
    dates = "".join(r["registered_on"] for r in local)
    assert re.search("[۰-۹]", dates) and re.search("[٠-٩]", dates)
    assert not re.search("[0-9]", dates)
    assert all(r["workshop_code"].isascii() for r in local), "text columns keep ASCII digits"
    assert rows == extract_rows(population, ds, "1405-06"), "represent() does not mutate"
