"""Load a landed delivery into PostgreSQL: stream-decode, COPY into raw, convert into clean.

Memory stays flat whatever the file size: bytes are decoded chunk by chunk and fed
to ``COPY ... FROM STDIN``; PostgreSQL parses the CSV. Conversion (digits, letters,
Jalali dates, types) runs inside PostgreSQL in one pass, because it is several
times faster there than in Python (see bench/). Each delivery gets its own
partition in ``raw`` and ``clean``; both are built as standalone tables and attached
at the end of one transaction, so a failed load leaves nothing behind and readers
are never blocked by a long load.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from psycopg2 import sql

from anbar.exchange import DeliveryRejected, match_header
from anbar.registry import Calendar, Column, ColumnType, Dataset, Identifier, Organisation

CHUNK = 1 << 20
MAX_HEADER_BYTES = 64 * 1024
# Bytes that are valid UTF-8 and non-ASCII are, in practice, never legitimate
# windows-1256 Persian text; seeing them means the declaration is wrong.


class WarehouseConnectionLost(ConnectionError):
    """The warehouse's server went away in the middle of a load (which it rolled back)."""


@dataclass
class FileToLoad:
    name: str
    path: Path
    rows_declared: int | None  # from the manifest; None for API deliveries (checked on the total)


@dataclass
class LoadResult:
    rows_in: int
    rows_loaded: int
    rows_rejected: int
    files: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class DecodingReader(io.RawIOBase):
    """A file-like object giving the UTF-8 bytes of a file written in ``encoding``.

    Raises DeliveryRejected(encoding_error) with the byte offset of the first bad byte.
    """

    def __init__(self, raw, encoding: str, file_name: str):
        super().__init__()
        self._raw = raw
        self._name = file_name
        self._encoding = encoding
        py_encoding = {"utf-8": "utf-8-sig", "utf-8-sig": "utf-8-sig", "windows-1256": "cp1256"}[encoding]
        # utf-8 with a BOM is tolerated: the BOM is dropped either way.
        self._decoder = codecs.getincrementaldecoder(py_encoding)("strict")
        self._utf8_probe = codecs.getincrementaldecoder("utf-8")("strict") if encoding == "windows-1256" else None
        self._probe_ok = True
        self._probe_saw_non_ascii = False
        self._offset = 0
        self._pending = b""
        self._eof = False
        self.error: DeliveryRejected | None = None  # psycopg2 hides exceptions raised inside read()
        self.ascii_only = True  # no character outside ASCII: nothing for digit and letter conversion to do

    def readable(self) -> bool:
        return True

    def _decode_chunk(self, chunk: bytes, final: bool) -> str:
        try:
            return self._checked_decode(chunk, final)
        except DeliveryRejected as exc:
            self.error = exc
            raise

    def _checked_decode(self, chunk: bytes, final: bool) -> str:
        try:
            text = self._decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            raise DeliveryRejected(
                "encoding_error",
                f"{self._name}: byte {self._offset + exc.start} ({chunk[exc.start : exc.start + 4]!r}) is not valid "
                f"{self._encoding}; the manifest declares {self._encoding}",
                file=self._name,
                offset=self._offset + exc.start,
            ) from None
        if self._utf8_probe is not None and self._probe_ok:
            if not chunk.isascii():
                self._probe_saw_non_ascii = True
            try:
                self._utf8_probe.decode(chunk, final)
            except UnicodeDecodeError:
                self._probe_ok = False
            if final and self._probe_ok and self._probe_saw_non_ascii:
                raise DeliveryRejected(
                    "encoding_error",
                    f"{self._name}: declared windows-1256, but the file is UTF-8 (its non-ASCII bytes are all "
                    "valid UTF-8 sequences); declare encoding utf-8",
                    file=self._name,
                )
        self._offset += len(chunk)
        return text

    def text_chunks(self) -> Iterator[str]:
        while True:
            chunk = self._raw.read(CHUNK)
            final = not chunk
            text = self._decode_chunk(chunk, final)
            if text:
                if self.ascii_only and not text.isascii():
                    self.ascii_only = False
                yield text
            if final:
                return

    def read_header(self, delimiter: str) -> list[str]:
        """Consume and parse the header line; the rest stays available to ``read``."""
        self._chunks = self.text_chunks()
        buf = ""
        for text in self._chunks:
            buf += text
            if "\n" in buf or len(buf) > MAX_HEADER_BYTES:
                break
        line, _, rest = buf.partition("\n")
        if len(line) > MAX_HEADER_BYTES:
            raise DeliveryRejected("invalid_header", f"{self._name}: no end of line in the first 64 KiB")
        self._pending = rest.encode("utf-8")
        line = line.removesuffix("\r")
        if "\x00" in line:
            raise DeliveryRejected(
                "encoding_error",
                f"{self._name}: the header line holds NUL bytes (0x00): the file looks like UTF-16 or binary data, "
                f"not {self._encoding} text",
                file=self._name,
            )
        if "\r" in line:
            raise DeliveryRejected(
                "invalid_header",
                f"{self._name}: the header line ends with a bare carriage return (CR, as old Mac files do); "
                "lines must end with CRLF or LF",
                file=self._name,
            )
        if not line.strip():
            return []
        try:
            return next(csv.reader([line], delimiter=delimiter))
        except csv.Error as exc:
            raise DeliveryRejected("invalid_header", f"{self._name}: the header line is not CSV: {exc}") from None

    def readinto(self, b) -> int:
        while not self._pending and not self._eof:
            try:
                self._pending = next(self._chunks).encode("utf-8")
            except StopIteration:
                self._eof = True
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _copy_options(delimiter: str) -> sql.Composed:
    return sql.SQL("(format csv, header false, delimiter {}, quote '\"', escape '\"')").format(sql.Literal(delimiter))


