"""The pass against a real PostgreSQL: files landed as a supplier would deliver them, read, converted,
decided and written once — what reaches the clean table, the rejects and the ledger, and what never does."""

from __future__ import annotations

import datetime as dt

import pytest

from anbar import ingest
from anbar.engine import load
from anbar.ids import make_person_id
from anbar.landing import LandingArchive

from .db import fetch, rendered

pytestmark = pytest.mark.integration

HEADER = "national_id,workshop_code,sex,birth_date,insurance_type,days_worked,insured_wage,employment_start"
WORKPLACES = "workshop_code,legal_id,workshop_name,isic_section,province,registered_on"


@pytest.fixture
def archive(tmp_path, monkeypatch) -> LandingArchive:
    monkeypatch.setenv("ANBAR_LANDING_DIR", str(tmp_path / "landing"))
    return LandingArchive(tmp_path / "landing")


def _write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _pass(dataset, paths, *, period="1404-08", **land) -> ingest.Step:
    step = ingest.land_files("sso", dataset, period, paths, **land)
    assert step.state == "landed", step
    return ingest.process(step)


def _with_sql_rules(tmp_path, monkeypatch, *rules: tuple[str, str, str]) -> None:
    """The committed suites, with SQL rules (rule, query, severity) added to the SSO persons' and up to half
    of its rows rejected one by one, as the suites anbar reads for the rest of the test."""
    import json
    import shutil

    from anbar.settings import REPO_ROOT

    suites = tmp_path / "expectations"
    shutil.copytree(REPO_ROOT / "expectations", suites)
    path = suites / "sso__insured_persons.json"
    suite = json.loads(path.read_text(encoding="utf-8"))
    suite["meta"]["max_rejected_percent"] = 50
    for rule, query, severity in rules:
        meta = {"rule": rule, "principle": "quality", "severity": severity, "columns": ["workshop_code"]}
        meta["description"] = {"fa": "آزمون", "en": "a test rule"}
        suite["expectations"].append(
            {"type": "unexpected_rows_expectation", "kwargs": {"unexpected_rows_query": query}, "meta": meta}
        )
    path.write_text(json.dumps(suite, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setenv("ANBAR_EXPECTATIONS_DIR", str(suites))


def _tables_of(conn, submission_id: int) -> int:
    """How many tables of the submission exist (its unattached typed table, while it has one)."""
    return fetch(conn, "select count(*) as n from pg_tables where tablename like %s", f"%_s{submission_id}")[0]["n"]


def _copied_beside_the_rules(conn, submission_id: int) -> bool:
    """The pass COPYed the typed rows while the rules ran (its timed event has that sub-step)."""
    [timed] = fetch(
        conn,
        "select detail from anbar.submission_events where submission_id = %s and status = 'timed'",
        submission_id,
    )
    return "the COPY beside the rules, after them" in timed["detail"]["seconds"]


def _ledger(conn, step) -> dict:
    [sub] = fetch(
        conn,
        "select status, reason, rows_manifest, rows_counted, rows_loaded, rows_rejected, landing_path "
        "from anbar.submissions "
        "where submission_id = %s",
        step.submission_id,
    )
    return sub


def test_persian_digits_arabic_letters_and_jalali_dates_are_converted(fresh_warehouse, archive, tmp_path):
    conn = fresh_warehouse
    pid = make_person_id(7622964)  # 0076229645
    persian = pid.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))
    text = (
        f"{HEADER}\n"
        f"{persian},W1,1,۱۳۶۲/۰۵/۰۷,1,٣٠,١٢٣٤٥٦٧٨٩,1400/02/05\n"
        f"{pid.lstrip('0')},W2,2,1370/12/29,2,15,500000000,\n"
    )
    step = _pass("insured_persons", [_write(tmp_path, "p.csv", text)])
    assert step.state == "accepted", step.message
    rows = fetch(
        conn,
        "select national_id, birth_date, days_worked, insured_wage, employment_start, _row_no "
        "from clean.sso__insured_persons where _submission_id = %s order by _row_no",
        step.submission_id,
    )
    assert list(rows[0].values()) == [pid, dt.date(1983, 7, 29), 30, 123456789, dt.date(2021, 4, 25), 1]
    # Left-padded national ID, and an empty optional date is NULL, not an error.
    assert rows[1]["national_id"] == pid and rows[1]["employment_start"] is None
    # The values as delivered are in the rendering beside the landed file, not in PostgreSQL.
    delivered = rendered(
        _ledger(conn, step)["landing_path"], "select national_id, days_worked from delivered order by _row_no"
    )
    assert delivered[0] == {"national_id": persian, "days_worked": "٣٠"}


