"""How long validation takes on a 1,000,000-row partition (printed, not asserted).

Opt-in, as it loads a million rows:
``ANBAR_VALIDATION_BENCH=1 pytest -s tests/validation/test_benchmark.py``
(``ANBAR_VALIDATION_BENCH_ROWS`` changes the size).
"""

from __future__ import annotations

import io
import os
import time

import pytest

from anbar.ids import make_person_id
from anbar.suites import suite_path
from anbar.validation import validate_submission

from .conftest import EXPECTATIONS

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.environ.get("ANBAR_VALIDATION_BENCH"), reason="set ANBAR_VALIDATION_BENCH=1 to run"),
]

ROWS = int(os.environ.get("ANBAR_VALIDATION_BENCH_ROWS", "1000000"))
DEFECT_EVERY = 1000  # one row in a thousand carries a defect


def _copy_rows(warehouse, ds, n: int) -> int:
    """COPY n synthetic sso insured-person rows into a new partition; returns its id."""
    from psycopg2 import sql

    sid = warehouse.partition(ds, [])
    part = sql.Identifier("clean", f"{ds.key}_s{sid}")
    buf = io.StringIO()
    for i in range(n):
        nid = make_person_id(100_000_000 + i)
        sex = "1" if i % 2 else "2"
        days = i % 32
        if i % DEFECT_EVERY == 1:
            nid = nid[:-1] + str((int(nid[-1]) + 1) % 10)  # wrong check digit
        if i % DEFECT_EVERY == 2:
            sex = "9"  # not in the code list
        if i % DEFECT_EVERY == 3:
            days = 40  # out of range
        birth = f"{1960 + i % 40}-{1 + i % 12:02d}-{1 + i % 28:02d}"
        start = f"{2005 + i % 19}-{1 + i % 12:02d}-01"
        buf.write(
            f"{sid}\tpart-1.csv\t{i + 1}\t1404-08\t{nid}\tW{i % 50_000:07d}\t{sex}\t{birth}\t"
            f"{1 + i % 5}\t{days}\t{(i % 400) * 1_000_000}\t{start}\n"
        )
    buf.seek(0)
    conn = warehouse.connect()
    try:
        with conn.cursor() as cur:
            cur.copy_expert(
                sql.SQL(
                    "copy {} (_submission_id, _file, _row_no, _period, national_id, workshop_code, "
                    "sex, birth_date, insurance_type, days_worked, insured_wage, employment_start) "
                    "from stdin"
                )
                .format(part)
                .as_string(cur),
                buf,
            )
            cur.execute(sql.SQL("analyze {}").format(part))
        conn.commit()
    finally:
        conn.close()
    return sid


def test_validation_time_for_a_million_rows(warehouse, registry):
    ds = registry.dataset("sso", "insured_persons")
    t0 = time.monotonic()
    sid = _copy_rows(warehouse, ds, ROWS)
    loaded = time.monotonic() - t0
    result = validate_submission(warehouse.url, ds, sid, suite_path(EXPECTATIONS, ds))
    print(
        f"\n{ROWS:,} rows of {ds.key}: loaded in {loaded:.1f}s; validated "
        f"{result['evaluated']} expectations in {result['duration_seconds']:.1f}s"
    )
    for e in result["expectations"]:
        print(f"  {e['rule']:<45} {e['success']!s:<6} unexpected={e['unexpected_count']}")
    assert result["row_count"] == ROWS
