"""Decoding a delivered file in its declared encoding, streaming, with the exchange standard's diagnoses.

:class:`DecodingReader` gives the UTF-8 bytes of a file written in ``utf-8``, ``utf-8-sig`` or
``windows-1256``, chunk by chunk (memory stays flat whatever the file's size), and reads its header line.
What the standard rejects it names exactly: the byte offset of the first byte not valid in the declared
encoding, a windows-1256 declaration on a file that is UTF-8 (its non-ASCII bytes all valid UTF-8), NUL
bytes in the header (UTF-16 or binary data), a header ended by a bare CR, no line end in the first 64 KiB.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator

from anbar.exchange import DeliveryRejected

CHUNK = 1 << 20
MAX_HEADER_BYTES = 64 * 1024


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
