"""The Submissions page: the status of every expected submission, read-only, in the Airflow API server.

The anbar plugin mounts :data:`app` under ``/anbar-submissions`` and links it from the Airflow navigation
("Submissions") and from each ingest DAG's page. It lists ``anbar.submission_status`` (see
:mod:`anbar.ddl` for what each status means) for the organisations the caller may read: as for the
Data Docs (:mod:`anbar.web`, whose checks it reuses), Airflow does not authenticate plugin apps, so every
request resolves the Airflow user itself (no credentials: 401) and a user sees an organisation's rows
only with read access to the task instances of its ingest DAG (``anbar_ingest__<org>``). It reads the
ledger as ``anbar_ledger_reader`` (connection ``ANBAR_LEDGER_READER_CONN_ID``), which may read the view
``anbar.submission_status`` and nothing else: the api-server holds no credential of the loader.

Routes (relative to ``/anbar-submissions``):

- ``/`` — the table, latest due date first; ``?org=<code>`` one organisation, ``?status=<status>`` one
  status (unknown organisation or status: 404; an organisation the user may not read: 403).
- ``/dags/<dag_id>`` — the ingest DAG's organisation (a DAG page's "Submissions" link).
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from anbar import expected, settings, warehouse
from anbar.web import INGEST_DAG_PREFIX, MayRead
from anbar.web import _page as page_html

URL_PREFIX = "/anbar-submissions"

# Columns of the page: (heading, anbar.submission_status column).
COLUMNS = (
    ("organisation", "org"),
    ("dataset", "dataset"),
    ("period", "period"),
    ("status", "status"),
    ("first received", "first_received_at"),
    ("accepted", "accepted_at"),
    ("on time", "on_time"),
    ("days late", "days_late"),
    ("versions", "versions"),
    ("accepted first time", "accepted_first_time"),
    ("submission", "latest_submission_id"),
    ("reason", "reason"),
    # What the manifest claimed beside what was counted in the delivered bytes (empty: not counted).
    ("rows declared", "rows_manifest"),
    ("rows counted", "rows_counted"),
    ("rows loaded", "rows_loaded"),
    ("rows rejected", "rows_rejected"),
)
# The Data Docs page's colours: green for done, red for what needs the supplier.
STATUS_CLASS = {"loaded": "ok", "rejected": "failed", "missing": "failed", "late": "failed"}


def connect_ledger_reader() -> Any:
    """The ledger as the page reads it: the ledger reader's connection (``anbar_ledger_reader``: the ledger
    views the page shows, nothing else), never the loader's."""
    return warehouse.connect(settings.LEDGER_READER_CONN_ID)


def create_app(connect: Callable[[], Any] = connect_ledger_reader) -> FastAPI:
    """The app reading the ledger through ``connect`` (a new psycopg2 connection per request)."""
    app = FastAPI(title="anbar submissions", docs_url=None, redoc_url=None, openapi_url=None)

    def read(org: str | None) -> list[dict]:
        conn = connect()
        try:
            return expected.read_status(conn, org=org)
        finally:
            conn.close()

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
    async def index(may_read: MayRead, org: str | None = None, status: str | None = None) -> HTMLResponse:
        if status is not None and status not in expected.STATUSES:
            raise HTTPException(status_code=404, detail=f"no status {status!r}")
        if org is not None and not await run_in_threadpool(may_read, org):
            raise HTTPException(status_code=403, detail="Forbidden")
        rows = await run_in_threadpool(read, org)
        readable = {o for o in {r["org"] for r in rows} if await run_in_threadpool(may_read, o)}
        rows = [r for r in rows if r["org"] in readable]
        if org is not None and not rows:
            raise HTTPException(status_code=404, detail=f"no expected submissions of {org!r}")
        counts = Counter(r["status"] for r in rows)
        shown = [r for r in rows if status in (None, r["status"])]
        title = "anbar — Submissions" + (f" of {org}" if org else "")
        return HTMLResponse(page_html(title, _filters(sorted(readable), counts, org, status) + _table(shown)))

    @app.api_route("/dags/{dag_id}", methods=["GET", "HEAD"], include_in_schema=False)
    def dag_submissions(dag_id: str) -> RedirectResponse:
        if not dag_id.startswith(INGEST_DAG_PREFIX):
            return RedirectResponse("../")
        return RedirectResponse("../?" + urlencode({"org": dag_id.removeprefix(INGEST_DAG_PREFIX)}))

    return app


# -- html -----------------------------------------------------------------------------------------


def _link(text: str, **query: str | None) -> str:
    params = {k: v for k, v in query.items() if v is not None}
    href = "./" + (f"?{urlencode(params)}" if params else "")
    return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'


def _filters(orgs: list[str], counts: Counter, org: str | None, status: str | None) -> str:
    by_org = " ".join([_link("all", status=status), *(_link(o, org=o, status=status) for o in orgs)])
    by_status = " ".join(
        [_link("all", org=org), *(_link(f"{s} ({counts[s]})", org=org, status=s) for s in expected.STATUSES)]
    )
    return (
        f"<p>organisation: {by_org}</p><p>status: {by_status}</p>"
        f"<p>Due dates in Jalali and Gregorian; times in {expected.SHOWN_TIMEZONE}. Statuses as of today there: "
        "<em>expected</em> not yet due, <em>late</em> overdue within the grace, <em>missing</em> nothing by the "
        "end of the grace, <em>received</em>/<em>validated</em> being processed, <em>resubmitted</em> a new "
        "version after a rejection, <em>loaded</em> accepted into the warehouse, <em>rejected</em> the latest "
        "version rejected.</p>"
    )


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p>No expected submissions.</p>"
    head = "".join(f"<th>{h}</th>" for h in ("organisation", "dataset", "period", "due", "missing after"))
    head += "".join(f"<th>{h}</th>" for h, _ in COLUMNS[3:])
    body = []
    for r in rows:
        cells = [html.escape(expected.shown(r[c])) for _, c in COLUMNS]
        cells[3] = f'<span class="{STATUS_CLASS.get(r["status"], "")}">{cells[3]}</span>'
        due = f"{expected.jalali(r['due_date'])}<br>{r['due_date']}"
        if r["extension_decision"]:
            due += f"<br>extended: {html.escape(r['extension_decision'])}"
        dates = [due, f"{expected.jalali(r['grace_until'])}<br>{r['grace_until']}"]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in [*cells[:3], *dates, *cells[3:]]) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


app = create_app()
