"""The landing archive: every delivered byte kept, immutable, addressed by sha256.

    <root>/objects/<aa>/<sha256>                       file contents, read-only
    <root>/deliveries/<org>/<dataset>/<period>/<delivery sha256>/
        manifest.json                                  the manifest as delivered
        files.json                                     delivered name -> sha256, bytes
        report.json                                    outcome (written when decided)
    <root>/quarantine/<org>/<dataset>/<period>-v<version> -> the delivery of a rejected submission

A delivery is identified by the sha256 of its manifest (SFTP) or of its landed
records (API); landing the same bytes twice stores nothing new.

Landed microdata is readable by the service user (the owner of every file and directory, the user
anbar runs as) and, for the backup of the archive, its group: directories are ``0750`` and files
``0440`` whatever the umask, as the backups are kept to their owner (docs/operations.md §8).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20
DIR_MODE = 0o750  # owner: write; group (the archive's backup): read; others: nothing
FILE_MODE = 0o440  # landed bytes and everything beside them: read-only, never world-readable


@dataclass(frozen=True)
class LandedFile:
    name: str
    sha256: str
    bytes: int
    path: Path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LandingArchive:
    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"
        for d in (self.objects, self.tmp, self.root / "deliveries"):
            _make_dirs(d)

    def object_path(self, sha256: str) -> Path:
        return self.objects / sha256[:2] / sha256

    def _commit(self, tmp_path: Path, digest: str) -> Path:
        final = self.object_path(digest)
        if final.exists():
            tmp_path.unlink()
        else:
            _make_dirs(final.parent)
            tmp_path.chmod(FILE_MODE)
            os.replace(tmp_path, final)
        return final

    def store_stream(self, name: str, write: Callable[[BinaryIO], None]) -> LandedFile:
        """Store what ``write(fileobj)`` writes; hashing happens while the bytes flow."""
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="landing-")
        tmp_path = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as raw:
                hashing = _HashingWriter(raw)
                try:
                    write(hashing)
                finally:
                    hashing.close()
                raw.flush()
                os.fsync(raw.fileno())  # what is left of the writeback hashing started (_HashingWriter)
            return LandedFile(name, hashing.hexdigest(), hashing.size, self._commit(tmp_path, hashing.hexdigest()))
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise

    def store_file(self, path: Path, sha256: str) -> Path:
        """Move a file anbar wrote (its sha256 computed) into the objects, read-only; returns its object path."""
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
        return self._commit(Path(path), sha256)

    def write_once(self, delivery_dir: Path, name: str, data: bytes) -> Path:
        """A file beside the landed delivery that is written once and never changes (like manifest.json)."""
        path = Path(delivery_dir) / name
        _write_once(path, data)
        return path

    def store_bytes(self, name: str, data: bytes) -> LandedFile:
        return self.store_stream(name, lambda f: f.write(data))

    def store_chunks(self, name: str, chunks: Iterable[bytes]) -> LandedFile:
        def write(f: BinaryIO) -> None:
            for chunk in chunks:
                f.write(chunk)

        return self.store_stream(name, write)

    def delivery_dir(self, org: str, dataset: str, period: str, delivery_sha256: str) -> Path:
        return self.root / "deliveries" / org / dataset / period / delivery_sha256

    def record_delivery(
        self, org: str, dataset: str, period: str, delivery_sha256: str, manifest: bytes, files: list[LandedFile]
    ) -> Path:
        d = _make_dirs(self.delivery_dir(org, dataset, period, delivery_sha256))
        _write_once(d / "manifest.json", manifest)
        listing = [
            {"name": f.name, "sha256": f.sha256, "bytes": f.bytes, "object": str(f.path.relative_to(self.root))}
            for f in files
        ]
        _write_once(d / "files.json", json.dumps(listing, ensure_ascii=False, indent=2).encode())
        return d

    def write_report(self, delivery_dir: Path, report: dict) -> Path:
        """The outcome beside the landed delivery (the one file that may be rewritten, by a rerun)."""
        path = Path(delivery_dir) / "report.json"
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)  # left read-only by a run that stopped before the replace
        tmp.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
        tmp.chmod(FILE_MODE)
        os.replace(tmp, path)
        return path

    def write_text(self, delivery_dir: Path, name: str, text: str) -> Path:
        """A feedback file beside the landed delivery (rewritten by a rerun, like report.json)."""
        path = Path(delivery_dir) / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.unlink(missing_ok=True)
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(FILE_MODE)
        os.replace(tmp, path)
        return path

    def quarantine(self, delivery_dir: Path, org: str, dataset: str, period: str, version: int) -> Path:
        """Index a rejected delivery under quarantine/ (a link; the bytes stay where they are)."""
        link = self.root / "quarantine" / org / dataset / f"{period}-v{version}"
        _make_dirs(link.parent)
        if not link.is_symlink():
            link.symlink_to(Path(delivery_dir).resolve(), target_is_directory=True)
        return link


def _make_dirs(path: Path) -> Path:
    """``path`` and its missing parents, each made ``DIR_MODE`` (mkdir's mode alone is cut by the umask)."""
    missing, parent = [], path
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        d.chmod(DIR_MODE)
    return path


def write_derived(path: Path, write: Callable[[Path], None]) -> Path:
    """A file derived from a delivery (its typed snapshot, its validation results) beside it, rewritten whole
    by a rerun: ``write`` writes the new one at the path it is given, which then replaces ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        write(tmp)
        tmp.chmod(FILE_MODE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _write_once(path: Path, data: bytes) -> None:
    if path.exists():
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    tmp.write_bytes(data)
    tmp.chmod(FILE_MODE)
    os.replace(tmp, path)


# Writeback of a landed file is started every this many bytes while it arrives (see _HashingWriter).
WRITEBACK_BYTES = 16 << 20
QUEUED_CHUNKS = 4  # chunks received and not yet written (SFTP reads 16 MB at a time: 64 MB at most)
_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writeback of the range's dirty pages, do not wait


def _start_writeback() -> Callable[[int, int, int], None] | None:
    """Linux's ``sync_file_range(fd, offset, nbytes, SYNC_FILE_RANGE_WRITE)`` (Python's os has no binding),
    or None where the C library has none."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return lambda fd, offset, nbytes: call(fd, offset, nbytes, _SYNC_FILE_RANGE_WRITE)


