"""Typed snapshots of accepted deliveries, beside them in the landing archive, for the checks that compare.

A cross-period check compares a delivery with the latest accepted earlier period of its dataset (10
million rows against 10 million); a cross-supplier check with another organisation's accepted delivery.
The pass evaluates them in DuckDB against ``snapshot.parquet`` in the compared delivery's directory: its
accepted rows, typed, with ``_file`` and ``_row_no``; written when a delivery is accepted
(:func:`write`), or, for one accepted before snapshots existed (or whose snapshot went missing), exported
once from its clean partition in PostgreSQL (:func:`ensure`). A snapshot is derived data: the delivered
bytes and the clean partition stay the record.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
from psycopg2 import sql

from anbar.engine.convert import DUCK_TYPES, ident
from anbar.engine.duck import literal
from anbar.engine.read import DELIVERY
from anbar.landing import write_derived
from anbar.registry import Dataset
from anbar.verdict import Compared

SNAPSHOT = "snapshot.parquet"


def path_for(landing_path: str | Path) -> Path:
    return Path(landing_path) / SNAPSHOT


def _replace(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> Path:
    def write(tmp: Path) -> None:
        con.execute(f"copy ({query}) to {literal(str(tmp))} (format parquet, compression zstd)")

    return write_derived(path, write)


def write(con: duckdb.DuckDBPyConnection, ds: Dataset, landing_path: str | Path, rejected: str | None = None) -> Path:
    """The accepted rows of the delivery in ``con`` (converted, and not in the relation ``rejected`` of
    ``_file, _row_no`` rows rejected by a rule) as the snapshot of its delivery."""
    cols = ", ".join(ident(c) for c in ds.column_names)
    query = f"select _file, _row_no, {cols} from {DELIVERY} d where _problems is null"
    if rejected:
        query += f" and not exists (select 1 from {rejected} x where x._file = d._file and x._row_no = d._row_no)"
    return _replace(con, query, path_for(landing_path))


def ensure(con: duckdb.DuckDBPyConnection, conn, compared: Compared, tmp_dir: Path) -> Path:
    """The snapshot of an accepted delivery, exported from its clean partition when there is none yet."""
    path = path_for(compared.landing_path) if compared.landing_path else None
    if path is not None and path.is_file():
        return path
    ds = compared.dataset
    table = sql.Identifier("clean", f"{ds.key}_s{int(compared.submission_id)}")
    columns = sql.SQL(", ").join(map(sql.Identifier, ["_file", "_row_no", *ds.column_names]))
    tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=tmp_dir, suffix=".csv") as out:
        with conn.cursor() as cur:
            cur.copy_expert(
                sql.SQL("copy (select {} from {}) to stdout with (format csv)").format(columns, table).as_string(cur),
                out,
            )
        conn.commit()
        out.flush()
        types = {"_file": "VARCHAR", "_row_no": "BIGINT", **{c.name: DUCK_TYPES[c.type] for c in ds.columns}}
        spec = "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in types.items()) + "}"
        query = (
            f"select * from read_csv({literal(out.name)}, header=false, columns={spec}, quote='\"', "
            "escape='\"', auto_detect=false)"
        )
        if path is None:  # an accepted delivery without a landing directory: kept beside the pass only
            path = tmp_dir / f"{ds.key}_s{int(compared.submission_id)}.{SNAPSHOT}"
        return _replace(con, query, path)


def context_views(
    con: duckdb.DuckDBPyConnection, conn, compared: dict[str, Compared | None], wanted: set[str], tmp_dir: Path
) -> dict[str, str | None]:
    """DuckDB views over the snapshots of the compared deliveries the suite's checks name (``wanted``)."""
    views: dict[str, str | None] = {}
    for key, delivery in compared.items():
        if key not in wanted or delivery is None:
            views[key] = None
            continue
        name = f"compared_{key}"
        path = ensure(con, conn, delivery, tmp_dir)
        con.execute(
            f"create or replace temporary view {ident(name)} as select * from read_parquet({literal(str(path))})"
        )
        views[key] = ident(name)
    return views
