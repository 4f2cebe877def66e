"""The conversion principle for text: digits, letters, spaces and zero-width characters.

The same rules run inside PostgreSQL (``anbar.sql_functions`` builds its
``translate()`` strings from the tables here), and an integration test keeps the
two in agreement. The rules:

* **digits** — Persian (U+06F0–U+06F9), Arabic-Indic (U+0660–U+0669) and Bengali
  (U+09E6–U+09EF) digits become ASCII ``0``–``9``;
* **letters** — Arabic yeh (U+064A) and alef maksura (U+0649) become Persian yeh
  (U+06CC); Arabic kaf (U+0643) becomes keheh (U+06A9);
* **invisible characters** — zero-width space (U+200B), BOM / zero-width no-break
  space (U+FEFF), word joiner (U+2060) and the bidi marks and controls that Word and
  Excel leave in Persian text (U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) are removed;
* **spaces** — every whitespace character (``str.isspace``: NBSP U+00A0, tabs,
  newlines, the U+2000 spaces, ...) becomes a space; a run of spaces and ZWNJs
  holding at least one space becomes one space; repeated ZWNJs (U+200C) become one;
  spaces and ZWNJs are trimmed at both ends. A ZWNJ between two letters is kept: it
  is part of Persian spelling (می‌خواهم).
* **spreadsheet formulas** are not a conversion: text is stored as delivered (after the rules above).
  Only where anbar writes a file meant for a spreadsheet (``findings.csv``, the CSV exports) does a
  text cell that starts with ``=``, ``+``, ``-`` or ``@`` and is not a number get a leading
  apostrophe (:func:`spreadsheet_cell`), so that no spreadsheet runs it as a formula (exchange
  standard 1.3, §8.1).
"""

from __future__ import annotations

import datetime as dt
import re

import jdatetime

PERSIAN_DIGITS = "".join(chr(c) for c in range(0x06F0, 0x06FA))
ARABIC_INDIC_DIGITS = "".join(chr(c) for c in range(0x0660, 0x066A))
BENGALI_DIGITS = "".join(chr(c) for c in range(0x09E6, 0x09F0))
ASCII_DIGITS = "0123456789"

DIGIT_MAP: dict[str, str] = {
    d: ASCII_DIGITS[i] for digits in (PERSIAN_DIGITS, ARABIC_INDIC_DIGITS, BENGALI_DIGITS) for i, d in enumerate(digits)
}

PERSIAN_YEH = "\u06cc"
KEHEH = "\u06a9"
LETTER_MAP: dict[str, str] = {
    "\u064a": PERSIAN_YEH,  # Arabic yeh
    "\u0649": PERSIAN_YEH,  # alef maksura
    "\u0643": KEHEH,  # Arabic kaf
}

ZWNJ = "\u200c"
#: Invisible characters that carry nothing in data: removed.
REMOVED = (
    "\u200b"  # zero-width space
    "\ufeff"  # BOM, zero-width no-break space
    "\u2060"  # word joiner
    "\u200e\u200f"  # left-to-right / right-to-left marks
    "\u202a\u202b\u202c\u202d\u202e"  # bidi embeddings and overrides
    "\u2066\u2067\u2068\u2069"  # bidi isolates
)
#: Every character Python counts as whitespace (what ``str.strip()`` removes).
WHITESPACE = "".join(c for c in map(chr, range(0x110000)) if c.isspace())
SPACE_MAP: dict[str, str] = {c: " " for c in WHITESPACE if c != " "}

#: Character mappings of ``normalize_text``, in order; ``REMOVED`` characters are deleted.
TEXT_MAP: dict[str, str] = {**DIGIT_MAP, **LETTER_MAP, **SPACE_MAP}

_DIGITS_TABLE = str.maketrans(DIGIT_MAP)
_LETTERS_TABLE = str.maketrans({**LETTER_MAP, **SPACE_MAP, **dict.fromkeys(REMOVED)})
_TEXT_TABLE = str.maketrans({**TEXT_MAP, **dict.fromkeys(REMOVED)})

