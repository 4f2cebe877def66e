"""The backup DAG: every night, dump the warehouse (and the Airflow metadata), verify by restoring, prune.

``anbar_backup`` runs daily at 02:00 Tehran time:

    dump ─► verify ─► prune

* ``dump`` calls :func:`anbar.backup.take_all`: ``pg_dump -Fc`` of every database in
  ``ANBAR_BACKUP_DATABASES`` on one exported snapshot each, with its manifest and fingerprint;
* ``verify`` restores each dump into a scratch database and compares the fingerprints
  (:func:`anbar.backup.verify_all`); a failed verification is recorded in ``anbar.backups`` and fails
  the task at once (no retry: the same bytes fail the same way; a connection error is retried);
* ``prune`` applies the retention (:func:`anbar.backup.prune_all`), only once this run's backups
  are verified.
"""

from __future__ import annotations

import logging

from airflow.sdk import DAG, task
from airflow.timetables.trigger import CronTriggerTimetable

from anbar import settings
from anbar.dag_defaults import START_DATE, default_args

log = logging.getLogger(__name__)

DAG_ID = "anbar_backup"
SCHEDULE = "0 2 * * *"
TIMEZONE = "Asia/Tehran"

DOC_MD = """
# Backups (`anbar_backup`)

Every night at 02:00 Tehran time: `dump` takes a `pg_dump -Fc` of each database in
`ANBAR_BACKUP_DATABASES` (the warehouse with its ledger, and the Airflow metadata) into
`ANBAR_BACKUP_DIR/<database>/`, with a manifest (sha256, and a row count and checksum of every
table taken on the dump's own snapshot); `verify` restores each dump into a scratch database,
compares every table with the manifest, drops the scratch database and records the outcome in
`anbar.backups`; `prune` deletes what the retention keeps no longer (`ANBAR_BACKUP_KEEP_DAILY`,
`ANBAR_BACKUP_KEEP_MONTHLY`), never the newest verified backup nor anything newer.
`anbar backup list` shows them; the restore procedure is `docs/operations.md` §8.

## Triage: what to check when a task fails
1. **verify failed** (not retried): the task log and `anbar.backups.report` list each table that
   differs, or the sha256 that does not match. A sha256 mismatch means the file changed on disk
   (disk fault, tampering): check the disk, keep the file as evidence, take a new backup
   (trigger the DAG). A table mismatch on a good sha256 is a bug or a fault of the server: keep
   the dump, report it to the data engineering team; the previous verified backup stays.
2. **"tables truncated, rewritten, replaced or dropped while the backup ran"**: a dbt build or a
   VACUUM FULL ran at the same time; the retry takes a new snapshot. If it recurs, move the
   warehouse build or the backup schedule.
3. **`no pg_dump/pg_restore/pg_dumpall of version N or newer`**: the server was upgraded past
   the client programs: set `ANBAR_PG_BIN_DIR` to the new version's `bin/`.
4. **permission denied for table … / to create database**: the backup role (`ANBAR_BACKUP_URL`)
   needs `pg_read_all_data`, CONNECT on each database and CREATEDB (operations guide §8).
5. **`could not obtain lock`**: pg_dump waited over 10 minutes behind an exclusive lock (a long
   migration or ALTER); the retry takes it again.
6. **No space left on device**: the backup volume is full; `anbar backup prune --dry-run`, then
   lower the retention or grow the volume. A partial dump is deleted, never left behind.
7. **relation "anbar.backups" does not exist**: run `anbar bootstrap` once.

Owner: anbar-data-engineering. Retries: 2 with backoff (a failed verification: none), then a mail to the
warehouse team.
"""


def build_backup_dag() -> DAG:
    with DAG(
        dag_id=DAG_ID,
        description="Nightly pg_dump of the warehouse and Airflow metadata, verified by a restore, with retention",
        schedule=CronTriggerTimetable(SCHEDULE, timezone=TIMEZONE),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(settings.OWNER, queue=settings.GOVERNANCE_QUEUE),  # the administrator's worker
        tags=["anbar", "backup", "operations"],
        doc_md=DOC_MD,
    ) as dag:

        @task
        def dump() -> list[str]:
            """pg_dump of every configured database, with its manifest; recorded in anbar.backups."""
            from anbar import backup

            paths = backup.take_all()
            for path in paths:
                log.info("backup taken: %s", path)
            return [str(p) for p in paths]

        @task
        def verify(manifests: list[str]) -> list[dict]:
            """Restore each backup into a scratch database and compare it with its manifest."""
            from airflow.sdk.exceptions import AirflowFailException

            from anbar import backup

            results = backup.verify_all(manifests)
            for v in results:
                (log.info if v.ok else log.error)("%s", v.summary())
            if not all(v.ok for v in results):
                raise AirflowFailException("\n".join(v.summary() for v in results if not v.ok))
            return [v.as_dict() for v in results]

        @task
        def prune(verified: list[dict]) -> list[str]:
            """Delete what the retention no longer keeps (only older than a verified backup)."""
            from anbar import backup

            deleted = backup.prune_all()
            for b in deleted:
                log.info("deleted %s (%s)", b.dump, "verified" if b.verified else "not verified")
            return [str(b.dump) for b in deleted]

        prune(verify(dump()))
    return dag