def test_windows_1256_file_with_arabic_letters_loads_normalised(fresh_warehouse, archive, tmp_path):
    conn = fresh_warehouse
    # Arabic kaf (U+0643) and yeh (U+064A), as legacy systems write them.
    text = f"{WORKPLACES}\r\nW1,10380284790,\u0634\u0631\u0643\u062a \u0641\u0646\u064a,C,23,1399/01/15\r\n"
    step = _pass("workplaces", [_write(tmp_path, "w.csv", text, "cp1256")], encoding="windows-1256")
    assert step.state == "accepted", step.message
    [row] = fetch(conn, "select workshop_name from clean.sso__workplaces where _submission_id = %s", step.submission_id)
    assert row["workshop_name"] == "\u0634\u0631\u06a9\u062a \u0641\u0646\u06cc"  # keheh and Persian yeh


def test_unconvertible_values_are_set_aside_with_their_reasons_and_the_balance_holds(
    fresh_warehouse, archive, tmp_path
):
    conn = fresh_warehouse
    good = make_person_id(11537027)
    text = (
        f"{HEADER}\n"
        f"{good},W1,1,1362/05/07,1,30,100,\n"
        f"{good},W2,1,1403/07/31,1,30,100,\n"  # month 7 has 30 days
        f"{good},W3,1,1362/05/07,1,thirty,100,\n"
        f"{good},W4,1,1362/05/07,1,30,100,\n"
    )
    step = _pass("insured_persons", [_write(tmp_path, "p.csv", text)])
    # Two rows of four cannot be converted: more than the 2% the suite rejects row by row.
    assert step.state == "rejected" and "conversion:conversion.types" in step.message
    sub = _ledger(conn, step)
    assert (sub["rows_manifest"], sub["rows_loaded"], sub["rows_rejected"]) == (4, 0, 4)
    rejected = fetch(
        conn,
        "select row_no, reasons, record->>'workshop_code' as workshop from raw.rejected_rows "
        "where submission_id = %s order by row_no",
        step.submission_id,
    )
    assert [r["row_no"] for r in rejected] == [2, 3]
    assert "birth_date" in rejected[0]["reasons"][0] and "1403/07/31" in rejected[0]["reasons"][0]
    assert "days_worked" in rejected[1]["reasons"][0] and rejected[1]["workshop"] == "W3"
    # The rendering keeps every row exactly as delivered; nothing of a rejected delivery is in clean.
    assert rendered(sub["landing_path"])[0]["n"] == 4
    assert (
        fetch(conn, "select to_regclass(%s) as t", f"clean.sso__insured_persons_s{step.submission_id}")[0]["t"] is None
    )


def test_several_files_load_in_order_with_their_own_row_numbers(fresh_warehouse, archive, tmp_path):
    conn = fresh_warehouse
    pid = make_person_id(5)
    a = _write(tmp_path, "a.csv", f"{HEADER}\n{pid},W1,1,1362/05/07,1,30,100,\n{pid},W2,1,1362/05/07,1,30,100,\n")
    b = _write(tmp_path, "b.csv", f"{HEADER}\n{pid},W3,1,1362/05/07,1,30,100,\n")
    step = _pass("insured_persons", [a, b])
    assert step.state == "accepted", step.message
    rows = fetch(
        conn,
        "select _file, _row_no, workshop_code from clean.sso__insured_persons "
        "where _submission_id = %s order by _file, _row_no",
        step.submission_id,
    )
    assert [tuple(r.values()) for r in rows] == [("a.csv", 1, "W1"), ("a.csv", 2, "W2"), ("b.csv", 1, "W3")]


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
def test_bad_files_are_rejected_and_leave_nothing_loaded(
    fresh_warehouse, archive, tmp_path, text, encoding, declared, reason
):
    conn = fresh_warehouse
    declared_rows = 5 if reason == "row_count_mismatch" else max(text.count("\n") - 1, 0)
    step = _pass(
        "insured_persons", [_write(tmp_path, "bad.csv", text, encoding)], encoding=declared, rows=[declared_rows]
    )
    assert (step.state, step.reason) == ("rejected", reason)
    sid = step.submission_id
    assert (
        fetch(conn, "select count(*) as n from clean.sso__insured_persons where _submission_id = %s", sid)[0]["n"] == 0
    )
    assert _tables_of(conn, sid) == 0
    assert fetch(conn, "select count(*) as n from raw.rejected_rows where submission_id = %s", sid)[0]["n"] == 0


