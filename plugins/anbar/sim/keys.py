"""SSH key pairs of the simulator: the SFTP host key and the anbar client key.

Keys are generated once into the state directory and reused, so a pinned host
key (the ``host_key`` extra of the Airflow connection) stays valid across
restarts of the simulator.

Ed25519 is the default: paramiko (Airflow's ``SSHHook``/``SFTPHook``) loads it
as a client key from the ``private_key`` extra or ``key_file`` and pins it as
``ssh-ed25519 <base64>`` in the ``host_key`` extra; asyncssh (the server, and
Airflow's ``SFTPHookAsync``) supports it natively; generating it is instant.
RSA (3072 bit) is available for systems that insist on it.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import asyncssh

KEY_ALGORITHMS = {"ed25519": "ssh-ed25519", "rsa": "ssh-rsa"}


@dataclass(frozen=True)
class KeyPair:
    """A private key on disk (OpenSSH format, mode 0600) and its public half."""

    private_path: Path
    public_path: Path
    kind: str

    @property
    def private_openssh(self) -> str:
        """The private key in OpenSSH PEM form (for the ``private_key`` extra)."""
        return self.private_path.read_text(encoding="ascii")

    @property
    def public_line(self) -> str:
        """``<key type> <base64> <comment>``: an authorized_keys / known_hosts line."""
        return self.public_path.read_text(encoding="ascii").strip()

    @property
    def host_key(self) -> str:
        """``<key type> <base64>``: the value of the Airflow ``host_key`` extra."""
        key_type, data = self.public_line.split()[:2]
        return f"{key_type} {data}"

    @property
    def fingerprint(self) -> str:
        """OpenSSH-style ``SHA256:...`` fingerprint of the public key."""
        blob = base64.b64decode(self.public_line.split()[1])
        digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
        return f"SHA256:{digest}"

    def ssh_key(self) -> asyncssh.SSHKey:
        return asyncssh.read_private_key(str(self.private_path))


def _write_private(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def ensure_keypair(path: Path | str, kind: str = "ed25519", comment: str | None = None) -> KeyPair:
    """Return the key pair at ``path`` (+ ``path.pub``), generating it on first use.

    An existing private key is kept whatever ``kind`` says (the public half is
    rewritten from it if missing), so restarts never change a pinned key.
    """
    if kind not in KEY_ALGORITHMS:
        raise ValueError(f"unknown key kind {kind!r}; use one of {sorted(KEY_ALGORITHMS)}")
    path = Path(path)
    public = path.with_name(path.name + ".pub")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        key = asyncssh.read_private_key(str(path))
        existing_kind = {v: k for k, v in KEY_ALGORITHMS.items()}.get(key.algorithm.decode(), kind)
        kind = existing_kind
    else:
        if kind == "rsa":
            key = asyncssh.generate_private_key("ssh-rsa", key_size=3072, comment=comment)
        else:
            key = asyncssh.generate_private_key(KEY_ALGORITHMS[kind], comment=comment)
        _write_private(path, key.export_private_key("openssh"), 0o600)
    if not public.exists():
        _write_private(public, key.export_public_key("openssh"), 0o644)
    return KeyPair(private_path=path, public_path=public, kind=kind)
