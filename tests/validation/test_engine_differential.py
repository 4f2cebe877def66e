"""Differential tests of the pass's expectation evaluator (issue 14, item 4): for every expectation type
in ``anbar.engine.expectations.EVALUATED``, the same crafted rows go into a PostgreSQL table of a
bootstrapped warehouse and into DuckDB; Great Expectations 1.24 runs the expectations on PostgreSQL (as
``anbar.validation`` runs them) and :func:`anbar.engine.expectations.evaluate` on DuckDB; both must give
the same success, the same result dict (element, missing and unexpected counts, percentages, samples,
observed values — types included) and the same set of unexpected rows.

Where GX's samples come in an order PostgreSQL does not define (the rows of a hash join), only the
samples' membership among the unexpected rows is demanded. The unexpected rows come from GX itself: the
``unexpected_index_query`` of its COMPLETE format run on the server (for a compound key, whose GX query
is a cross join, from ``anbar.validation.failing_rows_sql``; for a context check, from its rows), and
their number must equal GX's own count.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from anbar.engine import duck
from anbar.engine import expectations as ev
from anbar.ids import make_legal_entity_id, make_person_id

pytestmark = pytest.mark.integration

PERIOD = (dt.date(2025, 9, 23), dt.date(2025, 10, 23))  # 1404/07/01 up to 1404/08/01
SUMMARY = {"result_format": "SUMMARY", "partial_unexpected_count": 5, "unexpected_index_column_names": ev.INDEX_COLUMNS}
COMPLETE = {**SUMMARY, "result_format": "COMPLETE", "return_unexpected_index_query": True}
_DUCK_TYPES = {"text": "VARCHAR", "integer": "INTEGER", "bigint": "BIGINT", "date": "DATE"}


@dataclass
class Table:
    """Rows of (column: PostgreSQL type) columns; ``_file`` and ``_row_no`` are added, in order."""

    columns: str
    rows: list[tuple]
    files: list[str] | None = None  # the _file of each row (default part-1.csv)

    def names(self) -> list[tuple[str, str]]:
        return [tuple(c.split()) for c in self.columns.split(",")]  # type: ignore[misc]

    def full_rows(self) -> list[tuple]:
        files = self.files or ["part-1.csv"] * len(self.rows)
        numbers: dict[str, int] = {}
        out = []
        for f, row in zip(files, self.rows, strict=True):
            numbers[f] = numbers.get(f, 0) + 1
            out.append((f, numbers[f], *row))
        return out


@dataclass
class Case:
    name: str
    table: Table
    configs: list[dict[str, Any]]
    context: dict[str, Table | None] = field(default_factory=dict)  # previous, <org>__<dataset>


def exp(exp_type: str, table: str | None = None, **kwargs: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"type": exp_type, "kwargs": kwargs}
    if table is not None:
        config["meta"] = {"table": table}
    return config


# -- crafted data ----------------------------------------------------------------------------------------

# Persian and Arabic letter forms (yeh, kaf), ZWNJ and ZWJ, leading zeros, spaces: texts that look alike.
TEXTS = [
    "علی",
    "علي",
    "کتاب",
    "كتاب",
    "می\u200cخواهم",
    "میخواهم",
    "می\u200dخواهم",
    "0012",
    "12",
    "",
    " ",
    "abc",
    None,
    "ABC",
    "a\nb",
    "\ufeffabc",
    None,
    "ZZ",
]
TEXT_TABLE = Table("v text", [(t,) for t in TEXTS])
NULLS_10 = Table(
    "v text, n integer", [("a", 1), (None, 2), ("b", None), ("c", 4), (None, 5)] + [("d", i) for i in range(5)]
)
EMPTY = Table("v text, n integer, d date, e date", [])
ALL_NULL = Table("v text, n integer, d date", [(None, None, None)] * 3)
INTEGERS = Table("n integer", [(v,) for v in (-1, 0, 1, 5, 9, 10, 11, None, 2147483647, 10, 0)])
BIG = Table(
    "b bigint", [(v,) for v in (9007199254740991, 9007199254740992, 9007199254740993, -(2**63), None, 2**63 - 1)]
)
DATES = Table(
    "d date",
    [
        (dt.date(*d),) if d else (None,)
        for d in (
            (2025, 9, 22),
            (2025, 9, 23),
            (2025, 10, 22),
            (2025, 10, 23),
            (2024, 2, 29),
            (2024, 3, 1),
            None,
            (2025, 3, 20),
            (2025, 3, 21),
        )
    ],
)
IDENTIFIERS = [
    "  0012345678 ",
    "0012345678",
    "۰۰۱۲۳۴۵۶۷۸",
    "\u2003123\u2003",
    "\u00a0123",
    "\x0b123",
    "12345678901",
    "1.2e+09",
    "",
    "123\n",
    "a.b",
    "a\nb",
    "x\\y",
    "xxy",
    "xxxy",
    "AbAb",
    "کتاب",
    "كتاب",
    "خانه",
    None,
]
PERSON_IDS = [
    make_person_id(123),
    make_person_id(123).lstrip("0"),
    make_person_id(123_456_789),
    " " + make_person_id(55_555) + "\t",
    "\u00a0" + make_person_id(77),
    "\u2003" + make_person_id(78) + "\u3000",
    make_person_id(123)[:-1] + str((int(make_person_id(123)[-1]) + 1) % 10),
    "1111111111",
    "0000000000",
    "۰۰۰۰۰۰۱۲۳۶",
    "00000001236",
    "12a4567890",
    "",
    " ",
    "1236",
    None,
]
LEGAL_IDS = [
    make_legal_entity_id(1_038_028_479),
    make_legal_entity_id(12),
    " " + make_legal_entity_id(1_038_028_480) + " ",
    make_legal_entity_id(1_038_028_479)[:-1] + "9",
    "10380284790".replace("0", "1", 1),
    "12300000019",
    "1038028479",
    "۱۰۳۸۰۲۸۴۷۹۰",
    "",
    None,
]
JALALI_TEXTS = [
    "1404/07/01",
    "1404/7/1",
    "1404-07-01",
    "1404-07/01",
    "1404/07/31",
    "1404/06/31",
    "1403/12/30",
    "1404/12/30",
    "1399/12/30",
    "۱۴۰۴/۰۷/۰۱",
    "١٤٠٤/٠٧/٠١",
    " 1404/07/01 ",
    "\t1404/07/01",
    "1404/07/01\u00a0",
    "",
    "   ",
    "1299/12/29",
    "1300/01/01",
    "1480/12/29",
    "1481/01/01",
    "1404/00/10",
    "1404/13/01",
    "1404/1/001",
    "14040701",
    "1404/07/01 x",
    None,
]
GREGORIAN_TEXTS = [
    "2025-09-23",
    "2025/9/23",
    "2024-02-29",
    "2023-02-29",
    "2100-02-29",
    "2000-02-29",
    "1899-12-31",
    "0001-01-01",
    "0000-01-01",
    "9999-12-31",
    "2025-13-01",
    "۲۰۲۵-۰۹-۲۳",
    " 2025-09-23",
    "2025-9-31",
    "",
    None,
]


def _date(*parts: int) -> dt.date:
    return dt.date(*parts)


PAIRS = Table(
    "s date, e date, a integer, b integer",
    [
        (_date(2025, 1, 1), _date(2025, 2, 1), 1, 0),
        (_date(2025, 1, 1), _date(2025, 1, 1), 1, 1),
        (_date(2025, 3, 1), _date(2025, 2, 1), 0, 1),
        (None, _date(2025, 2, 1), None, 1),
        (_date(2025, 1, 1), None, 1, None),
        (None, None, None, None),
        (_date(2024, 2, 29), _date(2024, 2, 28), 5, 5),
        (_date(2024, 2, 28), _date(2024, 2, 29), 4, 5),
    ],
)
KEYS = Table(
    "k text, d date, n integer",
    [
        ("0012", _date(2025, 1, 1), 1),
        ("12", _date(2025, 1, 1), 1),
        ("0012", _date(2025, 1, 1), 2),
        ("علی", None, 3),
        ("علی", None, 3),
        (None, _date(2025, 1, 1), 4),
        (None, _date(2025, 1, 1), 4),
        (None, None, 5),
        (None, None, 5),
        ("علي", _date(2025, 1, 1), 6),
        ("abc", _date(2025, 1, 2), None),
        ("abc", _date(2025, 1, 2), None),
        ("ZZ", _date(2025, 1, 3), 7),
    ],
)
MANY_DUPLICATES = Table(
    "k text, n integer",
    [(k, i) for i, k in enumerate(["ی", "b", "a", "ی", "b", "a", "c", "c", "آ", "آ", None, None, "z", "A", "A"])],
)
NUMBERS = Table(
    "n integer, b bigint", [(v, w) for v, w in [(1, 10), (2, 7), (None, None), (4, -3), (7, 2**62), (8, 3)]]
)
THIRDS = Table("n integer", [(1,), (1,), (2,), (None,)])


def _texts(values: list[str | None], column: str = "v") -> Table:
    return Table(f"{column} text", [(v,) for v in values])


# The suites' own regular expressions (anbar.suites: identifiers as delivered, letters after conversion).
DIGITS_ONLY = "^\\s*[0-9\u06f0-\u06f9\u0660-\u0669\u09e6-\u09ef]{1,10}\\s*$"
LETTERS = "[\\u0643\\u064a\\u0649\\u200b\\u200d\\u2060\\ufeff]"
REGEXES = [
    DIGITS_ONLY,
    LETTERS,
    "^[0-9]+$",
    "^a.b$",
    "\\d{3}",
    "^\\S+$",
    "^\\D*$",
    "^(ab|Ab)+$",
    "[آ-ی]",
    "[^0-9 ]",
    "^a\\.b$",
    "\\u06a9",
    "^x{2,3}y$",
    "^x{2}y",
    "x\\\\y",
    "\\A123\\Z",
    "3$",
    "^$",
    "[\\s]",
    "[]a]",
    "b|^$",
    "(?:x)+?y",
    "\\x6b",
    "[a\\-c]",
]

PREVIOUS = Table(
    "pid text, birth date, wage bigint, days integer",
    [
        ("0012345678", _date(1980, 1, 1), 100, 30),
        ("0012345678", _date(1980, 1, 3), 100, 30),
        ("22", _date(1990, 5, 5), 200, None),
        ("علی", _date(2000, 2, 29), 300, 31),
        (None, _date(1970, 1, 1), 400, 1),
        ("33", None, 500, 2),
    ],
)
CURRENT = Table(
    "pid text, birth date, wage bigint, days integer, start date, kind text",
    [
        ("0012345678", _date(1980, 1, 2), 101, 30, _date(2025, 9, 23), "6"),
        ("12345678", _date(1980, 1, 9), 99, 30, _date(2025, 9, 22), "6"),
        ("22", _date(1990, 5, 5), 201, 31, _date(2025, 10, 22), "5"),
        ("22", _date(1990, 5, 6), 202, None, _date(2025, 10, 23), "6"),
        ("علی", _date(2000, 3, 1), None, 31, None, None),
        ("علي", _date(2000, 3, 1), 5, 1, _date(2025, 10, 1), "6"),
        (None, _date(2000, 1, 1), 7, 2, _date(2025, 10, 1), "6"),
        ("33", _date(1999, 1, 1), 8, 3, _date(2025, 10, 1), "6"),
    ],
)
PENSIONERS = Table(
    "national_id text, pension_type text, since date",
    [
        ("0012345678", "1", _date(2020, 1, 1)),
        ("22", "2", _date(2025, 10, 23)),
        ("22", "1", None),
        ("علی", None, _date(2025, 9, 23)),
        (None, "1", _date(2020, 1, 1)),
        ("33", "3", _date(2025, 9, 22)),
    ],
)


def rows_query(query: str, table: str | None = None) -> dict[str, Any]:
    """An unexpected-rows expectation (its query as the suites write them)."""
    return exp(ev.ROWS_QUERY, table, unexpected_rows_query=query)


def not_active(**conditions: str) -> dict[str, Any]:
    """A person of this delivery who is a pensioner of cspf__pensioners (``conditions``: the SQL fragments)."""
    return exp(
        ev.NOT_ACTIVE_ELSEWHERE,
        id_column="pid",
        other_dataset="cspf__pensioners",
        other_id_column="national_id",
        **conditions,
    )


def _counts(n: int, m: int) -> tuple[Table, Table]:
    return Table("x integer", [(i,) for i in range(n)]), Table("x integer", [(i,) for i in range(m)])


CASES: list[Case] = [
    # -- completeness
    Case(
        "not_null_and_mostly",
        NULLS_10,
        [
            exp(ev.NOT_NULL, column="v"),
            exp(ev.NOT_NULL, column="v", mostly=0.8),  # exactly 8 of 10 filled
            exp(ev.NOT_NULL, column="v", mostly=0.8000001),
            exp(ev.NOT_NULL, column="v", mostly=0.7999999),
            exp(ev.NOT_NULL, column="n", mostly=0.9),
            exp(ev.NOT_NULL, column="n", mostly=0),
            exp(ev.NULL, column="v"),
            exp(ev.NULL, column="v", mostly=0.2),
            exp(ev.NULL, column="v", mostly=0.2000001),
            exp(ev.NULL, column="n", mostly=0.1),
        ],
    ),
    Case(
        "a_delivery_of_two_files",
        Table(NULLS_10.columns, NULLS_10.rows * 2, files=["part-1.csv"] * 10 + ["part-2.csv"] * 10),
        [
            exp(ev.NOT_NULL, column="v"),
            exp(ev.IN_SET, column="v", value_set=["a", "b"]),
            exp(ev.UNIQUE, column="n"),
            exp(ev.COMPOUND_UNIQUE, column_list=["v", "n"]),
        ],
    ),
    Case(
        "null_checks_on_texts",
        TEXT_TABLE,
        [exp(ev.NOT_NULL, column="v"), exp(ev.NULL, column="v"), exp(ev.NULL, column="v", mostly=0.1)],
    ),
    Case(
        "empty_table",
        EMPTY,
        [
            exp(ev.NOT_NULL, column="v"),
            exp(ev.NULL, column="v"),
            exp(ev.IN_SET, column="v", value_set=["a"]),
            exp(ev.NOT_IN_SET, column="v", value_set=["a"]),
            exp(ev.BETWEEN, column="n", min_value=0),
            exp(ev.MATCH_REGEX, column="v", regex="a"),
            exp(ev.NOT_MATCH_REGEX, column="v", regex="a"),
            exp(ev.UNIQUE, column="v"),
            exp(ev.COMPOUND_UNIQUE, column_list=["v", "n"]),
            exp(ev.A_GREATER_THAN_B, column_A="e", column_B="d"),
            exp(ev.MEDIAN, column="n", min_value=0),
            exp(ev.MEAN, column="n", min_value=0),
            exp(ev.MIN, column="d", min_value="2025-01-01"),
            exp(ev.MAX, column="n", max_value=3),
            exp(ev.SUM, column="n", min_value=0),
            exp(ev.ROW_COUNT_BETWEEN, min_value=0),
            exp(ev.ROW_COUNT_BETWEEN, min_value=0, strict_min=True),
            exp(ev.ROW_COUNT_EQUAL, value=0),
            exp(ev.VALID_PERSON_ID, column="v"),
            exp(ev.VALID_LEGAL_ENTITY_ID, column="v"),
            exp(ev.VALID_CALENDAR_DATE, "raw", column="v", calendar="jalali"),
            exp(ev.IN_CODE_LIST, column="v", code_list="sex"),
        ],
    ),
    Case(
        "all_null_column",
        ALL_NULL,
        [
            exp(ev.NOT_NULL, column="v"),
            exp(ev.IN_SET, column="v", value_set=["a"]),
            exp(ev.UNIQUE, column="v"),
            exp(ev.MEDIAN, column="n", max_value=1),
            exp(ev.MEAN, column="n", max_value=1),
            exp(ev.SUM, column="n", max_value=1),
            exp(ev.MIN, column="d", max_value="2025-01-01"),
            exp(ev.VALID_PERSON_ID, column="v"),
        ],
    ),
    # -- sets
    Case(
        "in_set_unicode_texts",
        TEXT_TABLE,
        [
            exp(ev.IN_SET, column="v", value_set=["علی", "کتاب", "0012", "میخواهم", "", "abc"]),
            exp(ev.IN_SET, column="v", value_set=["علی", None, "12"]),
            exp(ev.IN_SET, column="v", value_set=["علی", "کتاب", "0012", "میخواهم", "", "abc"], mostly=0.5),
            exp(ev.IN_SET, column="v", value_set=[f"x{i}" for i in range(30)] + ["علي", "a\nb"]),
            exp(ev.NOT_IN_SET, column="v", value_set=["علي", "كتاب", "12", " "]),
            exp(ev.NOT_IN_SET, column="v", value_set=["علي", None]),
            exp(ev.NOT_IN_SET, column="v", value_set=[f"x{i}" for i in range(30)] + ["ZZ", "a\nb"]),
        ],
    ),
    Case(
        "in_set_numbers_and_dates",
        Table(
            "n integer, b bigint, d date",
            [(1, 5_000_000_000, _date(2024, 2, 29)), (2, 1, _date(2025, 9, 23)), (None, None, None), (3, -1, None)],
        ),
        [
            exp(ev.IN_SET, column="n", value_set=[1, 3, 5_000_000_000]),
            exp(ev.IN_SET, column="b", value_set=[5_000_000_000, -1]),
            exp(ev.NOT_IN_SET, column="n", value_set=[2]),
            exp(ev.IN_SET, column="d", value_set=["2024-02-29"]),
            exp(ev.NOT_IN_SET, column="d", value_set=["2025-09-23", "2025-09-24"]),
        ],
    ),
    # -- ranges
    Case(
        "between_integers_strict_and_not",
        INTEGERS,
        [
            exp(ev.BETWEEN, column="n", min_value=0, max_value=10),
            exp(ev.BETWEEN, column="n", min_value=0, max_value=10, strict_min=True),
            exp(ev.BETWEEN, column="n", min_value=0, max_value=10, strict_max=True),
            exp(ev.BETWEEN, column="n", min_value=0, max_value=10, strict_min=True, strict_max=True),
            exp(ev.BETWEEN, column="n", min_value=0),
            exp(ev.BETWEEN, column="n", max_value=10, strict_max=True),
            exp(ev.BETWEEN, column="n", min_value=0.5, max_value=9.5),
            exp(ev.BETWEEN, column="n", min_value=-1, max_value=2147483647, mostly=1),
            exp(ev.BETWEEN, column="n", min_value=0, max_value=10, mostly=0.7),
            exp(ev.BETWEEN, column="n", min_value=0, max_value=10, mostly=0.8),
            exp(ev.BETWEEN, column="n", min_value=1e-05, max_value=1e20),
        ],
    ),
    Case(
        "between_bigints_beyond_float_precision",
        BIG,
        [
            exp(ev.BETWEEN, column="b", max_value=9007199254740993),
            exp(ev.BETWEEN, column="b", min_value=9007199254740992, strict_min=True),
            exp(ev.BETWEEN, column="b", min_value=-9.3e18, max_value=9.3e18),
        ],
    ),
    Case(
        "between_dates_period_edges_and_leap_days",
        DATES,
        [
            exp(ev.BETWEEN, column="d", min_value="2025-09-23", max_value="2025-10-22"),
            exp(ev.BETWEEN, column="d", min_value="2025-09-23", max_value="2025-10-23", strict_max=True),
            exp(ev.BETWEEN, column="d", min_value="2024-02-29", strict_min=True),
            exp(ev.BETWEEN, column="d", max_value="2024-02-29"),
            exp(ev.BETWEEN, column="d", min_value="2025-03-21", mostly=0.5),
        ],
    ),
    # -- regular expressions
    Case(
        "match_regex_identifiers_as_delivered",
        _texts(IDENTIFIERS),
        [exp(ev.MATCH_REGEX, "raw", column="v", regex=r) for r in REGEXES]
        + [exp(ev.MATCH_REGEX, "raw", column="v", regex=DIGITS_ONLY, mostly=0.25)],
    ),
    Case(
        "not_match_regex_letters_after_conversion",
        TEXT_TABLE,
        [exp(ev.NOT_MATCH_REGEX, column="v", regex=r) for r in REGEXES],
    ),
    # -- uniqueness
    Case(
        "unique_with_null_and_lookalike_keys",
        KEYS,
        [
            exp(ev.UNIQUE, column="k"),
            exp(ev.UNIQUE, column="d"),
            exp(ev.UNIQUE, column="n"),
            exp(ev.UNIQUE, column="k", mostly=0.5),
            exp(ev.UNIQUE, column="k", mostly=0.4),
        ],
    ),
    Case(
        "unique_many_duplicates_samples_in_value_order",
        MANY_DUPLICATES,
        [exp(ev.UNIQUE, column="k"), exp(ev.UNIQUE, column="n")],
    ),
    Case(
        "compound_unique_with_nulls",
        KEYS,
        [
            exp(ev.COMPOUND_UNIQUE, column_list=["k", "d"]),
            exp(ev.COMPOUND_UNIQUE, column_list=["k", "d", "n"]),
            exp(ev.COMPOUND_UNIQUE, column_list=["k", "d"], ignore_row_if="any_value_is_missing"),
            exp(ev.COMPOUND_UNIQUE, column_list=["k", "d"], ignore_row_if="never"),
            exp(ev.COMPOUND_UNIQUE, column_list=["d", "n"], mostly=0.5),
        ],
    ),
    Case(
        "compound_unique_many_duplicates",
        Table("k text, n integer", [("a", 1)] * 4 + [("b", 2)] * 3 + [(None, 1)] * 2),
        [exp(ev.COMPOUND_UNIQUE, column_list=["k", "n"])],
    ),
    # -- pairs
    Case(
        "a_greater_than_b_nulls_and_or_equal",
        PAIRS,
        [
            exp(ev.A_GREATER_THAN_B, column_A=a, column_B=b, or_equal=or_equal, ignore_row_if=ignore)
            for a, b in (("e", "s"), ("a", "b"))
            for or_equal in (False, True)
            for ignore in ("both_values_are_missing", "either_value_is_missing", "neither")
        ]
        + [exp(ev.A_GREATER_THAN_B, column_A="e", column_B="s", mostly=0.6)],
    ),
    # -- statistics
    Case(
        "median_mean_min_max_sum",
        NUMBERS,
        [
            exp(ev.MEDIAN, column="n", min_value=4),  # 1 2 4 7 8: odd, 4
            exp(ev.MEDIAN, column="n", min_value=4, strict_min=True),
            exp(ev.MEDIAN, column="b", max_value=5),  # -3 2 3 7 10 2^62: even
            exp(ev.MEDIAN, column="b", min_value=5, max_value=5),
            exp(ev.MEAN, column="n", min_value=4.4, max_value=4.4),
            exp(ev.MEAN, column="b", min_value=0),
            exp(ev.MIN, column="n", min_value=1),
            exp(ev.MIN, column="n", min_value=1, strict_min=True),
            exp(ev.MAX, column="b", max_value=2**62),
            exp(ev.SUM, column="n", min_value=22, max_value=22),
            exp(ev.SUM, column="b", min_value=0),
        ],
    ),
    Case(
        "median_even_and_mean_repeating",
        THIRDS,
        [
            exp(ev.MEDIAN, column="n", max_value=1),  # 1 1 2: odd
            exp(ev.MEAN, column="n", min_value=1.3333333333333333),
            exp(ev.MEAN, column="n", max_value=1.3333333333333333, strict_max=True),
        ],
    ),
    Case(
        "median_of_two",
        Table("n integer", [(2,), (3,)]),
        [exp(ev.MEDIAN, column="n", min_value=2.5, max_value=2.5)],
    ),
    Case(
        "min_max_dates",
        DATES,
        [
            exp(ev.MIN, column="d", min_value="2024-02-29"),
            exp(ev.MIN, column="d", min_value="2024-02-29", strict_min=True),
            exp(ev.MAX, column="d", max_value="2025-10-23", strict_max=True),
            exp(ev.MAX, column="d", min_value="2025-10-23"),
        ],
    ),
    Case(
        "row_counts",
        INTEGERS,
        [
            exp(ev.ROW_COUNT_BETWEEN, min_value=11, max_value=11),
            exp(ev.ROW_COUNT_BETWEEN, min_value=11, strict_min=True),
            exp(ev.ROW_COUNT_BETWEEN, max_value=11, strict_max=True),
            exp(ev.ROW_COUNT_BETWEEN, max_value=20),
            exp(ev.ROW_COUNT_EQUAL, value=11),
            exp(ev.ROW_COUNT_EQUAL, value=10),
        ],
    ),
    # -- anbar's own column-map expectations
    Case(
        "valid_person_ids_leading_zeros_spaces_digits",
        _texts(PERSON_IDS),
        [exp(ev.VALID_PERSON_ID, column="v"), exp(ev.VALID_PERSON_ID, column="v", mostly=0.25)],
    ),
    Case(
        "valid_legal_entity_ids",
        _texts(LEGAL_IDS),
        [exp(ev.VALID_LEGAL_ENTITY_ID, column="v"), exp(ev.VALID_LEGAL_ENTITY_ID, column="v", mostly=0.3)],
    ),
    Case(
        "valid_jalali_dates_as_delivered",
        _texts(JALALI_TEXTS),
        [
            exp(ev.VALID_CALENDAR_DATE, "raw", column="v", calendar="jalali"),
            exp(ev.VALID_CALENDAR_DATE, "raw", column="v", calendar="jalali", mostly=0.6),
        ],
    ),
    Case(
        "valid_gregorian_dates_as_delivered",
        _texts(GREGORIAN_TEXTS),
        [exp(ev.VALID_CALENDAR_DATE, "raw", column="v", calendar="gregorian")],
    ),
    Case(
        "in_code_list",
        Table(
            "v text, n integer",
            [
                (v, n)
                for v, n in zip(
                    ["1", "2", "01", " 1", "۱", "", "3", None, "00", "31"],
                    [1, 2, 3, None, 0, 1, 2, 3, 4, 5],
                    strict=True,
                )
            ],
        ),
        [
            exp(ev.IN_CODE_LIST, column="v", code_list="sex"),
            exp(ev.IN_CODE_LIST, column="v", code_list="province"),
            exp(ev.IN_CODE_LIST, column="n", code_list="sex"),
            exp(ev.IN_CODE_LIST, column="v", code_list="sex", mostly=0.2),
            exp(ev.IN_CODE_LIST, column="v", code_list="no_such_list"),
        ],
    ),
    # -- context expectations
    Case(
        "persons_no_younger_than_previous_period",
        CURRENT,
        [exp(ev.NO_YOUNGER, id_column="pid", birth_date_column="birth")],
        {"previous": PREVIOUS},
    ),
    Case(
        "persons_not_active_elsewhere",
        CURRENT,
        [
            not_active(),
            not_active(row_condition_sql="b.start >= {period_start} and b.start < {period_end}"),
            not_active(
                row_condition_sql="b.kind = '6'",
                other_condition_sql="o.pension_type in ('1', '2') and (since is null or since < {period_end})",
            ),
            not_active(
                row_condition_sql="not (b.days between 1 and 30) or b.start = date '2025-10-22' or kind is null",
                other_condition_sql="pension_type <> '3' and o.since >= '2025-09-23'",
            ),
        ],
        {"cspf__pensioners": PENSIONERS},
    ),
    Case(
        "rows_queries_of_the_suites",
        Table(
            "birth_date date, employment_start date, days integer, sex text",
            [
                (_date(2008, 2, 29), _date(2023, 2, 28), 30, "1"),
                (_date(2008, 2, 29), _date(2023, 3, 1), 31, "2"),
                (_date(2010, 10, 22), _date(2025, 10, 22), 0, None),
                (_date(2010, 10, 23), _date(2025, 10, 22), 31, "1"),
                (_date(2025, 10, 23), _date(2025, 10, 23), None, "3"),
                (_date(2025, 10, 22), None, 15, "۱"),
                (None, _date(2026, 1, 1), 1, "1"),
                (_date(1960, 1, 31), _date(1960, 2, 29), 29, "2"),
            ],
        ),
        [
            rows_query("select _file, _row_no, birth_date from {batch} where birth_date >= {period_end}"),
            rows_query("select _file, _row_no, employment_start from {batch} where employment_start >= {period_end};"),
            rows_query(
                "select _file, _row_no, birth_date, employment_start from {batch} where employment_start >= birth_date "
                "and employment_start < birth_date + interval '15 years'"
            ),
            rows_query(
                "SELECT _row_no, _file FROM {batch} WHERE employment_start - interval '1 month' < birth_date "
                "or days not between 1 and 30 or sex in ('3', '۱')"
            ),
            rows_query("select _file, _row_no, sex from {batch} where sex <> '1' and birth_date < date '2025-01-01'"),
            rows_query("select _file, _row_no from {batch} where days is null or days > 30", table="raw"),
        ],
    ),
    Case(
        "rows_queries_with_left_and_conditions_compared",
        Table(
            "province text, county text, support_type text, monthly_amount bigint",
            [
                ("01", "0101", "1", 100),
                ("01", "0201", "3", None),
                ("02", "2", "2", 5),
                ("۰۲", "۰۲۰۱", "6", None),
                (None, "0101", "5", 0),
                ("01", None, None, None),
                ("", "", None, 7),
                ("عل", "علی", "6", 1),
            ],
        ),
        [
            rows_query("select _file, _row_no, province, county from {batch} where left(county, 2) <> province"),
            rows_query(
                "select _file, _row_no, support_type, monthly_amount from {batch} "
                "where (support_type in ('1', '3', '5', '6')) <> (monthly_amount is not null)"
            ),
            rows_query("select _file, _row_no from {batch} where (left(county, 0) = '') = (province is null)"),
        ],
    ),
    Case(
        "totals_against_previous_period",
        CURRENT,
        [
            exp(ev.ROW_COUNT_VS_PREVIOUS, tolerance=0.3),
            exp(ev.ROW_COUNT_VS_PREVIOUS, tolerance=0.34),
            exp(ev.TOTAL_VS_PREVIOUS, column="wage", tolerance=0.3),
            exp(ev.TOTAL_VS_PREVIOUS, column="wage", aggregate="sum", tolerance=0.6),
            exp(ev.TOTAL_VS_PREVIOUS, column="days", aggregate="sum", tolerance=0),
            exp(ev.TOTAL_VS_PREVIOUS, column="pid", aggregate="count_distinct", tolerance=0.1),
            exp(ev.TOTAL_VS_PREVIOUS, column="birth", aggregate="count_distinct", tolerance=1e-05),
        ],
        {"previous": PREVIOUS},
    ),
]
# Row counts against the previous period at and around the tolerance, nil returns, percentages to round.
for current, previous, tolerances in [
    (13, 10, (0.3, 0.29)),
    (7, 10, (0.3, 0.31)),
    (0, 10, (0,)),
    (10, 0, (0,)),
    (1, 3, (0.5, 0.66)),
    (2, 3, (0.1,)),
    (1000, 999, (0, 0.001)),
    (11, 8, (0,)),
]:
    current_table, previous_table = _counts(current, previous)
    CASES.append(
        Case(
            f"row_count_{current}_vs_{previous}",
            current_table,
            [exp(ev.ROW_COUNT_VS_PREVIOUS, tolerance=t) for t in tolerances]
            + [exp(ev.TOTAL_VS_PREVIOUS, column="x", tolerance=t) for t in tolerances],
            {"previous": previous_table},
        )
    )


def test_every_evaluated_type_has_a_differential_case():
    covered = {config["type"] for case in CASES for config in case.configs}
    assert covered == set(ev.EVALUATED)


# -- running both --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def duck_con(tmp_path_factory, registry):
    con = duck.connect(tmp_path_factory.mktemp("spill"), registry=registry, threads=1, lookups=True)
    yield con
    con.close()


@pytest.fixture(scope="module")
def gx_datasource(warehouse):
    """One ephemeral GX context and PostgreSQL datasource on the warehouse database (as anbar.validation)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    import anbar.gx_custom  # noqa: F401  (registers anbar's expectations with GX)

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    datasource = context.data_sources.add_postgres(name="differential", connection_string=warehouse.url)
    yield gx, datasource
    datasource.get_execution_engine().close()


