"""The conversion and check-digit rules as PostgreSQL functions, and the Jalali calendar table.

Installed into schema ``anbar`` by :func:`install` (idempotent: ``create or replace``;
the calendar is loaded once):

``anbar.normalize_digits(text) -> text``        Persian/Arabic-Indic/Bengali digits to ASCII
``anbar.normalize_text(text) -> text``          digits, letters, invisible characters, spaces
``anbar.spreadsheet_safe(text) -> text``        a leading ' before = + - @ (no formula in a spreadsheet)
``anbar.is_valid_person_id(text) -> boolean``   10-digit national ID (shorter: left-padded)
``anbar.is_valid_legal_entity_id(text) -> boolean``  11-digit national ID of a legal entity
``anbar.jalali_calendar``                       one row per day, Jalali years 1300–1480
``anbar.jalali_to_date(text) -> date``          ``1404/08/01``, ``1404-08-01``, ``1404/8/1``
``anbar.gregorian_to_date(text) -> date``       ``2025-10-23``, ``2025/10/23``, ``2025-10-3``

They give the same results as the Python in :mod:`anbar.normalize` and :mod:`anbar.ids`
(the character tables in the SQL are generated from the Python ones; an integration test
runs both over the same inputs). One difference by design: NULL gives NULL in SQL where
Python's ``is_valid_*`` give False (a missing value is a completeness problem, not an
invalid one). Impossible dates give NULL in both, never an error.

Speed: every function is a single SQL expression that the planner inlines into the
calling query (IMMUTABLE, not STRICT — a STRICT function whose body has CASE/AND is not
inlined — and only immutable functions inside). Each starts with a cheap test for the
common case (e.g. "no character that needs the big ``translate()``") because
``translate()`` costs time proportional to input length x mapping length.
``jalali_to_date`` does not query the calendar table per row (a per-row lookup costs a
function call and an index probe, about 10x the whole expression); it computes the date
from an array of the Gregorian dates of 1 Farvardin of each year, generated from the same
``jdatetime`` source as the table, and a test checks it against every row of the table.
``gregorian_to_date`` validates year/month/day arithmetically before ``make_date`` rather
than with ``pg_input_is_valid`` + ``::date``, which are only STABLE (they depend on
``DateStyle``) and would stop an IMMUTABLE function from being inlined.
"""

from __future__ import annotations

import datetime as dt
import io

import jdatetime

from anbar.ids import legal_entity_sum_sql, person_sum_sql
from anbar.normalize import (
    DIGIT_MAP,
    FORMULA_TRIGGERS,
    JALALI_YEARS,
    LETTER_MAP,
    REMOVED,
    TEXT_MAP,
    WHITESPACE,
    ZWNJ,
)

SCHEMA = "anbar"
_LOCK_KEY = "anbar.sql_functions"


def sql_unicode_literal(chars: str) -> str:
    """A ``U&'...'`` literal spelling every non-alphanumeric character as ``\\XXXX``."""
    if any(ord(c) > 0xFFFF for c in chars):
        raise ValueError("only BMP characters are supported")
    body = "".join(c if c.isascii() and c.isalnum() else f"\\{ord(c):04X}" for c in chars)
    return f"U&'{body}'"


_U = sql_unicode_literal
# translate(): characters of ``from`` beyond the length of ``to`` are deleted.
_DIGITS_FROM = _U("".join(DIGIT_MAP))
_DIGITS_TO = _U("".join(DIGIT_MAP.values()))
_DIGIT_CLASS = _U("[" + "".join(DIGIT_MAP) + "]")
_TEXT_FROM = _U("".join(TEXT_MAP) + REMOVED)
_TEXT_TO = _U("".join(TEXT_MAP.values()))
_LETTERS_FROM = _U("".join(LETTER_MAP))
_LETTERS_TO = _U("".join(LETTER_MAP.values()))
# Characters only the full translate() handles: other digits, whitespace but ' ', invisibles.
_SPECIAL_CLASS = _U("[" + "".join(DIGIT_MAP) + WHITESPACE.replace(" ", "") + REMOVED + "]")
_WHITESPACE = _U(WHITESPACE)  # what Python's str.strip() removes
_ASCII_SPACES = _U("".join(c for c in WHITESPACE if c.isascii()))
_ZWNJ = _U(ZWNJ)
_FORMULA_TRIGGERS = "(" + ", ".join(f"'{c}'" for c in FORMULA_TRIGGERS) + ")"
_TRIMMED = _U(" " + ZWNJ)
_SPACE_RUN = _U(f"[ {ZWNJ}]* [ {ZWNJ}]*")
_ZWNJ_RUN = _U(f"{ZWNJ}+")
# The date forms: YYYY/M/D or YYYY-M-D, one or two digits for month and day.
_DATE_FORMS = "'^[0-9]{4}(/[0-9]{1,2}/[0-9]{1,2}|-[0-9]{1,2}-[0-9]{1,2})$'"
# The usual, zero-padded form, whose parts are at fixed positions.
_DATE_PADDED = "'^[0-9]{4}(/[0-9]{2}/|-[0-9]{2}-)[0-9]{2}$'"
_PADDED_PARTS = "left($1, 4)::int, substr($1, 6, 2)::int, substr($1, 9, 2)::int"


