"""Helpers for the anbar.sim tests.

``inspect_delivery`` is an independent re-implementation of what a receiving
system checks on an SFTP delivery (exchange standard v1), used to prove that
every defect mode is detectable and that good deliveries are clean.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path

from anbar.ids import is_valid_legal_entity_id, is_valid_person_id
from anbar.registry import Registry

SAFE_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.csv$")
CODECS = {"utf-8": "utf-8", "utf-8-sig": "utf-8-sig", "windows-1256": "cp1256"}
_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "0123456789" * 2)

# The test population: small, so the suite stays fast.
SEED = 20260
PERSONS = 900
WORKPLACES = 80

SSO_PERIODS = ["1405-05", "1405-06", "1405-07"]
TVTO_PERIODS = ["2026-08", "2026-09", "2026-10"]

# What a receiving system must find for each defect (at least these problems).
DETECTED_AS = {
    "missing_manifest": {"missing_manifest"},
    "checksum_mismatch": {"checksum_mismatch"},
    "truncated_file": {"size_mismatch", "checksum_mismatch"},
    "wrong_encoding": {"encoding_error"},
    "missing_column": {"missing_column"},
    "hostile_file_name": {"unsafe_file_name"},
    "row_count_mismatch": {"row_count_mismatch"},
    "duplicate_keys": {"duplicate_keys"},
    "invalid_national_ids": {"invalid_national_ids"},
    "unknown_codes": {"unknown_codes"},
}


def inspect_delivery(path: Path, dataset, registry: Registry) -> set[str]:
    """Problems a receiving system finds in a delivery directory (empty set = clean).

    Reason names follow exchange standard v1 (Appendix B) where one exists, plus
    ``missing_manifest``, ``duplicate_keys``, ``invalid_national_ids`` and
    ``unknown_codes`` for the validation findings.
    """
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        return {"missing_manifest"}
    raw = manifest_path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf"), "a manifest is UTF-8 without BOM"
    manifest = json.loads(raw.decode("utf-8"))
    problems: set[str] = set()
    if (manifest["org"], manifest["dataset"], manifest["period"]) != (
        dataset.org,
        dataset.name,
        path.name,
    ) or manifest["schema_version"] != dataset.schema_version:
        problems.add("manifest_mismatch")
    if manifest["encoding"] not in CODECS:
        return problems | {"unsupported_encoding"}
    for entry in manifest["files"]:
        if not SAFE_FILE_NAME.match(entry["name"]):
            return problems | {"unsafe_file_name"}
    codec = CODECS[manifest["encoding"]]
    headers, records = [], []
    for entry in manifest["files"]:
        file_path = path / entry["name"]
        if not file_path.is_file():
            problems.add("missing_file")
            continue
        data = file_path.read_bytes()
        if len(data) != entry["bytes"]:
            problems.add("size_mismatch")
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            problems.add("checksum_mismatch")
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            problems.add("encoding_error")
            continue
        if codec == "cp1256" and any(b >= 0x80 for b in data):
            try:
                data.decode("utf-8")
                problems.add("encoding_error")  # UTF-8 declared as windows-1256
            except UnicodeDecodeError:
                pass
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=manifest["delimiter"])
        rows = list(reader)
        if not rows:
            problems.add("invalid_header")
            continue
        header, body = rows[0], rows[1:]
        headers.append(header)
        if any(len(r) != len(header) for r in body):
            problems.add("malformed_csv")
        if len(body) != entry["rows"]:
            problems.add("row_count_mismatch")
        records += [dict(zip(header, r, strict=False)) for r in body]
    if not headers:
        return problems
    header = headers[0]
    if any(h != header for h in headers):
        problems.add("invalid_header")
    required = {c.name for c in dataset.columns if c.required}
    if required - set(header):
        problems.add("missing_column")
    if set(header) - set(dataset.column_names):
        problems.add("unexpected_column")
    problems |= value_problems(records, dataset, registry)
    return problems


def value_problems(records: list[dict], dataset, registry: Registry) -> set[str]:
    """Validation findings on records (dicts of column -> string or None)."""
    problems: set[str] = set()
    norm = [{k: (v.translate(_DIGITS) if isinstance(v, str) else v) for k, v in r.items()} for r in records]
    keys = [tuple(r.get(k) for k in dataset.primary_key) for r in norm]
    if len(keys) != len(set(keys)):
        problems.add("duplicate_keys")
    for col in dataset.columns:
        values = [r.get(col.name) for r in norm if r.get(col.name)]
        if col.identifier is not None:
            check = is_valid_person_id if col.identifier.value == "person" else is_valid_legal_entity_id
            if not all(check(v) for v in values):
                problems.add("invalid_national_ids")
        if col.code_list:
            codes = registry.code_lists[col.code_list].codes
            if any(v not in codes for v in values):
                problems.add("unknown_codes")
    return problems
