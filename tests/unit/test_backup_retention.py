"""Backup retention: the newest verified backup of each recent day and month is kept, nothing newer than
the newest verified one is deleted, and prune removes exactly the files of what it gives up."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

from anbar import backup

T0 = dt.datetime(2026, 3, 20, 2, 0, tzinfo=dt.UTC)


def _backup(directory, at: dt.datetime, verified: bool | None, database: str = "warehouse") -> backup.Backup:
    """A backup's files as anbar.backup writes them (the dump's bytes do not matter to retention)."""
    folder = directory / database
    folder.mkdir(exist_ok=True)
    stem = f"{database}-{at:%Y%m%dT%H%M%S}.000Z"
    (folder / f"{stem}.dump").write_bytes(b"PGDMP")
    (folder / f"{stem}.roles.sql").write_text("")
    manifest = {
        "format": backup.FORMAT,
        "database": database,
        "started_at": at.isoformat(),
        "file": f"{stem}.dump",
        "size_bytes": 5,
        "sha256": "0" * 64,
        "fingerprint": {"method": backup.FINGERPRINT_METHOD, "tables": {"anbar.submissions": {"rows": 1}}},
    }
    (folder / f"{stem}.manifest.json").write_text(json.dumps(manifest))
    if verified is not None:
        (folder / f"{stem}.verify.json").write_text(json.dumps({"ok": verified}))
    return next(b for b in backup.list_backups(directory) if b.started_at == at and b.database == database)


def _names(backups) -> list[str]:
    return [b.started_at.strftime("%m-%d %H") for b in backups]


def test_retention_keeps_days_and_months_and_never_what_is_newer_than_the_last_verified(tmp_path):
    made = {}
    # one backup a day over ~3 months, the one of 03-18 failed, two on 03-19 (a rerun), the newest not verified
    for days in range(90, 0, -1):
        made[days] = _backup(tmp_path, T0 - dt.timedelta(days=days), verified=days != 2)
    extra = _backup(tmp_path, T0 - dt.timedelta(days=1, hours=-3), verified=True)
    newest = _backup(tmp_path, T0, verified=None)
    backups = backup.list_backups(tmp_path)

    doomed = backup.plan_retention(backups, keep_daily=3, keep_monthly=2)
    kept = [b for b in backups if b not in doomed]
    # days: 03-19 (its later backup), 03-17, 03-16 (03-18 failed); months: March's and February's newest;
    # the newest backup is not verified yet, so it stays, and so does the last verified one
    assert _names(kept) == ["02-28 02", "03-16 02", "03-17 02", "03-19 05", "03-20 02"]
    assert made[1] in doomed and extra in kept and newest in kept and made[2] in doomed

    # nothing is deleted while no backup is verified, and a verified backup is never deleted for a failed one
    unverified = [b for b in backups if b.started_at >= made[5].started_at]
    assert backup.plan_retention([replace(b, verified=None) for b in unverified], 0, 0) == []
    last_good = [replace(made[4], verified=True), replace(made[3], verified=False)]
    assert backup.plan_retention(last_good, keep_daily=0, keep_monthly=0) == []

    # another database has a retention of its own; prune deletes exactly the doomed files
    other = _backup(tmp_path, T0 - dt.timedelta(days=40), verified=True, database="airflow")
    assert backup.prune(tmp_path, keep_daily=3, keep_monthly=2, dry_run=True) == doomed
    deleted = backup.prune(tmp_path, keep_daily=3, keep_monthly=2)
    assert deleted == doomed
    assert not any(f.exists() for b in deleted for f in b.files)
    assert backup.list_backups(tmp_path) == sorted([other, *kept], key=lambda b: (b.database, b.started_at))
    assert backup.prune(tmp_path, keep_daily=3, keep_monthly=2) == []