def _part(schema: str, ds: Dataset, submission_id: int) -> sql.Identifier:
    return sql.Identifier(schema, f"{ds.key}_s{submission_id}")


def _prepare_partitions(cur, ds: Dataset, submission_id: int) -> None:
    for schema in ("raw", "clean"):
        part = _part(schema, ds, submission_id)
        cur.execute(sql.SQL("drop table if exists {}").format(part))
        cur.execute(
            sql.SQL("create table {} (like {} including defaults)").format(part, sql.Identifier(schema, ds.key))
        )
    cur.execute(
        sql.SQL("alter table {} alter column _submission_id set default {}").format(
            _part("raw", ds, submission_id), sql.Literal(submission_id)
        )
    )


def _attach(cur, schema: str, ds: Dataset, submission_id: int) -> None:
    part = _part(schema, ds, submission_id)
    # The CHECK lets ATTACH skip its validation scan of the whole partition.
    cur.execute(
        sql.SQL("alter table {} add constraint {} check (_submission_id = {})").format(
            part, sql.Identifier(f"{ds.key}_s{submission_id}_only"), sql.Literal(submission_id)
        )
    )
    cur.execute(
        sql.SQL("alter table {} attach partition {} for values in ({})").format(
            sql.Identifier(schema, ds.key), part, sql.Literal(submission_id)
        )
    )


