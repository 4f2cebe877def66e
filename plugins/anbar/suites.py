"""Expectation suites: one Great Expectations (1.x) suite per registry dataset.

The suites live as JSON files in ``expectations/<org>__<dataset>.json``, in the form
GX 1.x writes and reads (``name``, ``expectations`` with ``type``, ``kwargs``,
``meta``). :func:`generate_suite` drafts the first version of a suite from the
registry; it is run once and the files are committed. From then on the files belong
to the statisticians, who edit them; the registry is not consulted again except to
check that the files still fit it (:func:`load_suite`, :func:`check_all`).

Every expectation carries anbar's own metadata::

    "meta": {
        "principle": "quality",            # conversion | system | consistency | quality
        "severity": "blocking",            # blocking (rejects the delivery) | warning
        "description": {"fa": "...", "en": "..."},
        "rule": "not_null.national_id",    # optional, stable name of the check, unique in the suite
        "columns": ["national_id"]         # required for unexpected_rows_expectation only
    }

Checks written in SQL use GX's ``unexpected_rows_expectation``: the query selects the
offending rows of ``{batch}`` (the submission's partition) and runs inside PostgreSQL.
Select ``_file, _row_no`` and the checked columns only: the first rows are kept as
samples, and ``meta.columns`` names the columns reported (identifiers are masked).
Literal braces in such a query are doubled (``{{`` and ``}}``).

Great Expectations is imported lazily: DAG files import this module.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from string import Formatter
from typing import TYPE_CHECKING, Any

from anbar.registry import Column, ColumnType, Dataset, Identifier, Registry

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

PRINCIPLES = ("conversion", "system", "consistency", "quality")
SEVERITIES = ("blocking", "warning")
TABLES = ("clean", "raw")
REJECTION_MODES = ("file", "rows")
# Columns the loader adds to every clean table; checks may use them.
META_COLUMNS = ("_submission_id", "_file", "_row_no", "_period")
RAW_META_COLUMNS = ("_submission_id", "_file", "_row_no")
ROW_QUERY_TYPE = "unexpected_rows_expectation"
DEFAULT_MAX_REJECTED_PERCENT = 5.0


@dataclass(frozen=True)
class SuitePolicy:
    """What a failed blocking rule does, chosen per dataset by the statisticians (the suite's ``meta``).

    ``rejection: file`` (the default): any blocking failure rejects the whole delivery.
    ``rejection: rows``: rows that fail a blocking row-level rule are rejected one by one (kept in
    the rejects table with the rule) and the rest is accepted, unless more than
    ``max_rejected_percent`` of the delivered rows are rejected; a blocking rule about the table
    as a whole (a row count, a total) still rejects the delivery.
    """

    rejection: str = "file"
    max_rejected_percent: float = DEFAULT_MAX_REJECTED_PERCENT

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> SuitePolicy:
        return cls(
            rejection=meta.get("rejection", "file"),
            max_rejected_percent=float(meta.get("max_rejected_percent", DEFAULT_MAX_REJECTED_PERCENT)),
        )

    def as_dict(self) -> dict[str, Any]:
        return {"rejection": self.rejection, "max_rejected_percent": self.max_rejected_percent}


def is_row_query(exp_type: str) -> bool:
    """Whether the expectation is a SQL query returning offending rows (GX's own or anbar's context checks)."""
    from anbar.expectation_kinds import CONTEXT_KINDS

    return exp_type == ROW_QUERY_TYPE or exp_type in CONTEXT_KINDS


def expectation_table(exp: dict[str, Any]) -> str:
    """The partition an expectation runs on: ``raw`` (values as delivered) or ``clean`` (converted)."""
    from anbar.expectation_kinds import RAW_TYPES

    table = (exp.get("meta") or {}).get("table")
    if table in TABLES:
        return table
    return "raw" if exp.get("type") in RAW_TYPES else "clean"


# Keys GX 1.x accepts at the top of a suite file and of an expectation.
_SUITE_KEYS = {"name", "id", "expectations", "suite_parameters", "meta", "notes"}
_EXPECTATION_KEYS = {
    "type",
    "kwargs",
    "meta",
    "id",
    "notes",
    "description",
    "severity",
    "rendered_content",
}
# kwargs naming one column / a list of columns.
_COLUMN_KWARGS = ("column", "column_A", "column_B", "id_column", "birth_date_column")
_COLUMN_LIST_KWARGS = ("column_list", "column_set")
# kwargs GX types as bool but would accept "yes" for (pydantic v1 is lax).
_BOOL_KWARGS = ("or_equal", "strict_min", "strict_max", "catch_exceptions", "exact_match")

# The youngest plausible age at the start of an employment or a course.
MIN_PLAUSIBLE_AGE = 15

_FA_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


class SuiteError(ValueError):
    """A suite file is missing, unreadable, or does not fit GX or the registry."""


# -- paths ---------------------------------------------------------------------------------------


def suite_path(expectations_dir: Path | str, dataset: Dataset) -> Path:
    return Path(expectations_dir) / f"{dataset.key}.json"


# -- drafting a suite from the registry ------------------------------------------------------------


def _fa(n: float | int) -> str:
    return _number(n).__str__().translate(_FA_DIGITS)


def _number(n: float | int) -> int | float:
    return int(n) if float(n).is_integer() else n


def _exp(
    rule: str,
    type_: str,
    kwargs: dict[str, Any],
    principle: str,
    severity: str,
    fa: str,
    en: str,
    columns: list[str] | None = None,
    table: str | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "rule": rule,
        "principle": principle,
        "severity": severity,
        "description": {"fa": fa, "en": en},
    }
    if columns is not None:
        meta["columns"] = columns
    if table is not None:
        meta["table"] = table
    return {"type": type_, "kwargs": kwargs, "meta": meta}


def _identifier_check(col: Column) -> dict[str, Any]:
    type_, kind_fa, kind_en = {
        Identifier.person: ("expect_column_values_to_be_valid_person_id", "کد ملی", "national ID of a person"),
        Identifier.legal_entity: (
            "expect_column_values_to_be_valid_legal_entity_id",
            "شناسه ملی اشخاص حقوقی",
            "national ID of a legal entity",
        ),
    }[col.identifier]
    return _exp(
        f"check_digit.{col.name}",
        type_,
        {"column": col.name},
        "quality",
        "blocking",
        f"رقم کنترل «{col.description.fa}» ({kind_fa}) درست است",
        f"{col.description.en} has a valid check digit ({kind_en})",
    )


# Digits in any of the scripts the conversion principle accepts, as a regex class.
_ANY_DIGIT = "0-9\u06f0-\u06f9\u0660-\u0669\u09e6-\u09ef"


def _identifier_as_delivered(col: Column) -> dict[str, Any]:
    width = 10 if col.identifier is Identifier.person else 11
    return _exp(
        f"digits_only.{col.name}",
        "expect_column_values_to_match_regex",
        {"column": col.name, "regex": f"^\\s*[{_ANY_DIGIT}]{{1,{width}}}\\s*$"},
        "conversion",
        "blocking",
        f"«{col.description.fa}» فقط با رقم نوشته شده است (بی‌جداکننده، بی‌نماد علمی اکسل، حداکثر {_fa(width)} رقم)",
        f"{col.description.en} is written in digits only (no separators, no spreadsheet "
        f"scientific notation, at most {width} digits)",
        table="raw",
    )


def _date_as_delivered(col: Column, calendar: str) -> dict[str, Any]:
    cal_fa = "شمسی" if calendar == "jalali" else "میلادی"
    return _exp(
        f"calendar_date.{col.name}",
        "expect_column_values_to_be_valid_calendar_date",
        {"column": col.name, "calendar": calendar},
        "conversion",
        "blocking",
        f"«{col.description.fa}» تاریخ {cal_fa} معتبری است (مثلاً ماه هفتم ۳۰ روز دارد)",
        f"{col.description.en} is a real {calendar} date as delivered (e.g. Jalali month 7 has 30 days)",
        table="raw",
    )


def _letters_converted(col: Column) -> dict[str, Any]:
    return _exp(
        f"standard_letters.{col.name}",
        "expect_column_values_to_not_match_regex",
        # Arabic kaf, yeh, alef maksura and invisible characters other than the zero-width
        # non-joiner (which Persian spelling needs) should be gone after conversion.
        {"column": col.name, "regex": "[\\u0643\\u064a\\u0649\\u200b\\u200d\\u2060\\ufeff]"},
        "conversion",
        "warning",
        f"«{col.description.fa}» پس از تبدیل حرف عربی (ي، ك، ى) یا نویسهٔ نامرئی ندارد",
        f"{col.description.en} has no Arabic letter forms (ي ك ى) or invisible characters left after conversion",
    )


def _range_check(col: Column) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"column": col.name}
    if col.min is not None:
        kwargs["min_value"] = _number(col.min)
    if col.max is not None:
        kwargs["max_value"] = _number(col.max)
    d = col.description
    if col.min is not None and col.max is not None:
        fa = f"«{d.fa}» بین {_fa(col.min)} و {_fa(col.max)} است"
        en = f"{d.en} is between {_number(col.min)} and {_number(col.max)}"
    elif col.min is not None:
        fa = f"«{d.fa}» دست‌کم {_fa(col.min)} است"
        en = f"{d.en} is at least {_number(col.min)}"
    else:
        fa = f"«{d.fa}» حداکثر {_fa(col.max)} است"
        en = f"{d.en} is at most {_number(col.max)}"
    # The registry's bounds are part of the approved contract (a month has at most 31
    # days, a wage is not negative): a value outside them is invalid, not just unusual.
    return _exp(
        f"range.{col.name}",
        "expect_column_values_to_be_between",
        kwargs,
        "quality",
        "blocking",
        fa,
        en,
    )


def _date_consistency(ds: Dataset) -> list[dict[str, Any]]:
    """Within-record order of dates: ``*_end`` not before ``*_start``; no event before the birth date."""
    out: list[dict[str, Any]] = []
    dates = {c.name: c for c in ds.date_columns}
    for name, col in dates.items():
        if not name.endswith("_start"):
            continue
        end = dates.get(name[: -len("_start")] + "_end")
        if end is not None:
            out.append(
                _exp(
                    f"order.{end.name}_after_{name}",
                    "expect_column_pair_values_a_to_be_greater_than_b",
                    {
                        "column_A": end.name,
                        "column_B": name,
                        "or_equal": True,
                        "ignore_row_if": "either_value_is_missing",
                    },
                    "consistency",
                    "blocking",
                    f"«{end.description.fa}» پیش از «{col.description.fa}» نیست",
                    f"{end.description.en} is not before {col.description.en}",
                )
            )
    for name, col in dates.items():
        out.append(
            _exp(
                f"not_after_period.{name}",
                ROW_QUERY_TYPE,
                {"unexpected_rows_query": _future_dates_query(name)},
                "consistency",
                "blocking",
                f"«{col.description.fa}» پس از پایان دورهٔ گزارش نیست (تاریخ آینده نیست)",
                f"{col.description.en} is not after the end of the reporting period (no future date)",
                columns=[name],
            )
        )
    birth = dates.get("birth_date")
    if birth is None:
        return out
    for name, col in dates.items():
        # Every event of a person's life is after the birth; an end is covered by its start.
        if name == birth.name or (name.endswith("_end") and name[: -len("_end")] + "_start" in dates):
            continue
        out.append(
            _exp(
                f"order.{name}_after_birth_date",
                "expect_column_pair_values_a_to_be_greater_than_b",
                {
                    "column_A": name,
                    "column_B": birth.name,
                    "or_equal": True,
                    "ignore_row_if": "either_value_is_missing",
                },
                "consistency",
                "blocking",
                f"«{col.description.fa}» پیش از «{birth.description.fa}» نیست",
                f"{col.description.en} is not before the {birth.description.en.lower()}",
            )
        )
        if not name.endswith("_start"):
            continue
        # Plausibility, not validity: a warning, and disjoint from the order check above.
        age = MIN_PLAUSIBLE_AGE
        out.append(
            _exp(
                f"plausible_age.{name}",
                ROW_QUERY_TYPE,
                {
                    "unexpected_rows_query": (
                        f"select _file, _row_no, {birth.name}, {name} from {{batch}} "
                        f"where {name} >= {birth.name} "
                        f"and {name} < {birth.name} + interval '{age} years'"
                    )
                },
                "quality",
                "warning",
                f"فرد در «{col.description.fa}» دست‌کم {_fa(age)} سال دارد (باورپذیری)",
                f"The person is at least {age} years old at the {col.description.en.lower()} (plausibility)",
                columns=[birth.name, name],
            )
        )
    return out


def _future_dates_query(column: str) -> str:
    return f"select _file, _row_no, {column} from {{batch}} where {column} >= {{period_end}}"


# Cross-period tolerances of a first draft; the statisticians tune them per dataset.
ROW_COUNT_TOLERANCE = 0.3
TOTAL_TOLERANCE = 0.3
OPTIONAL_FILLED_MOSTLY = 0.9


def _conversion_rules(ds: Dataset, registry: Registry) -> list[dict[str, Any]]:
    org = registry.org(ds.org)
    out = [_identifier_as_delivered(c) for c in ds.columns if c.identifier is not None]
    out += [_date_as_delivered(c, org.date_calendar(c).value) for c in ds.date_columns]
    # Free text only: codes are checked against their lists, identifiers by their check digits.
    out += [
        _letters_converted(c)
        for c in ds.columns
        if c.type is ColumnType.text and c.identifier is None and not c.code_list and c.name not in ds.primary_key
    ]
    return out


def _system_rules(ds: Dataset, registry: Registry) -> list[dict[str, Any]]:
    out = []
    for col in ds.columns:
        if col.code_list:
            cl = registry.code_lists[col.code_list]
            out.append(
                _exp(
                    f"code_list.{col.name}",
                    "expect_column_values_to_be_in_code_list",
                    {"column": col.name, "code_list": cl.name},
                    "system",
                    "blocking",
                    f"«{col.description.fa}» کدی از فهرست «{cl.description.fa}» است",
                    f"{col.description.en} is a code of the list {cl.description.en}",
                )
            )
    return out


def _cross_period_rules(ds: Dataset) -> list[dict[str, Any]]:
    tol = ROW_COUNT_TOLERANCE
    out = [
        _exp(
            "row_count_vs_previous_period",
            "expect_table_row_count_to_be_within_tolerance_of_previous_period",
            {"tolerance": tol},
            "consistency",
            "blocking",
            f"تعداد ردیف‌ها حداکثر {_fa(tol * 100)}٪ با آخرین دورهٔ پذیرفته‌شده فرق دارد",
            f"The number of rows is within {_number(tol * 100)}% of the latest accepted period's",
        )
    ]
    for col in ds.columns:
        if col.type in (ColumnType.bigint, ColumnType.numeric) and col.name not in ds.primary_key:
            out.append(
                _exp(
                    f"total_vs_previous_period.{col.name}",
                    "expect_column_total_to_be_within_tolerance_of_previous_period",
                    {"column": col.name, "aggregate": "sum", "tolerance": TOTAL_TOLERANCE},
                    "consistency",
                    "warning",
                    f"جمع «{col.description.fa}» حداکثر {_fa(TOTAL_TOLERANCE * 100)}٪ با آخرین دورهٔ "
                    "پذیرفته‌شده فرق دارد",
                    f"The total of {col.description.en} is within {_number(TOTAL_TOLERANCE * 100)}% of the "
                    "latest accepted period's",
                )
            )
    person = next((c for c in ds.columns if c.identifier is Identifier.person), None)
    birth = next((c for c in ds.date_columns if c.name == "birth_date"), None)
    if person is not None and birth is not None:
        out.append(
            _exp(
                f"not_younger_than_previous_period.{person.name}",
                "expect_persons_to_be_no_younger_than_in_previous_period",
                {"id_column": person.name, "birth_date_column": birth.name},
                "consistency",
                "blocking",
                f"«{birth.description.fa}» هیچ فردی دیرتر از آنچه در دورهٔ پذیرفته‌شدهٔ پیشین آمده نیست "
                "(کسی جوان‌تر نمی‌شود)",
                f"No person's {birth.description.en.lower()} is later than in the previous accepted period "
                "(nobody gets younger)",
            )
        )
    return out


def _quality_rules(ds: Dataset) -> list[dict[str, Any]]:
    pk = list(ds.primary_key)
    # GX's compound check wants two columns or more; one column has its own expectation.
    unique_type, unique_kwargs = (
        ("expect_column_values_to_be_unique", {"column": pk[0]})
        if len(pk) == 1
        else ("expect_compound_columns_to_be_unique", {"column_list": pk})
    )
    # No "not empty" rule: an empty delivery is a valid nil return (exchange standard §7); an
    # unexpected one is caught by the row count against the previous period.
    out = [
        _exp(
            "primary_key_unique",
            unique_type,
            unique_kwargs,
            "quality",
            "blocking",
            f"کلید اصلی ({'، '.join(pk)}) یکتاست: هیچ دو ردیفی کلید یکسان ندارند",
            f"The primary key ({', '.join(pk)}) is unique: no two rows share it",
        ),
    ]
    for col in ds.columns:
        d = col.description
        if col.required:
            out.append(
                _exp(
                    f"not_null.{col.name}",
                    "expect_column_values_to_not_be_null",
                    {"column": col.name},
                    "quality",
                    "blocking",
                    f"«{d.fa}» ({col.name}) پر شده است",
                    f"{d.en} ({col.name}) is filled in",
                )
            )
        else:
            share = OPTIONAL_FILLED_MOSTLY
            out.append(
                _exp(
                    f"mostly_filled.{col.name}",
                    "expect_column_values_to_not_be_null",
                    {"column": col.name, "mostly": share},
                    "quality",
                    "warning",
                    f"«{d.fa}» (اختیاری) دست‌کم در {_fa(share * 100)}٪ ردیف‌ها پر شده است",
                    f"{d.en} (optional) is filled in at least {_number(share * 100)}% of rows",
                )
            )
    for col in ds.columns:
        if col.type in (ColumnType.integer, ColumnType.bigint, ColumnType.numeric) and (
            col.min is not None or col.max is not None
        ):
            out.append(_range_check(col))
    out += [_identifier_check(c) for c in ds.columns if c.identifier is not None]
    return out


def generate_suite(dataset: Dataset, registry: Registry) -> dict[str, Any]:
    """The first draft of a dataset's suite, from its registry entry (a JSON-ready dict).

    Rules of every principle the registry implies: conversion (identifiers and dates as
    delivered, letters after conversion), system (code lists), consistency (dates within a
    record, counts and totals against the previous period, birth dates across periods), quality
    (not empty, unique key, completeness, ranges, check digits, plausible ages). Used once to
    write ``expectations/<org>__<dataset>.json``; the statisticians own the file afterwards.
    """
    ds = dataset
    within_record = _date_consistency(ds)
    exps = (
        _conversion_rules(ds, registry)
        + _system_rules(ds, registry)
        + [e for e in within_record if e["meta"]["principle"] == "consistency"]
        + _cross_period_rules(ds)
        + _quality_rules(ds)
        + [e for e in within_record if e["meta"]["principle"] == "quality"]
    )
    return {
        "name": ds.key,
        "meta": {
            "dataset": ds.key,
            "schema_version": ds.schema_version,
            "rejection": "file",
            "max_rejected_percent": DEFAULT_MAX_REJECTED_PERCENT,
            "drafted_by": "anbar.suites.generate_suite",
            "great_expectations_version": _gx_version(),
        },
        "expectations": exps,
    }


def _gx_version() -> str:
    from importlib.metadata import version

    return version("great_expectations")


def write_suite(expectations_dir: Path | str, dataset: Dataset, registry: Registry) -> Path:
    """Write the drafted suite of one dataset (refuses to overwrite an existing file)."""
    path = suite_path(expectations_dir, dataset)
    if path.exists():
        raise FileExistsError(f"{path}: exists; suites are edited by hand once written")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(generate_suite(dataset, registry), ensure_ascii=False, indent=2)
    path.write_text(text + "\n", encoding="utf-8")
    return path


# -- loading and checking a suite file -------------------------------------------------------------


def expectation_columns(exp: dict[str, Any]) -> list[str]:
    """The columns one expectation (as in the file) is about, in order."""
    kwargs = exp.get("kwargs") or {}
    cols: list[str] = []
    for key in _COLUMN_KWARGS:
        if isinstance(kwargs.get(key), str):
            cols.append(kwargs[key])
    for key in _COLUMN_LIST_KWARGS:
        if isinstance(kwargs.get(key), list):
            cols.extend(c for c in kwargs[key] if isinstance(c, str))
    meta_cols = (exp.get("meta") or {}).get("columns")
    if isinstance(meta_cols, list):
        cols.extend(c for c in meta_cols if isinstance(c, str) and c not in cols)
    return cols


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteError(f"{path}: suite file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read: {exc}") from None


def _check_meta(where: str, meta: Any, exp_type: str) -> None:
    if not isinstance(meta, dict):
        raise SuiteError(f"{where}: meta is missing (principle, severity, description)")
    principle = meta.get("principle")
    if principle not in PRINCIPLES:
        raise SuiteError(f"{where}: unknown principle {principle!r} (expected one of {', '.join(PRINCIPLES)})")
    severity = meta.get("severity")
    if severity not in SEVERITIES:
        raise SuiteError(f"{where}: unknown severity {severity!r} (expected one of {', '.join(SEVERITIES)})")
    desc = meta.get("description")
    if not isinstance(desc, dict) or not {"fa", "en"} <= set(desc):
        raise SuiteError(f"{where}: meta.description must be an object with 'fa' and 'en' texts")
    for lang in ("fa", "en"):
        if not isinstance(desc[lang], str) or not desc[lang].strip():
            raise SuiteError(f"{where}: meta.description.{lang} must be a non-empty text")
    rule = meta.get("rule")
    if rule is not None and (not isinstance(rule, str) or not rule.strip()):
        raise SuiteError(f"{where}: meta.rule must be a non-empty text")
    table = meta.get("table")
    if table is not None and table not in TABLES:
        raise SuiteError(f"{where}: meta.table must be one of {', '.join(TABLES)}, not {table!r}")
    from anbar.expectation_kinds import RAW_TYPES

    if exp_type in RAW_TYPES and table == "clean":
        raise SuiteError(f"{where}: {exp_type} checks the values as delivered; it runs on the raw table only")
    cols = meta.get("columns")
    if exp_type == ROW_QUERY_TYPE and cols is None:
        raise SuiteError(f"{where}: meta.columns is required for {ROW_QUERY_TYPE} (the columns the query checks)")
    if cols is not None and (not isinstance(cols, list) or not cols or not all(isinstance(c, str) for c in cols)):
        raise SuiteError(f"{where}: meta.columns must be a non-empty list of column names")


def query_placeholders(query: str) -> set[str]:
    """The ``{name}`` placeholders of a SQL text (``{{``/``}}`` are literal braces)."""
    return {f[1] for f in Formatter().parse(query) if f[1] is not None}


def check_query_placeholders(where: str, what: str, query: str) -> None:
    from anbar.expectation_kinds import CONTEXT_PLACEHOLDERS, DATASET_KEY

    try:
        fields = query_placeholders(query)
    except ValueError as exc:
        raise SuiteError(
            f"{where}: {what} has an unpaired brace ({exc}); write a literal brace twice: {{{{ }}}}"
        ) from None
    unknown = sorted(f for f in fields if f != "batch" and f not in CONTEXT_PLACEHOLDERS and not DATASET_KEY.match(f))
    if unknown:
        raise SuiteError(
            f"{where}: {what} has unknown placeholders: {', '.join('{' + f + '}' for f in unknown)} "
            f"(known: {{batch}}, {', '.join('{' + p + '}' for p in CONTEXT_PLACEHOLDERS)}, "
            "{<org>__<dataset>}); write a literal brace twice: {{ }}"
        )


def _check_kwargs(where: str, exp_type: str, kwargs: dict[str, Any]) -> None:
    for key in _BOOL_KWARGS:
        if key in kwargs and not isinstance(kwargs[key], bool):
            raise SuiteError(f"{where}: kwargs.{key} must be true or false, not {kwargs[key]!r}")
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi))
    texts = all(isinstance(v, str) for v in (lo, hi))  # ISO dates compare as text
    if (numbers or texts) and lo > hi:
        raise SuiteError(f"{where}: kwargs.min_value {lo!r} is greater than max_value {hi!r}")
    if exp_type == ROW_QUERY_TYPE:
        query = kwargs.get("unexpected_rows_query")
        if not isinstance(query, str) or "{batch}" not in query:
            raise SuiteError(f"{where}: kwargs.unexpected_rows_query must be a SQL text selecting from {{batch}}")
        check_query_placeholders(where, "kwargs.unexpected_rows_query", query)
    if "value_set" in kwargs and isinstance(kwargs["value_set"], list) and not kwargs["value_set"]:
        raise SuiteError(f"{where}: kwargs.value_set is empty")


def _build(where: str, exp: dict[str, Any]):
    """The GX Expectation object for one expectation of the file (GX checks the kwargs)."""
    from great_expectations.compatibility import pydantic
    from great_expectations.exceptions import (
        ExpectationNotFoundError,
        InvalidExpectationConfigurationError,
    )
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    import anbar.gx_custom  # noqa: F401  (registers anbar's own expectation types)

    try:
        return ExpectationConfiguration(**exp).to_domain_obj()
    except ExpectationNotFoundError:
        raise SuiteError(f"{where}: unknown expectation type {exp['type']!r}") from None
    except pydantic.ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise SuiteError(f"{where}: bad kwargs: {reasons}") from None
    except (InvalidExpectationConfigurationError, TypeError, ValueError) as exc:
        raise SuiteError(f"{where}: bad expectation: {exc}") from None


def read_suite(path: Path | str, dataset: Dataset) -> dict[str, Any]:
    """The suite file as a dict, after every check (see :func:`load_suite`)."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: expected a JSON object at the top level")
    unknown = sorted(set(data) - _SUITE_KEYS)
    if unknown:
        raise SuiteError(f"{path}: unknown top-level keys: {', '.join(unknown)}")
    if data.get("name") != dataset.key:
        raise SuiteError(f"{path}: name {data.get('name')!r} is not the dataset {dataset.key!r}")
    exps = data.get("expectations")
    if not isinstance(exps, list) or not exps:
        raise SuiteError(f"{path}: 'expectations' must be a non-empty list")
    _check_policy(path, data.get("meta"))
    known = {
        "clean": set(dataset.column_names) | set(META_COLUMNS),
        "raw": set(dataset.column_names) | set(RAW_META_COLUMNS),
    }
    rules: dict[str, int] = {}
    for i, exp in enumerate(exps):
        where = f"{path}: expectations[{i}]"
        if not isinstance(exp, dict):
            raise SuiteError(f"{where}: expected an object")
        exp_type = exp.get("type")
        if not isinstance(exp_type, str) or not exp_type:
            raise SuiteError(f"{where}: 'type' is missing")
        where = f"{where} ({exp_type})"
        unknown = sorted(set(exp) - _EXPECTATION_KEYS)
        if unknown:
            raise SuiteError(f"{where}: unknown keys: {', '.join(unknown)}")
        kwargs = exp.get("kwargs")
        if not isinstance(kwargs, dict):
            raise SuiteError(f"{where}: 'kwargs' must be an object")
        meta = exp.get("meta")
        _check_meta(where, meta, exp_type)
        rule = meta.get("rule")
        if rule is not None:
            if rule in rules:
                raise SuiteError(f"{where}: meta.rule {rule!r} repeats expectations[{rules[rule]}]")
            rules[rule] = i
        from anbar.gx_custom import CONTEXT_TYPES

        context_type = CONTEXT_TYPES.get(exp_type)
        if context_type is not None:
            for key in context_type.generated_kwargs:
                if key in kwargs:
                    raise SuiteError(f"{where}: kwargs.{key} is written by anbar from the other kwargs; remove it")
        table = expectation_table(exp)
        known_columns = known[table]
        for col in expectation_columns(exp):
            if col not in known_columns:
                raise SuiteError(
                    f"{where}: column {col!r} is not a column of {dataset.key} "
                    f"(known: {', '.join(dataset.column_names)})"
                )
        _check_kwargs(where, exp_type, kwargs)
        severity = exp.get("severity")
        if severity is not None and severity != _gx_severity(meta["severity"]):
            raise SuiteError(f"{where}: severity {severity!r} contradicts meta.severity {meta['severity']!r}")
        built = _build(where, exp)
        if context_type is not None:
            check_query_placeholders(where, "the query written from its kwargs", built.unexpected_rows_query)
    return data


