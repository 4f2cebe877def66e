"""Read a landed delivery into the pass: header, encoding, CSV structure, then one DuckDB table.

For each delivered file, in manifest order (exchange standard §7):

1. the header line is decoded and matched to the registry (:func:`anbar.exchange.match_header`);
2. a file declared ``windows-1256`` is transcoded to UTF-8 beside the pass (Python's codec, streaming, with
   the check that it is not UTF-8 in disguise); UTF-8 is read as it is, a byte-order mark dropped;
3. its records are checked by :func:`anbar.engine.structure.scan` (vectorised, on the bytes) and, when
   clean, parsed by DuckDB's CSV reader on every core; a file that is not clean, or that DuckDB refuses,
   is read by :mod:`anbar.engine.csvexact`, which rejects it with the data row and line at fault, or
   names the rows holding a quote inside an unquoted field (rejected one by one);
4. its records are counted against the manifest's ``rows``.

The result is :data:`DELIVERY`, a DuckDB table with one row per delivered record: ``_file``, ``_row_no``
(1-based, per file), the dataset's columns as delivered (text, ``r:<column>``), their typed values
(:mod:`anbar.engine.convert`) and ``_problems`` (why a row cannot be converted). Nothing here writes to
PostgreSQL.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from anbar.engine import convert, csvexact, structure
from anbar.engine.decode import MAX_HEADER_BYTES, DecodingReader
from anbar.engine.duck import literal, scalar
from anbar.exchange import DeliveryRejected, match_header, parse_manifest
from anbar.landing import LandingArchive
from anbar.ledger import Submission
from anbar.periods import Period
from anbar.registry import Dataset, Organisation

DELIVERY = "delivery"
# Beyond this many rows, dates are converted by a hash join to every day's spellings (building the two
# lookup tables costs about a second; the join then saves about half a microsecond a value).
LOOKUP_ROWS = 200_000
# DuckDB reads a line of up to this many bytes; a longer one goes to the exact reader.
MAX_LINE_BYTES = 16 << 20


@dataclass(frozen=True)
class DeliveredFile:
    name: str
    path: Path
    rows_declared: int | None  # the manifest's count; None when the delivery's total is checked instead


@dataclass(frozen=True)
class Landed:
    """A landed delivery, as the pass reads it: CSV files with their manifest's encoding and delimiter, or
    the JSON Lines of an API extract with the manifest's total."""

    files: list[DeliveredFile]
    encoding: str = "utf-8"
    delimiter: str = ","
    api_records: Path | None = None
    api_rows_declared: int | None = None


@dataclass
class FileRead:
    name: str
    columns: list[str]  # registry names, in the file's order
    missing: list[str]  # optional columns absent from the header
    rows: int
    reader: str  # "duckdb" or "exact"
    stray_quote_rows: dict[int, list[str]] = field(default_factory=dict)


@dataclass
class DeliveryRead:
    files: list[FileRead]
    rows_in: int
    rows_converted: int
    rows_not_converted: int
    warnings: list[str]


@dataclass
class _Prepared:
    """A file ready for parsing: UTF-8 text at ``path``, its records from byte ``data_offset``."""

    file: DeliveredFile
    path: Path
    data_offset: int
    columns: list[str]
    missing: list[str]


def _header(f: DeliveredFile, encoding: str, delimiter: str, ds: Dataset) -> tuple[list[str], list[str]]:
    with open(f.path, "rb") as fh:
        header = DecodingReader(fh, encoding, f.name).read_header(delimiter)
    try:
        return match_header(header, ds, delimiter)
    except DeliveryRejected as exc:
        raise DeliveryRejected(exc.reason, f"{f.name}: {exc.message}", **{**exc.detail, "file": f.name}) from None


def first_line_length(path: Path) -> int:
    """Bytes of the header line, its line ending included (read_header made sure there is one)."""
    with open(path, "rb") as fh:
        head = fh.read(MAX_HEADER_BYTES * 4 + 4)
    end = head.find(b"\n")
    return len(head) if end < 0 else end + 1


def _transcode(f: DeliveredFile, encoding: str, tmp: Path) -> Path:
    """The file in UTF-8 (streaming; DecodingReader's checks: bytes valid, not UTF-8 declared windows-1256)."""
    out = tmp / f"{len(list(tmp.iterdir())):04d}.utf8.csv"
    with open(f.path, "rb") as fh, open(out, "wb") as sink:
        reader = DecodingReader(fh, encoding, f.name)
        for text in reader.text_chunks():
            sink.write(text.encode("utf-8"))
    return out