def copy_file(
    cur,
    ds: Dataset,
    submission_id: int,
    f: FileToLoad,
    encoding: str,
    delimiter: str,
    expected_columns: list[str] | None,
) -> tuple[int, list[str], list[str], bool]:
    """COPY one delivered CSV file into the submission's raw partition.

    Returns (rows, columns in file order, optional columns missing, whether the file was all ASCII)."""
    part = _part("raw", ds, submission_id)
    with open(f.path, "rb") as fh:
        reader = DecodingReader(fh, encoding, f.name)
        header = reader.read_header(delimiter)
        try:
            columns, missing = match_header(header, ds, delimiter)
        except DeliveryRejected as exc:
            raise DeliveryRejected(exc.reason, f"{f.name}: {exc.message}", **{**exc.detail, "file": f.name}) from None
        if expected_columns is not None and columns != expected_columns:
            raise DeliveryRejected("invalid_header", f"{f.name}: header differs from the first file's header")
        seq = sql.Identifier("raw", f"{ds.key}_s{submission_id}_rowno")
        cur.execute(sql.SQL("create sequence if not exists {}").format(seq))
        cur.execute(sql.SQL("alter sequence {} restart with 1").format(seq))
        cur.execute(
            sql.SQL(
                "alter table {} alter column _row_no set default nextval({}), alter column _file set default {}"
            ).format(part, sql.Literal(f"raw.{ds.key}_s{submission_id}_rowno"), sql.Literal(f.name))
        )
        copy = sql.SQL("copy {} ({}) from stdin with {}").format(
            part, sql.SQL(", ").join(map(sql.Identifier, columns)), _copy_options(delimiter)
        )
        try:
            cur.copy_expert(copy.as_string(cur), reader, size=CHUNK)
        except psycopg2.errors.QueryCanceled:
            if reader.error is not None:
                raise reader.error from None
            raise
        except (psycopg2.errors.BadCopyFileFormat, psycopg2.errors.CharacterNotInRepertoire) as exc:
            # COPY counts lines after the header it never saw: its line N is data row N, file line N + 1.
            match = re.search(r"line (\d+)", exc.diag.context or "")
            where = f" at data row {match.group(1)} (line {int(match.group(1)) + 1} of the file)" if match else ""
            problem = exc.diag.message_primary
            if problem and problem.endswith("0x00"):  # PostgreSQL's words for a NUL, which text cannot hold
                problem = "a NUL byte (0x00), which CSV text must not contain,"
            raise DeliveryRejected(
                "malformed_csv",
                f"{f.name}: {problem}{where}",
                file=f.name,
                row=int(match.group(1)) if match else None,
            ) from None
        rows = cur.rowcount
        cur.execute(
            sql.SQL("alter table {} alter column _row_no drop default, alter column _file drop default").format(part)
        )
        cur.execute(sql.SQL("drop sequence {}").format(seq))
    if f.rows_declared is not None and rows != f.rows_declared:
        raise DeliveryRejected(
            "row_count_mismatch",
            f"{f.name}: the manifest declares {f.rows_declared} rows, the file holds {rows}",
            file=f.name,
            declared=f.rows_declared,
            found=rows,
        )
    return rows, columns, missing, reader.ascii_only


# -- conversion --------------------------------------------------------------------------------------


def _normalised(col: Column, ascii_only: bool = False) -> sql.Composable:
    """SQL for the value as text after the conversion principle's rules, or NULL if empty."""
    c = sql.SQL("r.{}").format(sql.Identifier(col.name))
    digits = sql.SQL("btrim({})" if ascii_only else "anbar.normalize_digits(btrim({}))").format(c)
    if col.type is ColumnType.text and col.identifier is None:
        # spaces are tidied in ASCII too; a value a spreadsheet would run as a formula is neutralised
        expr = sql.SQL("anbar.spreadsheet_safe(anbar.normalize_text({}))").format(c)
    elif col.type is ColumnType.date:
        expr = sql.SQL("replace({}, '-', '/')").format(digits)
    else:
        expr = digits
    return sql.SQL("nullif({}, '')").format(expr)


def _calendar_joins(org: Organisation, ds: Dataset) -> sql.Composable:
    joins = [
        sql.SQL("left join anbar.jalali_calendar {j} on {j}.jalali = n.{c}").format(
            j=sql.Identifier(f"j_{c.name}"), c=sql.Identifier(c.name)
        )
        for c in ds.date_columns
        if org.date_calendar(c) is Calendar.jalali
    ]
    return sql.SQL(" ").join(joins)


def _typed(col: Column, calendar: Calendar) -> tuple[sql.Composable, str]:
    """SQL turning the normalised text ``n.<col>`` into the column's type (NULL if impossible)."""
    n = sql.SQL("n.{}").format(sql.Identifier(col.name))
    if col.type is ColumnType.text:
        if col.identifier is Identifier.person:
            # Shorter all-digit national IDs lost their leading zeros in a spreadsheet.
            return sql.SQL("case when {n} ~ '^[0-9]{{1,9}}$' then lpad({n}, 10, '0') else {n} end").format(n=n), ""
        return n, ""
    if col.type is ColumnType.date and calendar is Calendar.jalali:
        # A hash join to the calendar table converts canonical dates (YYYY/MM/DD) ~20x faster than a
        # per-row function call; only odd spellings (1404/8/5) take the function's slow path.
        j = sql.Identifier(f"j_{col.name}")
        return (
            sql.SQL(
                "coalesce({j}.gregorian, case when {n} !~ '^[0-9]{{4}}/[0-9]{{2}}/[0-9]{{2}}$' "
                "then anbar.jalali_to_date({n}) end)"
            ).format(j=j, n=n),
            "is not a valid jalali date",
        )
    if col.type is ColumnType.date:
        return sql.SQL("anbar.gregorian_to_date({})").format(n), "is not a valid gregorian date"
    typename = col.type.sql
    return (
        sql.SQL("case when pg_input_is_valid({n}, {t}) then {n}::{ty} end").format(
            n=n, t=sql.Literal(typename), ty=sql.SQL(typename)
        ),
        {
            "integer": "is not a whole number",
            "bigint": "is not a whole number",
            "numeric": "is not a number",
            "boolean": "is not true/false",
        }[typename],
    )