def _check_policy(path: Path, meta: Any) -> None:
    if meta is None:
        return
    if not isinstance(meta, dict):
        raise SuiteError(f"{path}: meta must be an object")
    rejection = meta.get("rejection", "file")
    if rejection not in REJECTION_MODES:
        raise SuiteError(f"{path}: meta.rejection must be one of {', '.join(REJECTION_MODES)}, not {rejection!r}")
    limit = meta.get("max_rejected_percent", DEFAULT_MAX_REJECTED_PERCENT)
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not 0 <= limit <= 100:
        raise SuiteError(f"{path}: meta.max_rejected_percent must be a number from 0 to 100, not {limit!r}")


def _gx_severity(severity: str) -> str:
    """GX's own FailureSeverity for anbar's severity."""
    return "critical" if severity == "blocking" else "warning"


def load_suite(path: Path | str, dataset: Dataset) -> ExpectationSuite:
    """Load a suite file as a GX ``ExpectationSuite``, checking every expectation.

    An unknown principle or severity, a column that is not in the dataset, an unknown
    expectation type or kwargs GX refuses fail with :class:`SuiteError` naming the file,
    the expectation and the reason. (GX's own ``ExpectationSuite(...)`` only logs a bad
    expectation and drops it; a dropped check must never pass silently.)
    """
    import great_expectations as gx

    data = read_suite(path, dataset)
    exps = []
    for exp in data["expectations"]:
        exp = dict(exp)
        # Mirror anbar's severity into GX's own field, so GX's results carry it too.
        exp["severity"] = _gx_severity(exp["meta"]["severity"])
        exps.append(exp)
    suite = gx.ExpectationSuite(
        name=data["name"],
        expectations=exps,
        meta=data.get("meta"),
        notes=data.get("notes"),
    )
    if len(suite.expectations) != len(exps):  # pragma: no cover - read_suite built each one
        raise SuiteError(f"{path}: GX dropped an expectation")
    return suite