def test_a_pass_that_fails_at_its_last_write_leaves_nothing_and_the_rerun_decides_once(
    fresh_warehouse, archive, tmp_path, monkeypatch
):
    conn = fresh_warehouse
    pid = make_person_id(9)
    step = ingest.land_files(
        "sso", "insured_persons", "1404-08", [_write(tmp_path, "p.csv", f"{HEADER}\n{pid},W1,1,1362/05/07,1,30,100,\n")]
    )

    def attach_fails(cur, ds, submission_id):
        raise RuntimeError("the server refused the attach")

    with monkeypatch.context() as m:
        m.setattr(load, "attach", attach_fails)
        with pytest.raises(RuntimeError, match="refused the attach"):
            ingest.process(step)
    sid = step.submission_id
    assert _ledger(conn, step)["status"] == "landed"
    assert _tables_of(conn, sid) == 0
    assert fetch(conn, "select count(*) as n from anbar.row_findings where submission_id = %s", sid)[0]["n"] == 0
    assert ingest.process(step).state == "accepted"
    assert ingest.process(step).state == "accepted"  # again: nothing to do
    assert (
        fetch(conn, "select count(*) as n from clean.sso__insured_persons where _submission_id = %s", sid)[0]["n"] == 1
    )
    events = fetch(
        conn, "select step from anbar.submission_events where submission_id = %s and status = 'accepted'", sid
    )
    assert [e["step"] for e in events] == ["publish"]


def test_a_nil_return_does_not_switch_the_row_count_check_off_for_the_month_after(fresh_warehouse, archive, tmp_path):
    """Issue 16.12: the row count of a month is compared with the last earlier month that delivered rows, not
    with an accepted nil return (which is no count to hold a month to)."""
    from anbar.ids import make_legal_entity_id

    def month(period: str, rows: int):
        lines = [WORKPLACES] + [
            f"{1000234560 + i},{make_legal_entity_id(1038028479 + i)},کارگاه {i},C,23,1399/01/15" for i in range(rows)
        ]
        return _pass("workplaces", [_write(tmp_path, f"w-{period}.csv", "\n".join(lines) + "\n")], period=period)

    assert month("1404-05", 10).state == "accepted"
    assert month("1404-06", 0).state == "accepted"  # nothing to report this month
    after = month("1404-07", 3)
    assert after.state == "rejected" and "row_count_vs_previous_period" in after.message
    [sub] = fetch(
        fresh_warehouse,
        "select validation_summary from anbar.submissions where submission_id = %s",
        after.submission_id,
    )
    [rule] = [e for e in sub["validation_summary"]["expectations"] if e["rule"] == "row_count_vs_previous_period"]
    # numeric figures keep PostgreSQL's exact decimal, as text
    assert rule["samples"] == [{"row_count": 3, "previous_row_count": 10, "change_percent": "-70.0"}]


