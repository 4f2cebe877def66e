"""A local SMTP sink (aiosmtpd): every message received becomes an ``.eml`` file.

No authentication, no TLS, 127.0.0.1 only. Files are named
``<UTC timestamp>-<seq>-<sanitised subject>.eml`` and start with
``X-Envelope-From`` / ``X-Envelope-To`` headers (so Bcc recipients are
visible), followed by the message exactly as received.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.header
import email.parser
import email.policy
import itertools
import os
import re
import threading
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

_UNSAFE = re.compile(r"[^\w.-]+", re.UNICODE)


def sanitise_subject(subject: str | None, limit: int = 60) -> str:
    """A file-name-safe form of a subject (letters of any script, digits, ``._-``)."""
    text = _UNSAFE.sub("_", (subject or "").strip()).strip("._-")
    return text[:limit].rstrip("._-") or "no-subject"


def _subject(raw: bytes) -> str:
    headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(raw)
    try:
        return str(headers.get("Subject", "") or "")
    except (ValueError, LookupError):
        return ""


class MaildirHandler:
    """aiosmtpd handler writing each message into ``maildir``."""

    def __init__(self, maildir: Path | str) -> None:
        self.maildir = Path(maildir)
        self.maildir.mkdir(parents=True, exist_ok=True)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def store(self, raw: bytes, mail_from: str | None, rcpt_tos: list[str]) -> Path:
        with self._lock:
            seq = next(self._seq)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{stamp}-{seq:04d}-{sanitise_subject(_subject(raw))}.eml"
        envelope = (
            f"X-Envelope-From: <{mail_from or ''}>\r\nX-Envelope-To: {', '.join(f'<{r}>' for r in rcpt_tos)}\r\n"
        ).encode()
        path = self.maildir / name
        tmp = self.maildir / f".{name}.tmp"
        tmp.write_bytes(envelope + raw)
        os.replace(tmp, path)
        return path

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self.store(raw, envelope.mail_from, list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


class SmtpSink:
    """A listening SMTP sink; ``await SmtpSink.start(maildir)``, then ``await close()``."""

    def __init__(self, server: asyncio.Server, handler: MaildirHandler) -> None:
        self._server = server
        self.handler = handler
        self.host, self.port = server.sockets[0].getsockname()[:2]

    @property
    def maildir(self) -> Path:
        return self.handler.maildir

    @classmethod
    async def start(cls, maildir: Path | str, *, host: str = "127.0.0.1", port: int = 0) -> SmtpSink:
        handler = MaildirHandler(maildir)
        loop = asyncio.get_running_loop()

        def factory() -> SMTP:
            return SMTP(
                handler,
                hostname="anbar-sim.local",
                enable_SMTPUTF8=True,
                auth_require_tls=False,
                loop=loop,
            )

        server = await loop.create_server(factory, host=host, port=port)
        return cls(server, handler)

    async def close(self) -> None:
        self._server.close()
        await self._server.wait_closed()
