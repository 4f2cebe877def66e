"""The loader against a real PostgreSQL: decoding, COPY, conversion, rejected rows, all-or-nothing."""

from __future__ import annotations

import datetime as dt

import pytest

from anbar.exchange import DeliveryRejected
from anbar.ids import make_person_id
from anbar.loader import FileToLoad, load_delivery
from anbar.registry import load_registry

pytestmark = pytest.mark.integration

REG = load_registry()
SSO = REG.org("sso")
PERSONS = SSO.dataset("insured_persons")
HEADER = "national_id,workshop_code,sex,birth_date,insurance_type,days_worked,insured_wage,employment_start"


def _submission(conn, ds=PERSONS, period="1404-08") -> int:
    with conn.cursor() as cur:
        cur.execute(
            "insert into anbar.submissions (org, dataset, period, version, transport, delivery_sha256, status)"
            " values (%s, %s, %s, coalesce((select max(version) from anbar.submissions), 0) + 1, 'sftp',"
            " md5(random()::text),"
            " 'landed') returning submission_id",
            (ds.org, ds.name, period),
        )
        (sid,) = cur.fetchone()
    conn.commit()
    return sid


def _write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _rows(conn, sql, *args):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def test_persian_digits_arabic_letters_and_jalali_dates_are_converted(fresh_warehouse, tmp_path):
    conn = fresh_warehouse
    pid = make_person_id(7622964)  # 0076229645
    persian = pid.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))
    text = (
        f"{HEADER}\n"
        f"{persian},W1,1,۱۳۶۲/۰۵/۰۷,1,٣٠,١٢٣٤٥٦٧٨٩,1400/02/05\n"
        f"{pid.lstrip('0')},W2,2,1370/12/29,2,15,500000000,\n"
    )
    path = _write(tmp_path, "p.csv", text)
    sid = _submission(conn)
    result = load_delivery(conn, SSO, PERSONS, sid, "1404-08", [FileToLoad("p.csv", path, 2)], "utf-8", ",")
    assert (result.rows_in, result.rows_loaded, result.rows_rejected) == (2, 2, 0)
    rows = _rows(
        conn,
        "select national_id, birth_date, days_worked, insured_wage, employment_start, _row_no "
        "from clean.sso__insured_persons where _submission_id = %s order by _row_no",
        sid,
    )
    assert rows[0] == (pid, dt.date(1983, 7, 29), 30, 123456789, dt.date(2021, 4, 25), 1)
    # Left-padded national ID, and an empty optional date is NULL, not an error.
    assert rows[1][0] == pid and rows[1][4] is None


def test_windows_1256_file_with_arabic_letters_loads_normalised(fresh_warehouse, tmp_path):
    conn = fresh_warehouse
    ds = SSO.dataset("workplaces")
    # Arabic kaf (U+0643) and yeh (U+064A), as legacy systems write them.
    text = (
        "workshop_code,legal_id,workshop_name,isic_section,province,registered_on\r\n"
        "W1,10380284790,\u0634\u0631\u0643\u062a \u0641\u0646\u064a,C,23,1399/01/15\r\n"
    )
    path = _write(tmp_path, "w.csv", text, "cp1256")
    sid = _submission(conn, ds)
    load_delivery(conn, SSO, ds, sid, "1404-08", [FileToLoad("w.csv", path, 1)], "windows-1256", ",")
    [(name,)] = _rows(conn, "select workshop_name from clean.sso__workplaces where _submission_id = %s", sid)
    assert name == "\u0634\u0631\u06a9\u062a \u0641\u0646\u06cc"  # keheh and Persian yeh


def test_unconvertible_values_reject_rows_and_the_balance_holds(fresh_warehouse, tmp_path):
    conn = fresh_warehouse
    good = make_person_id(11537027)
    text = (
        f"{HEADER}\n"
        f"{good},W1,1,1362/05/07,1,30,100,\n"
        f"{good},W2,1,1403/07/31,1,30,100,\n"  # month 7 has 30 days
        f"{good},W3,1,1362/05/07,1,thirty,100,\n"
        f"{good},W4,1,1362/05/07,1,30,100,\n"
    )
    path = _write(tmp_path, "p.csv", text)
    sid = _submission(conn)
    result = load_delivery(conn, SSO, PERSONS, sid, "1404-08", [FileToLoad("p.csv", path, 4)], "utf-8", ",")
    assert (result.rows_in, result.rows_loaded, result.rows_rejected) == (4, 2, 2)
    rejected = _rows(
        conn,
        "select row_no, reasons, record->>'workshop_code' from raw.rejected_rows "
        "where submission_id = %s order by row_no",
        sid,
    )
    assert [r[0] for r in rejected] == [2, 3]
    assert "birth_date" in rejected[0][1][0] and "1403/07/31" in rejected[0][1][0]
    assert "days_worked" in rejected[1][1][0] and rejected[1][2] == "W3"
    # Raw keeps every row exactly as delivered.
    assert _rows(conn, "select count(*) from raw.sso__insured_persons where _submission_id = %s", sid) == [(4,)]


