"""Monthly extracts of the simulated suppliers, as the supplier's system writes them.

``extract_rows`` turns the population into the rows of one (org, dataset,
period): exactly the registry's columns in registry order, every value a string
(empty string = no value). Dates are written in the column's calendar: Jalali
``YYYY/MM/DD`` (SSO, CSPF, SWO), Gregorian ``YYYY-MM-DD`` (TVTO).

``sftp_variant`` picks how an SFTP delivery is represented (encoding, letter
forms, digits, delimiter, number of files), deterministically per (dataset,
period) so that a few consecutive months show every variant.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import jdatetime

from anbar.expected import dataset_period
from anbar.periods import Period
from anbar.registry import Calendar, ColumnType, Dataset, Organisation, Registry
from anbar.sim.population import Population, stable_random, stable_unit
from anbar.sim.text import arabic_indic_digits, arabic_letters, persian_digits

Row = dict[str, str]


def format_date(day: dt.date, calendar: Calendar | str) -> str:
    if Calendar(calendar) is Calendar.jalali:
        j = jdatetime.date.fromgregorian(date=day)
        return f"{j.year:04d}/{j.month:02d}/{j.day:02d}"
    return day.isoformat()


def as_period(period: Period | str, calendar: Calendar | str | None = None) -> Period:
    """A ``Period`` from a label; the calendar is inferred from the year if not given."""
    if isinstance(period, Period):
        return period
    if calendar is None:
        calendar = Calendar.jalali if period[:2] in ("13", "14") else Calendar.gregorian
    return Period.parse(period, calendar)


def dataset_periods(organisation: Organisation, ds: Dataset, labels: Sequence[str]) -> list[str]:
    """The periods of ``ds`` that the months ``labels`` publish: the months themselves for a monthly
    dataset, and the quarter or year a month ends for a quarterly or yearly one."""
    out = []
    for label in labels:
        period = dataset_period(ds, as_period(label, organisation.calendar))
        if period is not None and period.label not in out:
            out.append(period.label)
    return out


def is_text_column(name: str) -> bool:
    """Columns the simulator fills with Persian free text."""
    return name.endswith("name") or name in ("address", "title", "description")


# -- the datasets -------------------------------------------------------------------------------


def _sso_insured_persons(pop: Population, ds: Dataset, period: Period) -> list[Row]:
    cal = lambda col: ds.column(col).calendar or period.calendar  # noqa: E731
    month_days = (period.end - period.start).days
    rng = stable_random(pop.seed, ds.org, ds.name, period.label)
    merged: dict[tuple[int, int], tuple] = {}
    for e in pop.employments_between(period.start, period.end):
        days = e.overlap_days(period.start, period.end)
        key = (e.person, e.workplace)
        if key in merged:  # re-hired at the same workplace within the month: one row
            days += merged[key][1]
        merged[key] = (e, min(days, month_days))
    rows = []
    for (person_i, workplace_i), (e, days) in merged.items():
        person = pop.persons[person_i]
        workplace = pop.workplaces[workplace_i]
        if days == month_days and rng.random() < 0.05:  # unpaid leave, sick days
            days = rng.randrange(10, month_days)
        wage = e.wage if days >= min(30, month_days) else e.wage * days // 30
        start = "" if rng.random() < 0.02 else format_date(e.start, cal("employment_start"))
        rows.append(
            {
                "national_id": person.national_id,
                "workshop_code": workplace.workshop_code,
                "sex": person.sex,
                "birth_date": format_date(person.birth_date, cal("birth_date")),
                "insurance_type": e.insurance_type,
                "days_worked": str(days),
                "insured_wage": str(wage // 1000 * 1000),
                "employment_start": start,
            }
        )
    rows.sort(key=lambda r: (r["workshop_code"], r["national_id"]))
    return rows


def _sso_workplaces(pop: Population, ds: Dataset, period: Period) -> list[Row]:
    cal = ds.column("registered_on").calendar or period.calendar
    active = sorted({e.workplace for e in pop.employments_between(period.start, period.end)})
    rows = []
    for i in active:
        w = pop.workplaces[i]
        rows.append(
            {
                "workshop_code": w.workshop_code,
                "legal_id": w.legal_id,
                "workshop_name": w.name,
                "isic_section": w.isic_section,
                "province": w.province,
                "registered_on": format_date(w.registered_on, cal),
            }
        )
    rows.sort(key=lambda r: r["workshop_code"])
    return rows


def _tvto_trainees(pop: Population, ds: Dataset, period: Period) -> list[Row]:
    cal = lambda col: ds.column(col).calendar or period.calendar  # noqa: E731
    rows: dict[tuple[str, str], Row] = {}
    for t in pop.trainings_ending(period.start, period.end):
        person = pop.persons[t.person]
        key = (person.national_id, t.course.code)
        rows.setdefault(
            key,
            {
                "national_id": person.national_id,
                "course_code": t.course.code,
                "isco_code": t.course.isco_code,
                "sex": person.sex,
                "birth_date": format_date(person.birth_date, cal("birth_date")),
                "province": t.province,
                "course_start": format_date(t.start, cal("course_start")),
                "course_end": format_date(t.end, cal("course_end")),
                "hours": str(t.course.hours),
                "result": t.result,
            },
        )
    return [rows[k] for k in sorted(rows)]


def _cspf_pensioners(pop: Population, ds: Dataset, period: Period) -> list[Row]:
    cal = lambda col: ds.column(col).calendar or period.calendar  # noqa: E731
    year = jdatetime.date.fromgregorian(date=period.start).year
    rows = []
    # The month's payroll: every pension started by the end of the period, so the pensioners
    # who retired within it (the new pensioners) are in it too.
    for pension in pop.pensioners_before(period.end):
        person = pop.persons[pension.person]
        rows.append(
            {
                "national_id": person.national_id,
                "sex": person.sex,
                "birth_date": format_date(person.birth_date, cal("birth_date")),
                "pension_type": pension.pension_type,
                "retirement_date": format_date(pension.start, cal("retirement_date")),
                "pension_amount": str(pension.amount_in(year)),
                "province": pension.province,
            }
        )
    rows.sort(key=lambda r: r["national_id"])
    return rows


def _swo_beneficiaries(pop: Population, ds: Dataset, period: Period) -> list[Row]:
    cal = lambda col: ds.column(col).calendar or period.calendar  # noqa: E731
    year = jdatetime.date.fromgregorian(date=period.start).year
    rows = []
    for support in pop.supports_between(period.start, period.end):
        person = pop.persons[support.person]
        amount = support.amount_in(year)
        rows.append(
            {
                "national_id": person.national_id,
                "sex": person.sex,
                "birth_date": format_date(person.birth_date, cal("birth_date")),
                "support_type": support.support_type,
                "disability_type": support.disability_type,
                "province": person.province,
                "county": support.county,
                "support_start": format_date(support.start, cal("support_start")),
                "monthly_amount": "" if amount is None else str(amount),
            }
        )
    rows.sort(key=lambda r: (r["national_id"], r["support_type"]))
    return rows


_BUILDERS = {
    ("sso", "insured_persons"): _sso_insured_persons,
    ("sso", "workplaces"): _sso_workplaces,
    ("tvto", "trainees"): _tvto_trainees,
    ("cspf", "pensioners"): _cspf_pensioners,
    ("swo", "beneficiaries"): _swo_beneficiaries,
}
# The columns each builder writes. A registry entry of the same name with a column the builder
# does not know (a later schema, or another file under the same code in a test registry) is
# simulated generically instead.
_BUILDER_COLUMNS = {
    ("sso", "insured_persons"): {
        "national_id", "workshop_code", "sex", "birth_date", "insurance_type", "days_worked",
        "insured_wage", "employment_start",
    },
    ("sso", "workplaces"): {"workshop_code", "legal_id", "workshop_name", "isic_section", "province", "registered_on"},
    ("tvto", "trainees"): {
        "national_id", "course_code", "isco_code", "sex", "birth_date", "province", "course_start",
        "course_end", "hours", "result",
    },
    ("cspf", "pensioners"): {
        "national_id", "sex", "birth_date", "pension_type", "retirement_date", "pension_amount", "province",
    },
    ("swo", "beneficiaries"): {
        "national_id", "sex", "birth_date", "support_type", "disability_type", "province", "county",
        "support_start", "monthly_amount",
    },
}  # fmt: skip


def _generic(pop: Population, ds: Dataset, period: Period, registry: Registry) -> list[Row]:
    """Any other registry dataset: a stable ~12% of persons, columns filled by type."""
    rng = stable_random(pop.seed, ds.org, ds.name, period.label)
    out = []
    for person in pop.persons:
        if stable_unit(pop.seed, ds.org, ds.name, "member", person.index) >= 0.12:
            continue
        if stable_unit(pop.seed, ds.org, ds.name, period.label, person.index) >= 0.95:
            continue
        row: Row = {}
        for col in ds.columns:
            cal = col.calendar or period.calendar
            value = ""
            if col.identifier is not None and col.identifier.value == "person":
                value = person.national_id
            elif col.identifier is not None:
                value = rng.choice([w.legal_id for w in pop.workplaces if w.legal_id] or [""])
            elif col.code_list == "sex":
                value = person.sex
            elif col.code_list == "province":
                value = person.province
            elif col.code_list == "iran_county" and pop.county_of(person):
                value = pop.county_of(person)  # a county of the person's province
            elif col.code_list:
                value = rng.choice(sorted(registry.code_lists[col.code_list].codes))
            elif col.type is ColumnType.date:
                if "birth" in col.name:
                    value = format_date(person.birth_date, cal)
                else:
                    span = (period.end - period.start).days
                    value = format_date(period.start + dt.timedelta(rng.randrange(span)), cal)
            elif col.type in (ColumnType.integer, ColumnType.bigint, ColumnType.numeric):
                lo = int(col.min) if col.min is not None else 0
                hi = int(col.max) if col.max is not None else max(lo, 1) * 1000
                value = str(rng.randint(lo, hi))
            elif col.type is ColumnType.boolean:
                value = rng.choice(("true", "false"))
            elif is_text_column(col.name):
                value = rng.choice(pop.workplaces).name
            else:
                value = f"{rng.randrange(10**8):08d}"
            if not col.required and col.name not in ds.primary_key and rng.random() < 0.03:
                value = ""
            row[col.name] = value
        out.append(row)
    return out


def extract_rows(
    population: Population,
    registry_dataset: Dataset,
    period: Period | str,
    *,
    registry: Registry | None = None,
) -> list[Row]:
    """Rows of one (org, dataset, period): the registry's columns in registry order.

    Clean data in the canonical form of the supplier (ASCII digits, Persian
    letters, dates in the column's calendar); representation variants and
    defects are applied on top by the delivery code.
    """
    ds = registry_dataset
    if registry is not None and ds.org in registry.organisations:
        period = as_period(period, registry.org(ds.org).calendar)
    else:
        period = as_period(period)
    builder = _BUILDERS.get((ds.org, ds.name))
    if builder is not None and set(ds.column_names) <= _BUILDER_COLUMNS[ds.org, ds.name]:
        rows = builder(population, ds, period)
    else:
        from anbar.sim.population import _default_registry

        rows = _generic(population, ds, period, registry or _default_registry())
    names = ds.column_names
    return [{name: row.get(name, "") for name in names} for row in rows]


# -- representation variants of SFTP deliveries -----------------------------------------------

Encoding = Literal["utf-8", "utf-8-sig", "windows-1256"]


@dataclass(frozen=True)
class Variant:
    """How a supplier system writes a delivery."""

    name: str
    encoding: Encoding
    delimiter: str = ","
    files: int = 1
    arabic_letters: bool = False  # Arabic yeh/kaf instead of Persian ی/ک
    local_digits: bool = False  # Persian / Arabic-Indic digits in numeric and date fields


VARIANTS: tuple[Variant, ...] = (
    Variant("utf8", "utf-8"),
    Variant("windows1256_arabic_letters", "windows-1256", arabic_letters=True),
    Variant("utf8_local_digits", "utf-8", local_digits=True),
    Variant("utf8_bom", "utf-8-sig"),
    Variant("utf8_multi_file", "utf-8", files=3),
    Variant("utf8_semicolon", "utf-8", delimiter=";"),
)
VARIANT_BY_NAME = {v.name: v for v in VARIANTS}


def sftp_variant(registry: Registry, org: str, dataset: str, period: Period | str) -> Variant:
    """The representation of an SFTP delivery: a rotation over months and datasets.

    Dataset k of the organisation is offset by 3k months, so three consecutive
    periods of a two-dataset supplier show all six variants.
    """
    organisation = registry.org(org)
    p = as_period(period, organisation.calendar)
    index = [d.name for d in organisation.datasets].index(dataset)
    return VARIANTS[(p.year * 12 + p.month - 1 + 3 * index) % len(VARIANTS)]


def represent(rows: list[Row], dataset: Dataset, variant: Variant, *, seed: int, period: str) -> list[Row]:
    """Apply a variant's letter forms and digits to (a copy of) ``rows``."""
    if not (variant.arabic_letters or variant.local_digits):
        return [dict(r) for r in rows]
    numeric = {
        c.name
        for c in dataset.columns
        if c.type in (ColumnType.integer, ColumnType.bigint, ColumnType.numeric, ColumnType.date)
    }
    rng = stable_random(seed, dataset.org, dataset.name, period, "digits")
    out = []
    for row in rows:
        new = dict(row)
        if variant.local_digits:
            convert = persian_digits if rng.random() < 0.8 else arabic_indic_digits
            for name in numeric & new.keys():
                new[name] = convert(new[name])
        if variant.arabic_letters:
            new = {k: arabic_letters(v) for k, v in new.items()}
        out.append(new)
    return out


__all__ = [
    "VARIANTS",
    "Row",
    "Variant",
    "as_period",
    "extract_rows",
    "format_date",
    "represent",
    "sftp_variant",
]
