"""Where anbar finds its things. Every setting has an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

WAREHOUSE_CONN_ID = os.environ.get("ANBAR_WAREHOUSE_CONN_ID", "anbar_warehouse")
# The connection dbt (the warehouse DAG) runs as: anbar_transformer, the owner of the model schemas
# (docs/access.md); the warehouse connection where access roles are not set up.
TRANSFORMER_CONN_ID = os.environ.get("ANBAR_TRANSFORMER_CONN_ID", WAREHOUSE_CONN_ID)
SMTP_CONN_ID = os.environ.get("ANBAR_SMTP_CONN_ID", "anbar_smtp")
OWNER = "anbar-data-engineering"


def landing_dir() -> Path:
    return Path(os.environ.get("ANBAR_LANDING_DIR", REPO_ROOT / ".anbar" / "landing"))


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
