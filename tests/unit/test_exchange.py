"""Manifest rules of exchange standard v1."""

from __future__ import annotations

import json

import pytest

from anbar.exchange import MAX_COUNT, DeliveryRejected, declared_rows, match_header, parse_manifest
from anbar.periods import Period
from anbar.registry import load_registry

REG = load_registry()
SSO = REG.org("sso")
PERSONS = SSO.dataset("insured_persons")
PERIOD = Period.parse("1404-08", "jalali")


def manifest(**over):
    m = {
        "org": "sso",
        "dataset": "insured_persons",
        "period": "1404-08",
        "schema_version": 1,
        "encoding": "utf-8",
        "delimiter": ",",
        "files": [{"name": "part1.csv", "bytes": 10, "sha256": "a" * 64, "rows": 3}],
    }
    m.update(over)
    return json.dumps(m).encode()


def test_a_good_manifest_parses():
    m = parse_manifest(manifest(), SSO, PERSONS, PERIOD)
    assert m.rows == 3 and m.files[0].name == "part1.csv"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "invalid_manifest"),
        (b"[]", "invalid_manifest"),
        (manifest(files=[]), "invalid_manifest"),
        (manifest(period="1404-07"), "manifest_mismatch"),
        (manifest(org="tvto"), "manifest_mismatch"),
        (manifest(schema_version=2), "schema_version"),
        (manifest(encoding="latin-1"), "unsupported_encoding"),
        (manifest(delimiter="#"), "invalid_manifest"),
        (
            manifest(files=[{"name": "../../etc/cron.d/evil.csv", "bytes": 1, "sha256": "a" * 64, "rows": 0}]),
            "unsafe_file_name",
        ),
        (manifest(files=[{"name": "sub/dir.csv", "bytes": 1, "sha256": "a" * 64, "rows": 0}]), "unsafe_file_name"),
        (manifest(files=[{"name": ".hidden.csv", "bytes": 1, "sha256": "a" * 64, "rows": 0}]), "unsafe_file_name"),
        (manifest(files=[{"name": "x.csv", "bytes": 1, "sha256": "XYZ", "rows": 0}]), "invalid_manifest"),
        (manifest(files=[{"name": "x.csv", "bytes": 1, "sha256": "a" * 64, "rows": 0}] * 2), "invalid_manifest"),
        # JSON types as §6.2 states them: "1", true and 2.0 are not integers
        (manifest(schema_version="1"), "invalid_manifest"),
        (manifest(schema_version=True), "invalid_manifest"),
        (manifest(files=[{"name": "x.csv", "bytes": 1, "sha256": "a" * 64, "rows": "3"}]), "invalid_manifest"),
        (manifest(files=[{"name": "x.csv", "bytes": 1.0, "sha256": "a" * 64, "rows": 3}]), "invalid_manifest"),
        (
            manifest(files=[{"name": "x.csv", "bytes": 1, "sha256": "a" * 64, "rows": MAX_COUNT + 1}]),
            "invalid_manifest",
        ),
        (manifest(files=[{"name": "x.csv", "bytes": 10**20, "sha256": "a" * 64, "rows": 3}]), "invalid_manifest"),
    ],
)
def test_bad_manifests_are_rejected_with_a_reason(raw, reason):
    with pytest.raises(DeliveryRejected) as err:
        parse_manifest(raw, SSO, PERSONS, PERIOD)
    assert err.value.reason == reason


def test_header_matching_is_case_and_space_insensitive_and_reports_optional_gaps():
    header = [" National_ID", "WORKSHOP_CODE", "sex", "birth_date", "insurance_type", "days_worked", "insured_wage"]
    cols, missing = match_header(["\ufeff" + header[0], *header[1:]], PERSONS)
    assert cols[0] == "national_id" and missing == ["employment_start"]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ([""], "invalid_header"),
        ([*PERSONS.column_names, ""], "invalid_header"),  # a delimiter at the end of the line
        (["national_id", "national_id"], "invalid_header"),
        (["national_id", "workshop_code"], "missing_column"),
        ([*PERSONS.column_names, "bonus"], "unexpected_column"),
    ],
)
def test_bad_headers(header, reason):
    with pytest.raises(DeliveryRejected) as err:
        match_header(header, PERSONS)
    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("data", "rows"),
    [
        ({"files": [{"rows": 2}, {"rows": 3}]}, 5),
        ({"rows": 7}, 7),
        ({"files": [{"rows": 2}, {"rows": "3"}]}, None),
        ({"files": [{"rows": True}]}, None),
        ({"files": [{"rows": -1}]}, None),
        ({"files": [{"rows": 10**20}]}, None),  # beyond the ledger's bigint
        ({"files": "part-001.csv"}, None),
        (["rows", 3], None),
    ],
)
def test_declared_rows_are_only_json_integers_the_ledger_can_hold(data, rows):
    assert declared_rows(data) == rows


def test_a_rejection_message_quotes_supplier_bytes_printably_and_briefly():
    header = ["n\x00ame" + "x" * 5000, *PERSONS.column_names]
    with pytest.raises(DeliveryRejected) as err:
        match_header(header, PERSONS)
    message = err.value.message
    assert err.value.reason == "unexpected_column"
    assert message.isprintable() and "\\x00" in message and len(message) < 300
    assert all(c.isprintable() for c in err.value.detail["columns"][0])


def test_a_header_read_as_one_column_suggests_the_delimiter():
    with pytest.raises(DeliveryRejected) as err:
        match_header([",".join(PERSONS.column_names)], PERSONS, delimiter="\t")
    assert "does the file use the delimiter the manifest declares, TAB, or ','" in err.value.message
