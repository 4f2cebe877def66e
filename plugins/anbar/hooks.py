"""One thin hook per protocol, over the Airflow provider hooks.

They speak exchange standard v1 and nothing else: where a period's delivery lives,
how to read its manifest, how to stream its files. Host keys are pinned in the
SFTP connection (``host_key`` extra); these hooks refuse to run without one.

A server that fails or a connection that drops is not the delivery's fault: it raises
``SupplierUnavailable`` (nothing is landed or rejected; the task fails and Airflow's retry
fetches the delivery again). The API hook first retries each request itself, a bounded
number of times (``anbar.settings.api_retry_policy``): 5xx answers, timeouts and broken
connections with a doubling backoff, 429 after the ``Retry-After`` it asks for.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import logging
import posixpath
import stat
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import BinaryIO, TypeVar

import asyncssh
import requests
from airflow.providers.http.hooks.http import HttpHook
from airflow.providers.sftp.hooks.sftp import SFTPHookAsync
from airflow.sdk import BaseHook

from anbar import settings
from anbar.exchange import MANIFEST_NAME, MAX_MANIFEST_BYTES, DeliveryRejected

log = logging.getLogger(__name__)
T = TypeVar("T")

# A file is read in blocks of READ_BLOCK with READ_REQUESTS of them in flight: 16 MiB in memory at most,
# and enough requests outstanding to keep a long link busy.
READ_BLOCK = 1 << 20
READ_REQUESTS = 16
DEFAULT_TIMEOUT = 60  # seconds per HTTP request, unless the connection's ``timeout`` extra says otherwise
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_PAGE_BYTES = 64 << 20  # one API page, decompressed (page_size records of a few hundred bytes each)


class SupplierUnavailable(ConnectionError):
    """The supplier's server, or the connection to it, failed before the delivery was complete.

    Nothing of the delivery was landed and nothing is rejected: the task fails, and its retry fetches
    the delivery again."""


def _sftp_failure(exc: BaseException) -> bool:
    """An error of the SFTP connection itself (not a missing or forbidden file)."""
    if isinstance(exc, asyncssh.SFTPError):
        return isinstance(exc, (asyncssh.SFTPConnectionLost, asyncssh.SFTPNoConnection))
    return isinstance(exc, (asyncssh.Error, EOFError, ConnectionError, TimeoutError)) or type(exc) is OSError


class SupplierSftpHook:
    """An organisation's SFTP outbox: ``<outbox>/<dataset>/<period>/``.

    Over asyncssh (the provider's ``SFTPHookAsync``), one connection for everything a task asks (listing,
    manifest, files) until :meth:`close`. A file is read with ``READ_REQUESTS`` reads of ``READ_BLOCK`` in
    flight, where paramiko waits for each window: a 645 MB file took paramiko 12.5 s, OpenSSH's own
    ``sftp`` 7.5 s and asyncssh 4.6 s from the same sshd (bench_ingest measures it each run)."""

    def __init__(self, conn_id: str, outbox: str):
        self.conn_id = conn_id
        self.outbox = outbox.strip("/")
        self._pinned = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: AsyncExitStack | None = None
        self._sftp: asyncssh.SFTPClient | None = None

    def period_dir(self, dataset: str, period: str) -> str:
        return posixpath.join(self.outbox, dataset, period)

    def _require_pinned_host_key(self) -> None:
        if self._pinned:
            return
        extra = BaseHook.get_connection(self.conn_id).extra_dejson or {}
        if not extra.get("host_key") or str(extra.get("no_host_key_check", "false")).lower() == "true":
            raise RuntimeError(
                f"connection {self.conn_id!r} does not pin the supplier's host key; "
                "set the host_key extra (anbar never trusts a host key on first use)"
            )
        self._pinned = True

    def _run(self, describe: Callable[[], str], operation: Callable[[asyncssh.SFTPClient], Awaitable[T]]) -> T:
        """``operation`` on the open SFTP session (opened on first use); a failure of the connection itself
        is ``SupplierUnavailable``, described by ``describe()`` at the time it failed."""
        self._require_pinned_host_key()
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        try:
            return self._loop.run_until_complete(self._on_session(operation))
        except Exception as exc:
            if _sftp_failure(exc):
                raise self._unavailable(describe(), exc) from exc
            raise

    async def _on_session(self, operation: Callable[[asyncssh.SFTPClient], Awaitable[T]]) -> T:
        if self._sftp is None:
            session = AsyncExitStack()
            try:
                hook = SFTPHookAsync(sftp_conn_id=self.conn_id)
                self._sftp = await session.enter_async_context(hook.get_managed_conn())
            except BaseException:
                await session.aclose()
                raise
            self._session = session
        return await operation(self._sftp)

    def _unavailable(self, what: str, exc: BaseException) -> SupplierUnavailable:
        self.close_quietly()
        return SupplierUnavailable(
            f"{self.conn_id}: the SFTP connection failed {what} ({type(exc).__name__}: {exc or 'no detail'}); "
            "nothing of it was landed, the task's retry fetches it again"
        )

    def list_period(self, dataset: str, period: str) -> list[str] | None:
        """File names in the period directory, or None if it does not exist."""
        path = self.period_dir(dataset, period)

        async def listing(sftp: asyncssh.SFTPClient) -> list[str] | None:
            try:
                names = await sftp.listdir(path)
            except asyncssh.SFTPNoSuchFile:
                return None
            return sorted(n for n in names if n not in (".", ".."))

        return self._run(lambda: f"listing {path}", listing)

    def read_manifest(self, dataset: str, period: str) -> bytes | None:
        path = posixpath.join(self.period_dir(dataset, period), MANIFEST_NAME)

        async def manifest(sftp: asyncssh.SFTPClient) -> bytes | None:
            try:
                async with sftp.open(path, "rb") as fh:
                    return await fh.read(MAX_MANIFEST_BYTES + 1)
            except asyncssh.SFTPNoSuchFile:
                return None

        return self._run(lambda: f"reading {path}", manifest)

    def stream_file(self, dataset: str, period: str, name: str, out: BinaryIO, max_bytes: int) -> None:
        """Copy a delivered file to ``out``; refuse more than ``max_bytes`` (the manifest's size + slack)."""
        if "/" in name or name in ("", ".", ".."):
            raise DeliveryRejected("unsafe_file_name", f"file name {name!r} is not allowed")
        path = posixpath.join(self.period_dir(dataset, period), name)
        copied = 0

        async def copy(sftp: asyncssh.SFTPClient) -> None:
            nonlocal copied
            try:
                attrs = await sftp.lstat(path)
            except asyncssh.SFTPNoSuchFile:
                raise DeliveryRejected(
                    "missing_file", f"{name} is listed in the manifest but not delivered", file=name
                ) from None
            _refuse_unless_regular_file(attrs.permissions or 0, name)
            async with sftp.open(path, "rb", block_size=READ_BLOCK, max_requests=READ_REQUESTS) as fh:
                while chunk := await fh.read(READ_BLOCK * READ_REQUESTS):
                    copied += len(chunk)
                    if copied > max_bytes:
                        raise DeliveryRejected(
                            "size_mismatch", f"{name} is larger than the manifest declares", file=name
                        )
                    out.write(chunk)

        self._run(lambda: f"reading {name} after {copied} of {max_bytes} bytes", copy)

    def close(self) -> None:
        """End the session (a failure to end it cleanly is the server's: logged)."""
        self.close_quietly()

    def close_quietly(self) -> None:
        """Forget the connection, so the next call opens a new one."""
        session, self._session, self._sftp = self._session, None, None
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            if session is not None:
                loop.run_until_complete(session.aclose())
        except Exception:  # the connection is already gone
            log.debug("closing a failed SFTP connection", exc_info=True)
        finally:
            loop.close()


class SupplierApiHook:
    """An organisation's extract API (bearer token in the connection's password)."""

    def __init__(self, conn_id: str):
        self.conn_id = conn_id
        self._hook = HttpHook(method="GET", http_conn_id=conn_id)
        self._token: str | None = None
        self._timeout: float = DEFAULT_TIMEOUT

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            conn = self._hook.get_connection(self.conn_id)
            extra = conn.extra_dejson or {}
            token = conn.password or extra.get("token")
            if not token:
                raise RuntimeError(f"connection {self.conn_id!r} has no bearer token (password)")
            self._token = token
            self._timeout = float(extra.get("timeout") or DEFAULT_TIMEOUT)
        return {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}

    def _get(self, endpoint: str, params: dict | None = None):
        """GET with bounded retries: 5xx, timeouts and broken connections after a doubling backoff, 429
        after its Retry-After (if not longer than the longest wait); other answers are returned as they are."""
        attempts, backoff, max_wait = settings.api_retry_policy()
        problem = ""
        for attempt in range(1, attempts + 1):
            wait = min(backoff * 2 ** (attempt - 1), max_wait)
            try:
                response = self._hook.run(
                    endpoint,
                    data=params,
                    headers=self._headers(),
                    extra_options={"check_response": False, "timeout": self._timeout, "stream": True},
                )
            except requests.RequestException as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code in (401, 403):
                    raise PermissionError(
                        f"{self.conn_id}: the supplier API refused our token ({response.status_code})"
                    )
                if response.status_code not in RETRYABLE_STATUS:
                    return response
                response.close()  # streamed: give the connection back
                problem = f"HTTP {response.status_code}"
                asked = retry_after_seconds(response.headers.get("Retry-After"))
                if asked is not None:
                    if asked > max_wait:
                        raise SupplierUnavailable(
                            f"{self.conn_id}: GET {endpoint} answered {response.status_code} asking to retry after "
                            f"{asked:.0f} s, longer than a task waits ({max_wait:.0f} s, ANBAR_API_MAX_WAIT_SECONDS); "
                            "nothing was landed, the task's retry comes back later"
                        )
                    wait = asked
            if attempt < attempts:
                log.warning(
                    "%s: GET %s failed (%s), attempt %d of %d; again in %.1f s",
                    *(self.conn_id, endpoint, problem, attempt, attempts, wait),
                )
                time.sleep(wait)
        raise SupplierUnavailable(
            f"{self.conn_id}: GET {endpoint} failed {attempts} times (last: {problem}); "
            "nothing was landed, the task's retry fetches the extract again"
        )

    def read_manifest(self, dataset: str, period: str) -> bytes | None:
        response = self._get(f"/v1/extracts/{dataset}/{period}/manifest")
        if response.status_code == 404:
            response.close()
            return None
        response.raise_for_status()
        # Past the limit the manifest is rejected as too large (anbar.exchange): one byte more is enough.
        body, _ = _bounded_body(response, MAX_MANIFEST_BYTES + 1)
        return body

    def iter_records(self, dataset: str, period: str) -> Iterator[dict]:
        cursor: str | None = None
        seen: set[str] = set()
        page = 0
        while True:
            params = {"cursor": cursor} if cursor else None
            response = self._get(f"/v1/extracts/{dataset}/{period}", params)
            if response.status_code >= 400:  # 5xx, 429, 401 and 403 never get here (see _get)
                response.close()
                raise DeliveryRejected(
                    "malformed_records",
                    f"page {page + 1} answered HTTP {response.status_code} {response.reason or ''}".rstrip()
                    + " after the manifest answered 200 (§9.2: once the manifest is there, every page is)",
                )
            try:
                raw, complete = _bounded_body(response, MAX_PAGE_BYTES)
            except requests.exceptions.ContentDecodingError as exc:
                raise DeliveryRejected(
                    "malformed_records", f"page {page + 1}: its Content-Encoding cannot be undone ({exc})"
                ) from None
            if not complete:
                raise DeliveryRejected(
                    "malformed_records",
                    f"page {page + 1} is larger than {MAX_PAGE_BYTES} bytes (once decompressed): "
                    "a page holds page_size records",
                )
            try:
                body = json.loads(raw)
                records, cursor = body["records"], body.get("next_cursor")
            except (ValueError, KeyError, TypeError) as exc:
                raise DeliveryRejected(
                    "malformed_records", f"page {page + 1} is not a valid records page: {exc}"
                ) from None
            if not isinstance(records, list):
                raise DeliveryRejected("malformed_records", f"page {page + 1}: 'records' is not a list")
            if cursor is not None and not isinstance(cursor, str):
                raise DeliveryRejected("malformed_records", f"page {page + 1}: 'next_cursor' is not a string or null")
            if cursor in seen:
                raise DeliveryRejected(
                    "malformed_records",
                    f"page {page + 1} repeats the cursor of an earlier page ({cursor[:40]!r}): the extract never ends",
                )
            yield from records
            page += 1
            if not cursor:
                return
            seen.add(cursor)

    def iter_jsonl(self, dataset: str, period: str) -> Iterator[bytes]:
        """Records as JSON Lines, the form in which API deliveries are landed."""
        for record in self.iter_records(dataset, period):
            yield (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")

    def close(self) -> None:
        pass


def retry_after_seconds(value: str | None, now: dt.datetime | None = None) -> float | None:
    """A ``Retry-After`` header in seconds (delta-seconds or an HTTP date), None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def _refuse_unless_regular_file(mode: int, name: str) -> None:
    """Only regular files are downloaded: a symbolic link (which may point anywhere on the supplier's
    server, outside the outbox) or a directory listed as a file rejects the delivery."""
    if stat.S_ISREG(mode):
        return
    what = "a symbolic link" if stat.S_ISLNK(mode) else "a directory" if stat.S_ISDIR(mode) else "not a regular file"
    raise DeliveryRejected(
        "unsafe_file_name",
        f"{name} is {what} on the server: only regular files in the period directory are downloaded",
        file=name,
    )


def _bounded_body(response, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of a streamed response, decompressed as they arrive (a small gzip body may
    inflate to gigabytes), and whether that was all of it. The response is closed. A connection that
    breaks while the body arrives is ``SupplierUnavailable``, as when it breaks before."""
    parts: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(chunk_size=1 << 16):
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                return b"".join(parts)[:limit], False
        return b"".join(parts), True
    except requests.exceptions.ContentDecodingError:
        raise
    except requests.RequestException as exc:
        raise SupplierUnavailable(
            f"GET {response.url}: the connection broke while the answer arrived ({type(exc).__name__}: {exc}); "
            "nothing was landed, the task's retry fetches the extract again"
        ) from exc
    finally:
        response.close()
