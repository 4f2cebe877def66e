"""Row-level defect modes for the four principles: each shows its damage, in a small share of the rows only."""

from __future__ import annotations

import pytest

from anbar.ids import is_valid_person_id
from anbar.sim.defects import (
    _FIRST_DEFECTS,
    COUNT_DROP_KEEP,
    DEFECT_PRINCIPLE,
    PENSIONERS_HIRED_SHARE,
    VALUE_DEFECTS,
    SimConfig,
    applicable_defects,
    apply_row_defect,
)
from anbar.sim.extracts import as_period, extract_rows
from anbar.sim.population import add_years
from anbar.sim.serve import DEFAULT_PERIODS

from .helpers import context_problems, date_order, delivery_context, parse_date, value_problems

# Months in which persons recur from the previous month in every dataset of the test population.
CASES = [
    ("sso", "insured_persons", "1405-06"),
    ("sso", "workplaces", "1405-06"),
    ("tvto", "trainees", "2026-09"),
    ("cspf", "pensioners", "1405-06"),
    ("swo", "beneficiaries", "1405-06"),
]
NEW = ("invalid_dates", "out_of_range", "inconsistent_dates", "count_drop", "rejuvenated_persons", "pensioners_hired")
SMALL = 0.05  # no row-level mode touches more than this share of the rows (count_drop aside)


def _cases():
    from anbar.registry import load_registry

    registry = load_registry()
    for org, dataset, period in CASES:
        kind = registry.org(org).transport.kind
        for defect in NEW:
            if defect in applicable_defects(registry.dataset(org, dataset), kind):
                yield org, dataset, period, defect


def _damage(population, registry, org, dataset, period, defect, seed=1):
    ds = registry.dataset(org, dataset)
    rows = extract_rows(population, ds, period, registry=registry)
    damaged = apply_row_defect(rows, ds, defect, registry=registry, seed=seed, period=period, population=population)
    return ds, rows, damaged


def _changed(rows, damaged):
    assert len(rows) == len(damaged)
    return [(a, b) for a, b in zip(rows, damaged, strict=True) if a != b]


def _calendar(registry, ds, column):
    return registry.org(ds.org).date_calendar(ds.column(column))


def test_every_new_mode_has_a_principle_and_is_row_level():
    assert set(NEW) <= set(VALUE_DEFECTS)
    assert DEFECT_PRINCIPLE["invalid_dates"] == "conversion"
    assert DEFECT_PRINCIPLE["out_of_range"] == "quality"
    assert {DEFECT_PRINCIPLE[d] for d in NEW[2:]} == {"consistency"}
    assert set(DEFECT_PRINCIPLE.values()) == {"conversion", "system", "consistency", "quality"}


@pytest.mark.parametrize(("org", "dataset", "period", "defect"), list(_cases()))
def test_damage_is_visible_and_the_input_untouched(population, registry, org, dataset, period, defect):
    ds, rows, damaged = _damage(population, registry, org, dataset, period, defect)
    assert rows == extract_rows(population, ds, period, registry=registry), "apply_row_defect copies"
    assert damaged != rows
    assert value_problems(rows, ds, registry) == set()
    context = delivery_context(population, registry, org, dataset, period)
    assert context_problems(rows, ds, context) == set(), "the good delivery has no finding"
    found = value_problems(damaged, ds, registry) | context_problems(damaged, ds, context)
    assert found == {defect}
    again = _damage(population, registry, org, dataset, period, defect)[2]
    assert again == damaged, "deterministic by (seed, org, dataset, period)"
    other_seed = _damage(population, registry, org, dataset, period, defect, seed=2)[2]
    assert other_seed != damaged


