"""Malformed input found by the bad-input corpus (tests/corpus), each rejected with a clear reason:
header lines, API values and pages, manifests the ledger could not hold. The corpus itself runs the
whole delivery path (tests/integration/test_bad_input_corpus.py); these pin the fixes one by one."""

from __future__ import annotations

import gzip
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from anbar.engine import duck, read
from anbar.engine.decode import DecodingReader
from anbar.exchange import DeliveryRejected
from anbar.registry import load_registry

REGISTRY = load_registry()
TRAINEES = REGISTRY.dataset("tvto", "trainees")
HEADER = "workshop_code,legal_id,workshop_name,isic_section,province,registered_on"


def _header(data: bytes, encoding: str = "utf-8") -> list[str]:
    return DecodingReader(io.BytesIO(data), encoding, "part-001.csv").read_header(",")


@pytest.mark.parametrize(
    ("data", "encoding", "reason", "words"),
    [
        ((HEADER + "\r1,2,3,4,5,6\r").encode(), "utf-8", "invalid_header", "bare carriage return"),
        ((HEADER + "\n").encode("utf-16"), "windows-1256", "encoding_error", "NUL bytes"),
        ((HEADER + "," + "x" * 70_000 + "\n1\n").encode(), "utf-8", "invalid_header", "first 64 KiB"),
    ],
)
def test_header_lines_that_are_not_csv_text_are_rejected(data, encoding, reason, words):
    with pytest.raises(DeliveryRejected) as err:
        _header(data, encoding)
    assert err.value.reason == reason and words in err.value.message
    assert err.value.message.startswith("part-001.csv: ")


def test_a_crlf_header_is_read():
    assert _header((HEADER + "\r\n1,2,3,4,5,6\r\n").encode())[-1] == "registered_on"


def _record(**values) -> dict:
    base = {c.name: "x" for c in TRAINEES.columns}
    return {**base, **values}


def _read_api(tmp_path, records: list[dict]):
    src = tmp_path / "records.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    con = duck.connect(tmp_path / "spill", registry=REGISTRY)
    try:
        result = read.read_api_delivery(con, REGISTRY.org("tvto"), TRAINEES, src, len(records), tmp_path / "work")
        return result, con.execute('select "r:national_id", "r:hours", "r:birth_date" from delivery').fetchall()
    finally:
        con.close()


@pytest.mark.parametrize(
    ("value", "words"),
    [({"code": 1}, "a JSON object"), (["a"], "a JSON array"), (True, "true/false")],
)
def test_api_values_other_than_string_number_or_null_are_malformed(tmp_path, value, words):
    with pytest.raises(DeliveryRejected) as err:
        _read_api(tmp_path, [_record(hours=240), _record(course_code=value)])
    assert err.value.reason == "malformed_records"
    assert f"record 2, course_code: {words}" in err.value.message


def test_api_numbers_and_nulls_are_values(tmp_path):
    result, values = _read_api(tmp_path, [_record(hours=240, national_id=11537027, birth_date=None)])
    assert result.rows_in == 1
    assert values == [("11537027", "240", None)]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"org": "sso\\u0000", "files": [{"rows": 3}]}',  # jsonb holds no NUL
        b'{"org": "sso", "files": [{"rows": NaN}]}',  # nor NaN
        b"\xff\xfe{\x00",
    ],
)
def test_a_manifest_the_ledger_cannot_hold_as_json_is_kept_as_printable_text(raw):
    from anbar.exchange import declared_rows
    from anbar.ingest import _as_recorded

    recorded, rows = _as_recorded(raw, declared_rows)
    assert rows is None and list(recorded) == ["unparseable"] and recorded["unparseable"].isprintable()


# -- the API hook against a real HTTP server ------------------------------------------------------------

BOMB = gzip.compress(b"\0" * (1 << 20), mtime=0) * 100  # 100 MiB once inflated


class _Supplier(BaseHTTPRequestHandler):
    """/v1/extracts/trainees/<period>[/manifest]: bomb (gzip bombs), loop (a cursor that repeats), gone (404)."""

    def do_GET(self):
        path = self.path.partition("?")[0]
        period = path.split("/")[4]
        body, gzipped, status = b"", False, 200
        if path.endswith("/manifest"):
            body, gzipped = (BOMB, True) if period == "bomb" else (b'{"rows": 1}', False)
        elif period == "bomb":
            body, gzipped = BOMB, True
        elif period == "loop":
            body = json.dumps({"records": [{"hours": 1}], "next_cursor": "c1"}).encode()
        else:
            status = 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def api_hook():
    from anbar import hooks

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Supplier)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    conn = {"conn_type": "http", "host": "127.0.0.1", "port": server.server_address[1], "schema": "http"}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AIRFLOW_CONN_ANBAR_TEST_SUPPLIER", json.dumps({**conn, "password": "token"}))
        env.setattr(hooks, "MAX_PAGE_BYTES", 8 << 20)
        yield hooks.SupplierApiHook("anbar_test_supplier")
    server.shutdown()


def test_a_gzip_bomb_manifest_is_read_no_further_than_its_limit(api_hook):
    from anbar.exchange import MAX_MANIFEST_BYTES

    assert len(api_hook.read_manifest("trainees", "bomb")) == MAX_MANIFEST_BYTES + 1


@pytest.mark.parametrize(
    ("period", "words"),
    [
        ("bomb", "page 1 is larger than 8388608 bytes"),
        ("loop", "page 2 repeats the cursor of an earlier page"),
        ("gone", "page 1 answered HTTP 404"),
    ],
)
def test_api_pages_that_never_end_are_malformed(api_hook, period, words):
    with pytest.raises(DeliveryRejected) as err:
        list(api_hook.iter_records("trainees", period))
    assert err.value.reason == "malformed_records" and words in err.value.message