def _check_utf8(f: DeliveredFile, encoding: str) -> None:
    """Raise the standard's encoding_error (with the byte offset) if the file is not valid UTF-8."""
    with open(f.path, "rb") as fh:
        for _ in DecodingReader(fh, encoding, f.name).text_chunks():
            pass


def prepare(files: list[DeliveredFile], ds: Dataset, encoding: str, delimiter: str, tmp: Path) -> list[_Prepared]:
    """Headers (the same in every file), encodings: every file-level rejection before any record is read."""
    prepared: list[_Prepared] = []
    first: list[str] | None = None
    for f in files:
        columns, missing = _header(f, encoding, delimiter, ds)
        if first is not None and columns != first:
            raise DeliveryRejected("invalid_header", f"{f.name}: header differs from the first file's header")
        first = first or columns
        path = _transcode(f, encoding, tmp) if encoding == "windows-1256" else f.path
        prepared.append(_Prepared(f, path, first_line_length(path), columns, missing))
    return prepared


def _duck_source(p: _Prepared, delimiter: str) -> str:
    columns = "{" + ", ".join(f"{literal(c)}: 'VARCHAR'" for c in p.columns) + "}"
    return (
        f"read_csv({literal(str(p.path))}, delim={literal(delimiter)}, quote='\"', escape='\"', header=false, "
        f"skip=1, columns={columns}, strict_mode=true, null_padding=false, auto_detect=false, "
        f"all_varchar=true, max_line_size={MAX_LINE_BYTES}, buffer_size={2 * MAX_LINE_BYTES})"
    )


def _file_select(p: _Prepared, source: str, ds: Dataset, row_no: str, read_problem: str) -> str:
    """The file's records: ``_file``, ``_row_no``, every registry column (NULL for an optional one absent) and
    ``_read_problem``."""
    values = [
        f"{convert.ident(c)}" if c in p.columns else f"null::varchar as {convert.ident(c)}" for c in ds.column_names
    ]
    return (
        f"select {literal(p.file.name)} as _file, {row_no} as _row_no, {', '.join(values)}, "
        f"{read_problem} as _read_problem from {source}"
    )


def _exact_batches(p: _Prepared, delimiter: str, outcome: list) -> Iterator[pa.RecordBatch]:
    """The exact reader's batches; its summary, or the rejection it raised, goes to ``outcome`` (DuckDB
    would wrap an exception raised inside the stream it reads)."""
    try:
        for item in csvexact.read(p.path, p.data_offset, p.file.name, p.columns, delimiter):
            if isinstance(item, csvexact.ExactRead):
                outcome.append(item)
            else:
                yield item
    except (DeliveryRejected, UnicodeDecodeError) as exc:
        outcome.append(exc)


def read_delivery(
    con: duckdb.DuckDBPyConnection,
    org: Organisation,
    ds: Dataset,
    files: list[DeliveredFile],
    encoding: str,
    delimiter: str,
    tmp: Path,
) -> DeliveryRead:
    """Read every file of the delivery into the table :data:`DELIVERY` of ``con`` (see the module doc).

    Raises DeliveryRejected for what rejects the whole delivery (header, encoding, malformed CSV, records
    counted against the manifest's ``rows``)."""
    tmp.mkdir(parents=True, exist_ok=True)
    prepared = prepare(files, ds, encoding, delimiter, tmp)
    declared_rows = sum(f.rows_declared or 0 for f in files)
    lookups = declared_rows > LOOKUP_ROWS
    if lookups:
        from anbar.engine.duck import install_lookups

        install_lookups(con)
    reads: list[FileRead] = []
    _drop_delivery(con)
    for n, p in enumerate(prepared):
        reads.append(_read_file(con, org, ds, p, delimiter, lookups, f"{DELIVERY}_{n}"))
    # One relation over the files' tables (no copy of them), in manifest order.
    files = " union all ".join(f"select * from {DELIVERY}_{n}" for n in range(len(prepared)))
    # Not temporary (the pass's database is its own, in memory): the COPY of the typed rows reads it from a
    # connection of its own while the rules run (anbar.engine.delivery).
    con.execute(f"create or replace view {DELIVERY} as {files}")
    rows_in = sum(r.rows for r in reads)
    for p, read in zip(prepared, reads, strict=True):  # every file counted first: the ledger records the count
        if p.file.rows_declared is not None and read.rows != p.file.rows_declared:
            raise DeliveryRejected(
                "row_count_mismatch",
                f"{p.file.name}: the manifest declares {p.file.rows_declared} rows, the file holds {read.rows}",
                file=p.file.name,
                declared=p.file.rows_declared,
                found=read.rows,
                counted=rows_in,
            )
    not_converted = scalar(con, f"select count(*) from {DELIVERY} where _problems is not null")
    warnings = [
        f"{r.name}: optional columns absent, loaded as empty: {', '.join(r.missing)}" for r in reads if r.missing
    ]
    shutil.rmtree(tmp, ignore_errors=True)
    return DeliveryRead(reads, rows_in, rows_in - not_converted, not_converted, warnings)


