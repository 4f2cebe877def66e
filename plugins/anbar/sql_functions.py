"""The conversion and check-digit rules as PostgreSQL functions, and the Jalali calendar table.

Installed into schema ``anbar`` by :func:`install` (idempotent: ``create or replace``;
the calendar is loaded once):

``anbar.normalize_digits(text) -> text``        Persian/Arabic-Indic/Bengali digits to ASCII
``anbar.normalize_text(text) -> text``          digits, letters, invisible characters, spaces
``anbar.is_valid_person_id(text) -> boolean``   10-digit national ID (shorter: left-padded)
``anbar.is_valid_legal_entity_id(text) -> boolean``  11-digit national ID of a legal entity
``anbar.jalali_calendar``                       one row per day, Jalali years 1300–1480
``anbar.jalali_to_date(text) -> date``          ``1404/08/01``, ``1404-08-01``, ``1404/8/1``
``anbar.gregorian_to_date(text) -> date``       ``2025-10-23``, ``2025/10/23``, ``2025-10-3``

They give the same results as the Python in :mod:`anbar.normalize` and :mod:`anbar.ids`
(the ``translate()`` strings are generated from the Python tables; an integration test
runs both over the same inputs). Differences by design: SQL functions are STRICT, so
NULL gives NULL where Python's ``is_valid_*`` give False; an impossible date gives NULL
in both.

``normalize_*`` and ``is_valid_*`` are plain-expression SQL functions that the planner
inlines into the calling query (no per-row function call). The two date functions look
up the calendar table or call ``pg_input_is_valid`` and are not inlined; they are
IMMUTABLE in practice (the calendar never changes; only ISO year-first input is accepted,
which does not depend on ``DateStyle``).
"""

from __future__ import annotations

import datetime as dt
import io

import jdatetime

from anbar.ids import LEGAL_ENTITY_WEIGHTS
from anbar.normalize import DIGIT_MAP, JALALI_YEARS, REMOVED, TEXT_MAP, WHITESPACE, ZWNJ

SCHEMA = "anbar"
_LOCK_KEY = "anbar.sql_functions"


def sql_unicode_literal(chars: str) -> str:
    """A ``U&'...'`` literal spelling every non-alphanumeric character as ``\\XXXX``."""
    if any(ord(c) > 0xFFFF for c in chars):
        raise ValueError("only BMP characters are supported")
    body = "".join(c if c.isascii() and c.isalnum() else f"\\{ord(c):04X}" for c in chars)
    return f"U&'{body}'"


# translate(): characters of ``from`` beyond the length of ``to`` are deleted.
_DIGITS_FROM = sql_unicode_literal("".join(DIGIT_MAP))
_DIGITS_TO = sql_unicode_literal("".join(DIGIT_MAP.values()))
_TEXT_FROM = sql_unicode_literal("".join(TEXT_MAP) + REMOVED)
_TEXT_TO = sql_unicode_literal("".join(TEXT_MAP.values()))
_WHITESPACE = sql_unicode_literal(WHITESPACE)  # what Python's str.strip() removes
_ZWNJ = sql_unicode_literal(ZWNJ)
_SPACE_RUN = sql_unicode_literal(f"[ {ZWNJ}]* [ {ZWNJ}]*")
_ZWNJ_RUN = sql_unicode_literal(f"{ZWNJ}+")
_DATE_PATTERN = "'^([0-9]{4})([/-])([0-9]{1,2})\\2([0-9]{1,2})$'"


def _person_sum(p: str) -> str:
    return " + ".join(f"substr({p}, {i + 1}, 1)::int * {10 - i}" for i in range(9))


def _legal_entity_sum(p: str) -> str:
    # sum((digit[i] + d) * w[i % 5]) = sum(digit[i] * w[i % 5]) + d * sum(w[i % 5]), d = digit[9] + 2
    weights = [LEGAL_ENTITY_WEIGHTS[i % 5] for i in range(10)]
    terms = [f"substr({p}, {i + 1}, 1)::int * {w}" for i, w in enumerate(weights)]
    return " + ".join(terms) + f" + (substr({p}, 10, 1)::int + 2) * {sum(weights)}"


