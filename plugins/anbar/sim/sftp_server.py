"""A real SFTP server (asyncssh) for the organisations that deliver over SFTP.

* binds 127.0.0.1 only;
* one account per organisation code, public-key authentication only (no
  passwords, no keyboard-interactive), each account with its own authorized
  client keys;
* each account is chrooted to ``<root>/<org>/`` (asyncssh's virtual chroot:
  paths are normalised before they are joined to the root, so ``..`` cannot
  leave it; the simulator never creates symlinks);
* read-only by default: listing, stat and read work, anything that would
  change the tree is refused with "permission denied";
* SFTP only: shell, exec and port forwarding are refused;
* faults on demand (``anbar.sim.faults``): a read may cut the connection mid-file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import asyncssh
from asyncssh.constants import (
    ACE4_APPEND_DATA,
    ACE4_WRITE_ATTRIBUTES,
    ACE4_WRITE_DATA,
    FXF_ACCESS_DISPOSITION,
    FXF_APPEND,
    FXF_CREAT,
    FXF_OPEN_EXISTING,
    FXF_TRUNC,
    FXF_WRITE,
)

from anbar.sim.faults import Faults

log = logging.getLogger(__name__)

_V3_WRITE_FLAGS = FXF_WRITE | FXF_APPEND | FXF_CREAT | FXF_TRUNC
_V5_WRITE_ACCESS = ACE4_WRITE_DATA | ACE4_APPEND_DATA | ACE4_WRITE_ATTRIBUTES


def _denied(*_args: object, **_kwargs: object) -> None:
    raise asyncssh.SFTPPermissionDenied("read-only delivery area")


class _FaultySFTPServer(asyncssh.SFTPServer):
    """A session that cuts its connection where ``faults`` says (see ``Faults.drop_sftp``)."""

    faults: Faults | None = None

    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        if self.faults is not None and self.faults.sftp_drop_due(getattr(file_obj, "name", ""), offset + size):
            self.connection.abort()
            raise asyncssh.SFTPConnectionLost("connection dropped (simulated fault)")
        return super().read(file_obj, offset, size)


class ReadOnlySFTPServer(_FaultySFTPServer):
    """SFTP session chrooted to the organisation's directory; refuses every write."""

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        if pflags & _V3_WRITE_FLAGS:
            _denied()
        return super().open(path, pflags, attrs)

    def open56(self, path: bytes, desired_access: int, flags: int, attrs: asyncssh.SFTPAttrs) -> object:
        if desired_access & _V5_WRITE_ACCESS or (flags & FXF_ACCESS_DISPOSITION) != FXF_OPEN_EXISTING:
            _denied()
        return super().open56(path, desired_access, flags, attrs)

    write = _denied
    remove = _denied
    mkdir = _denied
    rmdir = _denied
    rename = _denied
    posix_rename = _denied
    setstat = _denied
    lsetstat = _denied
    fsetstat = _denied
    symlink = _denied
    link = _denied


class WritableSFTPServer(_FaultySFTPServer):
    """Chrooted SFTP session that allows writes (acknowledgement drops, archiving)."""


class _SSHServer(asyncssh.SSHServer):
    """Per-connection authentication policy: known account + one of its authorized keys."""

    def __init__(self, authorized: Mapping[str, Sequence[asyncssh.SSHKey]]) -> None:
        self._authorized = authorized

    def begin_auth(self, username: str) -> bool:
        return True  # always authenticate; unknown accounts simply have no keys

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        allowed = self._authorized.get(username, ())
        ok = any(key.public_data == k.public_data for k in allowed)
        if not ok:
            log.info("sftp: refused key %s for %r", key.get_fingerprint(), username)
        return ok


def _import_public(key: str | bytes | asyncssh.SSHKey) -> asyncssh.SSHKey:
    if isinstance(key, asyncssh.SSHKey):
        return key
    return asyncssh.import_public_key(key)


class SftpServer:
    """A listening SFTP server; ``await SftpServer.start(...)``, then ``await close()``."""

    def __init__(self, acceptor: asyncssh.SSHAcceptor, root: Path, host: str) -> None:
        self._acceptor = acceptor
        self.root = root
        self.host = host

    @property
    def port(self) -> int:
        return self._acceptor.get_port()

    @classmethod
    async def start(
        cls,
        root: Path | str,
        host_key_path: Path | str,
        authorized_keys: Mapping[str, Sequence[str | bytes | asyncssh.SSHKey]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        read_only: bool = True,
        faults: Faults | None = None,
    ) -> SftpServer:
        """Listen on ``host:port`` (0 picks a free port).

        ``authorized_keys`` maps an account (organisation code) to its authorized
        client public keys (OpenSSH ``ssh-ed25519 AAAA...`` lines or key objects);
        ``faults`` injects the faults armed in it.
        """
        root = Path(root).resolve()
        accounts = {user: [_import_public(k) for k in keys] for user, keys in authorized_keys.items()}
        for user in accounts:
            if not user or "/" in user or user in (".", ".."):
                raise ValueError(f"bad SFTP account name {user!r}")
            (root / user).mkdir(parents=True, exist_ok=True)
        session_class = ReadOnlySFTPServer if read_only else WritableSFTPServer

        def sftp_factory(chan: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
            user = chan.get_extra_info("username")
            if user not in accounts:  # cannot happen: auth refuses unknown accounts
                raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "no")
            session = session_class(chan, chroot=str(root / user).encode())
            session.faults = faults
            return session

        acceptor = await asyncssh.listen(
            host,
            port,
            server_host_keys=[str(host_key_path)],
            server_factory=lambda: _SSHServer(accounts),
            sftp_factory=sftp_factory,
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_pty=False,
            login_timeout=30,
        )
        return cls(acceptor, root, host)

    async def close(self) -> None:
        self._acceptor.close()
        await self._acceptor.wait_closed()