def _tidy_spaces(expr: str) -> str:
    """SQL for normalize.py's ``_spaces`` applied to ``expr``."""
    return (
        f"btrim(regexp_replace(regexp_replace({expr}, {_SPACE_RUN}, ' ', 'g'), {_ZWNJ_RUN}, {_ZWNJ}, 'g'), {_TRIMMED})"
    )


def _digit(p: str, position: int) -> str:
    return f"(ascii(substr({p}, {position}, 1)) - 48)"


def _person_sum(p: str) -> str:
    return person_sum_sql(lambda i: _digit(p, i + 1))


def _legal_entity_sum(p: str) -> str:
    return legal_entity_sum_sql(lambda i: _digit(p, i + 1))


# Expected check digit indexed by the remainder (r + 1 in SQL's 1-based substr):
# person: r < 2 -> r, else 11 - r; legal entity: r, with 10 counting as 0.
_PERSON_CHECK = "'" + "".join(str(r if r < 2 else 11 - r) for r in range(11)) + "'"
_LEGAL_CHECK = "'" + "".join(str(r % 10) for r in range(11)) + "'"


def _nowruz_array() -> str:
    """``'{...}'::date[]``: 1 Farvardin of each calendar year and of the year after the last."""
    days = (jdatetime.date(y, 1, 1).togregorian().isoformat() for y in range(JALALI_YEARS.start, JALALI_YEARS.stop + 1))
    return "'{" + ",".join(days) + "}'::date[]"


def _date_parts(t: str) -> tuple[str, str, str]:
    """Year, month, day (int) of a string already known to match ``_DATE_FORMS``."""
    sep = f"substr({t}, 5, 1)"
    return (
        f"left({t}, 4)::int",
        f"split_part(substr({t}, 6), {sep}, 1)::int",
        f"split_part(substr({t}, 6), {sep}, 2)::int",
    )


def _parsed(fn: str, t: str) -> str:
    y, m, d = _date_parts(t)
    return f"case when {t} ~ {_DATE_FORMS} then {SCHEMA}.{fn}({y}, {m}, {d}) end"


_CLEAN_DATE = f"btrim({SCHEMA}.normalize_digits($1), {_WHITESPACE})"


def _text_to_date(calendar: str) -> str:
    """``<calendar>_to_date(text)``: padded ASCII first, then other forms, then any digits and spaces."""
    ymd = f"{calendar}_ymd_to_date"
    return f"""create or replace function {SCHEMA}.{calendar}_to_date(text) returns date
language sql immutable parallel safe as $$
    select case
        when $1 ~ {_DATE_PADDED} then {SCHEMA}.{ymd}({_PADDED_PARTS})
        when $1 ~ {_DATE_FORMS} then {SCHEMA}.{ymd}({", ".join(_date_parts("$1"))})
        else {_parsed(ymd, _CLEAN_DATE)}
    end
$$;"""


_NOWRUZ = _nowruz_array()
_FIRST_YEAR = JALALI_YEARS.start