def check_all(expectations_dir: Path | str, registry: Registry) -> list[str]:
    """Problems with the committed suites (empty when all is well); the CLI prints them.

    Every registry dataset must have a suite that loads; every suite file must belong to a
    registry dataset; a code-list check must list exactly the codes of the registry's
    code list (the file holds a copy, which goes stale when the list changes).
    """
    root = Path(expectations_dir)
    problems: list[str] = []
    if not root.is_dir():
        return [f"{root}: expectations directory not found"]
    keys = {ds.key for ds in registry.datasets}
    for path in sorted(root.glob("*.json")):
        if path.stem not in keys:
            problems.append(f"{path}: no dataset {path.stem!r} in the registry")
    for ds in registry.datasets:
        path = suite_path(root, ds)
        if not path.exists():
            problems.append(f"{path}: missing: dataset {ds.key} has no expectation suite")
            continue
        try:
            data = read_suite(path, ds)
        except SuiteError as exc:
            problems.append(str(exc))
            continue
        for i, exp in enumerate(data["expectations"]):
            problems.extend(_code_list_drift(path, i, exp, ds, registry))
            problems.extend(_registry_references(path, i, exp, keys, registry))
    return problems


def _registry_references(path: Path, i: int, exp: dict[str, Any], keys: set[str], registry: Registry) -> list[str]:
    """Code lists and datasets a rule names must exist in the registry."""
    from anbar.expectation_kinds import DATASET_KEY

    where = f"{path}: expectations[{i}] ({exp['type']})"
    kwargs = exp["kwargs"]
    out = []
    code_list = kwargs.get("code_list")
    if isinstance(code_list, str) and code_list not in registry.code_lists:
        out.append(f"{where}: no code list {code_list!r} in the registry")
    named = set()
    if isinstance(kwargs.get("other_dataset"), str):
        named.add(kwargs["other_dataset"])
    if isinstance(kwargs.get("unexpected_rows_query"), str):
        named |= {f for f in query_placeholders(kwargs["unexpected_rows_query"]) if DATASET_KEY.match(f)}
    out += [f"{where}: no dataset {key!r} in the registry" for key in sorted(named - keys)]
    return out


def _code_list_drift(path: Path, i: int, exp: dict[str, Any], ds: Dataset, registry: Registry) -> list[str]:
    if exp["type"] != "expect_column_values_to_be_in_set":
        return []
    col_name = exp["kwargs"].get("column")
    if col_name not in ds.column_names:
        return []
    col = ds.column(col_name)
    value_set = exp["kwargs"].get("value_set")
    if not col.code_list or not isinstance(value_set, list):
        return []
    codes = set(registry.code_lists[col.code_list].codes)
    have = {str(v) for v in value_set}
    out = []
    if have - codes:
        out.append(
            f"{path}: expectations[{i}] ({col_name}): codes not in code list {col.code_list!r}: "
            f"{', '.join(sorted(have - codes))}"
        )
    if codes - have:
        out.append(
            f"{path}: expectations[{i}] ({col_name}): codes of code list {col.code_list!r} "
            f"missing from value_set: {', '.join(sorted(codes - have))}"
        )
    return out
