"""Defective deliveries: which ones, and the row-level damage.

``SimConfig.defect_for(org, dataset, period)`` is the single source of truth
for which delivery is defective and how: an explicit override wins, otherwise a
stable hash of (seed, org, dataset, period) is compared with ``defect_share``.
Tests and the demo call it (or ``expected_defect``) to know what the warehouse
should find.

File-level defects (manifest, checksum, truncation, encoding, file names, row
counts) are applied when a delivery is written (``anbar.sim.delivery``) or
served (``anbar.sim.api_server``); row-level defects are applied to the rows
here, by ``apply_row_defect``. Every row-level defect is deterministic by
(seed, org, dataset, period) and damages a small share of the rows; the
principle of the directive each one is meant to trip (``DEFECT_PRINCIPLE``):

================================  ===========  ============================================
defect                            principle    what changes
================================  ===========  ============================================
``duplicate_keys``                quality      2% of rows repeated (half with other content)
``invalid_national_ids``          quality      3% of IDs with a wrong check digit
``unknown_codes``                 system       2% of a code-list column outside its list
``invalid_dates``                 conversion   2% of rows: one date that does not exist in
                                               its calendar as written (Jalali 1404/07/31,
                                               1403/13/01; Gregorian 2025-02-30)
``out_of_range``                  quality      2% of rows: a number outside the registry's
                                               min/max (days_worked 45, hours 0, a negative
                                               wage)
``inconsistent_dates``            consistency  2% of rows: ``*_start`` or ``retirement_date``
                                  (record)     before ``birth_date``, or ``*_start`` after
                                               ``*_end`` (course_end before course_start)
``count_drop``                    consistency  60% of the rows it should hold (and of the
                                  (periods)    previous period's count, if smaller), rows
                                               dropped at random: a valid, implausibly
                                               small delivery
``rejuvenated_persons``           consistency  3% (at least one) of the persons also in the
                                  (periods)    previous period get a birth date 2-5 years
                                               later, in every row of theirs
``pensioners_hired``              consistency  sso/insured_persons only: 4% more rows, for
                                  (suppliers)  active CSPF pensioners, employment starting in
                                               the period
================================  ===========  ============================================

``count_drop``, ``rejuvenated_persons`` and ``pensioners_hired`` need the
population (``apply_row_defect(..., population=...)``): the previous period's
extract and the CSPF pensions. ``rejuvenated_persons`` can only touch persons who recur from
one period to the next: in a small population a TVTO month may have none, and
then nothing changes.
"""

from __future__ import annotations

import datetime as dt
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import jdatetime

from anbar.ids import is_valid_legal_entity_id, is_valid_person_id
from anbar.registry import Calendar, ColumnType, Dataset, Identifier, Registry, load_registry
from anbar.sim.extracts import Row, as_period, extract_rows, format_date, is_text_column
from anbar.sim.population import Population, add_years, stable_random, stable_unit

DEFECTS: tuple[str, ...] = (
    "missing_manifest",
    "checksum_mismatch",
    "truncated_file",
    "wrong_encoding",
    "missing_column",
    "hostile_file_name",
    "row_count_mismatch",
    "duplicate_keys",
    "invalid_national_ids",
    "unknown_codes",
    "invalid_dates",
    "out_of_range",
    "inconsistent_dates",
    "count_drop",
    "rejuvenated_persons",
    "pensioners_hired",
)
# The first ten modes; a delivery that drew one of them before the later ones were added still
# draws it (see SimConfig.defect_for).
_FIRST_DEFECTS = DEFECTS[:10]
# Row-level modes that damage values or the set of rows and leave the files well-formed:
# duplicate_keys and every mode after it.
VALUE_DEFECTS: tuple[str, ...] = DEFECTS[DEFECTS.index("duplicate_keys") :]
SFTP_DEFECTS: tuple[str, ...] = DEFECTS
API_DEFECTS: tuple[str, ...] = ("row_count_mismatch", *VALUE_DEFECTS)
# Defects that change the rows themselves (the rest change files or manifests).
ROW_DEFECTS: tuple[str, ...] = ("missing_column", *VALUE_DEFECTS)
# The principle of the directive whose rules a row-level defect is meant to trip.
DEFECT_PRINCIPLE: dict[str, str] = {
    "duplicate_keys": "quality",
    "invalid_national_ids": "quality",
    "unknown_codes": "system",
    "invalid_dates": "conversion",
    "out_of_range": "quality",
    "inconsistent_dates": "consistency",
    "count_drop": "consistency",
    "rejuvenated_persons": "consistency",
    "pensioners_hired": "consistency",
}

