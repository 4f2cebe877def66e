"""The SFTP server end to end with Airflow's real SFTPHook (paramiko), host key pinned."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import paramiko
import pytest

from anbar.sim.delivery import publish_sftp_periods
from anbar.sim.keys import ensure_keypair
from anbar.sim.sftp_server import SftpServer

from .helpers import SSO_PERIODS


@pytest.fixture(scope="module")
def sftp(tmp_path_factory, loop, population, registry, config):
    state = tmp_path_factory.mktemp("sftp-state")
    root = state / "sftp"
    publish_sftp_periods(root, population, registry, config, {"sso": SSO_PERIODS})
    (root / "other").mkdir(parents=True)
    (root / "other" / "secret.txt").write_text("not for sso")
    host = ensure_keypair(state / "keys" / "host", "ed25519")
    client = ensure_keypair(state / "keys" / "client", "ed25519")
    intruder = ensure_keypair(state / "keys" / "intruder", "ed25519")
    server = loop.run(
        SftpServer.start(root, host.private_path, {"sso": [client.public_line], "other": [intruder.public_line]})
    )
    yield {"server": server, "root": root, "host": host, "client": client, "intruder": intruder}
    loop.run(server.close())


def _connection(monkeypatch, conn_id: str, port: int, *, host_key: str | None, private_key: str,
                login: str = "sso") -> None:  # fmt: skip
    extra = {"private_key": private_key, "look_for_keys": False}
    if host_key is not None:
        extra["host_key"] = host_key
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps({"conn_type": "sftp", "host": "127.0.0.1", "port": port, "login": login, "extra": extra}),
    )


def _hook(conn_id: str):
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    # one attempt: the hook otherwise retries (3 s+) even a refused host key
    return SFTPHook(ssh_conn_id=conn_id, conn_retry_attempts=1)


def test_sftphook_with_pinned_host_key_lists_and_downloads(sftp, monkeypatch, tmp_path):
    port = sftp["server"].port
    _connection(
        monkeypatch,
        "sim_sftp_ok",
        port,
        host_key=sftp["host"].host_key,
        private_key=sftp["client"].private_openssh,
    )
    hook = _hook("sim_sftp_ok")
    assert hook.host_key is not None and not hook.no_host_key_check
    assert hook.list_directory("/") == ["outbox"]  # chrooted to <root>/sso
    assert sorted(hook.list_directory("outbox")) == ["insured_persons", "workplaces"]
    assert sorted(hook.list_directory("/outbox/workplaces")) == SSO_PERIODS
    period = "outbox/insured_persons/1405-06"
    names = hook.list_directory(period)
    assert "manifest.json" in names
    local_manifest = tmp_path / "manifest.json"
    hook.retrieve_file(f"{period}/manifest.json", str(local_manifest))
    manifest = json.loads(local_manifest.read_text("utf-8"))
    assert manifest["period"] == "1405-06"
    for entry in manifest["files"]:
        target = tmp_path / entry["name"]
        hook.retrieve_file(f"/{period}/{entry['name']}", str(target))
        data = target.read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"]
        assert data == (sftp["root"] / "sso" / period / entry["name"]).read_bytes()
    assert hook.path_exists(f"{period}/manifest.json")
    assert not hook.path_exists(f"{period}/nothing.csv")
    hook.close_conn()


def test_chroot_and_read_only(sftp, monkeypatch, tmp_path):
    _connection(
        monkeypatch,
        "sim_sftp_ro",
        sftp["server"].port,
        host_key=sftp["host"].host_key,
        private_key=sftp["client"].private_openssh,
    )
    hook = _hook("sim_sftp_ro")
    with hook.get_managed_conn() as client:
        assert client.listdir("/../../..") == ["outbox"]
        assert client.normalize("..") == "/"
        for escape in ("/etc/passwd", "../other/secret.txt", "/../other/secret.txt"):
            with pytest.raises(FileNotFoundError):
                client.open(escape, "rb")
        with pytest.raises(PermissionError):
            client.open("outbox/new.csv", "wb")
        with pytest.raises(PermissionError):
            client.remove("outbox/workplaces/1405-06/manifest.json")
        with pytest.raises(PermissionError):
            client.rename("outbox/workplaces", "outbox/w2")
        with pytest.raises(OSError):
            client.mkdir("outbox/new")
    assert (sftp["root"] / "sso/outbox/workplaces/1405-06/manifest.json").exists()
    assert not (sftp["root"] / "sso/outbox/new.csv").exists()


def test_wrong_pinned_host_key_is_refused(sftp, monkeypatch, tmp_path):
    impostor = ensure_keypair(tmp_path / "impostor_host_key", "ed25519")
    _connection(
        monkeypatch,
        "sim_sftp_bad_host",
        sftp["server"].port,
        host_key=impostor.host_key,
        private_key=sftp["client"].private_openssh,
    )
    hook = _hook("sim_sftp_bad_host")
    with pytest.raises(paramiko.BadHostKeyException):
        hook.list_directory("/")


def test_unpinned_unknown_host_is_refused(sftp, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/known_hosts to fall back on
    _connection(
        monkeypatch,
        "sim_sftp_unpinned",
        sftp["server"].port,
        host_key=None,
        private_key=sftp["client"].private_openssh,
    )
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        _hook("sim_sftp_unpinned").list_directory("/")


def test_wrong_client_key_is_refused(sftp, monkeypatch, tmp_path):
    stranger = ensure_keypair(tmp_path / "stranger", "ed25519")
    for conn_id, key, login in [
        ("sim_sftp_stranger", stranger, "sso"),
        ("sim_sftp_other_account", sftp["intruder"], "sso"),  # a key of another account
        ("sim_sftp_no_account", sftp["client"], "nobody"),
    ]:
        _connection(
            monkeypatch,
            conn_id,
            sftp["server"].port,
            host_key=sftp["host"].host_key,
            private_key=key.private_openssh,
            login=login,
        )
        with pytest.raises(paramiko.AuthenticationException):
            _hook(conn_id).list_directory("/")


def test_password_login_and_shell_are_refused(sftp):
    transport = paramiko.Transport(("127.0.0.1", sftp["server"].port))
    try:
        transport.connect()
        with pytest.raises(paramiko.BadAuthenticationType) as info:
            transport.auth_password("sso", "sso")
        assert info.value.allowed_types == ["publickey"]
    finally:
        transport.close()
    client = paramiko.SSHClient()
    client.get_host_keys().add(
        f"[127.0.0.1]:{sftp['server'].port}",
        "ssh-ed25519",
        paramiko.Ed25519Key(filename=str(sftp["host"].private_path)),
    )
    client.connect(
        "127.0.0.1",
        port=sftp["server"].port,
        username="sso",
        key_filename=str(sftp["client"].private_path),
        look_for_keys=False,
        allow_agent=False,
    )
    try:
        _, stdout, _ = client.exec_command("cat /etc/passwd")
        assert stdout.read() == b""
        assert stdout.channel.recv_exit_status() != 0
    except paramiko.SSHException:
        pass  # refusing the channel outright is fine too
    finally:
        client.close()


def test_keys_are_generated_once_and_reused(tmp_path):
    first = ensure_keypair(tmp_path / "k", "ed25519")
    again = ensure_keypair(tmp_path / "k", "rsa")  # an existing key is kept as it is
    assert again.kind == "ed25519" and again.host_key == first.host_key
    assert first.fingerprint.startswith("SHA256:")
    assert oct(os.stat(first.private_path).st_mode & 0o777) == "0o600"
    assert first.host_key.startswith("ssh-ed25519 ")


@pytest.mark.parametrize(("kind", "cls"), [("ed25519", "Ed25519Key"), ("rsa", "RSAKey")])
def test_airflow_loads_our_private_keys(tmp_path, kind, cls):
    from airflow.providers.ssh.hooks.ssh import SSHHook

    pair = ensure_keypair(tmp_path / kind, kind)
    key = SSHHook(remote_host="127.0.0.1")._pkey_from_private_key(pair.private_openssh)
    assert type(key).__name__ == cls
    assert key.get_base64() == pair.host_key.split()[1]
    assert Path(pair.public_path).read_text().startswith(pair.host_key)


def test_async_hook_pins_the_host_key_too(sftp, monkeypatch, tmp_path):
    """SFTPHookAsync (deferrable sensors) reads the same extras, through asyncssh."""
    import asyncio

    import asyncssh
    from airflow.providers.sftp.hooks.sftp import SFTPHookAsync

    impostor = ensure_keypair(tmp_path / "impostor", "ed25519")
    for conn_id, host_key in (("sim_async_ok", sftp["host"]), ("sim_async_bad", impostor)):
        _connection(
            monkeypatch,
            conn_id,
            sftp["server"].port,
            host_key=host_key.host_key,
            private_key=sftp["client"].private_openssh,
        )

    async def listing(conn_id):
        return await SFTPHookAsync(sftp_conn_id=conn_id).list_directory("/outbox/workplaces")

    names = asyncio.run(listing("sim_async_ok"))
    assert set(SSO_PERIODS) <= set(names)
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        asyncio.run(listing("sim_async_bad"))


def test_anbar_s_sftp_hook_reads_a_delivery_over_one_connection_and_pins_the_host_key(sftp, monkeypatch, tmp_path):
    """anbar.hooks.SupplierSftpHook: what the ingest uses (asyncssh); an unpinned or wrong host key never reads."""
    import io

    from anbar.hooks import SupplierSftpHook, SupplierUnavailable

    impostor = ensure_keypair(tmp_path / "impostor", "ed25519")
    keys = {"anbar_ok": sftp["host"].host_key, "anbar_bad": impostor.host_key, "anbar_no": None}
    for conn_id, host_key in keys.items():
        _connection(
            monkeypatch, conn_id, sftp["server"].port, host_key=host_key, private_key=sftp["client"].private_openssh
        )

    source = SupplierSftpHook("anbar_ok", "/outbox")
    try:
        names = source.list_period("insured_persons", "1405-06")
        assert "manifest.json" in names and "." not in names
        assert source.list_period("insured_persons", "1300-01") is None
        manifest = json.loads(source.read_manifest("insured_persons", "1405-06"))
        for entry in manifest["files"]:
            out = io.BytesIO()
            source.stream_file("insured_persons", "1405-06", entry["name"], out, max_bytes=entry["bytes"])
            assert hashlib.sha256(out.getvalue()).hexdigest() == entry["sha256"]
        assert source._sftp is not None  # one session served every call
    finally:
        source.close()
    assert source._sftp is None

    with pytest.raises(RuntimeError, match="does not pin the supplier's host key"):
        SupplierSftpHook("anbar_no", "/outbox").list_period("insured_persons", "1405-06")
    wrong = SupplierSftpHook("anbar_bad", "/outbox")
    with pytest.raises(SupplierUnavailable, match="HostKeyNotVerifiable"):
        wrong.list_period("insured_persons", "1405-06")
    wrong.close()
