"""Helpers for the anbar.sim tests.

``inspect_delivery`` is an independent re-implementation of what a receiving
system checks on an SFTP delivery (exchange standard v1), used to prove that
every defect mode is detectable and that good deliveries are clean.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jdatetime

from anbar.ids import is_valid_legal_entity_id, is_valid_person_id
from anbar.periods import Period
from anbar.registry import Calendar, Registry

SAFE_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.csv$")
CODECS = {"utf-8": "utf-8", "utf-8-sig": "utf-8-sig", "windows-1256": "cp1256"}
_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "0123456789" * 2)

# The test population: small, so the suite stays fast.
SEED = 20260
PERSONS = 900
WORKPLACES = 80

SSO_PERIODS = ["1405-05", "1405-06", "1405-07"]
CSPF_PERIODS = SSO_PERIODS
SWO_PERIODS = SSO_PERIODS
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
    "invalid_dates": {"invalid_dates"},
    "out_of_range": {"out_of_range"},
    "inconsistent_dates": {"inconsistent_dates"},
    "count_drop": {"count_drop"},
    "rejuvenated_persons": {"rejuvenated_persons"},
    "pensioners_hired": {"pensioners_hired"},
}
# Found besides the defect's own problem: an unknown province code is also one the county
# code (whose first two digits are the province code) does not belong to.
ALSO_DETECTED = {("swo", "beneficiaries", "unknown_codes"): {"county_outside_province"}}
# Findings that need other deliveries (the previous period, another supplier): see Context.
CONTEXT_FINDINGS = {"count_drop", "rejuvenated_persons", "pensioners_hired"}
COUNT_TOLERANCE = 0.3  # a delivery may have 30% fewer rows than the previous period's (TVTO moves by 25%)
HIRED_PENSIONERS_TOLERANCE = 0.01  # pensioners newly insured in the period, share of rows


@dataclass(frozen=True)
class Context:
    """What a receiving system knows besides the delivery: the previous period's rows of the
    same dataset, and the persons who are CSPF pensioners in the period."""

    period: Period
    previous: list[dict] | None = None
    pensioners: frozenset[str] = frozenset()


def delivery_context(population, registry: Registry, org: str, dataset: str, period: str) -> Context:
    """The context of a delivery, from the good extracts of the population."""
    from anbar.sim.extracts import as_period, extract_rows

    p = as_period(period, registry.org(org).calendar)
    previous = extract_rows(population, registry.dataset(org, dataset), p.previous(), registry=registry)
    pensioners = frozenset()
    if org == "sso" and "cspf" in registry.organisations:  # both report on Jalali months
        cspf = registry.dataset("cspf", "pensioners")
        pensioners = frozenset(r["national_id"] for r in extract_rows(population, cspf, p.label, registry=registry))
    return Context(p, previous, pensioners)


def parse_date(value: str, calendar: Calendar | str) -> dt.date | None:
    """The date a value means in its calendar, or None if there is no such date."""
    m = re.fullmatch(r"(\d{4})([/-])(\d{1,2})\2(\d{1,2})", value)
    if not m:
        return None
    y, mo, d = int(m.group(1)), int(m.group(3)), int(m.group(4))
    try:
        if Calendar(calendar) is Calendar.jalali:
            return jdatetime.date(y, mo, d).togregorian()
        return dt.date(y, mo, d)
    except ValueError:
        return None


def date_order(dataset) -> list[tuple[str, str]]:
    """(earlier, later) date columns of one record, written out per dataset (independently of the simulator)."""
    return {
        ("sso", "insured_persons"): [("birth_date", "employment_start")],
        ("tvto", "trainees"): [("birth_date", "course_start"), ("course_start", "course_end")],
        ("cspf", "pensioners"): [("birth_date", "retirement_date")],
        ("swo", "beneficiaries"): [("birth_date", "support_start")],
    }.get((dataset.org, dataset.name), [])


def inspect_delivery(path: Path, dataset, registry: Registry, context: Context | None = None) -> set[str]:
    """Problems a receiving system finds in a delivery directory (empty set = clean).

    Reason names follow exchange standard v1 (Appendix B) where one exists, plus
    ``missing_manifest`` and the validation findings of ``value_problems`` (and of
    ``context_problems`` when a ``context`` is given).
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
    if context is not None:
        problems |= context_problems(records, dataset, context)
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
        if col.type.value == "date":
            calendar = registry.org(dataset.org).date_calendar(col)
            if any(parse_date(v, calendar) is None for v in values):
                problems.add("invalid_dates")
        if col.min is not None or col.max is not None:
            lo = float("-inf") if col.min is None else col.min
            hi = float("inf") if col.max is None else col.max
            if any(not lo <= float(v) <= hi for v in values):
                problems.add("out_of_range")
    columns = {c.code_list: c.name for c in dataset.columns if c.code_list in ("province", "iran_county")}
    if len(columns) == 2:  # a county code starts with the code of its province
        province, county = columns["province"], columns["iran_county"]
        if any(r.get(county) and r.get(province) and r[county][:2] != r[province] for r in norm):
            problems.add("county_outside_province")
    for earlier, later in date_order(dataset):
        cal_a = registry.org(dataset.org).date_calendar(dataset.column(earlier))
        cal_b = registry.org(dataset.org).date_calendar(dataset.column(later))
        for r in norm:
            a = parse_date(r.get(earlier) or "", cal_a)
            b = parse_date(r.get(later) or "", cal_b)
            if a and b and b < a:
                problems.add("inconsistent_dates")
    return problems


def context_problems(records: list[dict], dataset, context: Context) -> set[str]:
    """Findings across periods and suppliers (records as in ``value_problems``)."""
    problems: set[str] = set()
    norm = [{k: (v.translate(_DIGITS) if isinstance(v, str) else v) for k, v in r.items()} for r in records]
    if context.previous is not None and len(norm) < (1 - COUNT_TOLERANCE) * len(context.previous):
        problems.add("count_drop")
    if context.previous and "birth_date" in dataset.column_names and "national_id" in dataset.column_names:
        born = {r["national_id"]: r["birth_date"] for r in context.previous}
        calendar = Calendar.jalali if context.period.calendar is Calendar.jalali else Calendar.gregorian
        for r in norm:
            before = born.get(r.get("national_id"))
            now = parse_date(r.get("birth_date") or "", calendar)
            if before and now and now > parse_date(before, calendar):
                problems.add("rejuvenated_persons")
    if (dataset.org, dataset.name) == ("sso", "insured_persons") and norm:
        hired = [
            r
            for r in norm
            if r.get("national_id") in context.pensioners
            and context.period.start <= (parse_date(r.get("employment_start") or "", "jalali") or dt.date.min)
            and parse_date(r["employment_start"], "jalali") < context.period.end
        ]
        if len(hired) > HIRED_PENSIONERS_TOLERANCE * len(norm):
            problems.add("pensioners_hired")
    return problems


@contextlib.contextmanager
def api_client(loop, app, token: str) -> Iterator:
    """An httpx client with the bearer token, on ``app`` served by uvicorn in ``loop``'s thread."""
    import httpx

    from anbar.sim.api_server import ApiServer

    server = loop.run(ApiServer.start(app))
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{server.port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
            trust_env=False,
        ) as client:
            yield client
    finally:
        loop.run(server.close())
