"""Is a delivered CSV file well formed (exchange standard §7.1)? A vectorised check of its bytes.

RFC 4180 as the standard states it: fields separated by the declared delimiter, records ended by LF or
CRLF (optional after the last record), every record with as many fields as the header, a field that
holds the delimiter, a quote or a line break enclosed in double quotes, a quote inside it doubled. No
blank line, no NUL byte, no bare CR outside a quoted field.

:func:`scan` checks all of that with numpy over the file's bytes, in blocks, without a Python loop over
records: the parity of the quotes before a byte says whether it is inside a quoted field, so the
delimiters and line ends that count are found by vectorised arithmetic, and so are the field counts.
It answers :class:`Structure`: the number of records when the file is well formed, or that it is not
(``clean`` False), without saying where. A file that is not clean goes to :mod:`anbar.engine.csvexact`,
which reads it record by record and says exactly what is wrong and where (or which rows hold a quote
inside an unquoted field, which rejects those rows only). DuckDB's own CSV reader is lenient in ways the
standard is not (it skips blank lines, ignores an empty extra field at the end of a record, accepts
a quote in the middle of an unquoted field), so only files this check calls clean are handed to it.

The check works on the bytes of any of the standard's encodings: the structural characters are ASCII,
and in UTF-8 no byte of a multibyte character is below 0x80.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

BLOCK = 8 << 20  # its numpy arrays take about 10x the block: 80 MB beside the parse
QUOTE, LF, CR, NUL = 0x22, 0x0A, 0x0D, 0x00


@dataclass(frozen=True)
class Structure:
    clean: bool
    records: int | None  # data records (the header excluded) when clean
    has_quotes: bool  # some field is quoted (the reader then keeps DuckDB's quote handling on)
    why: str | None = None  # what the vectorised check saw first (a hint; csvexact gives the diagnosis)


class _State:
    """What one block passes to the next."""

    def __init__(self, delimiter: int) -> None:
        self.delimiter = delimiter
        self.parity = 0  # quotes seen so far, mod 2: 1 = inside a quoted field
        self.prev_byte = LF  # the data starts like a new record
        self.prev_quote_closing = False  # the byte before the block is a closing quote (an escape may follow)
        self.fields = 1  # fields of the record in progress
        self.record_bytes = 0  # bytes of the record in progress (0: at the start of a record)
        self.records = 0
        self.has_quotes = False


def scan(path: Path | str, data_offset: int, columns: int, delimiter: str) -> Structure:
    """Check the records of ``path`` from byte ``data_offset`` (just after the header line's end)."""
    state = _State(ord(delimiter))
    size = Path(path).stat().st_size
    with open(path, "rb") as fh:
        fh.seek(data_offset)
        position = data_offset
        while position < size:
            block = fh.read(BLOCK)
            if not block:
                break
            # A block must not end between a CR and its LF, nor between two quotes of an escape.
            nxt = fh.read(1)
            if nxt:
                fh.seek(-1, 1)
            why = _block(block, state, columns, nxt[0] if nxt else None)
            if why:
                return Structure(False, None, state.has_quotes, why)
            position += len(block)
    if state.parity:
        return Structure(False, None, True, "a quoted field is not closed at the end of the file")
    if state.record_bytes:  # the last record, without a line ending after it
        if state.fields != columns:
            return Structure(False, None, state.has_quotes, "the last record has the wrong number of fields")
        state.records += 1
    return Structure(True, state.records, state.has_quotes)


def _block(block: bytes, s: _State, columns: int, next_byte: int | None) -> str | None:
    if b"\x00" in block:  # memchr speed
        return "a NUL byte"
    b = np.frombuffer(block, dtype=np.uint8)
    quotes = np.flatnonzero(b == QUOTE)
    if quotes.size:
        s.has_quotes = True
        why = _quotes_in_place(b, quotes, s, next_byte)
        if why:
            return why
    lfs = np.flatnonzero(b == LF)
    delims = np.flatnonzero(b == s.delimiter)
    crs = np.flatnonzero(b == CR)
    if quotes.size or s.parity:
        # Only the line ends, delimiters and CRs outside quoted fields count (a block may start inside one).
        lfs = lfs[_outside(lfs, quotes, s.parity)]
        delims = delims[_outside(delims, quotes, s.parity)]
        crs = crs[_outside(crs, quotes, s.parity)]
    if crs.size:
        after = crs + 1
        last = b.size - 1
        followed = np.where(after <= last, b[np.minimum(after, last)] == LF, next_byte == LF)
        if not followed.all():
            return "a carriage return that does not end a line"
    if lfs.size:
        # Field counts: the delimiters before each line end, minus those before the previous one.
        before = np.searchsorted(delims, lfs)
        fields = np.diff(before, prepend=0) + 1
        fields[0] += s.fields - 1
        if not (fields == columns).all():
            return "a record with the wrong number of fields (a blank line, another delimiter)"
        starts = np.concatenate(([-1], lfs[:-1]))
        length = lfs - starts - 1  # bytes before the line end, CR included
        length[0] += s.record_bytes
        has_cr = (lfs > 0) & (b[np.maximum(lfs - 1, 0)] == CR)
        if lfs[0] == 0:
            has_cr[0] = s.prev_byte == CR
        if ((length - has_cr) <= 0).any():
            return "a blank line"
        s.records += lfs.size
        tail_delims = delims.size - int(before[-1])
        s.fields = tail_delims + 1
        s.record_bytes = b.size - int(lfs[-1]) - 1
    else:
        s.fields += delims.size
        s.record_bytes += b.size
    s.parity = (s.parity + int(quotes.size)) % 2
    s.prev_byte = int(b[-1])
    if not quotes.size:
        s.prev_quote_closing = False
    return None


def _outside(positions: np.ndarray, quotes: np.ndarray, parity: int) -> np.ndarray:
    """Which positions are outside quoted fields: an even number of quotes before them (with the carry)."""
    return (np.searchsorted(quotes, positions) + parity) % 2 == 0


def _quotes_in_place(b: np.ndarray, quotes: np.ndarray, s: _State, next_byte: int | None) -> str | None:
    """Every opening quote starts a field and every closing one ends it (or is the first of a doubled quote).

    With every quote toggling, an opening quote (an even number before it) must follow a delimiter, a line
    end, or a closing quote (then the two are a doubled quote inside the field); a closing quote must be
    followed by a delimiter, CR, LF, the end of the file, or another quote. Anything else is a quote inside
    an unquoted field, or text after a closing quote.
    """
    opening = (np.arange(quotes.size) + s.parity) % 2 == 0
    prev_pos = quotes - 1
    prev = np.where(prev_pos >= 0, b[np.maximum(prev_pos, 0)], s.prev_byte)
    # The quote just before (in this block, or the carry) was a closing one: its partner's escape.
    prev_is_closing_quote = np.zeros(quotes.size, dtype=bool)
    prev_is_closing_quote[1:] = (quotes[1:] - 1 == quotes[:-1]) & ~opening[:-1]
    if quotes[0] == 0:
        prev_is_closing_quote[0] = s.prev_quote_closing
    field_start = (prev == s.delimiter) | (prev == LF) | prev_is_closing_quote
    if (opening & ~field_start).any():
        return "a quote inside an unquoted field"
    last = b.size - 1
    after_pos = quotes + 1
    after = np.where(after_pos <= last, b[np.minimum(after_pos, last)], -1 if next_byte is None else next_byte)
    field_end = (after == s.delimiter) | (after == CR) | (after == LF) | (after == QUOTE) | (after == -1)
    if (~opening & ~field_end).any():
        return "text after the closing quote of a field"
    s.prev_quote_closing = bool(quotes[-1] == last and not opening[-1])
    return None
