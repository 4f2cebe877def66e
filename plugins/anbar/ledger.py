"""The submission ledger: what each organisation delivered, and what became of it.

Every change of status is also written to ``anbar.submission_events`` so the
history of a submission can be read back step by step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from psycopg2.extras import Json

TERMINAL = ("accepted", "rejected")


@dataclass
class Submission:
    submission_id: int
    org: str
    dataset: str
    period: str
    version: int
    status: str
    delivery_sha256: str
    rows_manifest: int | None = None
    rows_loaded: int | None = None
    rows_rejected: int | None = None
    reason: str | None = None
    message: str | None = None
    landing_path: str | None = None
    rows_counted: int | None = None  # records counted in the delivered bytes (None: not counted)


COLUMNS = (
    "submission_id",
    "org",
    "dataset",
    "period",
    "version",
    "status",
    "delivery_sha256",
    "rows_manifest",
    "rows_loaded",
    "rows_rejected",
    "reason",
    "message",
    "landing_path",
    "rows_counted",
)


def _row(cur) -> Submission | None:
    row = cur.fetchone()
    return Submission(*row) if row else None


def find(conn, org: str, dataset: str, period: str, delivery_sha256: str) -> Submission | None:
    with conn.cursor() as cur:
        cur.execute(
            f"select {', '.join(COLUMNS)} from anbar.submissions "
            "where org = %s and dataset = %s and period = %s and delivery_sha256 = %s",
            (org, dataset, period, delivery_sha256),
        )
        return _row(cur)


def get(conn, submission_id: int) -> Submission:
    with conn.cursor() as cur:
        cur.execute(f"select {', '.join(COLUMNS)} from anbar.submissions where submission_id = %s", (submission_id,))
        sub = _row(cur)
    if sub is None:
        raise KeyError(f"no submission {submission_id}")
    return sub


def log_event(
    conn, org: str, dataset: str, period: str, step: str, status: str, submission_id: int | None = None, **detail: Any
) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "insert into anbar.submission_events (submission_id, org, dataset, period, step, status, detail) "
            "values (%s, %s, %s, %s, %s, %s, %s)",
            (submission_id, org, dataset, period, step, status, Json(detail, dumps=_dumps)),
        )


def open_submission(
    conn,
    *,
    org: str,
    dataset: str,
    period: str,
    transport: str,
    delivery_sha256: str,
    manifest: dict | None,
    rows_manifest: int | None,
    run_id: str | None,
) -> tuple[Submission, bool]:
    """Record a new delivery, or return the existing one with the same hash.

    Returns (submission, created). Versions count up per (org, dataset, period); the
    lock makes two concurrent runs for the same period agree on the version number.
    """
    with conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"{org}/{dataset}/{period}",))
    existing = find(conn, org, dataset, period, delivery_sha256)
    if existing:
        conn.commit()
        return existing, False
    with conn.cursor() as cur:
        cur.execute(
            "insert into anbar.submissions (org, dataset, period, version, transport, delivery_sha256, manifest,"
            " rows_manifest, status, airflow_run_id) "
            "select %s, %s, %s, coalesce(max(version), 0) + 1, %s, %s, %s, %s, 'received', %s "
            "from anbar.submissions where org = %s and dataset = %s and period = %s "
            f"returning {', '.join(COLUMNS)}",
            (
                org,
                dataset,
                period,
                transport,
                delivery_sha256,
                Json(manifest, dumps=_dumps),
                rows_manifest,
                run_id,
                org,
                dataset,
                period,
            ),
        )
        sub = _row(cur)
    assert sub is not None
    log_event(
        conn,
        org,
        dataset,
        period,
        "receive",
        "received",
        sub.submission_id,
        version=sub.version,
        delivery_sha256=delivery_sha256,
    )
    conn.commit()
    return sub, True


def record_missing(conn, *, org: str, dataset: str, period: str, message: str) -> Submission:
    """No delivery by the deadline: a version-0 row with status ``missing`` (one per period)."""
    with conn.cursor() as cur:
        cur.execute(
            "insert into anbar.submissions (org, dataset, period, version, transport, delivery_sha256, status,"
            " reason, message) values (%s, %s, %s, 0, 'none', '', 'missing', 'missing', %s) "
            "on conflict (org, dataset, period, version) do update set updated_at = now() "
            f"returning {', '.join(COLUMNS)}",
            (org, dataset, period, message),
        )
        sub = _row(cur)
    assert sub is not None
    log_event(conn, org, dataset, period, "wait", "missing", sub.submission_id, message=message)
    conn.commit()
    return sub


def update(
    conn,
    sub: Submission,
    step: str,
    status: str,
    *,
    reason: str | None = None,
    message: str | None = None,
    validation_summary: dict | None = None,
    commit: bool = True,
    **fields: Any,
) -> Submission:
    """Move a submission to ``status`` and log the step, in one transaction (``commit=False``: in the
    caller's transaction)."""
    allowed = {"rows_loaded", "rows_rejected", "landing_path", "rows_manifest", "rows_counted"}
    unknown = set(fields) - allowed
    if unknown:
        raise TypeError(f"unknown ledger fields: {unknown}")
    sets = ["status = %s", "updated_at = now()"]
    params: list[Any] = [status]
    if reason is not None:
        sets.append("reason = %s")
        params.append(reason)
    if message is not None:
        sets.append("message = %s")
        params.append(message)
    if validation_summary is not None:
        sets.append("validation_summary = %s")
        params.append(Json(validation_summary, dumps=_dumps))
    for key, value in fields.items():
        sets.append(f"{key} = %s")
        params.append(value)
    with conn.cursor() as cur:
        cur.execute(
            f"update anbar.submissions set {', '.join(sets)} where submission_id = %s returning {', '.join(COLUMNS)}",
            (*params, sub.submission_id),
        )
        updated = _row(cur)
    assert updated is not None
    detail = {k: v for k, v in fields.items()}
    if reason:
        detail["reason"] = reason
    if message:
        detail["message"] = message
    log_event(conn, sub.org, sub.dataset, sub.period, step, status, sub.submission_id, **detail)
    if commit:
        conn.commit()
    return updated


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)
