"""The audit DAG: PostgreSQL's statement log into the ``audit`` schema, every hour.

``anbar_audit`` has one task, ``ingest_server_log`` (:func:`anbar.audit.ingest`): it reads what is
new in the server's jsonlog files (``ANBAR_PG_LOG_DIR``, else through the server) into
``audit.statement_log`` and ``audit.microdata_reads``; ``audit.grant_events`` and
``audit.load_events`` are views. A rerun or an overlapping run adds nothing twice.
"""

from __future__ import annotations

import datetime as dt
import logging

from airflow.sdk import DAG, task

from anbar import settings
from anbar.dag_defaults import START_DATE, default_args

log = logging.getLogger(__name__)

DAG_ID = "anbar_audit"

DOC_MD = """
# anbar_audit — who read which microdata, grants, loads

Every hour, `ingest_server_log` reads the new lines of PostgreSQL's jsonlog files into the
`audit` schema of the warehouse (read by `anbar_auditor`), on the administrator's connection
(`anbar_access_admin`, else the warehouse connection) — never the loader's or dbt's, whose reads
it records: `statement_log`, `microdata_reads`, `grant_events`, `load_events`. The report:
`anbar audit report [--since DAY] [--user U] [--format csv]`.
What is recorded, where, and for how long: `docs/audit.md`.

## Triage

- **No such file or directory / permission denied on the log directory**: `ANBAR_PG_LOG_DIR` points
  where the server does not write (`SHOW log_directory;`), or the worker cannot read the files
  (mode `log_file_mode`). Unset it to read through the server instead.
- **function anbar_log.files() does not exist / permission denied for schema anbar_log**: reading
  the log through the server needs the one-time superuser setup: `anbar audit setup-sql --role <warehouse
  administrator> | psql -U postgres -d warehouse` (docs/audit.md).
- **Warning "database … is not set up for the audit"** in the task log: the same setup is missing, so
  the warehouse database lacks `log_statement = 'all'`: until it is run only DDL (grants included) and
  connections are recorded.
- **"another audit ingest is running"**: a previous run still holds the lock; this run did nothing and
  the next one catches up (offsets are per file).
- **No new lines for hours while people work**: check `SHOW logging_collector; SHOW log_destination;`
  (`on`, `jsonlog`); a server started without them logs nothing the audit can read.
- The ingest is idempotent: clearing a run is always safe.
"""


def build_audit_dag() -> DAG:
    with DAG(
        dag_id=DAG_ID,
        description="PostgreSQL's statement log into the audit schema: microdata reads, grants, loads",
        schedule=dt.timedelta(hours=1),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(queue=settings.GOVERNANCE_QUEUE),  # the administrator's worker
        tags=["anbar", "audit", "security"],
        doc_md=DOC_MD,
    ) as dag:

        @task
        def ingest_server_log() -> dict:
            """Read the server's new log lines into the audit schema (idempotent)."""
            from anbar import access, audit

            # the administrator's connection, not the loader's: no audited role writes the audit trail
            conn = access.connect_admin()
            try:
                result = audit.ingest(conn)
            finally:
                conn.close()
            for warning in result.warnings:
                log.warning("%s", warning)
            log.info("%s", result.summary())
            return {
                "files": result.files,
                "records": result.records,
                "statements": result.statements,
                "reads": result.reads,
            }

        ingest_server_log()
    return dag