FUNCTIONS_DDL = f"""
create schema if not exists {SCHEMA};

create or replace function {SCHEMA}.normalize_digits(text) returns text
language sql immutable parallel safe as $$
    -- ASCII text (octet length = character length) has nothing to convert: the common case,
    -- answered without the regular expression.
    select case
        when octet_length($1) = length($1) then $1
        when $1 ~ {_DIGIT_CLASS} then translate($1, {_DIGITS_FROM}, {_DIGITS_TO})
        else $1
    end
$$;
comment on function {SCHEMA}.normalize_digits(text) is
    'Persian, Arabic-Indic and Bengali digits to ASCII (anbar.normalize.normalize_digits).';

create or replace function {SCHEMA}.normalize_text(text) returns text
language sql immutable parallel safe as $$
    select case
        -- ASCII without any whitespace (codes, numbers, dates) is already normal.
        when octet_length($1) = length($1) and translate($1, {_ASCII_SPACES}, '') = $1 then $1
        when $1 ~ {_SPECIAL_CLASS}
            then {_tidy_spaces(f"translate($1, {_TEXT_FROM}, {_TEXT_TO})")}
        when strpos($1, '  ') > 0 or strpos($1, {_ZWNJ}) > 0
            then {_tidy_spaces(f"translate($1, {_LETTERS_FROM}, {_LETTERS_TO})")}
        else btrim(translate($1, {_LETTERS_FROM}, {_LETTERS_TO}), ' ')
    end
$$;
comment on function {SCHEMA}.normalize_text(text) is
    'Digits, Arabic letter forms, invisible characters and spaces (anbar.normalize.normalize_text).';

create or replace function {SCHEMA}.spreadsheet_safe(text) returns text
language sql immutable parallel safe as $$
    select case when left($1, 1) in {_FORMULA_TRIGGERS} then '''' || $1 else $1 end
$$;
comment on function {SCHEMA}.spreadsheet_safe(text) is
    'A leading apostrophe before a value a spreadsheet would run as a formula (anbar.normalize.spreadsheet_safe).';

create or replace function {SCHEMA}._person_id_ok(p text) returns boolean
language sql immutable parallel safe as $$
    select $1 <> repeat(left($1, 1), 10)
       and substr({_PERSON_CHECK}, ({_person_sum("$1")}) % 11 + 1, 1) = substr($1, 10, 1)
$$;

create or replace function {SCHEMA}.is_valid_person_id(text) returns boolean
language sql immutable parallel safe as $$
    select case
        when $1 is null then null
        when $1 ~ '^[0-9]{{10}}$' then {SCHEMA}._person_id_ok($1)
        when $1 ~ '^[0-9]{{1,9}}$' then {SCHEMA}._person_id_ok(lpad($1, 10, '0'))
        when btrim($1, {_WHITESPACE}) ~ '^[0-9]{{1,10}}$'
            then {SCHEMA}._person_id_ok(lpad(btrim($1, {_WHITESPACE}), 10, '0'))
        else false
    end
$$;
comment on function {SCHEMA}.is_valid_person_id(text) is
    'National ID of a person: 10 digits (shorter all-digit input left-padded), check digit, '
    'not ten identical digits (anbar.ids.is_valid_person_id; NULL gives NULL).';

create or replace function {SCHEMA}._legal_entity_id_ok(p text) returns boolean
language sql immutable parallel safe as $$
    select substr($1, 4, 6) <> '000000'
       and substr({_LEGAL_CHECK}, ({_legal_entity_sum("$1")}) % 11 + 1, 1) = substr($1, 11, 1)
$$;

create or replace function {SCHEMA}.is_valid_legal_entity_id(text) returns boolean
language sql immutable parallel safe as $$
    select case
        when $1 is null then null
        when $1 ~ '^[0-9]{{11}}$' then {SCHEMA}._legal_entity_id_ok($1)
        when btrim($1, {_WHITESPACE}) ~ '^[0-9]{{11}}$'
            then {SCHEMA}._legal_entity_id_ok(btrim($1, {_WHITESPACE}))
        else false
    end
$$;
comment on function {SCHEMA}.is_valid_legal_entity_id(text) is
    'National ID of a legal entity: 11 digits, check digit, digits 4-9 not all zero '
    '(anbar.ids.is_valid_legal_entity_id; NULL gives NULL).';

create table if not exists {SCHEMA}.jalali_calendar (
    jalali        text primary key,
    jalali_year   integer not null,
    jalali_month  integer not null check (jalali_month between 1 and 12),
    jalali_day    integer not null check (jalali_day between 1 and 31),
    gregorian     date not null unique
);
comment on table {SCHEMA}.jalali_calendar is
    'One row per day of Jalali years {JALALI_YEARS.start}-{JALALI_YEARS.stop - 1}; '
    'jalali is YYYY/MM/DD zero-padded. Loaded from jdatetime by anbar.sql_functions.install.';
grant select on {SCHEMA}.jalali_calendar to public;

create or replace function {SCHEMA}.jalali_ymd_to_date(y integer, m integer, d integer)
returns date language sql immutable parallel safe as $$
    -- An out-of-range subscript gives NULL, so a bad month gives NULL too.
    select case
        when $1 between {JALALI_YEARS.start} and {JALALI_YEARS.stop - 1}
         and $3 >= 1
         and $3 <= ('{{31,31,31,31,31,31,30,30,30,30,30,29}}'::int[])[$2]
                   + case when $2 = 12 then ({_NOWRUZ})[$1 - {_FIRST_YEAR - 2}]
                                            - ({_NOWRUZ})[$1 - {_FIRST_YEAR - 1}] - 365
                          else 0 end
        then ({_NOWRUZ})[$1 - {_FIRST_YEAR - 1}]
             + ('{{0,31,62,93,124,155,186,216,246,276,306,336}}'::int[])[$2] + $3 - 1
    end
$$;
comment on function {SCHEMA}.jalali_ymd_to_date(integer, integer, integer) is
    'Jalali year, month, day to a date; NULL if impossible or outside anbar.jalali_calendar.';

{_text_to_date("jalali")}
comment on function {SCHEMA}.jalali_to_date(text) is
    'Jalali YYYY/MM/DD, YYYY-MM-DD or YYYY/M/D (any digits) to a date; NULL if impossible '
    'or outside anbar.jalali_calendar (which it agrees with day by day).';

create or replace function {SCHEMA}.gregorian_ymd_to_date(y integer, m integer, d integer)
returns date language sql immutable parallel safe as $$
    select case
        when $1 between 1 and 9999
         and $3 >= 1
         and $3 <= ('{{31,28,31,30,31,30,31,31,30,31,30,31}}'::int[])[$2]
                   + case when $2 = 2 and ($1 % 4 = 0 and $1 % 100 <> 0 or $1 % 400 = 0) then 1
                          else 0 end
        then make_date($1, $2, $3)
    end
$$;
comment on function {SCHEMA}.gregorian_ymd_to_date(integer, integer, integer) is
    'Gregorian year, month, day to a date; NULL instead of an error if impossible.';

{_text_to_date("gregorian")}
comment on function {SCHEMA}.gregorian_to_date(text) is
    'Gregorian YYYY-MM-DD, YYYY/MM/DD or YYYY-M-D (any digits) to a date; NULL instead of an error.';
"""


