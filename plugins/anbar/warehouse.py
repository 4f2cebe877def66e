"""Connections to the warehouse database.

Inside Airflow the ``anbar_warehouse`` connection is the source of truth; the CLI and
tests may instead set ``ANBAR_WAREHOUSE_URL`` (a SQLAlchemy-style postgresql URL).
"""

from __future__ import annotations

import os
from urllib.parse import quote

import psycopg2

from anbar import settings


def sqlalchemy_url() -> str:
    url = os.environ.get("ANBAR_WAREHOUSE_URL")
    if url:
        return url
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(settings.WAREHOUSE_CONN_ID)
    password = quote(conn.password or "", safe="")
    return (
        f"postgresql+psycopg2://{quote(conn.login or '', safe='')}:{password}@{conn.host}:{conn.port or 5432}/"
        f"{conn.schema}"
    )


def libpq_dsn() -> str:
    return sqlalchemy_url().replace("postgresql+psycopg2://", "postgresql://", 1)


def connect():
    """A new psycopg2 connection (autocommit off); close it when done."""
    conn = psycopg2.connect(libpq_dsn(), application_name="anbar")
    return conn