def test_rules_the_pass_cannot_read_run_in_postgresql_and_the_outcome_is_the_same(
    fresh_warehouse, archive, tmp_path, monkeypatch
):
    """SQL rules outside the shapes the pass evaluates (here PostgreSQL's regex operator, and the values as
    delivered through {raw}) run in PostgreSQL on the delivery's own table, loaded first; their findings
    reject rows and flag rows as the pass's own do."""
    _with_sql_rules(
        tmp_path,
        monkeypatch,
        ("w2_noted", "select _file, _row_no, workshop_code from {batch} where workshop_code ~ '^W2'", "warning"),
        (
            "days_31_delivered",
            "select b._file, b._row_no from {batch} b join {raw} r on r._file = b._file and r._row_no = b._row_no "
            "where r.days_worked like '%31%'",
            "blocking",
        ),
    )

    conn = fresh_warehouse
    pid = make_person_id(77)
    rows = (("W1", 30), ("W2", 15), ("W3", 31))
    text = HEADER + "\n" + "".join(f"{pid},{w},1,1362/05/07,1,{days},100,1399/01/01\n" for w, days in rows)
    step = _pass("insured_persons", [_write(tmp_path, "p.csv", text)])
    assert step.state == "accepted", step.message
    sid = step.submission_id
    sub = _ledger(conn, step)
    assert (sub["rows_counted"], sub["rows_loaded"], sub["rows_rejected"]) == (3, 2, 1)
    clean = fetch(
        conn, "select workshop_code, _flags from clean.sso__insured_persons where _submission_id = %s order by 1", sid
    )
    assert [(r["workshop_code"], r["_flags"]) for r in clean] == [("W1", None), ("W2", ["quality: w2_noted"])]
    [rejected] = fetch(conn, "select row_no, reasons from raw.rejected_rows where submission_id = %s", sid)
    assert rejected == {"row_no": 3, "reasons": ["quality: days_31_delivered"]}
    # The values as delivered went to PostgreSQL only for the rule that read them, and are gone again.
    assert fetch(conn, "select to_regclass(%s) as t", f"raw.sso__insured_persons_s{sid}")[0]["t"] is None


def test_rows_copied_beside_the_rules_are_flagged_rejected_and_attached_as_if_copied_after(
    fresh_warehouse, archive, tmp_path, monkeypatch
):
    """When every rule runs in DuckDB, the typed rows are COPYed while the rules run, in the decision's
    transaction and without flags: the decision then removes the rows a blocking rule rejects (to the
    rejects, with their values) and writes the warning flags, and only then attaches the table."""
    _with_sql_rules(
        tmp_path,
        monkeypatch,
        ("w2_noted", "select _file, _row_no from {batch} where workshop_code = 'W2'", "warning"),
        ("w4_noted", "select _file, _row_no from {batch} where workshop_code in ('W2', 'W4')", "warning"),
        ("days_31", "select _file, _row_no from {batch} where days_worked = 31", "blocking"),
    )

    conn = fresh_warehouse
    pid = make_person_id(78)
    rows = (("W1", 30), ("W2", 15), ("W3", 31), ("W4", 20))
    text = HEADER + "\n" + "".join(f"{pid},{w},1,1362/05/07,1,{days},100,1399/01/01\n" for w, days in rows)
    step = _pass("insured_persons", [_write(tmp_path, "p.csv", text)])
    assert step.state == "accepted", step.message
    sid = step.submission_id
    assert _copied_beside_the_rules(conn, sid)
    sub = _ledger(conn, step)
    assert (sub["rows_counted"], sub["rows_loaded"], sub["rows_rejected"]) == (4, 3, 1)
    clean = fetch(
        conn, "select workshop_code, _flags from clean.sso__insured_persons where _submission_id = %s order by 1", sid
    )
    assert [(r["workshop_code"], r["_flags"]) for r in clean] == [
        ("W1", None),
        ("W2", ["quality: w2_noted", "quality: w4_noted"]),
        ("W4", ["quality: w4_noted"]),
    ]
    [rejected] = fetch(conn, "select row_no, reasons, record from raw.rejected_rows where submission_id = %s", sid)
    assert (rejected["row_no"], rejected["reasons"]) == (3, ["quality: days_31"])
    assert rejected["record"]["workshop_code"] == "W3"


def test_a_delivery_rejected_after_its_rows_were_copied_beside_the_rules_leaves_no_table(
    fresh_warehouse, archive, tmp_path
):
    conn = fresh_warehouse
    pid = make_person_id(79)
    text = HEADER + "\n" + "".join(f"{pid},W{i},1,1362/05/07,1,40,100,1399/01/01\n" for i in range(3))
    step = _pass("insured_persons", [_write(tmp_path, "p.csv", text)])
    assert step.state == "rejected"
    sid = step.submission_id
    assert _copied_beside_the_rules(conn, sid)
    assert _tables_of(conn, sid) == 0
    assert (
        fetch(conn, "select count(*) as n from clean.sso__insured_persons where _submission_id = %s", sid)[0]["n"] == 0
    )
