"""Reporting periods in the organisation's calendar.

A period label is written in the supplier's calendar: ``1404-08`` is Aban 1404
(2025-10-23 .. 2025-11-21), ``2025-10`` is October 2025. Bounds are Gregorian
dates, ``start`` inclusive and ``end`` exclusive, so intervals tile without gaps.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import total_ordering

import jdatetime

from anbar.registry import Calendar

LABEL = re.compile(r"^(\d{4})-(\d{2})$")


@total_ordering
@dataclass(frozen=True)
class Period:
    calendar: Calendar
    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12:
            raise ValueError(f"month out of range in period {self.year}-{self.month:02d}")

    @classmethod
    def parse(cls, label: str, calendar: Calendar | str) -> Period:
        m = LABEL.match(label or "")
        if not m:
            raise ValueError(f"not a period label (YYYY-MM): {label!r}")
        cal = Calendar(calendar)
        year, month = int(m.group(1)), int(m.group(2))
        if cal is Calendar.jalali and not 1300 <= year <= 1500:
            raise ValueError(f"{label!r} is not a Jalali year; Jalali periods look like 1404-08")
        if cal is Calendar.gregorian and not 1900 <= year <= 2200:
            raise ValueError(f"{label!r} is not a Gregorian year; Gregorian periods look like 2025-10")
        return cls(cal, year, month)

    @classmethod
    def containing(cls, day: dt.date, calendar: Calendar | str) -> Period:
        cal = Calendar(calendar)
        if cal is Calendar.jalali:
            j = jdatetime.date.fromgregorian(date=day)
            return cls(cal, j.year, j.month)
        return cls(cal, day.year, day.month)

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def __str__(self) -> str:
        return self.label

    def __lt__(self, other: Period) -> bool:
        return (self.calendar, self.year, self.month) < (other.calendar, other.year, other.month)

    @property
    def start(self) -> dt.date:
        if self.calendar is Calendar.jalali:
            return jdatetime.date(self.year, self.month, 1).togregorian()
        return dt.date(self.year, self.month, 1)

    @property
    def end(self) -> dt.date:
        """First day after the period (exclusive bound)."""
        return self.next().start

    def next(self) -> Period:
        y, m = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        return Period(self.calendar, y, m)

    def previous(self) -> Period:
        y, m = (self.year - 1, 12) if self.month == 1 else (self.year, self.month - 1)
        return Period(self.calendar, y, m)

    def due_date(self, due_day: int) -> dt.date:
        """Deliveries are due ``due_day`` days after the period ends."""
        return self.end + dt.timedelta(days=due_day - 1)

    def last_complete(self, n: int) -> list[Period]:
        """This period and the n-1 before it, oldest first."""
        out = [self]
        for _ in range(n - 1):
            out.append(out[-1].previous())
        return out[::-1]


def last_complete_periods(today: dt.date, calendar: Calendar | str, n: int) -> list[Period]:
    """The last ``n`` periods that have ended before ``today``, oldest first."""
    return Period.containing(today, calendar).previous().last_complete(n)