def conversion_sql(
    org: Organisation, ds: Dataset, submission_id: int, period: str, ascii_only: bool = False
) -> sql.Composed:
    """One INSERT ... SELECT from the raw partition into the clean one.

    ``ascii_only``: every delivered file was plain ASCII, so there are no digits or letters to convert
    and identifiers, numbers and dates only need trimming (about twice as fast).
    """
    cols = ds.columns
    normalised = sql.SQL(", ").join(
        sql.SQL("{} as {}").format(_normalised(c, ascii_only), sql.Identifier(c.name)) for c in cols
    )
    typed_parts, problems, failures = [], [], []
    for c in cols:
        expr, complaint = _typed(c, org.date_calendar(c))
        typed_parts.append(sql.SQL("{} as {}").format(expr, sql.Identifier(c.name)))
        if complaint:
            failures.append(sql.SQL("(n.{c} is not null and v.{c} is null)").format(c=sql.Identifier(c.name)))
            problems.append(
                sql.SQL(
                    "case when n.{c} is not null and v.{c} is null then format('%s: %s {msg}', {name}, "
                    "quote_literal(left(n.{c}, 40))) end"
                ).format(c=sql.Identifier(c.name), msg=sql.SQL(complaint.replace("%", "%%")), name=sql.Literal(c.name))
            )
    # The array is only built for a row with a problem; the test before it is cheap.
    problem_array = (
        sql.SQL("case when {} then array_remove(array[{}]::text[], null) end").format(
            sql.SQL(" or ").join(failures), sql.SQL(", ").join(problems)
        )
        if problems
        else sql.SQL("null::text[]")
    )
    col_ids = sql.SQL(", ").join(sql.Identifier(c.name) for c in cols)
    return sql.SQL(
        "insert into {clean} (_submission_id, _file, _row_no, _period, {cols}, _problems) "
        "select {sid}, r._file, r._row_no, {period}, {vcols}, {problems} "
        "from {raw} r "
        # OFFSET 0 keeps each lateral a real subquery, so every conversion runs once per value.
        "cross join lateral (select {normalised} offset 0) n "
        "{joins} "
        "cross join lateral (select {typed} offset 0) v"
    ).format(
        clean=_part("clean", ds, submission_id),
        cols=col_ids,
        sid=sql.Literal(submission_id),
        period=sql.Literal(period),
        vcols=sql.SQL(", ").join(sql.SQL("v.{}").format(sql.Identifier(c.name)) for c in cols),
        problems=problem_array,
        raw=_part("raw", ds, submission_id),
        normalised=normalised,
        joins=_calendar_joins(org, ds),
        typed=sql.SQL(", ").join(typed_parts),
    )


def _convert(cur, org: Organisation, ds: Dataset, submission_id: int, period: str, ascii_only: bool) -> tuple[int, int]:
    clean = _part("clean", ds, submission_id)
    raw = _part("raw", ds, submission_id)
    cur.execute(sql.SQL("alter table {} add column _problems text[]").format(clean))
    cur.execute(conversion_sql(org, ds, submission_id, period, ascii_only))
    converted = cur.rowcount
    cur.execute(
        sql.SQL(
            "with moved as (delete from {clean} where _problems is not null returning _file, _row_no, _problems) "
            "insert into raw.rejected_rows (submission_id, file, row_no, reasons, record) "
            "select {sid}, m._file, m._row_no, m._problems, to_jsonb(r) - '_submission_id' - '_file' - '_row_no' "
            "from moved m join {raw} r on r._file = m._file and r._row_no = m._row_no"
        ).format(clean=clean, raw=raw, sid=sql.Literal(submission_id))
    )
    rejected = cur.rowcount
    cur.execute(sql.SQL("alter table {} drop column _problems").format(clean))
    return converted - rejected, rejected