@pytest.mark.parametrize(("org", "dataset", "period"), CASES)
def test_invalid_dates_are_impossible_calendar_dates_in_few_rows(population, registry, org, dataset, period):
    ds, rows, damaged = _damage(population, registry, org, dataset, period, "invalid_dates")
    changed = _changed(rows, damaged)
    assert 1 <= len(changed) <= max(1, SMALL * len(rows))
    for before, after in changed:
        cols = [c for c in ds.column_names if before[c] != after[c]]
        assert len(cols) == 1 and ds.column(cols[0]).type.value == "date"
        value, calendar = after[cols[0]], _calendar(registry, ds, cols[0])
        sep = "/" if calendar == "jalali" else "-"
        assert value[4] == sep == value[7] and value[:4] == before[cols[0]][:4], "same form, same year"
        assert parse_date(value, calendar) is None, value


@pytest.mark.parametrize(("org", "dataset", "period"), [c for c in CASES if c[1] != "workplaces"])
def test_out_of_range_values_break_the_registry_bounds_in_few_rows(population, registry, org, dataset, period):
    ds, rows, damaged = _damage(population, registry, org, dataset, period, "out_of_range")
    changed = _changed(rows, damaged)
    assert 1 <= len(changed) <= max(1, SMALL * len(rows))
    for before, after in changed:
        (col,) = [c for c in ds.column_names if before[c] != after[c]]
        column = ds.column(col)
        value = int(after[col])  # still a whole number: a quality finding, not a conversion error
        assert (column.max is not None and value > column.max) or (column.min is not None and value < column.min)


@pytest.mark.parametrize(("org", "dataset", "period"), [c for c in CASES if c[1] != "workplaces"])
def test_inconsistent_dates_break_the_order_within_few_records(population, registry, org, dataset, period):
    ds, rows, damaged = _damage(population, registry, org, dataset, period, "inconsistent_dates")
    changed = _changed(rows, damaged)
    assert 1 <= len(changed) <= max(1, SMALL * len(rows))
    p = as_period(period, registry.org(org).calendar)
    for before, after in changed:
        cols = [c for c in ds.column_names if before[c] != after[c]]
        assert len(cols) == 1
        broken = []
        for earlier, later in date_order(ds):
            a = parse_date(after[earlier], _calendar(registry, ds, earlier))
            b = parse_date(after[later], _calendar(registry, ds, later))
            assert a and b, "real dates: a consistency finding, not a conversion error"
            if b < a:
                broken.append((earlier, later))
        assert broken and cols[0] in broken[0]
        if org == "tvto":  # the course still ended in the period
            assert p.start <= parse_date(after["course_end"], "gregorian") < p.end


@pytest.mark.parametrize(("org", "dataset", "period"), CASES)
def test_count_drop_delivers_sixty_percent_of_the_rows(population, registry, org, dataset, period):
    ds, rows, damaged = _damage(population, registry, org, dataset, period, "count_drop")
    previous = extract_rows(population, ds, as_period(period, registry.org(org).calendar).previous(), registry=registry)
    assert len(damaged) == round(COUNT_DROP_KEEP * min(len(rows), len(previous)))
    positions = [rows.index(r) for r in damaged]
    assert positions == sorted(positions), "the rows that are left are unchanged and in order"
    assert len(damaged) <= 0.6 * len(previous) + 1 and len(rows) > 0.75 * len(previous)


@pytest.mark.parametrize(("org", "dataset", "period"), [c for c in CASES if c[1] != "workplaces"])
def test_rejuvenated_persons_were_in_the_previous_period_and_got_younger(population, registry, org, dataset, period):
    ds, rows, damaged = _damage(population, registry, org, dataset, period, "rejuvenated_persons")
    changed = _changed(rows, damaged)
    previous_period = as_period(period, registry.org(org).calendar).previous()
    previous = {r["national_id"]: r for r in extract_rows(population, ds, previous_period, registry=registry)}
    calendar = _calendar(registry, ds, "birth_date")
    persons = {after["national_id"] for _, after in changed}
    recurring = {r["national_id"] for r in rows} & set(previous)
    assert 1 <= len(persons) <= max(1, SMALL * len(recurring))
    for before, after in changed:
        assert [c for c in ds.column_names if before[c] != after[c]] == ["birth_date"]
        was = parse_date(previous[after["national_id"]]["birth_date"], calendar)
        now = parse_date(after["birth_date"], calendar)
        assert add_years(was, 1) <= now <= add_years(was, 5)
    for r in damaged:  # every row of a rejuvenated person says the same
        if r["national_id"] in persons:
            assert r["birth_date"] == next(a for _, a in changed if a["national_id"] == r["national_id"])["birth_date"]
    assert value_problems(damaged, ds, registry) == set(), "still consistent within each record"


