"""SFTP deliveries in the layout of exchange standard v1.

::

    <root>/<org>/<outbox>/<dataset>/<period>/
        <dataset>_<period>_part-001.csv   one or more CSV files, header row each
        ...
        manifest.json                     written last

``manifest.json``::

    {"org", "dataset", "period", "schema_version", "encoding", "delimiter",
     "files": [{"name", "bytes", "sha256", "rows"}]}

``rows`` counts data rows (not the header); ``encoding`` is one of ``utf-8``,
``utf-8-sig``, ``windows-1256``. Every file is written to a temporary name and
renamed into place, data files before the manifest, so a poller that sees a
manifest sees complete files. Nothing in a file depends on the time: writing
the same delivery twice gives byte-identical files (unchanged files are not
even rewritten).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from anbar.registry import Dataset, Registry
from anbar.sim.defects import (
    HOSTILE_FILE_NAME,
    ROW_COUNT_SURPLUS,
    SFTP_DEFECTS,
    SimConfig,
    apply_row_defect,
    missing_column_for,
)
from anbar.sim.extracts import Row, Variant, as_period, dataset_periods, extract_rows, represent, sftp_variant
from anbar.sim.population import Population
from anbar.sim.text import arabic_letters, cp1256_safe

MANIFEST = "manifest.json"
ENCODINGS = {"utf-8": "utf-8", "utf-8-sig": "utf-8-sig", "windows-1256": "cp1256"}


def delivery_dir(root: Path | str, org: str, dataset: str, period: str, outbox: str = "outbox"):
    return Path(root) / org / outbox / dataset / period


def atomic_write(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` via a temporary file and a rename; False if unchanged."""
    try:
        if path.read_bytes() == data:
            return False
    except (FileNotFoundError, IsADirectoryError):
        pass
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return True