def _create(pg_cur, con, name: str, table: Table) -> None:
    from psycopg2.extras import execute_values

    columns = table.names()
    pg_cur.execute(
        f'create table "{name}" (_file text, _row_no integer, ' + ", ".join(f"{c} {t}" for c, t in columns) + ")"
    )
    rows = table.full_rows()
    if rows:
        execute_values(pg_cur, f'insert into "{name}" values %s', rows)
    con.execute(
        f'create table "{name}" (_file VARCHAR, _row_no INTEGER, '
        + ", ".join(f"{c} {_DUCK_TYPES[t]}" for c, t in columns)
        + ")"
    )
    if rows:
        con.executemany(f'insert into "{name}" values ({", ".join("?" * (len(columns) + 2))})', rows)


def _gx_config(config: dict[str, Any], tables: dict[str, str]) -> dict[str, Any]:
    """The config GX runs: a context check's query written and its placeholders filled (anbar.validation)."""
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    from anbar import gx_custom

    out = {**config, "kwargs": dict(config["kwargs"])}
    if config["type"] in gx_custom.CONTEXT_TYPES:
        query = ExpectationConfiguration(type=config["type"], kwargs=config["kwargs"]).to_domain_obj()
        out["kwargs"]["unexpected_rows_query"] = gx_custom.resolve_query(query.unexpected_rows_query, tables)
    elif config["type"] == ev.ROWS_QUERY:
        out["kwargs"]["unexpected_rows_query"] = gx_custom.resolve_query(
            config["kwargs"]["unexpected_rows_query"], tables
        )
    return out


