"""Conversion rules in Python: digits, letters, spaces, dates; and domain.md's check-digit examples."""

from __future__ import annotations

import datetime as dt

import pytest

from anbar.ids import is_valid_legal_entity_id, is_valid_person_id
from anbar.normalize import (
    WHITESPACE,
    gregorian_to_date,
    jalali_to_date,
    normalize_digits,
    normalize_letters,
    normalize_text,
    spreadsheet_safe,
)

ZWNJ = "\u200c"
YEH, KEHEH = "\u06cc", "\u06a9"
ARABIC_YEH, ALEF_MAKSURA, ARABIC_KAF = "\u064a", "\u0649", "\u0643"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("۰۱۲۳۴۵۶۷۸۹", "0123456789"),  # Persian
        ("٠١٢٣٤٥٦٧٨٩", "0123456789"),  # Arabic-Indic
        ("০১২৩৪৫৬৭৮৯", "0123456789"),  # Bengali
        ("۱۴۰۴/۰۸/۰۱", "1404/08/01"),
        ("کد ۱۲-٣٤ 56", "کد 12-34 56"),
        ("", ""),
    ],
)
def test_normalize_digits(raw, expected):
    assert normalize_digits(raw) == expected


def test_normalize_digits_changes_nothing_else():
    text = f" {ARABIC_KAF}\u00a0x{ZWNJ} "
    assert normalize_digits(text) == text
    assert normalize_digits(None) is None


def test_letters_follow_domain_rules():
    assert normalize_letters(f"{ARABIC_KAF}{ARABIC_YEH}{ALEF_MAKSURA}") == f"{KEHEH}{YEH}{YEH}"
    assert normalize_letters("علي كاظمي") == "علی کاظمی"
    # only the three letters named by the domain change (teh marbuta, hamza forms stay)
    assert normalize_letters("فاطمة مؤمن") == "فاطمة مؤمن"
    assert normalize_letters("۱۲") == "۱۲"  # digits are normalize_digits' job


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  علی   رضایی  ", "علی رضایی"),  # collapse and trim
        ("علی\u00a0رضایی", "علی رضایی"),  # NBSP
        ("علی\t\nرضایی\r", "علی رضایی"),  # any whitespace
        ("علی\u2003\u202fرضایی", "علی رضایی"),
        ("رضا\u200bیی\ufeff", "رضایی"),  # zero-width space and BOM removed
        ("\u200fعلی\u200e \u202bرضا\u202c", "علی رضا"),  # bidi marks removed
        (f"می{ZWNJ}خواهم", f"می{ZWNJ}خواهم"),  # ZWNJ inside a word is spelling: kept
        (f"{ZWNJ}می{ZWNJ}خواهم{ZWNJ}", f"می{ZWNJ}خواهم"),  # but trimmed at the ends
        (f"می{ZWNJ}{ZWNJ}خواهم", f"می{ZWNJ}خواهم"),  # repeated: one
        (f"علی{ZWNJ} {ZWNJ}رضا", "علی رضا"),  # next to a space: meaningless
        (f" {ZWNJ} ", ""),
        ("\ufeff", ""),
    ],
)
def test_spaces_and_invisible_characters(raw, expected):
    assert normalize_letters(raw) == expected
    assert normalize_text(raw) == expected


def test_normalize_text_does_everything():
    raw = f"\ufeff  {ARABIC_KAF}د\u00a0ملی:  ۰۰۷۶٢٢৯৬۴۵{ZWNJ} "
    assert normalize_text(raw) == f"{KEHEH}د ملی: 0076229645"
    assert normalize_text(None) is None
    assert normalize_letters(None) is None


def test_normalize_text_is_idempotent():
    samples = ["  علي\u00a0كاظمي ", f"{ZWNJ}x{ZWNJ}{ZWNJ}y  z\u200b", "١٢ ٣"]
    for s in samples:
        once = normalize_text(s)
        assert normalize_text(once) == once


def test_whitespace_set_is_what_strip_removes():
    assert " " in WHITESPACE and "\u00a0" in WHITESPACE and "\t" in WHITESPACE
    assert all(c.isspace() for c in WHITESPACE)
    assert ZWNJ not in WHITESPACE and "\u200b" not in WHITESPACE


