"""The demo's secret files (passwords, the pseudonym key, anbar.env, Airflow's passwords file, the PostgreSQL
superuser's password and initdb's password file) are readable by their owner alone from their first byte.

A witness (a Python audit hook, so it sees every file operation the code makes) looks at a secret file each
time the code opens, renames, chmods, chowns or removes it: at none of those moments may the file be readable
by its group or by others. A file written under the umask and narrowed afterwards is caught at its chmod; one
never narrowed, at the end.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path

import pytest

from anbar.devenv.postgres import LocalPostgres
from anbar.devenv.secret_files import SECRET_FILE_MODE, write_secret
from anbar.devenv.stack import Stack

SECRET_NAME = re.compile(r"\.secret|airflow-passwords\.json|anbar\.env|superuser\.password|\.initdb-pw")
EVENTS = {"open", "os.chmod", "os.chown", "os.remove", "os.rename"}


class Witness:
    """Records every moment a secret file under ``root`` was open to its group or others."""

    def __init__(self) -> None:
        self.root: Path | None = None
        self.exposed: list[tuple[str, str, str]] = []

    def __call__(self, event: str, args: tuple) -> None:
        if self.root is None or event not in EVENTS or not args or not isinstance(args[0], (str, bytes, Path)):
            return
        path = Path(os.fsdecode(args[0]))
        if not SECRET_NAME.search(path.name) or self.root not in path.parents:
            return
        try:
            mode = path.lstat().st_mode
        except OSError:
            return  # not there yet (about to be created) or gone
        if stat.S_ISREG(mode) and mode & 0o077:
            self.exposed.append((path.name, event, oct(stat.S_IMODE(mode))))


WITNESS = Witness()
sys.addaudithook(WITNESS)  # an audit hook cannot be removed: it is idle outside the fixture


@pytest.fixture
def witnessed(tmp_path):
    old_umask = os.umask(0o022)  # a usual umask: files are born 0644 unless the code says otherwise
    WITNESS.root, WITNESS.exposed = tmp_path, []
    try:
        yield WITNESS
    finally:
        WITNESS.root = None
        os.umask(old_umask)


def secret_modes(root: Path) -> dict[str, str]:
    return {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in root.rglob("*") if SECRET_NAME.search(p.name)}


def test_every_demo_secret_file_is_0600_from_its_first_byte(witnessed, tmp_path):
    stack = Stack(tmp_path / "demo")
    stack.service_passwords()
    stack.user_password("analyst_demo")
    stack.admin_password  # noqa: B018 (creates the admin's password file)
    stack.write_airflow_passwords()
    stack.write_env_file({"ANBAR_LOADER_PASSWORD": "s3cret", "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    stack.write_env_file({"ANBAR_LOADER_PASSWORD": "s3cret-2"})  # rewritten at every `make demo`
    LocalPostgres(tmp_path / "demo" / "pg").init()  # superuser.password, and initdb's password file

    assert witnessed.exposed == []
    modes = secret_modes(tmp_path / "demo")
    assert set(modes) == {
        "anbar-loader.secret",
        "anbar-transformer.secret",
        "anbar-ledger-reader.secret",
        "anbar-validator.secret",
        "user-analyst_demo.secret",
        "airflow-admin.secret",
        "airflow-passwords.json",
        "anbar.env",
        "superuser.password",
    }
    assert set(modes.values()) == {oct(SECRET_FILE_MODE)}
    assert (tmp_path / "demo" / "anbar.env").read_text() == "export ANBAR_LOADER_PASSWORD=s3cret-2\n"


def test_write_secret_never_writes_through_a_planted_link(witnessed, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not yours")
    target = tmp_path / "anbar.env"
    target.symlink_to(elsewhere)
    write_secret(target, "export X=1\n")  # the link is replaced, not followed
    assert not target.is_symlink() and target.read_text() == "export X=1\n"
    assert elsewhere.read_text() == "not yours"
    assert witnessed.exposed == [] and stat.S_IMODE(target.stat().st_mode) == SECRET_FILE_MODE
