"""Reading a delivered CSV file into the pass: the structure check, the exact reader and DuckDB agree with the
exchange standard (§7.1) on every shape of file, and the conversion gives the standard's values."""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from pathlib import Path

import pytest

from anbar.engine import csvexact, duck, read, structure
from anbar.exchange import DeliveryRejected
from anbar.registry import load_registry

REGISTRY = load_registry()
WORKPLACES = REGISTRY.dataset("sso", "workplaces")
INSURED = REGISTRY.dataset("sso", "insured_persons")
HEADER = "workshop_code,legal_id,workshop_name,isic_section,province,registered_on"


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    connection = duck.connect(tmp_path_factory.mktemp("spill"), registry=REGISTRY, threads=2)
    yield connection
    connection.close()


def _scan(data: bytes, columns: int, delimiter: str = ",") -> structure.Structure:
    path = Path(f"/tmp/anbar-structure-{random.getrandbits(32)}.csv")
    path.write_bytes(data)
    try:
        return structure.scan(path, 0, columns, delimiter)
    finally:
        path.unlink()


WELL_FORMED = [
    b"1,x\n2,y\n",
    b"1,x\r\n2,y\r\n",
    b"1,x\n2,y",  # no line ending after the last record
    b'1,"a,b"\n2,"say ""hi"""\n',
    b'1,"two\nlines"\n2,"crlf\r\ninside"\n',
    b'"1",""\n',
    b"",
    b'1,""""\n',
]
MALFORMED = [
    b"1,x\n\n2,y\n",  # a blank line
    b"1,x\n2,y\n\n",  # a blank line at the end
    b"\n1,x\n",  # a blank first record
    b"1,x\r\n\r\n2,y\r\n",
    b"1,x,\n",  # an empty extra field
    b"1\n",
    b"1;x\n",  # another delimiter
    b'1,"x\n',  # unterminated
    b'1,"ab"c\n',  # text after the closing quote
    b'1,ab"c\n',  # a quote inside an unquoted field
    b'1, "x"\n',
    b"1,a\x00b\n",
    b"1,a\rb\n",  # a bare CR
    b"1,x\r",
]


@pytest.mark.parametrize("data", WELL_FORMED)
def test_well_formed_files_are_clean_and_counted_as_python_csv_counts(data):
    found = _scan(data, 2)
    assert found.clean, found.why
    assert found.records == sum(1 for _ in csv.reader(io.StringIO(data.decode(), newline="")))


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_files_are_not_clean(data):
    assert not _scan(data, 2).clean


def test_blocks_carry_quotes_line_ends_and_counts_across_their_edges(monkeypatch):
    rng = random.Random(4)
    values = ["plain", "a,b", 'say "hi"', "two\nlines", "", "x" * 50, "crlf\r\nin"]
    rows = [[str(i), rng.choice(values)] for i in range(3000)]
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    data = buf.getvalue().encode()
    for block in (7, 64, 1000, 4096):
        monkeypatch.setattr(structure, "BLOCK", block)
        found = _scan(data, 2)
        assert found.clean and found.records == len(rows), (block, found)
        monkeypatch.setattr(structure, "BLOCK", block)
        assert not _scan(data + b'1,ab"c\r\n', 2).clean


def _exact(data: bytes, columns: list[str]):
    path = Path(f"/tmp/anbar-exact-{random.getrandbits(32)}.csv")
    path.write_bytes(data)
    try:
        out = list(csvexact.read(path, 0, "part-001.csv", columns, ","))
    finally:
        path.unlink()
    return out[:-1], out[-1]


@pytest.mark.parametrize(
    "data, problem, row, line",
    [
        (b"1,x\n\n2,y\n", "a blank line", 2, 3),
        (b"1,x\n2\n", "missing data for column b", 2, 3),
        (b"1,x,y\n", "extra data after last expected column", 1, 2),
        (b'1,"x\n', "unterminated CSV quoted field", 1, 2),
        (b'1,"two\nlines"\n2,"ab"c\n', "text after the closing quote", 2, 4),
        (b"1,a\x00b\n", "a NUL byte (0x00)", 1, 2),
        (b"1,a\rb\n", "a carriage return inside an unquoted field", 1, 2),
    ],
)
def test_the_exact_reader_names_the_fault_and_where(data, problem, row, line):
    with pytest.raises(DeliveryRejected) as err:
        _exact(data, ["a", "b"])
    assert err.value.reason == "malformed_csv"
    assert problem in err.value.message
    assert f"at data row {row} (line {line} of the file)" in err.value.message


def test_the_exact_reader_names_rows_with_a_quote_inside_an_unquoted_field():
    batches, summary = _exact(b'1,kargah "farsh"\n2,"quoted ""ok"""\n3, "x"\n4,plain\n', ["a", "b"])
    assert summary.records == 4
    assert summary.stray_quote_rows == {1: ["b"], 3: ["b"]}
    assert batches[0].column("b").to_pylist() == ['kargah "farsh"', 'quoted "ok"', ' "x"', "plain"]


def _delivery(tmp_path: Path, con, ds, text: bytes, encoding: str = "utf-8", rows: int | None = None):
    path = tmp_path / "part-001.csv"
    path.write_bytes(text)
    org = REGISTRY.org(ds.org)
    return read.read_delivery(
        con, org, ds, [read.DeliveredFile("part-001.csv", path, rows)], encoding, ",", tmp_path / "work"
    )


def _rows(con, columns: str):
    return con.execute(f"select {columns} from delivery order by _row_no").fetchall()


