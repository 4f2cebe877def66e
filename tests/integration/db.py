"""Reading the warehouse in tests."""

from __future__ import annotations


def fetch(conn, query: str, *args) -> list[dict]:
    """The rows of a query as dicts, in a transaction of their own."""
    with conn.cursor() as cur:
        cur.execute(query, args)
        cols = [d.name for d in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    conn.commit()
    return rows
