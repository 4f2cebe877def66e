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
# Sizes and counts beyond JSON's exactly representable integers (RFC 8259 §6) are not a real file's;
# bounding them keeps every sum of them within the ledger's bigint columns.
MAX_COUNT = 2**53 - 1
MAX_MESSAGE = 2000  # characters of a rejection message (the ledger, the mail)
MAX_SHOWN = 60  # characters of one supplier value (a column name...) quoted in a message


def shown(value: object, limit: int = MAX_SHOWN) -> str:
    """A supplier's value as a message may quote it: control characters (NUL...) escaped, and cut short."""
    text = str(value)
    cut = len(text) > limit
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return text + ("…" if cut else "")


def _printable(value):
    """Messages and details go into PostgreSQL text and JSON (no NUL), mails and Airflow's XCom."""
    if isinstance(value, str):
        return shown(value, MAX_MESSAGE)
    if isinstance(value, list | tuple):
        return [_printable(v) for v in value[:50]]
    return value


class DeliveryRejected(Exception):
    """The delivery breaks the exchange standard; the supplier must fix and redeliver.

    The message is made printable and kept short whatever supplier bytes it quotes."""

    def __init__(self, reason: str, message: str, **detail):
        message = _printable(message)
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.detail = {k: _printable(v) for k, v in detail.items()}


# strict: JSON types as §6.2 says them — "1" is not the integer 1, nor is true or 2.0.
class ManifestFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1, max_length=255)
    bytes: int = Field(ge=0, le=MAX_COUNT)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    rows: int = Field(ge=0, le=MAX_COUNT)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
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
    model_config = ConfigDict(extra="ignore", strict=True)
    org: str
    dataset: str
    period: str
    schema_version: int
    rows: int = Field(ge=0, le=MAX_COUNT)
    page_size: int | None = Field(default=None, ge=1, le=MAX_COUNT)


def declared_rows(manifest: object) -> int | None:
    """The total ``rows`` a manifest declares (SFTP: its files' sum), if it states them as §6.2 wants
    (non-negative JSON integers within ``MAX_COUNT``); else None. Read before the manifest is checked,
    so the ledger has the claim of a delivery that is then rejected."""

    def count(value: object) -> int | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT
        return value if ok else None

    if not isinstance(manifest, dict):
        return None
    files = manifest.get("files")
    if files is None:
        return count(manifest.get("rows"))
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        return None
    counts = [count(f.get("rows")) for f in files]
    return None if None in counts else sum(counts)


def _parse_json(raw: bytes, what: str) -> dict:
    if len(raw) > MAX_MANIFEST_BYTES:
        raise DeliveryRejected("invalid_manifest", f"{what} is larger than the limit of {MAX_MANIFEST_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeliveryRejected("invalid_manifest", f"{what} is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DeliveryRejected("invalid_manifest", f"{what} must be a JSON object")
    return data


def _validation_message(err: ValidationError) -> str:
    return "; ".join(f"{shown('.'.join(str(p) for p in e['loc']) or '(top)')}: {e['msg']}" for e in err.errors()[:10])


def _check_identity(
    org: Organisation, ds: Dataset, period: Period, got_org: str, got_ds: str, got_period: str, schema_version: int
) -> None:
    where = f"{org.code}/{ds.name}/{period.label}"
    if (got_org, got_ds, got_period) != (org.code, ds.name, period.label):
        said = "/".join(shown(v) for v in (got_org, got_ds, got_period))
        raise DeliveryRejected("manifest_mismatch", f"manifest says {said} but was delivered for {where}")
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
            f"encoding '{shown(manifest.encoding)}' is not one of {', '.join(ENCODINGS)}",
        )
    manifest.encoding = manifest.encoding.lower()
    if manifest.delimiter not in DELIMITERS:
        raise DeliveryRejected("invalid_manifest", f"delimiter '{shown(manifest.delimiter)}' is not one of , ; | TAB")
    seen: set[str] = set()
    for f in manifest.files:
        if not SAFE_FILE_NAME.fullmatch(f.name):
            raise DeliveryRejected(
                "unsafe_file_name",
                f"file name '{shown(f.name, 130)}' is not allowed: names are letters, digits, '.', '_' and '-', "
                "end in .csv, and name no directory",
                file=f.name,
            )
        if f.name in seen:
            raise DeliveryRejected("invalid_manifest", f"file '{f.name}' is listed twice")
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


def _delimiter_name(delimiter: str) -> str:
    return "TAB" if delimiter == "\t" else f"'{delimiter}'"


def match_header(header: list[str], ds: Dataset, delimiter: str = ",") -> tuple[list[str], list[str]]:
    """Map a CSV header onto registry columns.

    Returns (columns in file order, optional columns absent from the file). Names match
    case-insensitively after trimming spaces and a stray BOM.
    """
    cleaned = [h.replace("\ufeff", "").strip().lower() for h in header]
    if not cleaned or cleaned == [""]:
        raise DeliveryRejected("invalid_header", "the file has no header row")
    unnamed = [str(i) for i, h in enumerate(cleaned, 1) if not h]
    if unnamed:
        raise DeliveryRejected(
            "invalid_header",
            f"column {', '.join(unnamed)} of the header has no name (a delimiter at the end of the line?)",
        )
    dupes = sorted({h for h in cleaned if cleaned.count(h) > 1})
    if dupes:
        raise DeliveryRejected(
            "invalid_header", f"duplicate columns in the header: {', '.join(shown(d) for d in dupes[:10])}"
        )
    known = set(ds.column_names)
    extra = [h for h in cleaned if h not in known]
    if extra:
        message = f"columns not in the approved schema v{ds.schema_version}: {', '.join(shown(h) for h in extra[:10])}"
        others = [d for d in DELIMITERS if d != delimiter and d in cleaned[0]]
        if len(cleaned) == 1 and others:
            message += (
                " (the header reads as one column: does the file use the delimiter the manifest declares, "
                f"{_delimiter_name(delimiter)}, or {_delimiter_name(others[0])}?)"
            )
        raise DeliveryRejected("unexpected_column", message, columns=extra[:10])
    missing_required = [c.name for c in ds.columns if c.required and c.name not in cleaned]
    if missing_required:
        raise DeliveryRejected(
            "missing_column",
            f"required columns missing from the header: {', '.join(missing_required)}",
            columns=missing_required,
        )
    missing_optional = [c.name for c in ds.columns if not c.required and c.name not in cleaned]
    return cleaned, missing_optional
