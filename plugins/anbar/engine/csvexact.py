"""A delivered CSV file that is not clean (:mod:`anbar.engine.structure`), read record by record.

This is the slow, exact reader for the few files the vectorised check refuses: it says what is wrong
and where (the data row and the line of the file it starts on), or, when the only fault is a quote
inside a field that is not quoted (``kargah "farsh"``), which rows those are — they are rejected one by
one (exchange standard §7.1, §8.3); the rest of the file loads. It yields the records in Arrow record
batches, the values exactly as Python's ``csv`` module reads them under RFC 4180 (a quote is special only
at the start of a field), so the rendering of the delivered values is the same whichever reader made it.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from anbar.exchange import DeliveryRejected

BATCH_ROWS = 65_536
CHUNK = 1 << 20
STRAY_QUOTE = "a double quote inside a field that is not quoted (quote the field and double the quote, §7.1)"

csv.field_size_limit(1 << 30)  # a long value is still one value; the header check bounds the line


@dataclass
class ExactRead:
    records: int = 0
    stray_quote_rows: dict[int, list[str]] = field(default_factory=dict)  # data row -> columns


class _Lines:
    """The text's lines, each ending with its LF, counting them and keeping those of the current record."""

    def __init__(self, chunks: Iterator[str]):
        self._chunks = chunks
        self._pending: list[str] = []
        self._tail = ""
        self.line_no = 0  # lines handed out so far
        self.current: list[str] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                if not self._tail:
                    raise StopIteration
                self._pending, self._tail = [self._tail], ""
                break
            parts = (self._tail + chunk).split("\n")
            self._tail = parts.pop()
            self._pending = [p + "\n" for p in parts]
            self._pending.reverse()
        line = self._pending.pop()
        self.line_no += 1
        self.current.append(line)
        return line


def _text_chunks(path: Path, data_offset: int) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    with open(path, "rb") as fh:
        fh.seek(data_offset)
        while True:
            block = fh.read(CHUNK)
            text = decoder.decode(block, final=not block)
            if text:
                yield text
            if not block:
                return


def _where(row: int, line: int) -> str:
    return f"at data row {row} (line {line} of the file)"


def _malformed(name: str, problem: str, row: int, line: int) -> DeliveryRejected:
    return DeliveryRejected("malformed_csv", f"{name}: {problem} {_where(row, line)}", file=name, row=row)


def _stray_quote_fields(record_text: str, delimiter: str) -> list[int]:
    """Indices of the fields in which a quote stands inside an unquoted field (record_text is well formed
    otherwise: Python's csv module read it)."""
    found: list[int] = []
    index, in_quotes, at_start, quoted = 0, False, True, False
    i, n = 0, len(record_text)
    while i < n:
        c = record_text[i]
        if in_quotes:
            if c == '"':
                if i + 1 < n and record_text[i + 1] == '"':
                    i += 1
                else:
                    in_quotes = False
        elif c == delimiter:
            index, at_start, quoted = index + 1, True, False
            i += 1
            continue
        elif c in "\r\n":
            break
        elif c == '"':
            if at_start:
                in_quotes, quoted = True, True
            elif not quoted and (not found or found[-1] != index):
                found.append(index)
        at_start = False
        i += 1
    return found


def read(
    path: Path | str, data_offset: int, name: str, columns: list[str], delimiter: str
) -> Iterator[pa.RecordBatch | ExactRead]:
    """Yield the file's records as record batches (``_row_no``, the columns as text, ``_read_problem``: why a
    row could not be read as delivered), then the :class:`ExactRead` summary. Raises
    DeliveryRejected(malformed_csv) at the first structural fault."""
    lines = _Lines(_text_chunks(Path(path), data_offset))
    reader = csv.reader(lines, delimiter=delimiter, quotechar='"', doublequote=True, strict=True)
    summary = ExactRead()
    values: list[list[str | None]] = [[] for _ in columns]
    row_nos: list[int] = []
    problems: list[str | None] = []
    header_lines = 1
    while True:
        lines.current = []
        first_line = lines.line_no + 1 + header_lines
        row = summary.records + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            text = str(exc)
            if "new-line character" in text:
                problem = "a carriage return inside an unquoted field (lines end with CRLF or LF, §7.1)"
            elif "expected after" in text:
                problem = "text after the closing quote of a field"
            elif "unexpected end of data" in text:
                problem = "unterminated CSV quoted field"
            else:
                problem = f"malformed CSV ({text})"
            raise _malformed(name, problem, row, first_line) from None
        record_text = "".join(lines.current)
        if "\x00" in record_text:
            raise _malformed(name, "a NUL byte (0x00), which CSV text must not contain,", row, first_line)
        if len(fields) != len(columns):
            if not fields or (len(fields) == 1 and not fields[0]):
                problem = f"missing data for column {columns[0]} (a blank line)"
            elif len(fields) < len(columns):
                got = f"{len(fields)} fields, {len(columns)} expected"
                problem = f"missing data for column {columns[len(fields)]} ({got})"
            else:
                problem = f"extra data after last expected column ({len(fields)} fields, {len(columns)} expected)"
            raise _malformed(name, problem, row, first_line)
        problem = None
        if '"' in record_text:
            stray = _stray_quote_fields(record_text, delimiter)
            if stray:
                summary.stray_quote_rows[row] = [columns[i] for i in stray]
                problem = f"{', '.join(summary.stray_quote_rows[row])}: {STRAY_QUOTE}"
        summary.records = row
        row_nos.append(row)
        problems.append(problem)
        for column, value in zip(values, fields, strict=True):
            column.append(value if value != "" else None)
        if len(row_nos) >= BATCH_ROWS:
            yield _batch(row_nos, columns, values, problems)
            row_nos, values, problems = [], [[] for _ in columns], []
    if row_nos:
        yield _batch(row_nos, columns, values, problems)
    yield summary


def schema(columns: list[str]) -> pa.Schema:
    return pa.schema([("_row_no", pa.int64()), *((c, pa.string()) for c in columns), ("_read_problem", pa.string())])


def _batch(
    row_nos: list[int], columns: list[str], values: list[list[str | None]], problems: list[str | None]
) -> pa.RecordBatch:
    arrays = [pa.array(row_nos, type=pa.int64())] + [pa.array(v, type=pa.string()) for v in values]
    arrays.append(pa.array(problems, type=pa.string()))
    return pa.RecordBatch.from_arrays(arrays, schema=schema(columns))