HOSTILE_FILE_NAME = "../../etc/cron.d/evil.csv"
ROW_COUNT_SURPLUS = 7
DUPLICATE_SHARE = 0.02
INVALID_ID_SHARE = 0.03
UNKNOWN_CODE_SHARE = 0.02
INVALID_DATE_SHARE = 0.02
OUT_OF_RANGE_SHARE = 0.02
INCONSISTENT_DATE_SHARE = 0.02
COUNT_DROP_KEEP = 0.6  # share of the rows a count_drop delivery keeps
REJUVENATED_SHARE = 0.03  # of the persons also in the previous period
REJUVENATED_YEARS = (2, 5)
PENSIONERS_HIRED_SHARE = 0.04  # rows added, as a share of the delivery's rows


def transport_defects(kind: str) -> tuple[str, ...]:
    if kind == "sftp":
        return SFTP_DEFECTS
    if kind == "api":
        return API_DEFECTS
    raise ValueError(f"unknown transport kind {kind!r}")


def _required_non_key(ds: Dataset) -> list[str]:
    return [c.name for c in ds.columns if c.required and c.name not in ds.primary_key]


def _identifier_column(ds: Dataset) -> str | None:
    ids = [c for c in ds.columns if c.identifier is not None]
    ids.sort(key=lambda c: c.identifier is not Identifier.person)
    return ids[0].name if ids else None


def _code_column(ds: Dataset) -> str | None:
    cols = [c.name for c in ds.columns if c.code_list and c.name not in ds.primary_key]
    if not cols:
        return None
    return "province" if "province" in cols else cols[0]


def _range_columns(ds: Dataset) -> list[str]:
    return [c.name for c in ds.columns if c.min is not None or c.max is not None]


def _birth_column(ds: Dataset) -> str | None:
    return next((c.name for c in ds.date_columns if "birth" in c.name), None)


def _date_order(ds: Dataset) -> list[tuple[str, str]]:
    """(earlier, later) date columns of one record: birth before a start or retirement, start before end."""
    names = [c.name for c in ds.date_columns]
    birth = _birth_column(ds)
    pairs = []
    for name in names:
        if birth and name != birth and (name.endswith("_start") or name.startswith("retirement")):
            pairs.append((birth, name))
        if name.endswith("_end") and f"{name[:-4]}_start" in names:
            pairs.append((f"{name[:-4]}_start", name))
    return pairs


def _person_column(ds: Dataset) -> str | None:
    return next((c.name for c in ds.columns if c.identifier is Identifier.person), None)


def _can_show(name: str, ds: Dataset) -> bool:
    """Whether a defect mode can be made visible in this dataset's rows."""
    if name == "wrong_encoding":
        return any(is_text_column(c) for c in ds.column_names)  # ASCII reads the same in every encoding
    if name == "missing_column":
        return bool(_required_non_key(ds))
    if name == "invalid_national_ids":
        return _identifier_column(ds) is not None
    if name == "unknown_codes":
        return _code_column(ds) is not None
    if name == "invalid_dates":
        return bool(ds.date_columns)
    if name == "out_of_range":
        return bool(_range_columns(ds))
    if name == "inconsistent_dates":
        return bool(_date_order(ds))
    if name == "rejuvenated_persons":
        return _birth_column(ds) is not None and _person_column(ds) is not None
    if name == "pensioners_hired":
        return (ds.org, ds.name) == ("sso", "insured_persons")
    return True


def applicable_defects(dataset: Dataset, kind: str) -> tuple[str, ...]:
    """Defects that can be made detectable for this dataset over this transport."""
    return tuple(name for name in transport_defects(kind) if _can_show(name, dataset))


def missing_column_for(dataset: Dataset, *, seed: int, period: str) -> str:
    """The required (non-key) column a ``missing_column`` delivery leaves out."""
    candidates = _required_non_key(dataset)
    if not candidates:
        raise ValueError(f"{dataset.key} has no required non-key column to leave out")
    u = stable_unit(seed, dataset.org, dataset.name, period, "missing_column")
    return candidates[int(u * len(candidates))]