def _run_gx(gx_datasource, name: str, configs: list[dict[str, Any]], result_format: dict) -> dict[str, Any]:
    gx, datasource = gx_datasource
    asset = datasource.add_table_asset(name=name, table_name=name)
    batch = asset.add_batch_definition_whole_table("whole").get_batch()
    suite = gx.ExpectationSuite(name=f"{name}-{result_format['result_format']}", expectations=configs)
    results = batch.validate(suite, result_format=result_format).results
    datasource.delete_asset(name)
    return {r.expectation_config.id: r for r in results}


def _typed(value: Any) -> Any:
    """A value with the type of every part spelt out, so 3 and 3.0, or a tuple and a list, differ."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_typed(v) for v in value])
    return (type(value).__name__, value)


def _row_set(rows) -> set[tuple[str, int]]:
    return {(r[0], r[1]) for r in rows}


def _pg_rows(pg_cur, sql: str) -> set[tuple[str, int]]:
    pg_cur.execute(sql)
    return _row_set(pg_cur.fetchall())


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_pass_agrees_with_great_expectations_on_postgresql(case: Case, warehouse, duck_con, gx_datasource):
    from anbar.validation import failing_rows_sql

    stem = f"diff_{uuid.uuid4().hex[:8]}"
    names = {"batch": stem, **{role: f"{stem}_{role}" for role in case.context}}
    conn = warehouse.connect()
    try:
        with conn.cursor() as cur:
            _create(cur, duck_con, stem, case.table)
            for role, table in case.context.items():
                if table is not None:
                    _create(cur, duck_con, names[role], table)
        conn.commit()
        configs = [{**c, "id": str(uuid.uuid4())} for c in case.configs]
        placeholders = {
            **{role: f'"{names[role]}"' for role, t in case.context.items() if t is not None},
            "period_start": f"date '{PERIOD[0].isoformat()}'",
            "period_end": f"date '{PERIOD[1].isoformat()}'",
        }
        gx_configs = [_gx_config(c, placeholders) for c in configs]
        summary = _run_gx(gx_datasource, stem, gx_configs, SUMMARY)
        complete = _run_gx(gx_datasource, stem, gx_configs, COMPLETE)

        relations = ev.Relations(
            clean=f'"{stem}"',
            raw=f'"{stem}"',
            context={role: (f'"{names[role]}"' if t is not None else None) for role, t in case.context.items()},
            period_start=PERIOD[0],
            period_end=PERIOD[1],
        )
        for config in configs:
            assert ev.evaluable(config, ev.relation_schema(duck_con, relations)), ev.why_not_evaluable(config)
        mine = ev.evaluate(duck_con, configs, relations)
        # The day-spelling tables of a large delivery only make it faster: the same results with them.
        with_lookups = ev.evaluate(duck_con, configs, dataclasses.replace(relations, lookups=True))
        assert [(e.success, e.result, e.failing_rows is None) for e in with_lookups] == [
            (e.success, e.result, e.failing_rows is None) for e in mine
        ]

        with conn.cursor() as cur:
            for config, evaluation in zip(configs, mine, strict=True):
                gx_summary, gx_complete = summary[config["id"]], complete[config["id"]]
                where = f"{config['type']} {config['kwargs']}"
                assert not _raised(gx_summary.exception_info), (where, gx_summary.exception_info)
                is_context = config["type"] in ev.ROW_QUERY_TYPES
                # GX runs the context checks with COMPLETE (anbar.validation), the rest with SUMMARY.
                gx_result = gx_complete if is_context else gx_summary
                assert evaluation.success == gx_result.success, (where, gx_result.result, evaluation.result)
                assert evaluation.exception_info == gx_result.exception_info, where
                expected, actual = dict(gx_result.result), dict(evaluation.result)
                _compare_samples(config, expected, actual, where)
                assert _typed(actual) == _typed(expected), (where, expected, actual)

                oracle = _oracle_rows(cur, config, gx_complete, f'"{stem}"', failing_rows_sql)
                if oracle is None:
                    assert evaluation.failing_rows is None, where
                    continue
                assert evaluation.failing_rows is not None, where
                assert _row_set(duck_con.execute(evaluation.failing_rows).fetchall()) == oracle, where
    finally:
        conn.rollback()
        with conn.cursor() as cur:
            for name in names.values():
                cur.execute(f'drop table if exists "{name}"')
                duck_con.execute(f'drop table if exists "{name}"')
        conn.commit()
        conn.close()


def _as_sql(gx_query: str) -> str:
    """GX's unexpected_index_query with the Python it writes for some parameters (``repr``) read as SQL."""
    query = re.sub(r"datetime\.date\(([0-9]+), ([0-9]+), ([0-9]+)\)", r"make_date(\1, \2, \3)", gx_query)
    return re.sub(r"\bNone\b", "NULL", query)


