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


def rendered(landing_path, query: str = "select count(*) as n from delivered") -> list[dict]:
    """Run ``query`` (DuckDB) over the columnar rendering of a delivery's values as delivered, the view
    ``delivered``; the rendering is checked against its sha256 first (rendering.json names it)."""
    import hashlib
    import json
    from pathlib import Path

    import duckdb

    from anbar import settings

    info = json.loads((Path(landing_path) / "rendering.json").read_text())
    path = settings.landing_dir() / info["object"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == info["sha256"]
    con = duckdb.connect()
    try:
        con.execute(f"create view delivered as select * from read_parquet('{path}')")
        cur = con.execute(query)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