def calendar_rows(years: range = JALALI_YEARS) -> tuple[str, int, dt.date, dt.date]:
    """The calendar as COPY text (tab-separated), its row count and Gregorian bounds."""
    first = jdatetime.date(years.start, 1, 1).togregorian()
    day = first
    one = dt.timedelta(days=1)
    out = io.StringIO()
    n = 0
    for y in range(years.start, years.stop):
        last_of_esfand = 30 if jdatetime.date(y, 1, 1).isleap() else 29
        for m in range(1, 13):
            for d in range(1, (31 if m <= 6 else 30 if m <= 11 else last_of_esfand) + 1):
                out.write(f"{y:04d}/{m:02d}/{d:02d}\t{y}\t{m}\t{d}\t{day.isoformat()}\n")
                day += one
                n += 1
    end = jdatetime.date(years.stop, 1, 1).togregorian()
    if day != end:  # the month lengths above must tile jdatetime's calendar exactly
        raise AssertionError(f"calendar drift: reached {day}, jdatetime says {end}")
    return out.getvalue(), n, first, end - one


def _fill_calendar(cur) -> bool:
    """Load the calendar unless it already holds exactly the expected rows. True if loaded."""
    first = jdatetime.date(JALALI_YEARS.start, 1, 1).togregorian()
    end = jdatetime.date(JALALI_YEARS.stop, 1, 1).togregorian()
    cur.execute(f"select count(*), min(gregorian), max(gregorian) from {SCHEMA}.jalali_calendar")
    if cur.fetchone() == ((end - first).days, first, end - dt.timedelta(days=1)):
        return False
    text, _, _, _ = calendar_rows()
    cur.execute(f"truncate {SCHEMA}.jalali_calendar")
    cur.copy_expert(
        f"copy {SCHEMA}.jalali_calendar (jalali, jalali_year, jalali_month, jalali_day, gregorian) from stdin",
        io.StringIO(text),
    )
    cur.execute(f"analyze {SCHEMA}.jalali_calendar")
    return True


def install(conn, *, commit: bool = True) -> None:
    """Create or replace the functions and fill the calendar once (psycopg2 connection).

    Serialised with a transaction-level advisory lock, so concurrent installers (mapped
    tasks starting together) neither fail on ``create or replace`` nor load the
    calendar twice. Commits unless ``commit=False`` (the caller's transaction then
    holds the lock until it ends).
    """
    autocommit = conn.autocommit
    if autocommit:
        conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute("select pg_advisory_xact_lock(hashtext(%s))", (_LOCK_KEY,))
            cur.execute(FUNCTIONS_DDL)
            _fill_calendar(cur)
        if commit or autocommit:
            conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        if autocommit:
            conn.autocommit = True