def _read_file(
    con: duckdb.DuckDBPyConnection,
    org: Organisation,
    ds: Dataset,
    p: _Prepared,
    delimiter: str,
    lookups: bool,
    table: str,
) -> FileRead:
    """The file's records, converted, into ``table``.

    DuckDB parses the file into a table of its own first, and its records are numbered by their place in it
    (insertion order is kept: the rowid is the file's order). A ``row_number()`` over the parse would hold
    all of it in one thread, and the conversion's joins do not keep the order: a third of the read's time.
    The vectorised structure check runs beside DuckDB's parse (numpy releases the GIL); its verdict decides
    whether DuckDB's rows are kept."""
    checked: list[structure.Structure] = []
    checker = threading.Thread(
        target=lambda: checked.append(structure.scan(p.path, p.data_offset, len(p.columns), delimiter)),
        name=f"structure-{p.file.name}",
    )
    checker.start()
    duck_error: duckdb.Error | None = None
    try:
        _create(
            con, f"{table}_parsed", _file_select(p, _duck_source(p, delimiter), ds, "null::bigint", "null::varchar")
        )
    except duckdb.Error as exc:
        duck_error = exc
    checker.join()
    structure_ok = checked and checked[0].clean
    if duck_error is None and structure_ok:
        numbered = f"(select * replace (rowid + 1 as _row_no) from {table}_parsed)"
        _create(con, table, convert.conversion_sql(org, ds, numbered, lookups=lookups, keep_raw=True))
        con.execute(f"drop table {table}_parsed")
        rows = scalar(con, f"select count(*) from {table}")
        if rows != checked[0].records:  # two readers of the same bytes disagree: trust neither
            raise RuntimeError(
                f"{p.file.name}: DuckDB read {rows} records, the structure check counted {checked[0].records}"
            )
        reader, stray = "duckdb", {}
    else:
        con.execute(f"drop table if exists {table}_parsed")
        if p.path == p.file.path and duck_error is not None and "unicode" in str(duck_error).lower():
            _check_utf8(p.file, "utf-8")  # raises the standard's encoding_error with the byte offset
        outcome: list = []
        batches = pa.RecordBatchReader.from_batches(csvexact.schema(p.columns), _exact_batches(p, delimiter, outcome))
        con.register("exact_records", batches)
        try:
            raw = _file_select(p, "exact_records", ds, "_row_no", "_read_problem")
            _create(con, table, convert.conversion_sql(org, ds, f"({raw})", lookups=lookups, keep_raw=True))
        finally:
            con.unregister("exact_records")
        if outcome and isinstance(outcome[-1], UnicodeDecodeError):
            _check_utf8(p.file, "utf-8")  # the standard's encoding_error, with the byte offset
        if not outcome or not isinstance(outcome[-1], csvexact.ExactRead):
            raise outcome[-1] if outcome else RuntimeError(f"{p.file.name}: the exact reader ended without a word")
        reader, stray = "exact", outcome[-1].stray_quote_rows
        rows = scalar(con, f"select count(*) from {table}")
    return FileRead(p.file.name, p.columns, p.missing, rows, reader, stray)


def _create(con: duckdb.DuckDBPyConnection, table: str, query: str) -> None:
    if table == DELIVERY:
        _drop_delivery(con)
    con.execute(f"create or replace table {table} as {query}")


