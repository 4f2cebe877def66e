"""The pass's rows into PostgreSQL: one bulk COPY of the typed rows, nothing of the delivered text.

The typed rows go into a table of their own, ``clean."<org>__<dataset>_s<submission>"``, built like the
dataset's clean table but not attached to it: staging reads the clean table, so nothing of a delivery is
visible there before it is accepted (:func:`attach`); a rejected delivery's table is dropped (:func:`drop`),
its bytes and their columnar rendering stay in the landing archive.

Rows are streamed: DuckDB's Arrow batches are encoded as CSV by pyarrow (in C++) and handed to COPY as
they come, so PostgreSQL parses one batch while the next is made. Only the rows of the delivery that
could not be converted (and, later, those a blocking rule rejects one by one) are written with their
values as delivered, to ``raw.rejected_rows``.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg2 import sql

from anbar.engine.convert import ident
from anbar.engine.duck import literal
from anbar.engine.read import DELIVERY
from anbar.registry import Dataset

BATCH_ROWS = 64 * 1024
AHEAD = 4  # CSV batches made ahead of COPY (about 6 MB each: the memory stays small, COPY never waits)
_END = object()


class WarehouseConnectionLost(ConnectionError):
    """The warehouse's server went away in the middle of a load (which it rolled back)."""


_CSV = pacsv.WriteOptions(include_header=False, delimiter=",", quoting_style="needed")


def partition(ds: Dataset, submission_id: int) -> sql.Identifier:
    return sql.Identifier("clean", f"{ds.key}_s{int(submission_id)}")


class _Chunks(io.RawIOBase):
    """A readable stream over an iterator of byte strings (what psycopg2's COPY reads from)."""

    def __init__(self, chunks: Iterator[bytes | memoryview]):
        super().__init__()
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def csv_chunks(con: duckdb.DuckDBPyConnection, query: str) -> Iterator[memoryview]:
    """The query's rows as CSV (PostgreSQL's CSV: NULL unquoted and empty, text quoted when it must be).

    Made by a thread of their own, up to ``AHEAD`` batches ahead of the reader: DuckDB and pyarrow release
    the GIL, so the next batch is queried and encoded while PostgreSQL parses this one (on another core)."""
    batches: queue.Queue = queue.Queue(maxsize=AHEAD)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in con.sql(query).to_arrow_reader(BATCH_ROWS):
                if batch.num_rows:
                    sink = pa.BufferOutputStream()
                    pacsv.write_csv(batch, sink, _CSV)
                    # pyarrow's buffer itself, not a copy of it as bytes (COPY reads it through a memoryview)
                    if not _put(batches, memoryview(sink.getvalue()).cast("B"), stop):
                        return
            _put(batches, _END, stop)
        except BaseException as exc:  # handed to the reader, raised there
            _put(batches, exc, stop)

    producer = threading.Thread(target=produce, name="copy-csv", daemon=True)
    producer.start()
    try:
        while (item := batches.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()  # the reader stopped early (COPY failed): the producer ends at its next batch
        producer.join()


def _put(batches: queue.Queue, item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            batches.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def copy_query(cur, con: duckdb.DuckDBPyConnection, query: str, table: sql.Composable, columns: list[str]) -> int:
    """COPY the rows of a DuckDB query into a PostgreSQL table; returns the number of rows."""
    copy = sql.SQL("copy {} ({}) from stdin with (format csv)").format(
        table, sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    cur.copy_expert(copy.as_string(cur), _Chunks(csv_chunks(con, query)), size=1 << 20)
    return cur.rowcount


def create_partition(cur, ds: Dataset, submission_id: int) -> None:
    """A fresh table for the submission's typed rows, like the clean table, unattached.

    Its CHECK (every row is the submission's) lets :func:`attach` skip its validation scan; made with the
    table, it is checked as the rows arrive rather than by a scan of them all when it is added."""
    part = partition(ds, submission_id)
    cur.execute(sql.SQL("drop table if exists {}").format(part))
    cur.execute(
        sql.SQL("create table {} (like {} including defaults, constraint {} check (_submission_id = {}))").format(
            part,
            sql.Identifier("clean", ds.key),
            sql.Identifier(f"{ds.key}_s{int(submission_id)}_only"),
            sql.Literal(int(submission_id)),
        )
    )


def copy_typed_rows(cur, con: duckdb.DuckDBPyConnection, ds: Dataset, submission_id: int, period: str) -> int:
    """Every converted row of :data:`DELIVERY` into the submission's table, in one COPY."""
    columns = ["_submission_id", "_file", "_row_no", "_period", *ds.column_names]
    query = (
        f"select {int(submission_id)} as _submission_id, _file, _row_no, {literal(period)} as _period, "
        f"{', '.join(ident(c) for c in ds.column_names)} from {DELIVERY} where _problems is null"
    )
    rows = copy_query(cur, con, query, partition(ds, submission_id), columns)
    cur.execute(sql.SQL("analyze {}").format(partition(ds, submission_id)))
    return rows


def record_json(ds: Dataset, alias: str = "") -> str:
    """DuckDB SQL for a row's delivered values as a JSON object (column -> text), as ``raw.rejected_rows``
    keeps them."""
    prefix = f"{alias}." if alias else ""
    fields = ", ".join(f"{literal(c)}: {prefix}{ident('r:' + c)}" for c in ds.column_names)
    return f"to_json({{{fields}}})"


def pg_text_array(list_sql: str) -> str:
    """DuckDB SQL writing a list of text as a PostgreSQL array literal (``{"a","b"}``)."""
    element = "'\"' || replace(replace(x, '\\', '\\\\'), '\"', '\\\"') || '\"'"
    return f"'{{' || array_to_string(list_transform({list_sql}, lambda x: {element}), ',') || '}}'"


def copy_rejected_rows(cur, con: duckdb.DuckDBPyConnection, ds: Dataset, submission_id: int, where: str) -> int:
    """The rows of :data:`DELIVERY` matching ``where`` (DuckDB SQL over it, with ``_reasons`` a list of text)
    into ``raw.rejected_rows``, with their values as delivered and the reasons."""
    query = f"select {int(submission_id)}, _file, _row_no, {pg_text_array('_reasons')}, {record_json(ds)} from {where}"
    columns = ["submission_id", "file", "row_no", "reasons", "record"]
    return copy_query(cur, con, query, sql.Identifier("raw", "rejected_rows"), columns)


def attach(cur, ds: Dataset, submission_id: int) -> None:
    """Make an accepted submission's rows part of the clean table staging reads."""
    part = partition(ds, submission_id)
    # The table's CHECK (create_partition) lets ATTACH skip its validation scan of the whole table.
    cur.execute(
        sql.SQL("alter table {} attach partition {} for values in ({})").format(
            sql.Identifier("clean", ds.key), part, sql.Literal(int(submission_id))
        )
    )


def drop(cur, ds: Dataset, submission_id: int) -> None:
    cur.execute(sql.SQL("drop table if exists {}").format(partition(ds, submission_id)))
