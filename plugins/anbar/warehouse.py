"""Connections to the warehouse database.

Inside Airflow the ``anbar_warehouse`` connection is the source of truth; the CLI and
tests may instead set ``ANBAR_WAREHOUSE_URL`` (a SQLAlchemy-style postgresql URL).
"""

from __future__ import annotations

import os
from urllib.parse import quote

import psycopg2

from anbar import settings


def sqlalchemy_url(conn_id: str | None = None) -> str:
    """The warehouse as ``conn_id`` (default: the warehouse connection, which ``ANBAR_WAREHOUSE_URL`` overrides)."""
    conn_id = conn_id or settings.WAREHOUSE_CONN_ID
    url = os.environ.get("ANBAR_WAREHOUSE_URL")
    if url and conn_id == settings.WAREHOUSE_CONN_ID:
        return url
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    password = quote(conn.password or "", safe="")
    return (
        f"postgresql+psycopg2://{quote(conn.login or '', safe='')}:{password}@{conn.host}:{conn.port or 5432}/"
        f"{conn.schema}"
    )


def libpq_dsn(conn_id: str | None = None) -> str:
    return sqlalchemy_url(conn_id).replace("postgresql+psycopg2://", "postgresql://", 1)


def connect(conn_id: str | None = None):
    """A new psycopg2 connection (autocommit off) as ``conn_id`` (default: the warehouse connection); close it
    when done."""
    conn = psycopg2.connect(libpq_dsn(conn_id), application_name="anbar")
    return conn