def load_delivery(
    conn,
    org: Organisation,
    ds: Dataset,
    submission_id: int,
    period: str,
    files: list[FileToLoad],
    encoding: str,
    delimiter: str,
    rows_declared_total: int | None = None,
    *,
    commit: bool = True,
) -> LoadResult:
    """Load every file of one delivery, all or nothing (one transaction).

    ``commit=False`` leaves the transaction open, for the caller to record the load in the ledger in the same
    transaction and commit both (``anbar.ingest.load``): rows are never visible without the ledger saying so."""
    result = LoadResult(0, 0, 0)
    try:
        with conn.cursor() as cur:
            if commit:
                cur.execute("set local synchronous_commit = off")  # the ledger commit after it is the durable point
            _prepare_partitions(cur, ds, submission_id)
            cur.execute("delete from raw.rejected_rows where submission_id = %s", (submission_id,))
            first_columns: list[str] | None = None
            all_ascii = True
            for f in files:
                rows, columns, missing, ascii_only = copy_file(
                    cur, ds, submission_id, f, encoding, delimiter, first_columns
                )
                all_ascii = all_ascii and ascii_only
                first_columns = first_columns or columns
                result.rows_in += rows
                result.files.append({"name": f.name, "rows": rows})
                if missing:
                    result.warnings.append(f"{f.name}: optional columns absent, loaded as empty: {', '.join(missing)}")
            if rows_declared_total is not None and result.rows_in != rows_declared_total:
                raise DeliveryRejected(
                    "row_count_mismatch",
                    f"the manifest declares {rows_declared_total} rows, the delivery holds {result.rows_in}",
                    declared=rows_declared_total,
                    found=result.rows_in,
                )
            _attach(cur, "raw", ds, submission_id)
            result.rows_loaded, result.rows_rejected = _convert(cur, org, ds, submission_id, period, all_ascii)
            _attach(cur, "clean", ds, submission_id)
            cur.execute(sql.SQL("analyze {}").format(_part("clean", ds, submission_id)))
        if commit:
            conn.commit()
    except BaseException as exc:
        if not conn.closed:
            conn.rollback()
            raise
        # The server went away (restarted, crashed, the connection cut): it rolled the transaction back itself.
        if isinstance(exc, psycopg2.Error):
            raise WarehouseConnectionLost(
                f"the connection to the warehouse was lost during the load of submission {submission_id} "
                f"({type(exc).__name__}: {str(exc).strip()}); the load is one transaction, so nothing of it was "
                "kept: the task's retry loads the delivery again"
            ) from exc
        raise
    assert result.rows_in == result.rows_loaded + result.rows_rejected
    return result


def jsonl_to_csv_file(src: Path, dest: Path, ds: Dataset) -> int:
    """Turn landed API records (JSON Lines) into a UTF-8 CSV with the registry header.

    A record key outside the registry rejects the delivery, like an extra CSV column; a value that
    is not a string, a number or null (§9.2) rejects it as malformed. Returns the number of records.
    """
    names = ds.column_names
    count = 0
    with open(src, encoding="utf-8") as fin, open(dest, "w", encoding="utf-8", newline="") as fout:
        writer = csv.writer(fout, lineterminator="\n")
        writer.writerow(names)
        for line_no, line in enumerate(fin, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DeliveryRejected("malformed_records", f"record {line_no} is not valid JSON: {exc}") from None
            if not isinstance(record, dict):
                raise DeliveryRejected("malformed_records", f"record {line_no} is not a JSON object")
            extra = sorted(set(record) - set(names))
            if extra:
                raise DeliveryRejected(
                    "unexpected_column", f"record {line_no} has fields not in the approved schema: {', '.join(extra)}"
                )
            missing = [c.name for c in ds.columns if c.required and c.name not in record]
            if missing:
                raise DeliveryRejected(
                    "missing_column", f"record {line_no} lacks required fields: {', '.join(missing)}"
                )
            for name in names:
                value = record.get(name)
                if isinstance(value, bool) or not isinstance(value, str | int | float | None):
                    kind = {dict: "a JSON object", list: "a JSON array", bool: "true/false"}.get(type(value))
                    raise DeliveryRejected(
                        "malformed_records",
                        f"record {line_no}, {name}: {kind or type(value).__name__} is not allowed; "
                        "values are strings, numbers or null",
                    )
            writer.writerow(["" if record.get(n) is None else str(record[n]) for n in names])
            count += 1
    return count