def _unknown_code(codes: set[str], rng_value: float) -> str:
    sample = next(iter(codes))
    if all(c.isdigit() for c in codes):
        width = len(sample)
        pool = [f"{n:0{width}d}" for n in range(10**width - 1, -1, -1) if f"{n:0{width}d}" not in codes]
        preferred = [c for c in ("77", "88", "99", "9", "7", "0") if c in pool]
        pool = preferred or pool
    else:
        letters = string.ascii_uppercase if sample.isupper() else string.ascii_lowercase
        pool = [c for c in "XZQWY" + letters if c not in codes] or ["??"]
    return pool[int(rng_value * len(pool)) % len(pool)]


def _sample(rng, n_total: int, share: float) -> list[int]:
    if n_total == 0:
        return []
    n = min(n_total, max(1, round(share * n_total)))
    return sorted(rng.sample(range(n_total), n))


def _date_calendar(ds: Dataset, column: str, registry: Registry) -> Calendar:
    own = ds.column(column).calendar
    if own is not None:
        return own
    return registry.org(ds.org).calendar if ds.org in registry.organisations else Calendar.gregorian


_DATE = re.compile(r"^(\d{4})([/-])(\d{1,2})[/-](\d{1,2})$")


def parse_date(value: str, calendar: Calendar | str) -> dt.date:
    """A date as the simulator writes it (``YYYY/MM/DD`` Jalali, ``YYYY-MM-DD`` Gregorian)."""
    m = _DATE.match(value)
    if not m:
        raise ValueError(f"not a date: {value!r}")
    y, mo, d = int(m.group(1)), int(m.group(3)), int(m.group(4))
    if Calendar(calendar) is Calendar.jalali:
        return jdatetime.date(y, mo, d).togregorian()
    return dt.date(y, mo, d)


def impossible_date(value: str, calendar: Calendar | str, u: float) -> str:
    """A date of the same year and form as ``value`` that does not exist in ``calendar``."""
    m = _DATE.match(value)
    if not m:
        raise ValueError(f"not a date: {value!r}")
    y, sep, day = m.group(1), m.group(2), int(m.group(4))
    if Calendar(calendar) is Calendar.jalali:  # months 7..11 have 30 days; there is no month 13
        options = [f"{y}{sep}{mo:02d}{sep}31" for mo in range(7, 12)] + [f"{y}{sep}13{sep}{day:02d}"]
    else:
        options = [f"{y}{sep}02{sep}30", f"{y}{sep}02{sep}31"]
        options += [f"{y}{sep}{mo:02d}{sep}31" for mo in (4, 6, 9, 11)] + [f"{y}{sep}13{sep}{day:02d}"]
    return options[int(u * len(options)) % len(options)]


def _other_value(value: str, ds: Dataset, column: str, registry: Registry, u: float) -> str:
    """Another value of the column that breaks no rule of its own (the next day, number or code)."""
    col = ds.column(column)
    if not value:
        return value
    if col.type is ColumnType.date:
        calendar = _date_calendar(ds, column, registry)
        return format_date(parse_date(value, calendar) + dt.timedelta(days=1), calendar)
    if col.type in (ColumnType.integer, ColumnType.bigint):
        number = int(value) + 1
        return str(number if col.max is None or number <= col.max else number - 2)
    if col.code_list:
        others = sorted(set(registry.code_lists[col.code_list].codes) - {value})
        if col.code_list == "iran_county":  # another county of the same province
            others = [c for c in others if c[:2] == value[:2]]
        return others[int(u * len(others))] if others else value
    return value[::-1]


def _bound_columns(ds: Dataset) -> set[str]:
    """Columns another column's value depends on: the province, when a county code (whose first
    two digits are the province code) is in the same record."""
    lists = {c.code_list for c in ds.columns}
    if "iran_county" not in lists:
        return set()
    return {c.name for c in ds.columns if c.code_list == "province"}


def _invalid_dates(rows, ds, rng, registry, **_):
    cols = [c.name for c in ds.date_columns]
    filled = [i for i, r in enumerate(rows) if any(r.get(c) for c in cols)]
    for j in _sample(rng, len(filled), INVALID_DATE_SHARE):
        r = rows[filled[j]]
        col = rng.choice([c for c in cols if r.get(c)])
        r[col] = impossible_date(r[col], _date_calendar(ds, col, registry), rng.random())
    return rows