#: A run of spaces and ZWNJs holding at least one space (same pattern in SQL).
SPACE_RUN_PATTERN = "[ \\u200c]* [ \\u200c]*"
ZWNJ_RUN_PATTERN = "\\u200c+"
_SPACE_RUN = re.compile(SPACE_RUN_PATTERN)
_ZWNJ_RUN = re.compile(ZWNJ_RUN_PATTERN)
_TRIMMED = " " + ZWNJ


def normalize_digits(value: str | None) -> str | None:
    """Persian, Arabic-Indic and Bengali digits to ASCII; nothing else changes."""
    if value is None:
        return None
    return value.translate(_DIGITS_TABLE)


def _spaces(value: str) -> str:
    value = _SPACE_RUN.sub(" ", value)
    value = _ZWNJ_RUN.sub(ZWNJ, value)
    return value.strip(_TRIMMED)


def normalize_letters(value: str | None) -> str | None:
    """Arabic letter forms to Persian, invisible characters removed, spaces tidied (not digits)."""
    if value is None:
        return None
    return _spaces(value.translate(_LETTERS_TABLE))


def normalize_text(value: str | None) -> str | None:
    """Digits, letters, invisible characters and spaces: ``anbar.normalize_text`` in SQL."""
    if value is None:
        return None
    return _spaces(value.translate(_TEXT_TABLE))


#: First characters that make a spreadsheet read a cell as a formula (tab and CR, the others OWASP
#: lists, never start a value after ``normalize_text``).
FORMULA_TRIGGERS = "=+-@"


def spreadsheet_safe(value: str | None) -> str | None:
    """A leading apostrophe before a value a spreadsheet would run as a formula: ``anbar.spreadsheet_safe``."""
    if not value or value[0] not in FORMULA_TRIGGERS:
        return value
    return "'" + value


_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def spreadsheet_cell(value):
    """A cell of a file written for spreadsheets: text that a spreadsheet would run as a formula gets a
    leading apostrophe; a number (``-3``, ``+1.5``), written as text or not, and anything else is left as
    it is."""
    if isinstance(value, str) and not _NUMBER.fullmatch(value):
        return spreadsheet_safe(value)
    return value


def spreadsheet_csv_rows(rows):
    """Rows for ``csv.writer`` with every cell made :func:`spreadsheet_cell`."""
    return ([spreadsheet_cell(v) for v in row] for row in rows)


# -- dates (the Python side of anbar.jalali_to_date / anbar.gregorian_to_date) ---------------------
#: Jalali years the SQL calendar table covers.
JALALI_YEARS = range(1300, 1481)
_DATE = re.compile(r"([0-9]{4})([/-])([0-9]{1,2})\2([0-9]{1,2})")


def _date_parts(value: str | None) -> tuple[int, int, int] | None:
    if value is None:
        return None
    m = _DATE.fullmatch(normalize_digits(value).strip())
    if m is None:
        return None
    return int(m.group(1)), int(m.group(3)), int(m.group(4))


def jalali_to_date(value: str | None) -> dt.date | None:
    """``1404/08/01``, ``1404-08-01`` or ``1404/8/1`` (any digits) -> 2025-10-23; None if impossible.

    Years outside 1300–1480 give None, as in SQL (the calendar table's range).
    """
    parts = _date_parts(value)
    if parts is None or parts[0] not in JALALI_YEARS:
        return None
    try:
        return jdatetime.date(*parts).togregorian()
    except ValueError:
        return None


def gregorian_to_date(value: str | None) -> dt.date | None:
    """``2025-10-23``, ``2025/10/23`` or ``2025-10-3`` (any digits) -> a date; None if impossible."""
    parts = _date_parts(value)
    if parts is None:
        return None
    try:
        return dt.date(*parts)
    except ValueError:
        return None
