"""Reporting periods in the organisation's calendar.

A period label is written in the supplier's calendar:

- a month, ``1404-08`` (Aban 1404, 2025-10-23 .. 2025-11-21) or ``2025-10`` (October 2025), the default;
- a quarter, ``1404-Q3`` (Mehr to Azar 1404) or ``2025-Q4``, for a dataset the committee approved
  quarterly;
- a year, ``1404`` or ``2025``, for a yearly dataset.

Bounds are Gregorian dates, ``start`` inclusive and ``end`` exclusive, so intervals tile without gaps.
Every period is a run of whole months of its calendar, so the monthly machinery (the Jalali timetable,
one ingest run a month) finds a quarter or a year in the month it ends with (:meth:`Period.ending_in`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import total_ordering

import jdatetime

from anbar.registry import Calendar

MONTH_LABEL = re.compile(r"^(\d{4})-(\d{2})$")
QUARTER_LABEL = re.compile(r"^(\d{4})-Q([1-4])$")
YEAR_LABEL = re.compile(r"^(\d{4})$")


class Frequency(StrEnum):
    """How often a dataset is delivered (the registry's ``period``), by the months a period spans."""

    monthly = "monthly"
    quarterly = "quarterly"
    yearly = "yearly"

    @property
    def months(self) -> int:
        return {"monthly": 1, "quarterly": 3, "yearly": 12}[self.value]

    @property
    def example(self) -> str:
        return {"monthly": "1404-08", "quarterly": "1404-Q3", "yearly": "1404"}[self.value]


def _frequency_of(months: int) -> Frequency:
    return {1: Frequency.monthly, 3: Frequency.quarterly, 12: Frequency.yearly}[months]


@total_ordering
@dataclass(frozen=True)
class Period:
    calendar: Calendar
    year: int
    month: int  # the first month of the period
    months: int = 1  # 1, 3 or 12

    def __post_init__(self) -> None:
        if self.months not in (1, 3, 12):
            raise ValueError(f"a period spans 1, 3 or 12 months, not {self.months}")
        if not 1 <= self.month <= 12:
            raise ValueError(f"month out of range in period {self.year}-{self.month:02d}")
        if (self.month - 1) % self.months:
            raise ValueError(f"a {self.frequency.value} period cannot start in month {self.month}")

    @classmethod
    def parse(cls, label: str, calendar: Calendar | str, frequency: Frequency | str | None = None) -> Period:
        """A period from its label; with ``frequency``, a label of another frequency is refused."""
        cal = Calendar(calendar)
        label = label or ""
        if m := MONTH_LABEL.match(label):
            year, month, months = int(m.group(1)), int(m.group(2)), 1
        elif m := QUARTER_LABEL.match(label):
            year, month, months = int(m.group(1)), 3 * int(m.group(2)) - 2, 3
        elif m := YEAR_LABEL.match(label):
            year, month, months = int(m.group(1)), 1, 12
        else:
            raise ValueError(f"not a period label (YYYY-MM, YYYY-Qn or YYYY): {label!r}")
        if cal is Calendar.jalali and not 1300 <= year <= 1500:
            raise ValueError(f"{label!r} is not a Jalali year; Jalali periods look like 1404-08")
        if cal is Calendar.gregorian and not 1900 <= year <= 2200:
            raise ValueError(f"{label!r} is not a Gregorian year; Gregorian periods look like 2025-10")
        if not 1 <= month <= 12:
            raise ValueError(f"month out of range in period {label!r}")
        period = cls(cal, year, month, months)
        if frequency is not None and period.frequency is not Frequency(frequency):
            wanted = Frequency(frequency)
            raise ValueError(f"{label!r} is a {period.frequency.value} period; this dataset is {wanted.value}")
        return period

    @classmethod
    def containing(cls, day: dt.date, calendar: Calendar | str, frequency: Frequency | str = "monthly") -> Period:
        cal = Calendar(calendar)
        if cal is Calendar.jalali:
            j = jdatetime.date.fromgregorian(date=day)
            year, month = j.year, j.month
        else:
            year, month = day.year, day.month
        months = Frequency(frequency).months
        return cls(cal, year, month - (month - 1) % months, months)

    @property
    def frequency(self) -> Frequency:
        return _frequency_of(self.months)

    @property
    def label(self) -> str:
        if self.months == 3:
            return f"{self.year:04d}-Q{(self.month + 2) // 3}"
        if self.months == 12:
            return f"{self.year:04d}"
        return f"{self.year:04d}-{self.month:02d}"

    def __str__(self) -> str:
        return self.label

    def __lt__(self, other: Period) -> bool:
        return (self.calendar, self.start, self.months) < (other.calendar, other.start, other.months)

    @property
    def start(self) -> dt.date:
        if self.calendar is Calendar.jalali:
            return jdatetime.date(self.year, self.month, 1).togregorian()
        return dt.date(self.year, self.month, 1)

    @property
    def end(self) -> dt.date:
        """First day after the period (exclusive bound)."""
        return self.next().start

    def _shift(self, months: int) -> Period:
        index = self.year * 12 + self.month - 1 + months
        return Period(self.calendar, index // 12, index % 12 + 1, self.months)

    def next(self) -> Period:
        return self._shift(self.months)

    def previous(self) -> Period:
        return self._shift(-self.months)

    @property
    def last_month(self) -> Period:
        """The month the period ends with (itself for a month)."""
        return Period(self.calendar, self.year, self.month + self.months - 1)

    def ending_in(self, frequency: Frequency | str) -> Period | None:
        """The period of ``frequency`` that ends with this month (None if none does: a quarter ends
        only with months 3, 6, 9 and 12). A monthly run finds here the quarter or year it closes."""
        candidate = Period.containing(self.last_month.start, self.calendar, frequency)
        return candidate if candidate.last_month == self.last_month else None

    def due_date(self, due_day: int) -> dt.date:
        """Deliveries are due ``due_day`` days after the period ends."""
        return self.end + dt.timedelta(days=due_day - 1)

    def last_complete(self, n: int) -> list[Period]:
        """This period and the n-1 before it, oldest first."""
        out = [self]
        for _ in range(n - 1):
            out.append(out[-1].previous())
        return out[::-1]


def closing_month(label: str) -> str:
    """The month label a period label ends with, whatever its calendar: ``1405-Q2`` -> ``1405-06``,
    ``1405`` -> ``1405-12``, a month -> itself. Trends over months put a quarter in the month it closes."""
    if m := QUARTER_LABEL.match(label):
        return f"{m.group(1)}-{3 * int(m.group(2)):02d}"
    if YEAR_LABEL.match(label):
        return f"{label}-12"
    return label


def last_complete_periods(today: dt.date, calendar: Calendar | str, n: int) -> list[Period]:
    """The last ``n`` months that have ended before ``today``, oldest first."""
    return Period.containing(today, calendar).previous().last_complete(n)
