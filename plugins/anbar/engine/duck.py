"""The engine's DuckDB connection, and anbar's conversion and check-digit rules as DuckDB macros.

The rules are the ones of :mod:`anbar.normalize` and :mod:`anbar.ids` (exchange standard §8); the
character tables in the macros are generated from the Python ones, as :mod:`anbar.sql_functions`
generates PostgreSQL's, and ``tests/unit/test_engine_duck.py`` runs both over the same inputs.

Macros (installed by :func:`connect`):

``anbar_digits(x)``            Persian, Arabic-Indic and Bengali digits to ASCII
``anbar_digit_value(x)``       the number 1 to 18 digits of any of those scripts write
``anbar_strip(x)``             every whitespace character trimmed at both ends (Python's ``str.strip()``)
``anbar_normalize_text(x)``    digits, letters, invisible characters and spaces (``normalize_text``)
``anbar_jalali_date(t)``       ``YYYY/M/D`` or ``YYYY-M-D`` (ASCII digits, the same separator twice) to a date
``anbar_gregorian_date(t)``    the same in the Gregorian calendar; NULL for an impossible date, never an error
``anbar_is_valid_person_id(x)``        10 digits (shorter: left-padded), check digit, not ten equal digits
``anbar_is_valid_legal_entity_id(x)``  11 digits, check digit, digits 4-9 not all zero

(NULL gives NULL, as in PostgreSQL.) Speed decides their shape: every macro is inlined into the
query and vectorised, and starts from the common case (plain ASCII), because ``translate()``
builds its character map again for every value (about a microsecond for the 30 digits).

Tables: ``anbar_jalali_days`` / ``anbar_gregorian_days`` map each day's usual spellings
(``1404/08/01``, ``1404-08-01``, in ASCII, Persian and Arabic-Indic digits) to its date, so the
converter finds almost every delivered date by a hash join instead of parsing it;
``anbar_code_list_values`` holds the registry's code lists.

Nothing is downloaded: extensions are neither installed nor loaded automatically.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import jdatetime

from anbar.ids import legal_entity_sum_sql, person_sum_sql
from anbar.normalize import DIGIT_MAP, JALALI_YEARS, LETTER_MAP, REMOVED, SPACE_MAP, WHITESPACE, ZWNJ
from anbar.registry import Registry

DEFAULT_MEMORY_LIMIT = "512MB"
# Dates outside these years are still converted, by the macros; the lookup tables only speed up the usual ones.
GREGORIAN_LOOKUP_YEARS = range(1900, 2101)
# The spellings of a day the lookup tables hold: both separators, in the digit scripts suppliers use.
_LOOKUP_SCRIPTS = ("0123456789", "\u06f0\u06f1\u06f2\u06f3\u06f4\u06f5\u06f6\u06f7\u06f8\u06f9", "٠١٢٣٤٥٦٧٨٩")


def literal(text: str) -> str:
    """A DuckDB string literal (characters are written as they are; quotes doubled)."""
    if "\x00" in text:
        raise ValueError("a DuckDB string literal cannot hold NUL")
    return "'" + text.replace("'", "''") + "'"


_DIGITS_FROM = literal("".join(DIGIT_MAP))
_DIGITS_TO = literal("".join(DIGIT_MAP.values()))
_TEXT_MAP = {**DIGIT_MAP, **LETTER_MAP, **SPACE_MAP}
# translate(): characters of ``from`` beyond the length of ``to`` are deleted (the invisible ones).
_TEXT_FROM = literal("".join(_TEXT_MAP) + REMOVED)
_TEXT_TO = literal("".join(_TEXT_MAP.values()))
_ASCII_WHITESPACE = literal("".join(c for c in WHITESPACE if c.isascii()))
_ALL_WHITESPACE = literal(WHITESPACE)
_SPACE_RUN = literal(f"[ {ZWNJ}]* [ {ZWNJ}]*")
_ZWNJ_RUN = literal(f"{ZWNJ}+")
_TRIMMED = literal(" " + ZWNJ)
# Digits of the scripts the standard accepts, as a regular-expression class.
ANY_DIGIT = "[" + "".join(sorted(set(DIGIT_MAP) | set("0123456789"))) + "]"
# The date forms of exchange standard §8.2: four-digit year, one or two digits for month and day, the
# same separator twice.
DATE_FORMS = "[0-9]{4}/[0-9]{1,2}/[0-9]{1,2}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
_MONTH_DAYS_JALALI = "[31, 31, 31, 31, 31, 31, 30, 30, 30, 30, 30, 29]"
_MONTH_START_JALALI = "[0, 31, 62, 93, 124, 155, 186, 216, 246, 276, 306, 336]"
_MONTH_DAYS_GREGORIAN = "[31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]"
# Remainder r of the weighted sum -> the expected check digit: persons r < 2 -> r, else 11 - r; legal
# entities r, with 10 counting as 0.
_PERSON_CHECK = "[" + ", ".join(str(r if r < 2 else 11 - r) for r in range(11)) + "]"
_LEGAL_CHECK = "[" + ", ".join(str(r % 10) for r in range(11)) + "]"


def _nowruz_list() -> str:
    """1 Farvardin of every calendar year and of the year after the last, as a DuckDB list of dates."""
    days = (jdatetime.date(y, 1, 1).togregorian() for y in range(JALALI_YEARS.start, JALALI_YEARS.stop + 1))
    return "[" + ", ".join(f"DATE '{d.isoformat()}'" for d in days) + "]"


def _digit(n: str, position: int, width: int) -> str:
    """The digit at ``position`` (0 = leftmost) of the ``width``-digit number ``n``."""
    return f"(({n} // {10 ** (width - 1 - position)}) % 10)"


def _person_sum(n: str) -> str:
    return person_sum_sql(lambda i: _digit(n, i, 10))


def _legal_entity_sum(n: str) -> str:
    return legal_entity_sum_sql(lambda i: _digit(n, i, 11))


def _date_macro(name: str, ymd: str) -> str:
    # The padded form first: its parts are at fixed places.
    return f"""create or replace macro {name}(t) as case
    when length(t) = 10 and regexp_full_match(t, '[0-9]{{4}}/[0-9]{{2}}/[0-9]{{2}}|[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}')
        then {ymd}(cast(substr(t, 1, 4) as integer), cast(substr(t, 6, 2) as integer), cast(substr(t, 9, 2) as integer))
    when regexp_full_match(t, '{DATE_FORMS}')
        then {ymd}(cast(substr(t, 1, 4) as integer),
                   cast(split_part(substr(t, 6), substr(t, 5, 1), 1) as integer),
                   cast(split_part(substr(t, 6), substr(t, 5, 1), 2) as integer))