_WRITEBACK = _start_writeback()


class _HashingWriter:
    """Hashes the bytes and writes them to the file in a thread of its own, so the transport that writes
    them (an SFTP session's event loop, an HTTP client) goes on receiving meanwhile: written in line, a
    645 MB file held the SFTP reads for the seconds its hashing and page-cache writes take. The kernel is
    asked to start writing them to disk every :data:`WRITEBACK_BYTES`, so the fsync that makes a landed
    file durable waits for the last few megabytes, not for the whole file.

    At most :data:`QUEUED_CHUNKS` chunks wait for the thread; :meth:`close` waits for it and raises what it
    met (a full disk); so does the next :meth:`write`."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self._hash = hashlib.sha256()
        self.size = 0
        self._written = 0
        self._written_back = 0
        self._error: BaseException | None = None
        self._chunks: queue.Queue = queue.Queue(maxsize=QUEUED_CHUNKS)
        self._thread = threading.Thread(target=self._drain, name="landing-writer", daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> int:
        if self._error is not None:
            self.close()
        chunk = bytes(data)  # the caller may reuse its buffer
        self.size += len(chunk)
        self._chunks.put(chunk)
        return len(chunk)

    def _drain(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            if self._error is not None:
                continue  # drained, not written: close() raises the error
            try:
                self._hash.update(chunk)
                self._raw.write(chunk)
                self._written += len(chunk)
                if _WRITEBACK is not None and self._written - self._written_back >= WRITEBACK_BYTES:
                    self._raw.flush()
                    _WRITEBACK(self._raw.fileno(), self._written_back, self._written - self._written_back)
                    self._written_back = self._written
            except BaseException as exc:
                self._error = exc

    def close(self) -> None:
        """Wait for every chunk to be hashed and written; raise what the writing thread met."""
        if self._thread.is_alive():
            self._chunks.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
