"""Check digits and periods from the domain primer."""

from __future__ import annotations

import datetime as dt

import pytest

from anbar.ids import is_valid_legal_entity_id, is_valid_person_id, make_legal_entity_id, make_person_id
from anbar.periods import Period, last_complete_periods


@pytest.mark.parametrize("value", ["0076229645", "1583250689", "0011537027", "11537027"])
def test_valid_person_ids(value):
    assert is_valid_person_id(value)


@pytest.mark.parametrize("value", ["9999999999", "0076229646", "", "abc", "12345678901", "۰۰۷۶۲۲۹۶۴۵", None])
def test_invalid_person_ids(value):
    assert not is_valid_person_id(value)


def test_legal_entity_ids():
    assert is_valid_legal_entity_id("10380284790")
    assert not is_valid_legal_entity_id("10380284791")
    assert not is_valid_legal_entity_id("10300000090")  # digits 3..8 all zero


def test_generated_ids_are_valid():
    assert all(is_valid_person_id(make_person_id(i * 7919)) for i in range(2000))
    assert all(is_valid_legal_entity_id(make_legal_entity_id(i * 104729)) for i in range(2000))


def test_jalali_period_bounds_and_due_date():
    aban = Period.parse("1404-08", "jalali")
    assert (aban.start, aban.end) == (dt.date(2025, 10, 23), dt.date(2025, 11, 22))
    assert aban.due_date(15) == dt.date(2025, 12, 6)
    assert aban.previous().label == "1404-07" and Period.parse("1404-12", "jalali").next().label == "1405-01"


def test_gregorian_periods_and_the_last_complete_ones():
    assert [p.label for p in last_complete_periods(dt.date(2026, 1, 5), "gregorian", 3)] == [
        "2025-10",
        "2025-11",
        "2025-12",
    ]
    assert [p.label for p in last_complete_periods(dt.date(2025, 11, 21), "jalali", 2)] == ["1404-06", "1404-07"]


@pytest.mark.parametrize(
    ("label", "calendar"),
    [("2025-10", "jalali"), ("1404-08", "gregorian"), ("1404-13", "jalali"), ("1404/08", "jalali")],
)
def test_bad_period_labels(label, calendar):
    with pytest.raises(ValueError):
        Period.parse(label, calendar)


def test_jalali_quarters_and_years_tile_the_months():
    summer = Period.parse("1405-Q2", "jalali")  # Tir, Mordad, Shahrivar 1405
    assert (summer.start, summer.end) == (
        Period.parse("1405-04", "jalali").start,
        Period.parse("1405-07", "jalali").start,
    )
    assert summer.frequency == "quarterly" and summer.last_month.label == "1405-06"
    assert [summer.previous().label, summer.next().label] == ["1405-Q1", "1405-Q3"]
    assert Period.parse("1405-Q4", "jalali").next().label == "1406-Q1"
    year = Period.parse("1404", "jalali")
    assert (year.start, year.end) == (dt.date(2025, 3, 21), dt.date(2026, 3, 21))
    assert Period.containing(dt.date(2026, 9, 1), "jalali", "quarterly") == summer
    assert Period.parse("2025-Q4", "gregorian").end == dt.date(2026, 1, 1)


def test_a_month_closes_the_quarter_or_year_it_ends():
    assert Period.parse("1405-06", "jalali").ending_in("quarterly").label == "1405-Q2"
    assert Period.parse("1405-05", "jalali").ending_in("quarterly") is None
    assert Period.parse("1405-12", "jalali").ending_in("yearly").label == "1405"
    assert Period.parse("1405-09", "jalali").ending_in("yearly") is None
    assert Period.parse("1405-05", "jalali").ending_in("monthly").label == "1405-05"


@pytest.mark.parametrize(
    ("label", "frequency", "message"),
    [
        ("1405-Q5", None, "not a period label"),
        ("1405-Q2", "monthly", "is a quarterly period"),
        ("1405-07", "yearly", "is a monthly period"),
    ],
)
def test_a_label_of_another_frequency_is_refused(label, frequency, message):
    with pytest.raises(ValueError, match=message):
        Period.parse(label, "jalali", frequency)


def test_a_period_counts_in_the_month_it_closes():
    from anbar.periods import closing_month

    assert [closing_month(x) for x in ("1405-Q2", "2025-Q4", "1405", "1405-07")] == [
        "1405-06",
        "2025-12",
        "1405-12",
        "1405-07",
    ]
