"""anbar's DuckDB macros agree with the Python rules they are generated from (anbar.normalize, anbar.ids)."""

from __future__ import annotations

import datetime as dt
import random

import jdatetime
import pytest

from anbar import ids, normalize
from anbar.engine import duck

# Characters the conversion principle has a rule for, and a few it has none for.
_ALPHABET = (
    "0123456789۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩০১২৩৪৫৬৭৮৯"
    "abcAZ=+-@/'\"ابپکكیيىه"
    " \t\n\r\x0b\x0c\x1c\x1f\u00a0\u2003\u3000\u200c\u200c\u200b\ufeff\u2060\u200e\u200f\u202a\u202e\u2066\u2069"
)


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    connection = duck.connect(tmp_path_factory.mktemp("spill"), threads=1, lookups=True)
    yield connection
    connection.close()


def _random_strings(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 12))) for _ in range(n)]


def _map(con, macro: str, values: list) -> list:
    return [
        r[0]
        for r in con.execute(
            f"select {macro}(v) from unnest(?) with ordinality t(v, i) order by i", [values]
        ).fetchall()
    ]


TRICKY = [
    "",
    " ",
    "  كتاب  ي ۱۲ ",
    "می\u200cخواهم",
    "\u200c\u200cکار\u200c\u200c \u200c گاه\u200c",
    "a\u00a0\u00a0b",
    "\ufeffabc\u200b",
    "=cmd|' /C calc'!A0",
    "tab\tseparated\r\nline",
    "٠١٢٣ ০১২৩",
    "plain",
]


def test_normalize_text_digits_and_strip_agree_with_python(con):
    values = TRICKY + _random_strings(3000, seed=1)
    assert _map(con, "anbar_normalize_text", values) == [normalize.normalize_text(v) for v in values]
    assert _map(con, "anbar_digits", values) == [normalize.normalize_digits(v) for v in values]
    assert _map(con, "anbar_strip", values) == [v.strip() for v in values]
    assert _map(con, "anbar_normalize_text", [None]) == [None]


def _python_date(calendar: str, value: str) -> dt.date | None:
    convert = normalize.jalali_to_date if calendar == "jalali" else normalize.gregorian_to_date
    return convert(value)


@pytest.mark.parametrize("calendar", ["jalali", "gregorian"])
def test_dates_agree_with_python(con, calendar):
    rng = random.Random(2)
    values = []
    for _ in range(4000):
        y = rng.choice([rng.randint(1290, 1490), rng.randint(1890, 2110), rng.randint(0, 9999)])
        m, d = rng.randint(0, 13), rng.randint(0, 32)
        sep = rng.choice(["/", "-"])
        other = rng.choice(["/", "-", "."])
        text = rng.choice(
            [
                f"{y:04d}{sep}{m:02d}{sep}{d:02d}",
                f"{y}{sep}{m}{sep}{d}",
                f"{y:04d}{sep}{m}{other}{d}",
                f" {y}{sep}{m:02d}{sep}{d} ",
            ]
        )
        if rng.random() < 0.3:
            text = text.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))
        values.append(text)
    values += [
        "1404/12/30",
        "1403/12/30",
        "1404/07/31",
        "1480/12/29",
        "1481/01/01",
        "1300/01/01",
        "2025-02-29",
        "2024-2-29",
    ]
    macro = f"anbar_{calendar}_date(anbar_strip(anbar_digits(v)))"
    got = [
        r[0]
        for r in con.execute(f"select {macro} from unnest(?) with ordinality t(v, i) order by i", [values]).fetchall()
    ]
    assert got == [_python_date(calendar, v) for v in values]


def test_every_jalali_day_converts_as_jdatetime_says(con):
    got = dict(
        con.execute(
            "select spelling, day from anbar_jalali_days "
            "where regexp_full_match(spelling, '[0-9]{4}/[0-9]{2}/[0-9]{2}')"
        ).fetchall()
    )
    day = jdatetime.date(normalize.JALALI_YEARS.start, 1, 1)
    count = 0
    while day.year < normalize.JALALI_YEARS.stop:
        assert got[f"{day.year:04d}/{day.month:02d}/{day.day:02d}"] == day.togregorian()
        day += jdatetime.timedelta(days=1)
        count += 1
    assert len(got) == count


@pytest.mark.parametrize("table, calendar", [("anbar_jalali_days", "jalali"), ("anbar_gregorian_days", "gregorian")])
def test_the_lookup_tables_hold_what_the_macros_compute(con, table, calendar):
    (mismatches,) = con.execute(
        f"select count(*) from {table} where day is distinct from anbar_{calendar}_date(anbar_digits(spelling))"
    ).fetchone()
    assert mismatches == 0
    (spellings, distinct) = con.execute(f"select count(*), count(distinct spelling) from {table}").fetchone()
    assert spellings == distinct


def test_check_digits_agree_with_python(con):
    rng = random.Random(3)
    persons = ["0076229645", "1583250689", "0011537027", "11537027", "9999999999", "0076229646", "0000000000"]
    persons += [ids.make_person_id(rng.randrange(10**9)) for _ in range(2000)]
    persons += [str(rng.randrange(10**11)) for _ in range(2000)] + [" 0076229645\t", "007622964x", "", "۰۰۷۶۲۲۹۶۴۵"]
    assert _map(con, "anbar_is_valid_person_id", persons) == [ids.is_valid_person_id(p) for p in persons]
    legal = ["10380284790", "10300000090", "1038028479", " 10380284790 "]
    legal += [ids.make_legal_entity_id(rng.randrange(10**10)) for _ in range(2000)]
    legal += [f"{rng.randrange(10**11):011d}" for _ in range(2000)]
    assert _map(con, "anbar_is_valid_legal_entity_id", legal) == [ids.is_valid_legal_entity_id(x) for x in legal]
    assert _map(con, "anbar_is_valid_person_id", [None]) == [None]