def test_pensioners_hired_adds_new_insured_jobs_of_active_pensioners(population, registry):
    period = "1405-06"
    _, rows, damaged = _damage(population, registry, "sso", "insured_persons", period, "pensioners_hired")
    p = as_period(period, "jalali")
    added = [r for r in damaged if r not in rows]
    assert len(damaged) == len(rows) + len(added)
    assert len(added) == round(PENSIONERS_HIRED_SHARE * len(rows))
    assert [r for r in damaged if r in rows] == rows, "every good row is still there"
    pensioners = {population.persons[x.person].national_id for x in population.pensioners_before(p.start)}
    cspf = extract_rows(population, registry.dataset("cspf", "pensioners"), period, registry=registry)
    assert pensioners <= {r["national_id"] for r in cspf}, "hired after retiring before the period"
    workshops = {r["workshop_code"] for r in rows}
    for r in added:
        assert r["national_id"] in pensioners and is_valid_person_id(r["national_id"])
        assert r["national_id"] not in {x["national_id"] for x in rows}
        assert r["workshop_code"] in workshops
        start = parse_date(r["employment_start"], "jalali")
        assert p.start <= start < p.end
        assert int(r["days_worked"]) == (p.end - start).days
    keys = [(r["national_id"], r["workshop_code"]) for r in damaged]
    assert len(keys) == len(set(keys))
    assert damaged == sorted(damaged, key=lambda r: (r["workshop_code"], r["national_id"]))


def test_defects_that_need_the_population_say_so(registry, population):
    ds = registry.dataset("sso", "insured_persons")
    rows = extract_rows(population, ds, "1405-06", registry=registry)
    for defect in ("count_drop", "rejuvenated_persons", "pensioners_hired"):
        with pytest.raises(ValueError, match="needs the population"):
            apply_row_defect(rows, ds, defect, registry=registry, seed=1, period="1405-06")
    with pytest.raises(ValueError, match="cannot show"):
        apply_row_defect(
            rows, registry.dataset("sso", "workplaces"), "out_of_range", registry=registry, seed=1, period="1405-06"
        )


def test_earlier_choices_are_kept_and_later_modes_are_drawn(registry):
    """A delivery that does not draw one of the later modes keeps the mode the earlier code gave it."""
    from anbar.sim.population import stable_unit

    cfg = SimConfig(seed=7, defect_share=1.0)
    picks = {}
    for org, labels in DEFAULT_PERIODS.items():
        calendar = registry.org(org).calendar
        start = as_period(labels[0], calendar)
        periods = [start]
        for _ in range(47):
            periods.append(periods[-1].previous())
        for ds in registry.org(org).datasets:
            options = applicable_defects(ds, registry.org(org).transport.kind)
            earlier = [d for d in options if d in _FIRST_DEFECTS]
            for p in periods:
                pick = cfg.defect_for(org, ds.name, p.label)
                picks[org, ds.name, p.label] = pick
                if pick in _FIRST_DEFECTS:
                    u = stable_unit(7, "defect-kind", org, ds.name, p.label)
                    assert pick == earlier[int(u * len(earlier))]
    drawn = set(picks.values())
    assert set(NEW) <= drawn, "every new mode is drawn somewhere"
    later_share = sum(p in NEW for p in picks.values()) / len(picks)
    assert 0.2 <= later_share <= 0.55