# -- dates -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1400/02/05", dt.date(2021, 4, 25)),  # domain.md
        ("1404/08/01", dt.date(2025, 10, 23)),  # Aban 1404
        ("1404-08-01", dt.date(2025, 10, 23)),
        ("1404/8/1", dt.date(2025, 10, 23)),
        (" ۱۴۰۴/۸/۳۰ ", dt.date(2025, 11, 21)),
        ("1403/12/30", dt.date(2025, 3, 20)),  # 1403 is a leap year
        ("1300/01/01", dt.date(1921, 3, 21)),
        ("1480/12/29", dt.date(2102, 3, 20)),
        ("1403/07/31", None),  # month 7 has 30 days
        ("1404/12/30", None),  # 1404 is not a leap year
        ("1404/13/01", None),
        ("1404/00/10", None),
        ("1404/01/00", None),
        ("1404/01-01", None),  # mixed separators
        ("1404/001/01", None),
        ("04/08/01", None),
        ("1299/12/29", None),  # outside the calendar table
        ("1481/01/01", None),
        ("", None),
        ("not a date", None),
        (None, None),
    ],
)
def test_jalali_to_date(raw, expected):
    assert jalali_to_date(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-10-23", dt.date(2025, 10, 23)),
        ("2025/10/23", dt.date(2025, 10, 23)),
        ("2025-1-3", dt.date(2025, 1, 3)),
        ("২০২৪-০২-২৯", dt.date(2024, 2, 29)),
        ("2025-02-29", None),
        ("1900-02-29", None),
        ("2000-02-29", dt.date(2000, 2, 29)),
        ("2025-13-01", None),
        ("0000-01-01", None),
        ("10/23/2025", None),  # day-first/month-first forms are ambiguous: refused
        ("20251023", None),
        ("today", None),
        (None, None),
    ],
)
def test_gregorian_to_date(raw, expected):
    assert gregorian_to_date(raw) == expected


# -- domain.md's identifier examples -------------------------------------------------------------
@pytest.mark.parametrize("value", ["0076229645", "1583250689", "0011537027", "11537027", " 0076229645 "])
def test_valid_person_ids(value):
    assert is_valid_person_id(value)


@pytest.mark.parametrize(
    "value", ["9999999999", "0000000000", "0076229646", "00076229645", "", "abc", "۰۰۷۶۲۲۹۶۴۵", None]
)
def test_invalid_person_ids(value):
    assert not is_valid_person_id(value)


def test_persian_digit_ids_are_valid_after_conversion():
    assert is_valid_person_id(normalize_digits("۰۰۷۶۲۲۹۶۴۵"))


def test_legal_entity_ids():
    assert is_valid_legal_entity_id("10380284790")
    assert not is_valid_legal_entity_id("10380284791")
    assert not is_valid_legal_entity_id("1038028479")
    assert not is_valid_legal_entity_id("10300000090")  # digits 3..8 all zero
    assert not is_valid_legal_entity_id(None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("+98 21 5555", "'+98 21 5555"),
        ("-2+3+cmd|' /C notepad'!A0", "'-2+3+cmd|' /C notepad'!A0"),
        ("@SUM(1+9)", "'@SUM(1+9)"),
        ("نانوایی = سنگک", "نانوایی = سنگک"),  # only a formula's first character counts
        ("a-b@c", "a-b@c"),
        ("", ""),
        (None, None),
    ],
)
def test_spreadsheet_formulas_get_a_leading_apostrophe(raw, expected):
    assert spreadsheet_safe(raw) == expected


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("@SUM(1+9)", "'@SUM(1+9)"),
        ("+x", "'+x"),
        ("-2+3+cmd", "'-2+3+cmd"),
        ("-5", "-5"),  # a number stays a number
        ("+1.5", "+1.5"),
        ("-", "'-"),
        ("plain", "plain"),
        (12, 12),
        (None, None),
    ],
)
def test_a_cell_written_for_a_spreadsheet_never_runs_as_a_formula(cell, written):
    """Issue 16.10: neutralised where anbar writes files for spreadsheets, not in storage."""
    from anbar.normalize import spreadsheet_cell

    assert spreadsheet_cell(cell) == written


def test_findings_csv_is_safe_to_open_in_a_spreadsheet():
    from anbar.feedback import findings_csv

    text = findings_csv([("part-001.csv", 3, "quality", '=HYPERLINK("x")', "blocking")])
    assert text.splitlines()[1] == 'part-001.csv,3,quality,"\'=HYPERLINK(""x"")",blocking'
