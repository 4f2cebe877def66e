"""The conversion principle as one DuckDB query: the delivered values (text) to their types.

Generated from the registry: for each column, the value after exchange standard §8 (digits, letters,
spaces; a person's ID padded to 10 digits) and its typed value, or a reason when it cannot be converted
(§8.3: the row is set aside, the rest loads). Every expression starts with the common case — plain ASCII
already in the standard form — which costs one vectorised regular-expression test; only the other values
go through the normalisation macros of :mod:`anbar.engine.duck`. Dates are found by a hash join to the
tables of every day's usual spellings when the delivery is large enough for it to pay off.

Text is stored as delivered after normalisation (exchange standard 1.3, §8.1): a value beginning with
``=``, ``+``, ``-`` or ``@`` is neutralised only where anbar writes a file for a spreadsheet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from anbar.engine.duck import ANY_DIGIT, literal
from anbar.registry import Calendar, Column, ColumnType, Dataset, Identifier, Organisation

# DuckDB's types for the registry's (PostgreSQL's numeric is arbitrary; a delivered number must fit these).
NUMERIC_DIGITS, NUMERIC_SCALE = 38, 10
DUCK_TYPES = {
    ColumnType.text: "VARCHAR",
    ColumnType.integer: "INTEGER",
    ColumnType.bigint: "BIGINT",
    ColumnType.numeric: f"DECIMAL({NUMERIC_DIGITS}, {NUMERIC_SCALE})",
    ColumnType.date: "DATE",
    ColumnType.boolean: "BOOLEAN",
}
_NUMBER_FORMS = {
    ColumnType.integer: "[+-]?[0-9]+",
    ColumnType.bigint: "[+-]?[0-9]+",
    ColumnType.numeric: f"[+-]?[0-9]{{1,{NUMERIC_DIGITS - NUMERIC_SCALE}}}(\\.[0-9]{{1,{NUMERIC_SCALE}}})?",
}
COMPLAINTS = {
    ColumnType.integer: "is not a whole number",
    ColumnType.bigint: "is not a whole number",
    ColumnType.numeric: f"is not a number (at most {NUMERIC_DIGITS - NUMERIC_SCALE} digits before the point "
    f"and {NUMERIC_SCALE} after)",
    ColumnType.boolean: "is not true/false",
}


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class ColumnConversion:
    """How one column is converted, in steps the query computes one after the other, so that each costly
    function runs once per value and only for the values that need it:

    ``fast``: SQL for the typed value of the common case (plain ASCII in the standard form), else NULL;
    ``slow``: the normalisation of a delivered value ``fast`` left: ``digits`` (digits to ASCII, stripped) or
    ``text`` (:func:`anbar.normalize.normalize_text`);
    ``typed(f, s)``: SQL for the typed value from the fast value ``f`` and the normalised text ``s``.
    A delivered value with a normalised text and no typed value cannot be converted (``complaint``).
    """

    column: Column
    fast: str
    slow: str
    typed: Callable[[str, str], str]
    complaint: str | None = None
    join: str | None = None  # a lookup join ``fast`` reads


def _number(col: Column, r: str) -> ColumnConversion:
    form, duck_type = _NUMBER_FORMS[col.type], DUCK_TYPES[col.type]
    fast = (
        f"case when regexp_full_match({r}, '[0-9]{{1,18}}') then try_cast({r} as {duck_type}) "
        f"when regexp_full_match({r}, '{ANY_DIGIT}{{1,18}}') then try_cast(anbar_digit_value({r}) as {duck_type}) end"
    )

    def typed(f: str, s: str) -> str:
        return f"coalesce({f}, case when regexp_full_match({s}, '{form}') then try_cast({s} as {duck_type}) end)"

    return ColumnConversion(col, fast, "digits", typed, COMPLAINTS[col.type])


def _person_id(f: str, s: str) -> str:
    # Shorter all-digit national IDs lost their leading zeros in a spreadsheet (§8.2).
    value = f"coalesce({f}, {s})"
    return f"case when regexp_full_match({value}, '[0-9]{{1,9}}') then lpad({value}, 10, '0') else {value} end"


def column_conversion(col: Column, calendar: Calendar, *, lookups: bool) -> ColumnConversion:
    r = f"r.{ident(col.name)}"
    if col.type is ColumnType.text and col.identifier is None:
        fast = f"case when regexp_full_match({r}, '[!-~]+') then {r} end"
        return ColumnConversion(col, fast, "text", lambda f, s: f"coalesce({f}, {s})")
    if col.type is ColumnType.text:
        # Persian digits too, without translate(): the digits' value, zeros in front as delivered.
        fast = (
            f"case when regexp_full_match({r}, '[0-9]+') then {r} "
            f"when regexp_full_match({r}, '{ANY_DIGIT}{{1,18}}') "
            f"then lpad(cast(anbar_digit_value({r}) as varchar), cast(length({r}) as integer), '0') end"
        )
        if col.identifier is Identifier.person:
            return ColumnConversion(col, fast, "digits", _person_id)
        return ColumnConversion(col, fast, "digits", lambda f, s: f"coalesce({f}, {s})")
    if col.type is ColumnType.date:
        macro = "anbar_jalali_date" if calendar is Calendar.jalali else "anbar_gregorian_date"
        complaint = f"is not a valid {calendar.value} date"
        if not lookups:
            return ColumnConversion(col, "null::date", "digits", lambda f, s: f"{macro}({s})", complaint)
        alias = ident(f"days_{col.name}")
        table = "anbar_jalali_days" if calendar is Calendar.jalali else "anbar_gregorian_days"
        join = f"left join {table} as {alias} on {alias}.spelling = {r}"
        return ColumnConversion(
            col, f"{alias}.day", "digits", lambda f, s: f"coalesce({f}, {macro}({s}))", complaint, join
        )
    if col.type is ColumnType.boolean:
        return ColumnConversion(
            col,
            "null::boolean",
            "digits",
            lambda f, s: f"case lower({s}) when 'true' then true when 'false' then false end",
            COMPLAINTS[col.type],
        )
    return _number(col, r)


def conversions(org: Organisation, ds: Dataset, *, lookups: bool) -> list[ColumnConversion]:
    return [column_conversion(c, org.date_calendar(c), lookups=lookups) for c in ds.columns]


def _name(prefix: str, column: str) -> str:
    return ident(f"{prefix}:{column}")


def _shown(text_sql: str) -> str:
    """SQL quoting a value for a reason, at most 40 characters of it (``'1404/13/01'``)."""
    return "'''' || replace(left(" + text_sql + ", 40), '''', '''''') || ''''"


def conversion_sql(org: Organisation, ds: Dataset, source: str, *, lookups: bool, keep_raw: bool = False) -> str:
    """A query over ``source`` (a relation with ``_file``, ``_row_no``, ``_read_problem`` — why the reader could
    not read the row as delivered, if it could not — and the dataset's columns as delivered text) giving
    ``_file``, ``_row_no``, ``_read_problem``, with ``keep_raw`` the delivered values (``r:<column>``), the
    typed columns and ``_problems`` (the reasons a row cannot be converted, NULL when it can).

    Five projections, each over the one before: the fast path; the digits of the values it left (the
    costly ``translate``, once per value); the rest of their normalisation; the typed values; the reasons.
    """
    convs = conversions(org, ds, lookups=lookups)
    names = [c.column.name for c in convs]
    joins = " ".join(c.join for c in convs if c.join)
    keep = [ident(k) for k in ("_file", "_row_no", "_read_problem")]
    step1 = [f"r.{k}" for k in keep]
    for c in convs:
        step1.append(f"r.{ident(c.column.name)} as {_name('r', c.column.name)}")
        step1.append(f"{c.fast} as {_name('f', c.column.name)}")
    carried = keep + [_name(p, n) for n in names for p in ("r", "f")]
    step2 = list(carried)
    for c in convs:
        raw, fast = _name("r", c.column.name), _name("f", c.column.name)
        digits = f"anbar_digits({raw})" if c.slow == "digits" else raw
        step2.append(f"case when {fast} is null and {raw} is not null then {digits} end as {_name('d', c.column.name)}")
    step3 = list(carried)
    for c in convs:
        normalise = "anbar_normalize_text" if c.slow == "text" else "anbar_strip"
        step3.append(f"nullif({normalise}({_name('d', c.column.name)}), '') as {_name('s', c.column.name)}")
    step4 = keep + [_name(p, n) for n in names for p in ("r", "s")]
    for c in convs:
        typed = c.typed(_name("f", c.column.name), _name("s", c.column.name))
        step4.append(f"{typed} as {_name('v', c.column.name)}")
    step5 = keep + [_name("r", n) for n in names if keep_raw] + [f"{_name('v', n)} as {ident(n)}" for n in names]
    problems, failing = ["_read_problem"], ["_read_problem is not null"]
    for c in convs:
        if not c.complaint:
            continue
        slow, typed = _name("s", c.column.name), _name("v", c.column.name)
        test = f"({slow} is not null and {typed} is null)"
        failing.append(test)
        reason = f"{literal(c.column.name + ': ')} || {_shown(slow)} || {literal(' ' + c.complaint)}"
        problems.append(f"case when {test} then {reason} end")
    listed = f"list_filter([{', '.join(problems)}], lambda p: p is not null)"
    step5.append(f"case when {' or '.join(failing)} then {listed} end as _problems")
    query = f"select {', '.join(step1)} from {source} as r {joins}"
    for step in (step2, step3, step4, step5):
        query = f"select {', '.join(step)} from ({query})"
    return query