# Expected check digit indexed by the remainder (r + 1 in SQL's 1-based substr):
# person: r < 2 -> r, else 11 - r; legal entity: r, with 10 counting as 0.
_PERSON_CHECK = "'" + "".join(str(r if r < 2 else 11 - r) for r in range(11)) + "'"
_LEGAL_CHECK = "'" + "".join(str(r % 10) for r in range(11)) + "'"

FUNCTIONS_DDL = f"""
create schema if not exists {SCHEMA};

create or replace function {SCHEMA}.normalize_digits(text) returns text
language sql immutable strict parallel safe as $$
    select translate($1, {_DIGITS_FROM}, {_DIGITS_TO})
$$;
comment on function {SCHEMA}.normalize_digits(text) is
    'Persian, Arabic-Indic and Bengali digits to ASCII (anbar.normalize.normalize_digits).';

create or replace function {SCHEMA}.normalize_text(text) returns text
language sql immutable strict parallel safe as $$
    select btrim(
        regexp_replace(
            regexp_replace(translate($1, {_TEXT_FROM}, {_TEXT_TO}), {_SPACE_RUN}, ' ', 'g'),
            {_ZWNJ_RUN}, {_ZWNJ}, 'g'),
        {sql_unicode_literal(" " + ZWNJ)})
$$;
comment on function {SCHEMA}.normalize_text(text) is
    'Digits, Arabic letter forms, invisible characters and spaces (anbar.normalize.normalize_text).';

create or replace function {SCHEMA}._person_id_ok(p text) returns boolean
language sql immutable parallel safe as $$
    select $1 !~ '^(.)\\1{{9}}$'
       and substr({_PERSON_CHECK}, ({_person_sum("$1")}) % 11 + 1, 1) = substr($1, 10, 1)
$$;

create or replace function {SCHEMA}.is_valid_person_id(text) returns boolean
language sql immutable parallel safe as $$
    select case when $1 is null then null
                when btrim($1, {_WHITESPACE}) ~ '^[0-9]{{1,10}}$'
                then {SCHEMA}._person_id_ok(lpad(btrim($1, {_WHITESPACE}), 10, '0'))
                else false end
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
    select case when $1 is null then null
                when btrim($1, {_WHITESPACE}) ~ '^[0-9]{{11}}$'
                then {SCHEMA}._legal_entity_id_ok(btrim($1, {_WHITESPACE}))
                else false end
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

create or replace function {SCHEMA}.jalali_to_date(text) returns date
language sql immutable strict parallel safe as $$
    select c.gregorian
    from regexp_match(btrim({SCHEMA}.normalize_digits($1), {_WHITESPACE}), {_DATE_PATTERN}) m
    join {SCHEMA}.jalali_calendar c
      on c.jalali = m[1] || '/' || lpad(m[3], 2, '0') || '/' || lpad(m[4], 2, '0')
$$;
comment on function {SCHEMA}.jalali_to_date(text) is
    'Jalali YYYY/MM/DD, YYYY-MM-DD or YYYY/M/D (any digits) to a date; NULL if impossible '
    'or outside the calendar table.';

create or replace function {SCHEMA}.gregorian_to_date(text) returns date
language sql immutable strict parallel safe as $$
    select case when pg_input_is_valid(d, 'date') then d::date end
    from (
        select m[1] || '-' || lpad(m[3], 2, '0') || '-' || lpad(m[4], 2, '0') as d
        from regexp_match(btrim({SCHEMA}.normalize_digits($1), {_WHITESPACE}), {_DATE_PATTERN}) m
    ) iso
$$;
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
        f"copy {SCHEMA}.jalali_calendar (jalali, jalali_year, jalali_month, jalali_day, gregorian) "
        "from stdin",
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