def test_several_files_load_in_order_with_their_own_row_numbers(fresh_warehouse, tmp_path):
    conn = fresh_warehouse
    pid = make_person_id(5)
    a = _write(tmp_path, "a.csv", f"{HEADER}\n{pid},W1,1,1362/05/07,1,30,100,\n{pid},W2,1,1362/05/07,1,30,100,\n")
    # Second file: columns in another order, semicolon would be a different delivery, so same delimiter.
    b = _write(tmp_path, "b.csv", f"{HEADER}\n{pid},W3,1,1362/05/07,1,30,100,\n")
    sid = _submission(conn)
    result = load_delivery(
        conn, SSO, PERSONS, sid, "1404-08", [FileToLoad("a.csv", a, 2), FileToLoad("b.csv", b, 1)], "utf-8", ","
    )
    assert result.rows_loaded == 3
    assert _rows(
        conn,
        "select _file, _row_no, workshop_code from clean.sso__insured_persons "
        "where _submission_id = %s order by _file, _row_no",
        sid,
    ) == [("a.csv", 1, "W1"), ("a.csv", 2, "W2"), ("b.csv", 1, "W3")]


@pytest.mark.parametrize(
    ("text", "encoding", "declared", "reason"),
    [
        ("national_id,sex\n1,1\n", "utf-8", "utf-8", "missing_column"),
        (HEADER + ",bonus\n", "utf-8", "utf-8", "unexpected_column"),
        (HEADER + "\n0076229645,W1,1,1362/05/07,1,30\n", "utf-8", "utf-8", "malformed_csv"),
        (HEADER + '\n0076229645,"W1,1,1362/05/07,1,30,100,\n', "utf-8", "utf-8", "malformed_csv"),
        (HEADER + "\n0076229645,W1,1,1362/05/07,1,30,100,\n", "utf-8", "utf-8", "row_count_mismatch"),
        (HEADER + "\n0076229645,کارگاه,1,1362/05/07,1,30,100,\n", "cp1256", "utf-8", "encoding_error"),
        (HEADER + "\n0076229645,کارگاه,1,1362/05/07,1,30,100,\n", "utf-8", "windows-1256", "encoding_error"),
        ("", "utf-8", "utf-8", "invalid_header"),
    ],
)
def test_bad_files_are_rejected_and_leave_nothing_loaded(fresh_warehouse, tmp_path, text, encoding, declared, reason):
    conn = fresh_warehouse
    path = _write(tmp_path, "bad.csv", text, encoding)
    sid = _submission(conn)
    declared_rows = 5 if reason == "row_count_mismatch" else text.count("\n") - 1
    with pytest.raises(DeliveryRejected) as err:
        load_delivery(conn, SSO, PERSONS, sid, "1404-08", [FileToLoad("bad.csv", path, declared_rows)], declared, ",")
    assert err.value.reason == reason
    assert _rows(conn, "select count(*) from raw.sso__insured_persons where _submission_id = %s", sid) == [(0,)]
    assert _rows(conn, "select count(*) from pg_tables where tablename like %s", f"%_s{sid}") == [(0,)]


def test_a_rerun_of_the_same_submission_replaces_its_partitions(fresh_warehouse, tmp_path):
    conn = fresh_warehouse
    pid = make_person_id(9)
    path = _write(tmp_path, "p.csv", f"{HEADER}\n{pid},W1,1,1362/05/07,1,30,100,\n")
    sid = _submission(conn)
    # The first attempt dies before committing (simulated by a bad second file) ...
    bad = _write(tmp_path, "q.csv", "oops\n")
    with pytest.raises(DeliveryRejected):
        load_delivery(
            conn,
            SSO,
            PERSONS,
            sid,
            "1404-08",
            [FileToLoad("p.csv", path, 1), FileToLoad("q.csv", bad, 0)],
            "utf-8",
            ",",
        )
    # ... and the rerun loads exactly once.
    load_delivery(conn, SSO, PERSONS, sid, "1404-08", [FileToLoad("p.csv", path, 1)], "utf-8", ",")
    assert _rows(conn, "select count(*) from clean.sso__insured_persons where _submission_id = %s", sid) == [(1,)]