def _raised(exception_info: dict[str, Any]) -> bool:
    """Whether GX recorded an exception (one for the expectation, or one per metric that failed)."""
    infos = [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    return any(i.get("raised_exception") for i in infos)


def _oracle_rows(cur, config, gx_complete, table: str, failing_rows_sql) -> set[tuple[str, int]] | None:
    """Every row GX finds unexpected (None for a finding about the table), checked against GX's count."""
    result = gx_complete.result
    if config["type"] in ev.ROW_QUERY_TYPES:
        rows = result["details"]["unexpected_rows"]
        if config["type"] in (ev.ROW_COUNT_VS_PREVIOUS, ev.TOTAL_VS_PREVIOUS):
            return None
        assert len(rows) == result["observed_value"]
        return {(r["_file"], r["_row_no"]) for r in rows}
    if "unexpected_index_query" not in result and "element_count" not in result:
        return None  # aggregate and table checks
    if config["type"] == ev.COMPOUND_UNIQUE:
        # GX's own query for a compound key is a cross join: anbar's names the rows, their number is GX's.
        rows = _pg_rows(cur, failing_rows_sql(config, table))
    else:
        rows = _pg_rows(cur, _as_sql(result["unexpected_index_query"]))
    assert len(rows) == (result["unexpected_count"] or 0), (config, rows)
    return rows


def _compare_samples(config: dict[str, Any], expected: dict[str, Any], actual: dict[str, Any], where: str) -> None:
    """Samples PostgreSQL returns in no defined order (the rows of a hash join) are checked for membership,
    then taken out of the exact comparison; every other sample must be the same rows in the same order."""
    if config["type"] in ev.ROW_QUERY_TYPES:
        rows_of = lambda r: sorted(map(repr, r["details"]["unexpected_rows"]))  # noqa: E731
        assert rows_of(actual) == rows_of(expected), where
        actual["details"] = expected["details"]
        return
    if config["type"] == ev.UNIQUE and expected.get("partial_unexpected_index_list"):
        # The join back to the duplicated values: any five of their rows.
        mine = actual["partial_unexpected_index_list"]
        assert len(mine) == len(expected["partial_unexpected_index_list"]), where
        duplicated = set(actual["partial_unexpected_list"]) | {
            r[config["kwargs"]["column"]] for r in expected["partial_unexpected_index_list"]
        }
        assert all(r[config["kwargs"]["column"]] in duplicated for r in mine), where
        actual["partial_unexpected_index_list"] = expected["partial_unexpected_index_list"]
    if config["type"] == ev.COMPOUND_UNIQUE and (expected["unexpected_count"] or 0) > 5:
        # Five of the duplicated combinations, from a hash join: any five.
        assert len(actual["partial_unexpected_list"]) == len(expected["partial_unexpected_list"]), where
        actual["partial_unexpected_list"] = expected["partial_unexpected_list"]
        actual["partial_unexpected_counts"] = expected["partial_unexpected_counts"]
    elif config["type"] == ev.COMPOUND_UNIQUE:
        # All of them: the same combinations, in some order.
        assert sorted(map(repr, actual["partial_unexpected_list"])) == sorted(
            map(repr, expected["partial_unexpected_list"])
        ), where
        actual["partial_unexpected_list"] = expected["partial_unexpected_list"]


def test_numeric_division_as_postgresql(warehouse):
    """PostgreSQL's numeric division and rounding (the change percentages, avg) over awkward operands."""
    pairs = [
        ("100.0", "3"),
        ("1.0", "3"),
        ("-100.0", "7"),
        ("12.5", "8"),
        ("0.0", "9"),
        ("100000000000000000000.0", "3"),
        ("1.0", "123456789012345678901234567890"),
        ("300.0", "299"),
        ("123456789012.0", "10000"),
        ("5.0", "0.1"),
        ("99999.0", "9999"),
        ("100.0", "9999"),
        ("100.0", "10000"),
        ("100.0", "10001"),
        ("-0.5", "1"),
        ("4.5", "1"),
    ]
    conn = warehouse.connect()
    try:
        with conn.cursor() as cur:
            for a, b in pairs:
                cur.execute("select %s::numeric / %s::numeric, round(%s::numeric / %s::numeric, 1)", (a, b, a, b))
                quotient, rounded = cur.fetchone()
                mine = ev.pg_numeric_div(decimal.Decimal(a), decimal.Decimal(b))
                assert str(mine) == str(quotient), (a, b)
                assert str(ev.pg_round(mine, 1)) == str(rounded), (a, b)
    finally:
        conn.close()


@pytest.mark.parametrize(("escape", "members"), [("\\s", ev.PG_SPACE), ("\\d", ev.PG_DIGIT)])
def test_regex_class_escapes_are_the_servers(warehouse, escape, members):
    """PostgreSQL's \\s and \\d in the warehouse's locale are exactly the characters the translation spells out
    (asked of the server for every code point)."""
    conn = warehouse.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select array_agg(c order by c) from generate_series(1, 1114111) c "
                "where (c < 55296 or c > 57343) and chr(c) ~ %s",
                (f"^{escape}$",),
            )
            assert "".join(map(chr, cur.fetchone()[0])) == members
    finally:
        conn.close()


