"""Exchange standard v1: the delivery manifest and the rules a delivery must meet.

See docs/exchange-standard.md. Every rule here raises ``DeliveryRejected`` with a
stable reason code (recorded in the ledger and quoted to the supplier) and a
message a supplier's IT staff can act on.
"""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anbar.periods import Period
from anbar.registry import Dataset, Organisation

ENCODINGS = ("utf-8", "utf-8-sig", "windows-1256")
DELIMITERS = (",", ";", "|", "\t")
SAFE_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.csv$")
MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 1_000_000


class DeliveryRejected(Exception):
    """The delivery breaks the exchange standard; the supplier must fix and redeliver."""

    def __init__(self, reason: str, message: str, **detail):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.detail = detail


class ManifestFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    rows: int = Field(ge=0)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    org: str
    dataset: str
    period: str
    schema_version: int
    encoding: str
    delimiter: str
    files: list[ManifestFile] = Field(min_length=1)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)


class ApiManifest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    org: str
    dataset: str
    period: str
    schema_version: int
    rows: int = Field(ge=0)
    page_size: int | None = None


def _parse_json(raw: bytes, what: str) -> dict:
    if len(raw) > MAX_MANIFEST_BYTES:
        raise DeliveryRejected("invalid_manifest", f"{what} is {len(raw)} bytes; the limit is {MAX_MANIFEST_BYTES}")
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeliveryRejected("invalid_manifest", f"{what} is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DeliveryRejected("invalid_manifest", f"{what} must be a JSON object")
    return data


def _validation_message(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in err.errors())


def _check_identity(
    org: Organisation, ds: Dataset, period: Period, got_org: str, got_ds: str, got_period: str, schema_version: int
) -> None:
    where = f"{org.code}/{ds.name}/{period.label}"
    if (got_org, got_ds, got_period) != (org.code, ds.name, period.label):
        raise DeliveryRejected(
            "manifest_mismatch",
            f"manifest says {got_org}/{got_ds}/{got_period} but was delivered for {where}",
        )
    if schema_version != ds.schema_version:
        raise DeliveryRejected(
            "schema_version",
            f"schema_version {schema_version} is not the approved version {ds.schema_version} of {ds.name}",
        )


def parse_manifest(raw: bytes, org: Organisation, ds: Dataset, period: Period) -> Manifest:
    """Parse and check an SFTP delivery manifest against the registry and its directory."""
    data = _parse_json(raw, MANIFEST_NAME)
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as err:
        raise DeliveryRejected("invalid_manifest", _validation_message(err)) from None
    _check_identity(org, ds, period, manifest.org, manifest.dataset, manifest.period, manifest.schema_version)
    if manifest.encoding.lower() not in ENCODINGS:
        raise DeliveryRejected(
            "unsupported_encoding",
            f"encoding {manifest.encoding!r} is not one of {', '.join(ENCODINGS)}",
        )
    manifest.encoding = manifest.encoding.lower()
    if manifest.delimiter not in DELIMITERS:
        raise DeliveryRejected("invalid_manifest", f"delimiter {manifest.delimiter!r} is not one of , ; | TAB")
    seen: set[str] = set()
    for f in manifest.files:
        if not SAFE_FILE_NAME.fullmatch(f.name):
            raise DeliveryRejected(
                "unsafe_file_name",
                f"file name {f.name!r} is not allowed: names are letters, digits, '.', '_' and '-', "
                "end in .csv, and name no directory",
                file=f.name,
            )
        if f.name in seen:
            raise DeliveryRejected("invalid_manifest", f"file {f.name!r} is listed twice")
        seen.add(f.name)
    return manifest


def parse_api_manifest(raw: bytes, org: Organisation, ds: Dataset, period: Period) -> ApiManifest:
    data = _parse_json(raw, "API manifest")
    try:
        manifest = ApiManifest.model_validate(data)
    except ValidationError as err:
        raise DeliveryRejected("invalid_manifest", _validation_message(err)) from None
    _check_identity(org, ds, period, manifest.org, manifest.dataset, manifest.period, manifest.schema_version)
    return manifest


def match_header(header: list[str], ds: Dataset) -> tuple[list[str], list[str]]:
    """Map a CSV header onto registry columns.

    Returns (columns in file order, optional columns absent from the file). Names match
    case-insensitively after trimming spaces and a stray BOM.
    """
    cleaned = [h.replace("\ufeff", "").strip().lower() for h in header]
    if not cleaned or cleaned == [""]:
        raise DeliveryRejected("invalid_header", "the file has no header row")
    dupes = sorted({h for h in cleaned if cleaned.count(h) > 1})
    if dupes:
        raise DeliveryRejected("invalid_header", f"duplicate columns in the header: {', '.join(dupes)}")
    known = set(ds.column_names)
    extra = [h for h in cleaned if h not in known]
    if extra:
        raise DeliveryRejected(
            "unexpected_column",
            f"columns not in the approved schema v{ds.schema_version}: {', '.join(extra)}",
            columns=extra,
        )
    missing_required = [c.name for c in ds.columns if c.required and c.name not in cleaned]
    if missing_required:
        raise DeliveryRejected(
            "missing_column",
            f"required columns missing from the header: {', '.join(missing_required)}",
            columns=missing_required,
        )
    missing_optional = [c.name for c in ds.columns if not c.required and c.name not in cleaned]
    return cleaned, missing_optional