def test_a_delivery_is_read_and_converted_as_the_standard_says(tmp_path, con):
    text = (
        "national_id,workshop_code,sex,birth_date,insurance_type,days_worked,insured_wage,employment_start\n"
        "0076229645,1000234567,1,1365/04/12,1,30,145000000,1398/01/15\n"
        "۷۶۲۲۹۶۴۵,۱۰۰۰۲۳۴۵۶۷, ۲ ,۱۳۷۰-۱۱-۰۳,1,۳۱,۱۵۲۵۰۰۰۰۰,\n"
        "1583250689,1000234567,2,1404/07/31,1,3x,-5,1404/8/1\n"
        "0011537027,2000871234,1,1359/07/30,3,+30,98000000,1401/06/01\n"
    ).encode()
    result = _delivery(tmp_path, con, INSURED, text, rows=4)
    assert (result.rows_in, result.rows_converted, result.rows_not_converted) == (4, 3, 1)
    got = _rows(
        con, "_row_no, national_id, workshop_code, sex, birth_date, days_worked, insured_wage, employment_start"
    )
    assert got[0] == (1, "0076229645", "1000234567", "1", dt.date(1986, 7, 3), 30, 145000000, dt.date(2019, 4, 4))
    assert got[1] == (2, "0076229645", "1000234567", "2", dt.date(1992, 1, 23), 31, 152500000, None)
    assert got[2][0] == 3 and got[2][4] is None and got[2][5] is None and got[2][7] == dt.date(2025, 10, 23)
    assert got[3][5] == 30
    (problems,) = con.execute("select _problems from delivery where _row_no = 3").fetchall()[0]
    assert problems == [
        "birth_date: '1404/07/31' is not a valid jalali date",
        "days_worked: '3x' is not a whole number",
    ]
    assert _rows(con, '"r:sex", "r:days_worked"')[1] == (" ۲ ", "۳۱")  # the values as delivered


def test_text_is_normalised_and_stored_without_a_formula_guard(tmp_path, con):
    text = (
        HEADER + "\n" + '1000234567,10380284790,"=HYPERLINK(""x"")",C,23,1390/02/11\n'
        "1000234568,,  كارگاه\u200c\u200cي  ,C,07,1392/07/30\n"
        "1000234569,,-,G,23,1388/12/05\n"
    ).encode()
    _delivery(tmp_path, con, WORKPLACES, text, rows=3)
    assert [r[0] for r in _rows(con, "workshop_name")] == ['=HYPERLINK("x")', "کارگاه\u200cی", "-"]


def test_windows_1256_is_transcoded_and_utf8_in_disguise_refused(tmp_path, con):
    text = (HEADER + "\n1000234567,,کارگاه,C,23,1390/02/11\n").encode("cp1256")
    _delivery(tmp_path, con, WORKPLACES, text, encoding="windows-1256", rows=1)
    assert _rows(con, "workshop_name") == [("کارگاه",)]
    with pytest.raises(DeliveryRejected, match="declared windows-1256, but the file is UTF-8"):
        _delivery(tmp_path, con, WORKPLACES, text.decode("cp1256").encode(), encoding="windows-1256", rows=1)


def test_invalid_utf8_is_refused_with_its_byte_offset(tmp_path, con):
    text = (HEADER + "\n1000234567,,").encode() + b"\xe4\xc7" + b",C,23,1390/02/11\n"
    with pytest.raises(DeliveryRejected) as err:
        _delivery(tmp_path, con, WORKPLACES, text, rows=1)
    assert err.value.reason == "encoding_error" and f"byte {len(HEADER) + 13}" in err.value.message


def test_a_quote_inside_an_unquoted_field_rejects_that_row_only(tmp_path, con):
    text = (HEADER + '\n1000234567,,kargah "farsh",C,23,1390/02/11\n1000234568,,ok,C,07,1392/07/30\n').encode()
    result = _delivery(tmp_path, con, WORKPLACES, text, rows=2)
    assert (result.rows_in, result.rows_not_converted) == (2, 1)
    assert result.files[0].reader == "exact"
    (problems,) = con.execute("select _problems from delivery where _row_no = 1").fetchall()[0]
    assert problems == [f"workshop_name: {csvexact.STRAY_QUOTE}"]


def test_records_are_counted_against_the_manifest(tmp_path, con):
    text = (HEADER + "\n1000234567,,x,C,23,1390/02/11\n").encode()
    with pytest.raises(DeliveryRejected, match="the manifest declares 2 rows, the file holds 1"):
        _delivery(tmp_path, con, WORKPLACES, text, rows=2)


def test_the_large_delivery_path_gives_the_same_values(tmp_path, con, monkeypatch):
    rng = random.Random(5)
    lines = ["national_id,workshop_code,sex,birth_date,insurance_type,days_worked,insured_wage,employment_start"]
    for i in range(500):
        y, m, d = rng.randint(1300, 1403), rng.randint(1, 13), rng.randint(1, 31)
        date = rng.choice([f"{y}/{m:02d}/{d:02d}", f"{y}-{m}-{d}", f"{y}/{m}-{d}"])
        if rng.random() < 0.3:
            date = date.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))
        lines.append(f"{i:010d},{i},1,{date},1,{rng.randint(0, 40)},{rng.randint(0, 10**9)},")
    text = ("\n".join(lines) + "\n").encode()
    _delivery(tmp_path, con, INSURED, text, rows=500)
    small = _rows(con, "_row_no, birth_date, _problems")
    monkeypatch.setattr(read, "LOOKUP_ROWS", 10)
    _delivery(tmp_path, con, INSURED, text, rows=500)
    assert _rows(con, "_row_no, birth_date, _problems") == small
