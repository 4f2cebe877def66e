"""A real OpenSSH sshd on loopback, for measuring anbar's SFTP receive against OpenSSH's own ``sftp`` client.

The server runs as the user running the bench, on a free port of 127.0.0.1, with a host key and a client key
made for the run; its SFTP sessions start in the simulated supplier's directory (``internal-sftp -d``), so the
paths are the ones anbar uses against the Python simulator. Needs Debian's ``openssh-server`` (``sshd``) and
``openssh-client`` (``sftp``, ``ssh-keygen``); :func:`missing` says which of them is not installed.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


def _sshd() -> str | None:
    return next((p for p in SSHD_CANDIDATES if Path(p).exists()), shutil.which("sshd"))


def missing() -> list[str]:
    """The OpenSSH programs this machine lacks (empty when the comparison can run)."""
    lacking = [] if _sshd() else ["sshd (apt-get install openssh-server)"]
    lacking += [f"{tool} (apt-get install openssh-client)" for tool in ("sftp", "ssh-keygen") if not shutil.which(tool)]
    return lacking


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OpenSshServer:
    """``sshd -D`` serving ``start_dir`` over SFTP to one key, until :meth:`stop`."""

    def __init__(self, workdir: Path, start_dir: Path):
        self.dir = workdir
        self.start_dir = start_dir
        self.port = _free_port()
        self.user = getpass.getuser()
        self.client_key = workdir / "client_key"
        self.proc: subprocess.Popen | None = None

    def start(self) -> OpenSshServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        host_key = self.dir / "host_key"
        for key in (host_key, self.client_key):
            key.unlink(missing_ok=True)
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        (self.dir / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        config = self.dir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"PidFile {self.dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin prohibit-password",
                    "StrictModes no",
                    "UsePAM no",
                    "Subsystem sftp internal-sftp",
                    f"ForceCommand internal-sftp -d {self.start_dir}",
                    "",
                ]
            )
        )
        if self.user == "root":  # sshd run by root wants its privilege-separation directory
            Path("/run/sshd").mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            [_sshd(), "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "sshd.log", "ab"),  # noqa: SIM115  (the server's log, closed with the process)
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited at start: {(self.dir / 'sshd.log').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"sshd did not listen on {self.port} within 10 s")

    @property
    def host_key(self) -> str:
        """The server's public host key, ``<type> <base64>``: what an anbar connection pins."""
        return " ".join((self.dir / "host_key.pub").read_text().split()[:2])

    def connection(self) -> dict:
        """An Airflow SFTP connection to this server, host key pinned."""
        return {
            "conn_type": "sftp",
            "host": "127.0.0.1",
            "port": self.port,
            "login": self.user,
            "extra": {
                "private_key": self.client_key.read_text(),
                "host_key": self.host_key,
                "no_host_key_check": False,
                "look_for_keys": False,
            },
        }

    def fetch_with_sftp_client(self, remote: str, local: Path) -> float:
        """Seconds OpenSSH's ``sftp`` client takes to get ``remote`` (relative to the start directory)."""
        known_hosts = self.dir / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{self.port} {self.host_key}\n")
        cmd = [
            "sftp",
            "-q",
            "-b",
            "-",
            "-i",
            str(self.client_key),
            "-P",
            str(self.port),
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            f"{self.user}@127.0.0.1",
        ]
        t0 = time.perf_counter()
        subprocess.run(cmd, input=f"get {remote} {local}\n".encode(), check=True, capture_output=True)
        return time.perf_counter() - t0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