def test_what_gx_cannot_write_into_its_query_stays_with_gx(warehouse, duck_con, gx_datasource):
    """GX 1.24 writes each parameter into its unexpected_index_query with re.sub(..., repr(value)): a ZWNJ (or
    any character Python does not print) in a value set or a regex is a bad escape there, and GX reports
    the expectation with an exception. The pass leaves such an expectation to GX, which gives that result."""
    stem = f"diff_{uuid.uuid4().hex[:8]}"
    configs = [
        {**exp(ev.IN_SET, column="v", value_set=["می\u200cخواهم", "علی"]), "id": str(uuid.uuid4())},
        {**exp(ev.MATCH_REGEX, column="v", regex="\u200c"), "id": str(uuid.uuid4())},
    ]
    conn = warehouse.connect()
    try:
        with conn.cursor() as cur:
            _create(cur, duck_con, stem, TEXT_TABLE)
        conn.commit()
        results = _run_gx(gx_datasource, stem, configs, SUMMARY)
        schema = ev.relation_schema(duck_con, ev.Relations(clean=f'"{stem}"', raw=f'"{stem}"'))
        for config in configs:
            assert _raised(results[config["id"]].exception_info)
            assert "GX cannot render" in (ev.why_not_evaluable(config, schema) or "")
    finally:
        with conn.cursor() as cur:
            cur.execute(f'drop table if exists "{stem}"')
        conn.commit()
        conn.close()
        duck_con.execute(f'drop table if exists "{stem}"')