end"""


def macros() -> list[str]:
    """The statements that create anbar's macros (idempotent)."""
    first, last = JALALI_YEARS.start, JALALI_YEARS.stop - 1
    nowruz = _nowruz_list()
    return [
        f"""create or replace macro anbar_digits(x) as
    case when strlen(x) = length(x) then x else translate(x, {_DIGITS_FROM}, {_DIGITS_TO}) end""",
        # The value of a string of 1 to 18 digits of any script the standard accepts (ASCII, Persian and
        # Arabic-Indic digits are their code point's low four bits; Bengali ones start at U+09E6): a fifth
        # of the cost of translate() for the numbers and IDs suppliers write in Persian digits.
        """create or replace macro anbar_digit_value(x) as list_reduce(
    list_transform(string_split(x, ''), lambda c: case when unicode(c) >= 2534 then unicode(c) - 2534
                                                        else unicode(c) & 15 end::bigint),
    lambda a, b: a * 10 + b)""",
        f"""create or replace macro anbar_strip(x) as
    case when strlen(x) = length(x) then trim(x, {_ASCII_WHITESPACE}) else trim(x, {_ALL_WHITESPACE}) end""",
        f"""create or replace macro anbar_tidy_spaces(x) as
    trim(regexp_replace(regexp_replace(x, {_SPACE_RUN}, ' ', 'g'), {_ZWNJ_RUN}, {literal(ZWNJ)}, 'g'), {_TRIMMED})""",
        # Printable ASCII without a space is already normal: the common case, answered by one regex test.
        f"""create or replace macro anbar_normalize_text(x) as
    case when regexp_full_match(x, '[!-~]*') then x
         else anbar_tidy_spaces(translate(x, {_TEXT_FROM}, {_TEXT_TO})) end""",
        f"""create or replace macro anbar_jalali_ymd(y, m, d) as case
    when y between {first} and {last} and m between 1 and 12 and d >= 1
     and d <= {_MONTH_DAYS_JALALI}[m]
              + case when m = 12 then ({nowruz}[y - {first - 2}] - {nowruz}[y - {first - 1}]) - 365 else 0 end
    then {nowruz}[y - {first - 1}] + cast({_MONTH_START_JALALI}[m] + d - 1 as integer)
end""",
        f"""create or replace macro anbar_gregorian_ymd(y, m, d) as case
    when y between 1 and 9999 and m between 1 and 12 and d >= 1
     and d <= {_MONTH_DAYS_GREGORIAN}[m]
              + case when m = 2 and (y % 4 = 0 and y % 100 <> 0 or y % 400 = 0) then 1 else 0 end
    then make_date(y, m, d)
end""",
        _date_macro("anbar_jalali_date", "anbar_jalali_ymd"),
        _date_macro("anbar_gregorian_date", "anbar_gregorian_ymd"),
        # n: the ID as a number (leading zeros do not change it); ten equal digits are k * 1111111111.
        f"""create or replace macro anbar_person_number_ok(n) as
    n % 1111111111 <> 0 and {_PERSON_CHECK}[(({_person_sum("n")}) % 11) + 1] = n % 10""",
        f"""create or replace macro anbar_legal_entity_number_ok(n) as
    (n // 100) % 1000000 <> 0 and {_LEGAL_CHECK}[(({_legal_entity_sum("n")}) % 11) + 1] = n % 10""",
        """create or replace macro anbar_is_valid_person_id(x) as case
    when x is null then null
    when regexp_full_match(x, '[0-9]{1,10}') then anbar_person_number_ok(cast(x as bigint))
    when regexp_full_match(anbar_strip(x), '[0-9]{1,10}') then anbar_person_number_ok(cast(anbar_strip(x) as bigint))
    else false
end""",
        """create or replace macro anbar_is_valid_legal_entity_id(x) as case
    when x is null then null
    when regexp_full_match(x, '[0-9]{11}') then anbar_legal_entity_number_ok(cast(x as bigint))
    when regexp_full_match(anbar_strip(x), '[0-9]{11}')
        then anbar_legal_entity_number_ok(cast(anbar_strip(x) as bigint))
    else false
end""",
    ]