def csv_bytes(header: Sequence[str], rows: Sequence[Row], *, delimiter: str, codec: str) -> bytes:
    """RFC 4180 CSV (CRLF, quoting when needed) with a header row."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(name, "") for name in header])
    text = buf.getvalue()
    if codec == "cp1256":
        text = cp1256_safe(text)
    return text.encode(codec)


def _split(rows: Sequence[Row], files: int) -> list[Sequence[Row]]:
    files = max(1, files)
    size = -(-len(rows) // files) if rows else 0
    return [rows[i * size : (i + 1) * size] for i in range(files)]


def write_sftp_delivery(
    root: Path | str,
    org: str,
    dataset: str | Dataset,
    period_label: str,
    rows: Sequence[Row],
    *,
    encoding: str,
    delimiter: str,
    files: int = 1,
    defect: str | None = None,
    schema_version: int | None = None,
    columns: Sequence[str] | None = None,
    outbox: str = "outbox",
) -> Path:
    """Write one delivery (data files, then ``manifest.json``) and return its directory.

    ``encoding`` is what the manifest declares and (unless the defect says
    otherwise) what the bytes are. The header is ``columns``, else the keys of
    the first row, else the registry columns of ``dataset`` (when a ``Dataset``).

    File-level defects are applied here: ``missing_manifest``,
    ``checksum_mismatch``, ``truncated_file``, ``wrong_encoding``,
    ``hostile_file_name``, ``row_count_mismatch``. Row-level defects
    (``ROW_DEFECTS``: ``missing_column``, ``duplicate_keys``, ``invalid_dates``,
    ``count_drop``, ...) must already be in ``rows`` (see
    ``anbar.sim.defects.apply_row_defect``); here they are only recorded.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {sorted(ENCODINGS)}, got {encoding!r}")
    if defect is not None and defect not in SFTP_DEFECTS:
        raise ValueError(f"unknown SFTP defect {defect!r}")
    if len(delimiter) != 1:
        raise ValueError("delimiter must be one character")
    name = dataset.name if isinstance(dataset, Dataset) else dataset
    if schema_version is None:
        schema_version = dataset.schema_version if isinstance(dataset, Dataset) else 1
    if columns is None:
        if rows:
            columns = list(rows[0])
        elif isinstance(dataset, Dataset):
            columns = dataset.column_names
        else:
            raise ValueError("no rows and no columns: cannot write a header")

    declared = "utf-8" if defect == "wrong_encoding" else encoding
    codec = "cp1256" if defect == "wrong_encoding" else ENCODINGS[encoding]
    if defect == "wrong_encoding":
        rows = [{k: arabic_letters(v) for k, v in r.items()} for r in rows]

    out = delivery_dir(root, org, name, period_label, outbox)
    out.mkdir(parents=True, exist_ok=True)
    entries: list[dict] = []
    payloads: dict[str, bytes] = {}
    for i, chunk in enumerate(_split(rows, files), start=1):
        data = csv_bytes(columns, chunk, delimiter=delimiter, codec=codec)
        file_name = f"{name}_{period_label}_part-{i:03d}.csv"
        entry = {
            "name": file_name,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "rows": len(chunk),
        }
        entries.append(entry)
        payloads[file_name] = data

    if defect == "wrong_encoding" and all(b < 0x80 for d in payloads.values() for b in d):
        raise ValueError(f"wrong_encoding needs non-ASCII text; {org}/{name} rows are pure ASCII")
    if defect == "checksum_mismatch":
        first = entries[0]
        wrong = hashlib.sha256(b"not the delivered bytes|" + payloads[first["name"]])
        first["sha256"] = wrong.hexdigest()
    if defect == "truncated_file":
        last = entries[-1]["name"]
        data = payloads[last]
        payloads[last] = data[: max(1, len(data) * 3 // 5)]
    if defect == "row_count_mismatch":
        entries[0]["rows"] += ROW_COUNT_SURPLUS
    if defect == "hostile_file_name":
        first = entries[0]
        safe = Path(HOSTILE_FILE_NAME).name  # evil.csv, inside the delivery directory
        payloads[safe] = payloads.pop(first["name"])
        first["name"] = HOSTILE_FILE_NAME

    manifest = {
        "org": org,
        "dataset": name,
        "period": period_label,
        "schema_version": schema_version,
        "encoding": declared,
        "delimiter": delimiter,
        "files": entries,
    }
    manifest_bytes = (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    manifest_path = out / MANIFEST
    if defect == "missing_manifest" or (manifest_path.exists() and manifest_path.read_bytes() != manifest_bytes):
        manifest_path.unlink(missing_ok=True)  # never leave a manifest describing other files
    for stale in out.iterdir():
        if stale.is_file() and stale.name != MANIFEST and stale.name not in payloads:
            stale.unlink()
    for file_name, data in payloads.items():
        atomic_write(out / file_name, data)
    if defect != "missing_manifest":
        atomic_write(manifest_path, manifest_bytes)
    return out


@dataclass(frozen=True)
class Delivery:
    """What was published for one (org, dataset, period)."""

    org: str
    dataset: str
    period: str
    transport: str
    defect: str | None
    rows: int  # data rows actually delivered
    variant: str | None = None  # SFTP representation variant
    path: str | None = None  # SFTP delivery directory

    def as_dict(self) -> dict:
        return asdict(self)


def sftp_delivery_rows(
    population: Population,
    registry: Registry,
    config: SimConfig,
    org: str,
    dataset: str,
    period_label: str,
) -> tuple[list[Row], list[str], Variant, str | None]:
    """Rows (defect and representation applied), header, variant and defect of a delivery."""
    organisation = registry.org(org)
    ds = organisation.dataset(dataset)
    period = as_period(period_label, organisation.calendar)
    defect = config.defect_for(org, dataset, period.label)
    variant = sftp_variant(registry, org, dataset, period)
    rows = extract_rows(population, ds, period, registry=registry)
    rows = apply_row_defect(
        rows, ds, defect, registry=registry, seed=config.seed, period=period.label, population=population
    )
    rows = represent(rows, ds, variant, seed=config.seed, period=period.label)
    columns = ds.column_names
    if defect == "missing_column":
        gone = missing_column_for(ds, seed=config.seed, period=period.label)
        columns = [c for c in columns if c != gone]
    return rows, columns, variant, defect


def publish_sftp_periods(
    root: Path | str,
    population: Population,
    registry: Registry,
    config: SimConfig,
    periods: Mapping[str, Sequence[str]],
) -> list[Delivery]:
    """Write every SFTP organisation's datasets for the given periods under ``root``.

    Organisations in ``periods`` that deliver over another transport are skipped.
    """
    published = []
    for org, labels in periods.items():
        organisation = registry.org(org)
        if organisation.transport.kind != "sftp":
            continue
        for ds in organisation.datasets:
            for period in dataset_periods(organisation, ds, labels):
                rows, columns, variant, defect = sftp_delivery_rows(population, registry, config, org, ds.name, period)
                path = write_sftp_delivery(
                    root,
                    org,
                    ds,
                    period,
                    rows,
                    encoding=variant.encoding,
                    delimiter=variant.delimiter,
                    files=variant.files,
                    defect=defect,
                    columns=columns,
                    outbox=organisation.transport.outbox,
                )
                published.append(Delivery(org, ds.name, period, "sftp", defect, len(rows), variant.name, str(path)))
    return published