def _out_of_range(rows, ds, rng, **_):
    cols = _range_columns(ds)
    filled = [i for i, r in enumerate(rows) if any(r.get(c) for c in cols)]
    for j in _sample(rng, len(filled), OUT_OF_RANGE_SHARE):
        r = rows[filled[j]]
        col = ds.column(rng.choice([c for c in cols if r.get(c)]))
        whole = col.type in (ColumnType.integer, ColumnType.bigint)
        if col.max is not None and (col.min is None or rng.random() < 0.5):
            over = col.max + max(1, rng.randint(1, max(1, int(abs(col.max) // 2))))
            value: float = int(over) if whole else over
        elif col.min > 0:
            value = col.min - 1  # hours 0, class 0
        else:  # a negative amount: the sign of a refund or a typing error
            value = -(abs(float(r[col.name])) or 1) + min(col.min, 0)
        value = int(value) if whole or float(value).is_integer() else value
        assert (col.max is not None and value > col.max) or (col.min is not None and value < col.min)
        r[col.name] = str(value)
    return rows


def _inconsistent_dates(rows, ds, rng, registry, **_):
    pairs = _date_order(ds)
    filled = [i for i, r in enumerate(rows) if any(r.get(a) and r.get(b) for a, b in pairs)]
    for j in _sample(rng, len(filled), INCONSISTENT_DATE_SHARE):
        r = rows[filled[j]]
        earlier, later = rng.choice([(a, b) for a, b in pairs if r.get(a) and r.get(b)])
        if earlier == _birth_column(ds):  # employment or retirement before birth
            day = parse_date(r[earlier], _date_calendar(ds, earlier, registry))
            r[later] = format_date(
                day - dt.timedelta(days=rng.randint(30, 3 * 365)), _date_calendar(ds, later, registry)
            )
        else:  # the start moves after the end (the end stays in the period)
            day = parse_date(r[later], _date_calendar(ds, later, registry))
            r[earlier] = format_date(day + dt.timedelta(days=rng.randint(1, 30)), _date_calendar(ds, earlier, registry))
    return rows


def _previous_rows(ds: Dataset, registry: Registry, population: Population, period: str) -> list[Row]:
    """The good extract of the period before ``period``."""
    calendar = registry.org(ds.org).calendar if ds.org in registry.organisations else None
    return extract_rows(population, ds, as_period(period, calendar).previous(), registry=registry)


def _count_drop(rows, ds, rng, registry, population, period, **_):
    # 60% of what it should hold, and of what the previous period held: a month that grew anyway
    # (TVTO's counts move by a quarter from month to month) still looks implausibly small.
    should = min(len(rows), len(_previous_rows(ds, registry, population, period)) or len(rows))
    keep = sorted(rng.sample(range(len(rows)), round(COUNT_DROP_KEEP * should)))
    return [rows[i] for i in keep]


def _rejuvenated_persons(rows, ds, rng, registry, population, period, **_):
    pid, birth = _person_column(ds), _birth_column(ds)
    cal = _date_calendar(ds, birth, registry)
    seen = {r[pid] for r in _previous_rows(ds, registry, population, period)}
    others = [c.name for c in ds.date_columns if c.name != birth]
    by_person: dict[str, list[Row]] = {}
    for r in rows:
        if r.get(pid) in seen and r.get(birth):
            by_person.setdefault(r[pid], []).append(r)
    room: dict[str, int] = {}  # years the birth date can move and stay before every other date
    for person, mine in by_person.items():
        born = parse_date(mine[0][birth], cal)
        limit = min(
            (parse_date(r[c], _date_calendar(ds, c, registry)) for r in mine for c in others if r.get(c)),
            default=dt.date.max,
        )
        years = max((k for k in range(1, REJUVENATED_YEARS[1] + 1) if add_years(born, k) < limit), default=0)
        if years:
            room[person] = years
    chosen = sorted(room)
    for j in _sample(rng, len(chosen), REJUVENATED_SHARE):
        person = chosen[j]
        years = min(room[person], rng.randint(*REJUVENATED_YEARS))
        for r in by_person[person]:
            r[birth] = format_date(add_years(parse_date(r[birth], cal), years), cal)
    return rows


def _pensioners_hired(rows, ds, rng, registry, population, period, **_):
    p = as_period(period, registry.org(ds.org).calendar)
    month_days = (p.end - p.start).days
    present = {r["national_id"] for r in rows}
    pensioners = [
        x for x in population.pensioners_before(p.start) if population.persons[x.person].national_id not in present
    ]
    workshops = sorted({r["workshop_code"] for r in rows}) or [
        w.workshop_code for w in population.workplaces if w.registered_on < p.start
    ]
    n = min(len(pensioners), max(1, round(PENSIONERS_HIRED_SHARE * len(rows))))
    added = []
    for pension in rng.sample(pensioners, n):
        person = population.persons[pension.person]
        start = p.start + dt.timedelta(days=rng.randrange(month_days))
        days = (p.end - start).days
        wage = population._wage(rng) * min(days, 30) // 30
        added.append(
            {
                "national_id": person.national_id,
                "workshop_code": rng.choice(workshops),
                "sex": person.sex,
                "birth_date": format_date(person.birth_date, _date_calendar(ds, "birth_date", registry)),
                "insurance_type": "1",
                "days_worked": str(days),
                "insured_wage": str(wage // 1000 * 1000),
                "employment_start": format_date(start, _date_calendar(ds, "employment_start", registry)),
            }
        )
    out = rows + [{name: row.get(name, "") for name in ds.column_names} for row in added]
    out.sort(key=lambda r: (r["workshop_code"], r["national_id"]))
    return out


_ROW_DAMAGE = {
    "invalid_dates": _invalid_dates,
    "out_of_range": _out_of_range,
    "inconsistent_dates": _inconsistent_dates,
    "count_drop": _count_drop,
    "rejuvenated_persons": _rejuvenated_persons,
    "pensioners_hired": _pensioners_hired,
}
_NEEDS_POPULATION = ("count_drop", "rejuvenated_persons", "pensioners_hired")


def apply_row_defect(
    rows: list[Row],
    dataset: Dataset,
    defect: str | None,
    *,
    registry: Registry,
    seed: int,
    period: str,
    population: Population | None = None,
) -> list[Row]:
    """A damaged copy of ``rows`` for a row-level defect (other defects: a plain copy).

    ``population`` is needed by ``count_drop`` and ``rejuvenated_persons`` (the
    previous period's extract) and ``pensioners_hired`` (the CSPF pensions).
    """
    rows = [dict(r) for r in rows]
    if defect not in ROW_DEFECTS:
        return rows
    rng = stable_random(seed, dataset.org, dataset.name, period, "defect", defect)
    if defect in _ROW_DAMAGE:
        if not _can_show(defect, dataset):
            raise ValueError(f"{dataset.key} cannot show the defect {defect!r}")
        if defect in _NEEDS_POPULATION and population is None:
            raise ValueError(f"the defect {defect!r} needs the population")
        return _ROW_DAMAGE[defect](rows, dataset, rng, registry=registry, population=population, period=period)
    if defect == "missing_column":
        gone = missing_column_for(dataset, seed=seed, period=period)
        for r in rows:
            r.pop(gone, None)
        return rows
    if defect == "duplicate_keys":
        bound = _bound_columns(dataset)
        non_key = [
            c.name
            for c in dataset.columns
            if c.name not in dataset.primary_key and c.identifier is None and c.name not in bound
        ]
        out = list(rows)
        for i in reversed(_sample(rng, len(rows), DUPLICATE_SHARE)):
            copy = dict(rows[i])
            if non_key and rng.random() < 0.5:  # same key, different (still valid and consistent) content
                col = rng.choice(non_key)
                copy[col] = _other_value(copy.get(col, ""), dataset, col, registry, rng.random())
            out.insert(rng.randrange(len(out) + 1), copy)
        return out
    if defect == "invalid_national_ids":
        col = _identifier_column(dataset)
        if col is None:
            raise ValueError(f"{dataset.key} has no identifier column")
        filled = [i for i, r in enumerate(rows) if r.get(col)]
        for j in _sample(rng, len(filled), INVALID_ID_SHARE):
            r = rows[filled[j]]
            value = r[col]
            r[col] = value[:-1] + str((int(value[-1]) + rng.randrange(1, 10)) % 10)
            assert not (is_valid_person_id(r[col]) and len(value) == 10)
            assert not (is_valid_legal_entity_id(r[col]) and len(value) == 11)
        return rows
    # unknown_codes
    col = _code_column(dataset)
    if col is None:
        raise ValueError(f"{dataset.key} has no code-list column")
    codes = set(registry.code_lists[dataset.column(col).code_list].codes)
    for i in _sample(rng, len(rows), UNKNOWN_CODE_SHARE):
        rows[i][col] = _unknown_code(codes, rng.random())
    return rows


def _override_key(key: str | tuple[str, str, str]) -> tuple[str, str, str]:
    parts = key.split("/") if isinstance(key, str) else list(key)
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"override key must be org/dataset/period, got {key!r}")
    return (parts[0], parts[1], parts[2])


@dataclass(frozen=True)
class SimConfig:
    """Seed, population size and defect plan of a simulation."""

    seed: int = 42
    persons: int = 4000
    workplaces: int = 300
    civil_servants: int = 0
    defect_share: float = 0.0
    overrides: Mapping[tuple[str, str, str], str | None] = field(default_factory=dict)
    registry_root: Path | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.defect_share <= 1.0:
            raise ValueError(f"defect_share must be within 0..1, got {self.defect_share}")
        normalised: dict[tuple[str, str, str], str | None] = {}
        for key, defect in dict(self.overrides).items():
            if defect in ("", "none", "None"):
                defect = None
            if defect is not None and defect not in DEFECTS:
                raise ValueError(f"unknown defect {defect!r}; known: {', '.join(DEFECTS)}")
            normalised[_override_key(key)] = defect
        object.__setattr__(self, "overrides", normalised)
        if self.registry_root is not None:
            object.__setattr__(self, "registry_root", Path(self.registry_root).resolve())

    @cached_property
    def registry(self) -> Registry:
        return _registry(self.registry_root)

    def population(self) -> Population:
        """The population of this seed (built once per process and size)."""
        return _population(self.seed, self.persons, self.workplaces, self.civil_servants, self.registry_root)

    def defect_for(self, org: str, dataset: str, period_label: str) -> str | None:
        """The defect of the delivery (org, dataset, period), or None for a good one."""
        organisation = self.registry.org(org)
        ds = organisation.dataset(dataset)
        kind = organisation.transport.kind
        key = (org, dataset, period_label)
        if key in self.overrides:
            defect = self.overrides[key]
            if defect is not None and defect not in applicable_defects(ds, kind):
                raise ValueError(
                    f"defect {defect!r} cannot be simulated for {org}/{dataset} over {kind} "
                    f"(possible: {', '.join(applicable_defects(ds, kind))})"
                )
            return defect
        if stable_unit(self.seed, "defect", org, dataset, period_label) >= self.defect_share:
            return None
        options = applicable_defects(ds, kind)
        first = [d for d in options if d in _FIRST_DEFECTS]
        later = [d for d in options if d not in _FIRST_DEFECTS]
        # Every applicable mode is equally likely. A delivery that does not draw one of the later
        # modes keeps the mode it drew before they were added (same hash, same list).
        if later and stable_unit(self.seed, "defect-later", org, dataset, period_label) < len(later) / len(options):
            u = stable_unit(self.seed, "defect-kind-later", org, dataset, period_label)
            return later[int(u * len(later))]
        u = stable_unit(self.seed, "defect-kind", org, dataset, period_label)
        return first[int(u * len(first))] if first else None


@lru_cache(maxsize=8)
def _registry(root: Path | None) -> Registry:
    """The registry at ``root`` (default: the project's), loaded once per process."""
    return load_registry(root)


@lru_cache(maxsize=8)
def _population(seed: int, persons: int, workplaces: int, civil_servants: int, root: Path | None) -> Population:
    return Population(seed, persons, workplaces, civil_servants=civil_servants, registry=_registry(root))


def expected_defect(
    org: str,
    dataset: str,
    period_label: str,
    *,
    seed: int = 42,
    defect_share: float = 0.0,
    overrides: Mapping[tuple[str, str, str] | str, str | None] | None = None,
    config: SimConfig | None = None,
) -> str | None:
    """The defect the simulator gives (org, dataset, period): None for a good delivery."""
    if config is None:
        config = SimConfig(seed=seed, defect_share=defect_share, overrides=overrides or {})
    return config.defect_for(org, dataset, period_label)