def _drop_delivery(con: duckdb.DuckDBPyConnection) -> None:
    """The connection's :data:`DELIVERY`, a view over the files' tables or a table, gone."""
    for kind, temporary in con.execute(
        "select 'view', temporary from duckdb_views() where view_name = $name "
        "union all select 'table', temporary from duckdb_tables() where table_name = $name",
        {"name": DELIVERY},
    ).fetchall():
        con.execute(f"drop {kind} {'temp.' if temporary else ''}{DELIVERY}")


# -- API deliveries: the landed JSON Lines -----------------------------------------------------------------

_ALLOWED_JSON = ("VARCHAR", "BIGINT", "UBIGINT", "DOUBLE", "NULL")
_JSON_KIND = {"OBJECT": "a JSON object", "ARRAY": "a JSON array", "BOOLEAN": "true/false"}


def _record_checks(ds: Dataset) -> list[tuple[str, str, str]]:
    """(reason, DuckDB condition true for a record breaking it, message SQL), in the order they are checked
    within a record (exchange standard §9.2)."""
    known = "[" + ", ".join(literal(c) for c in ds.column_names) + "]"
    required = [c.name for c in ds.columns if c.required]
    extra = f"list_filter(json_keys(j), lambda k: not list_contains({known}, k))"
    missing = "[" + ", ".join(literal(c) for c in required) + "]"
    missing = f"list_filter({missing}, lambda k: not list_contains(json_keys(j), k))"
    checks = [
        ("malformed_records", "json_type(j) <> 'OBJECT'", "'record ' || _row_no || ' is not a JSON object'"),
        (
            "unexpected_column",
            f"len({extra}) > 0",
            f"'record ' || _row_no || ' has fields not in the approved schema: ' || array_to_string({extra}, ', ')",
        ),
        (
            "missing_column",
            f"len({missing}) > 0",
            f"'record ' || _row_no || ' lacks required fields: ' || array_to_string({missing}, ', ')",
        ),
    ]
    for c in ds.column_names:
        kind = f"json_type(j, {literal('$.' + c)})"
        allowed = "(" + ", ".join(literal(t) for t in _ALLOWED_JSON) + ")"
        shown = "case " + kind + " " + " ".join(f"when {literal(k)} then {literal(v)}" for k, v in _JSON_KIND.items())
        shown += f" else lower({kind}) end"
        checks.append(
            (
                "malformed_records",
                f"{kind} is not null and {kind} not in {allowed}",
                f"'record ' || _row_no || ', {c}: ' || {shown} || "
                "' is not allowed; values are strings, numbers or null'",
            )
        )
    return checks


def _json_value(column: str) -> str:
    """A record's value as delivered: a string's text (empty is null, as in CSV), a number's JSON text."""
    where = literal("$." + column)
    return (
        f"case json_type(j, {where}) when 'VARCHAR' then nullif(json_extract_string(j, {where}), '') "
        f"when 'NULL' then null else cast(json_extract(j, {where}) as varchar) end"
    )


