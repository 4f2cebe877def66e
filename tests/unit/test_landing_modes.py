"""The landing archive keeps microdata from other users of the host: every directory it makes is 0750,
every file it writes 0440 (landed objects, manifests, file lists, reports, feedback), owned by the user
anbar runs as, whatever the umask; as the backups are kept to their owner."""

from __future__ import annotations

import os
import stat

import pytest

from anbar.landing import LandingArchive


@pytest.fixture
def usual_umask():
    old = os.umask(0o022)  # a usual umask: without care, directories 0755 and files 0644
    yield
    os.umask(old)


def test_landed_files_are_0440_and_directories_0750_owned_by_the_service_user(usual_umask, tmp_path):
    archive = LandingArchive(tmp_path / "landing")
    landed = [
        archive.store_bytes("persons.csv", b"national_id\n0076229645\n"),
        archive.store_chunks("trainees_2025-09.jsonl", [b'{"national_id": "1583250689"}\n']),
    ]
    again = archive.store_bytes("persons.csv", b"national_id\n0076229645\n")  # the same bytes: nothing new
    assert again.path == landed[0].path
    delivery = archive.record_delivery("sso", "insured_persons", "1404-08", "ab" * 32, b'{"rows": 1}', landed)
    archive.write_report(delivery, {"status": "rejected"})
    archive.write_report(delivery, {"status": "rejected", "rerun": True})  # a rerun rewrites it
    archive.write_text(delivery, "feedback.html", "<p>rejected</p>")
    archive.write_text(delivery, "findings.csv", "file,row_no\npersons.csv,2\n")
    archive.quarantine(delivery, "sso", "insured_persons", "1404-08", 1)

    root = tmp_path / "landing"
    everything = [root, *root.rglob("*")]
    files = [p for p in everything if p.is_file() and not p.is_symlink()]
    dirs = [p for p in everything if p.is_dir() and not p.is_symlink()]
    assert {p.name for p in files} >= {"manifest.json", "files.json", "report.json", "feedback.html", "findings.csv"}
    assert all(f.path in files for f in landed)
    assert {p.relative_to(root).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {
        p.relative_to(root).as_posix(): "0o440" for p in files
    }
    assert {p.relative_to(root).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in dirs} == {
        p.relative_to(root).as_posix(): "0o750" for p in dirs
    }
    assert {p.lstat().st_uid for p in everything} == {os.geteuid()}
    assert (delivery / "report.json").read_text().count("rerun") == 1