def _spellings(canonical: str) -> str:
    """SQL: the canonical spelling ``c`` of a day and its other usual spellings, one row each."""
    rows = []
    for script in _LOOKUP_SCRIPTS:
        for separator in ("/", "-"):
            text = canonical if separator == "/" else f"replace({canonical}, '/', '-')"
            if script != "0123456789":
                text = f"translate({text}, '0123456789', {literal(script)})"
            rows.append(text)
    return "unnest([" + ", ".join(rows) + "])"


def _lookup_tables() -> list[str]:
    first, last = JALALI_YEARS.start, JALALI_YEARS.stop - 1
    g_first, g_last = GREGORIAN_LOOKUP_YEARS.start, GREGORIAN_LOOKUP_YEARS.stop - 1
    return [
        f"""create or replace temporary table anbar_jalali_days as
    select {_spellings("printf('%04d/%02d/%02d', y, m, d)")} as spelling, day from (
        select y, m, d, anbar_jalali_ymd(y, m, d) as day
        from range({first}, {last + 1}) ys(y), range(1, 13) ms(m), range(1, 32) ds(d)
    ) where day is not null""",
        f"""create or replace temporary table anbar_gregorian_days as
    select {_spellings("strftime(day, '%Y/%m/%d')")} as spelling, day from (
        select cast(unnest(range(DATE '{g_first}-01-01', DATE '{g_last + 1}-01-01', INTERVAL 1 DAY)) as date) as day
    )""",
    ]


def engine_threads() -> int:
    """Threads of one pass (``ANBAR_ENGINE_THREADS``; default: every core)."""
    value = os.environ.get("ANBAR_ENGINE_THREADS", "").strip()
    return max(1, int(value)) if value else max(1, os.cpu_count() or 1)


def engine_memory_limit() -> str:
    """DuckDB's memory limit for one pass (``ANBAR_ENGINE_MEMORY``, e.g. ``512MB``); above it, it spills to disk."""
    return os.environ.get("ANBAR_ENGINE_MEMORY", "").strip() or DEFAULT_MEMORY_LIMIT


def connect(
    spill_dir: Path | str,
    *,
    registry: Registry | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    lookups: bool = False,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for one pass, with anbar's macros (and the date lookups and code lists).

    ``spill_dir`` is where DuckDB writes what does not fit in ``memory_limit`` (the landing archive's
    ``tmp``, on the same disk as the deliveries). Peak memory stays near the limit whatever the size of
    the delivery.
    """
    spill = Path(spill_dir)
    spill.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(
        config={
            "threads": threads or engine_threads(),
            "memory_limit": memory_limit or engine_memory_limit(),
            "temp_directory": str(spill),
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
    )
    for statement in macros():
        con.execute(statement)
    if lookups:
        install_lookups(con)
    if registry is not None:
        install_code_lists(con, registry)
    return con


def install_lookups(con: duckdb.DuckDBPyConnection) -> None:
    """The tables of every day's usual spellings (about a second to build: worth it for large deliveries)."""
    for statement in _lookup_tables():
        con.execute(statement)


def install_code_lists(con: duckdb.DuckDBPyConnection, registry: Registry) -> None:
    names = [name for name, cl in registry.code_lists.items() for _ in cl.codes]
    codes = [code for cl in registry.code_lists.values() for code in cl.codes]
    con.execute(
        "create or replace temporary table anbar_code_list_values as "
        "select unnest(?::varchar[]) as code_list, unnest(?::varchar[]) as code",
        [names, codes],
    )


def scalar(con: duckdb.DuckDBPyConnection, query: str, params: list | None = None):
    """The one value of a one-row query (the result read to its end: DuckDB refuses other work on a
    connection with a result still open)."""
    rows = con.execute(query, params or []).fetchall()
    return rows[0][0] if rows else None
