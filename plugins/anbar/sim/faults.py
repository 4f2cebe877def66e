"""Faults the simulated servers inject on demand (the fault tests in ``tests/faults``).

One ``Faults`` object is shared by the SFTP server and the HTTP API of a ``Simulators`` run
(``handle.faults``). A test arms a fault, runs a step, and the fault disarms itself once used
up; ``clear()`` disarms everything (use ``with handle.faults.armed():``). The SMTP sink is
stopped and started with ``handle.stop_smtp()`` / ``handle.start_smtp()``.

SFTP  ``drop_sftp(path, after_bytes, times=1)``: the TCP connection is cut when a read of the file
      whose path ends with ``path`` reaches past ``after_bytes`` (the client has had at most that
      many bytes of it).
HTTP  ``http(path, *actions, after=0)``: the requests for the URL path ``path``, after the first
      ``after`` of them, get ``actions`` one each: ``HttpFault.status(500)``,
      ``HttpFault.status(429, retry_after=1)``, ``HttpFault.delay(3)`` (answers normally, too late
      for a client with a shorter timeout), ``HttpFault.malformed()`` (200 with a body that is not
      a records page).

``requests`` lists every HTTP request the API saw, in order, with what it got (``HttpRequest``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

TRUNCATED_PAGE = b'{"records": [{"national_id": "00762'


@dataclass(frozen=True)
class HttpFault:
    kind: str  # status | delay | malformed
    status_code: int = 200
    retry_after: str | None = None
    seconds: float = 0.0
    body: bytes = TRUNCATED_PAGE

    @classmethod
    def status(cls, code: int, retry_after: float | str | None = None) -> HttpFault:
        return cls("status", status_code=code, retry_after=None if retry_after is None else str(retry_after))

    @classmethod
    def delay(cls, seconds: float) -> HttpFault:
        return cls("delay", seconds=seconds)

    @classmethod
    def malformed(cls, body: bytes = TRUNCATED_PAGE) -> HttpFault:
        return cls("malformed", body=body)

    def describe(self) -> str:
        if self.kind == "status":
            return f"status {self.status_code}" + (f" retry-after {self.retry_after}" if self.retry_after else "")
        if self.kind == "delay":
            return f"delay {self.seconds}s"
        return "malformed body"


@dataclass(frozen=True)
class HttpRequest:
    at: float  # time.monotonic() when the request arrived
    path: str
    query: str
    fault: str | None  # what was injected, None for a normal answer


@dataclass
class _HttpRule:
    path: str
    actions: deque[HttpFault]
    skip: int


@dataclass
class _SftpDrop:
    path: str
    after_bytes: int
    times: int


class Faults:
    """Armed faults, shared between the test thread and the servers' event loop (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._http: list[_HttpRule] = []
        self._sftp: list[_SftpDrop] = []
        self.requests: deque[HttpRequest] = deque(maxlen=10_000)

    # -- arming ---------------------------------------------------------------------------------------
    def drop_sftp(self, path: str, after_bytes: int, times: int = 1) -> None:
        with self._lock:
            self._sftp.append(_SftpDrop(path.lstrip("/"), after_bytes, times))

    def http(self, path: str, *actions: HttpFault, after: int = 0) -> None:
        with self._lock:
            self._http.append(_HttpRule(path, deque(actions), after))

    def clear(self) -> None:
        with self._lock:
            self._http.clear()
            self._sftp.clear()

    @contextlib.contextmanager
    def armed(self) -> Iterator[Faults]:
        """A clean slate (no fault armed, no request logged), every fault disarmed on the way out."""
        self.clear()
        with self._lock:
            self.requests.clear()
        try:
            yield self
        finally:
            self.clear()

    def requests_for(self, path: str) -> list[HttpRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # -- used by the servers ---------------------------------------------------------------------------
    def sftp_drop_due(self, local_path: str | bytes, read_end: int) -> bool:
        """Whether a read ending at ``read_end`` of ``local_path`` must cut the connection."""
        name = os.fsdecode(local_path)
        with self._lock:
            for drop in self._sftp:
                if drop.times > 0 and name.endswith("/" + drop.path) and read_end > drop.after_bytes:
                    drop.times -= 1
                    log.warning("sim fault: dropping the SFTP connection reading %s at %d bytes", name, read_end)
                    return True
        return False

    def http_action(self, path: str, query: str) -> HttpFault | None:
        """The fault for this request (None: answer normally); logs the request."""
        action = None
        with self._lock:
            for rule in self._http:
                if rule.path != path:
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    break
                if rule.actions:
                    action = rule.actions.popleft()
                    break
            self.requests.append(HttpRequest(time.monotonic(), path, query, action.describe() if action else None))
        if action is not None:
            log.warning("sim fault: %s for %s?%s", action.describe(), path, query)
        return action
