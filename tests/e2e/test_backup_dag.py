"""End to end: the backup DAG dumps the warehouse, verifies the dump by a restore and prunes the older backup."""

from __future__ import annotations

import pytest

from anbar import backup

pytestmark = pytest.mark.e2e


def test_the_backup_dag_dumps_verifies_and_prunes(fresh_warehouse, airflow_db, tmp_path, monkeypatch):
    from anbar.backup_dag import build_backup_dag

    monkeypatch.setenv("ANBAR_BACKUP_DIR", str(tmp_path))
    monkeypatch.setenv("ANBAR_BACKUP_KEEP_DAILY", "0")  # only the newest verified backup is kept
    monkeypatch.setenv("ANBAR_BACKUP_KEEP_MONTHLY", "0")
    (first,) = backup.take_and_verify()  # what `anbar backup run` (and the demo) does
    assert first.ok, first.problems

    run = build_backup_dag().test()
    assert run.state == "success"

    (second,) = backup.list_backups(tmp_path)
    assert second.verified and second.manifest != first.manifest
    pruned = run.get_task_instance("prune").xcom_pull(task_ids="prune")
    assert pruned == [str(first.manifest).replace(backup.MANIFEST_SUFFIX, backup.DUMP_SUFFIX)]
    conn = fresh_warehouse
    with conn.cursor() as cur:
        cur.execute("select file, verification, deleted_at is not null from anbar.backups order by started_at")
        rows = cur.fetchall()
    conn.commit()
    assert rows == [(pruned[0], "passed", True), (str(second.dump), "passed", False)]