def read_api_delivery(
    con: duckdb.DuckDBPyConnection,
    org: Organisation,
    ds: Dataset,
    path: Path,
    rows_declared: int | None,
    tmp: Path,
) -> DeliveryRead:
    """The landed API records (JSON Lines, one record a line, as :mod:`anbar.hooks` wrote them) into
    :data:`DELIVERY`: the keys play the part of the header (§9.2), the values are read as delivered (a
    string's text, a number's JSON text), then converted as a CSV delivery's."""
    name = path.name
    source = (
        f"(select row_number() over () as _row_no, j from read_json({literal(str(path))}, "
        "format='newline_delimited', records=false, columns={'j': 'JSON'}, maximum_object_size=67108864))"
    )
    try:
        con.execute(f"create or replace temporary table api_records as select * from {source}")
    except duckdb.Error:
        _first_bad_json_line(path)
        raise
    checks = _record_checks(ds)
    # Of the checks, the one that breaks the earliest record wins (then the first in the order above).
    found = []
    for order, (reason, condition, message) in enumerate(checks):
        row = con.execute(f"select min(_row_no) from api_records where {condition}").fetchall()[0][0]
        if row is not None:
            found.append((row, order, reason, condition, message))
    if found:
        row, _, reason, condition, message = min(found)
        text = scalar(con, f"select {message} from api_records where _row_no = {int(row)}")
        raise DeliveryRejected(reason, text)
    values = ", ".join(f"{_json_value(c)} as {convert.ident(c)}" for c in ds.column_names)
    raw = f"(select {literal(name)} as _file, _row_no, {values}, null::varchar as _read_problem from api_records)"
    lookups = (rows_declared or 0) > LOOKUP_ROWS
    if lookups:
        from anbar.engine.duck import install_lookups

        install_lookups(con)
    _create(con, DELIVERY, convert.conversion_sql(org, ds, raw, lookups=lookups, keep_raw=True))
    con.execute("drop table api_records")
    rows_in = scalar(con, f"select count(*) from {DELIVERY}")
    if rows_declared is not None and rows_in != rows_declared:
        raise DeliveryRejected(
            "row_count_mismatch",
            f"the manifest declares {rows_declared} rows, the delivery holds {rows_in}",
            declared=rows_declared,
            found=rows_in,
            counted=rows_in,
        )
    not_converted = scalar(con, f"select count(*) from {DELIVERY} where _problems is not null")
    read_file = FileRead(name, ds.column_names, [], rows_in, "duckdb")
    return DeliveryRead([read_file], rows_in, rows_in - not_converted, not_converted, [])


def _first_bad_json_line(path: Path) -> None:
    """DuckDB refused the records: find the first line that is not JSON and say so (§9.2)."""
    with open(path, encoding="utf-8") as fh:
        record = 0
        for line in fh:
            if not line.strip():
                continue
            record += 1
            try:
                json.loads(line)
            except json.JSONDecodeError as exc:
                raise DeliveryRejected("malformed_records", f"record {record} is not valid JSON: {exc}") from None


def read_landed(con: duckdb.DuckDBPyConnection, org: Organisation, ds: Dataset, landed: Landed, tmp: Path):
    """:func:`read_delivery` or :func:`read_api_delivery`, as the delivery came."""
    if landed.api_records is not None:
        return read_api_delivery(con, org, ds, landed.api_records, landed.api_rows_declared, tmp)
    return read_delivery(con, org, ds, landed.files, landed.encoding, landed.delimiter, tmp)


def read_rendering(con: duckdb.DuckDBPyConnection, org: Organisation, ds: Dataset, parquet: Path) -> DeliveryRead:
    """A delivery already read once, from the rendering of its delivered values (no CSV parsed again)."""
    rows_declared = scalar(con, f"select count(*) from read_parquet({literal(str(parquet))})")
    lookups = rows_declared > LOOKUP_ROWS
    if lookups:
        from anbar.engine.duck import install_lookups

        install_lookups(con)
    source = f"(select * from read_parquet({literal(str(parquet))}))"
    _create(con, DELIVERY, convert.conversion_sql(org, ds, source, lookups=lookups, keep_raw=True))
    files = con.execute(f"select _file, count(*) from {DELIVERY} group by _file order by _file").fetchall()
    not_converted = scalar(con, f"select count(*) from {DELIVERY} where _problems is not null")
    reads = [FileRead(name, ds.column_names, [], rows, "rendering") for name, rows in files]
    return DeliveryRead(reads, rows_declared, rows_declared - not_converted, not_converted, [])


def landed_delivery(archive: LandingArchive, org: Organisation, ds: Dataset, p: Period, sub: Submission) -> Landed:
    """What the pass reads of a landed submission: its files, as its manifest declares them."""
    landed = Path(sub.landing_path)
    listing = json.loads((landed / "files.json").read_text())
    raw_manifest = (landed / "manifest.json").read_bytes()
    try:
        declared = json.loads(raw_manifest.decode("utf-8-sig"))
    except ValueError:
        declared = None
    if org.transport.kind == "sftp" or (isinstance(declared, dict) and "files" in declared):  # CSV files
        manifest = parse_manifest(raw_manifest, org, ds, p)
        rows_by_name = {f.name: f.rows for f in manifest.files}
        files = [DeliveredFile(f["name"], archive.root / f["object"], rows_by_name[f["name"]]) for f in listing]
        return Landed(files, manifest.encoding, manifest.delimiter)
    return Landed([], api_records=archive.root / listing[0]["object"], api_rows_declared=sub.rows_manifest)
