"""The Data Docs web app: GX Data Docs of every delivery, read-only, in the Airflow API server.

The anbar plugin mounts :data:`app` under ``/anbar-docs`` (``fastapi_apps``). Airflow does not
authenticate plugin apps (a mounted app inherits none of the API's dependencies), so every route here
resolves the caller with Airflow's own ``get_user`` (the UI's ``_token`` cookie or an
``Authorization: Bearer`` JWT) and asks the configured auth manager whether that user may read the task
instances of the organisation's ingest DAG (``anbar_ingest__<org>``): no token is 401, a user without
that permission is 403, and the index lists only the organisations the user may read.

Routes (relative to ``/anbar-docs``):

- ``/`` — every delivery that has Data Docs: organisation, dataset, period, version, its GX site and
  each of its validation pages with their outcome (plain HTML: it works without network access).
- ``/runs/<dag_id>/<run_id>/`` — the Data Docs built by one DAG run (the "Data Docs" tab of a run).
- ``/_assets/<package>@<version>/...`` — the scripts, styles and fonts the pages load (jQuery, Bootstrap,
  Font Awesome, Vega, ...), vendored in the package (:data:`anbar.data_docs.VENDORED_ASSETS`): the pages
  load nothing from outside the server.
- ``/<org>/<dataset>/<period>/v<version>/...`` — the files of a site, through Starlette's
  ``StaticFiles`` (a site the ingest recorded and ``anbar_data_docs`` has not built yet is listed as being
  built, and its pages are not there yet): a path with a ``.`` or ``..`` segment (even percent-encoded) is
  refused, the permission is checked on the organisation of the path that is served, and absolute paths and
  symlinks out of the data docs directory are refused.
"""

from __future__ import annotations

import functools
import html
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles

from anbar import settings
from anbar.data_docs import ASSETS_DIR, ASSETS_ROUTE, MANIFEST, PENDING

INGEST_DAG_PREFIX = "anbar_ingest__"


# -- who may read what ----------------------------------------------------------------------------


async def current_user(request: Request) -> Any:
    """The Airflow user making the request (401 without credentials, 403 for an invalid token)."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    return await get_user(request=request, _oauth_token=None, bearer_credentials=await bearer_scheme(request))


def org_access(user: Annotated[Any, Depends(current_user)]) -> Callable[[str], bool]:
    """Whether the user may read an organisation's Data Docs: read access to its ingest DAG's task instances.

    Asked as Airflow's own API asks (``requires_access_dag``): the DAG's id and, with ``[core] multi_team``
    on, the team that owns its bundle, so an auth manager that grants by team (the simple one) sees it."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.configuration import conf

    manager = get_auth_manager()
    teams = conf.getboolean("core", "multi_team", fallback=False)

    @functools.cache  # one request asks for each organisation of the index
    def may_read(org: str) -> bool:
        dag_id = f"{INGEST_DAG_PREFIX}{org}"
        return manager.is_authorized_dag(
            method="GET",
            access_entity=DagAccessEntity.TASK_INSTANCE,
            details=DagDetails(id=dag_id, team_name=_team_of(dag_id) if teams else None),
            user=user,
        )

    return may_read


def _team_of(dag_id: str) -> str | None:
    from airflow.models.dag import DagModel

    return DagModel.get_team_name(dag_id)


MayRead = Annotated[Callable[[str], bool], Depends(org_access)]


# -- the app --------------------------------------------------------------------------------------


def create_app(root: Path | Callable[[], Path] = settings.data_docs_dir) -> FastAPI:
    """The app serving the Data Docs under ``root`` (a directory, or a function giving it per request)."""
    docs_root: Callable[[], Path] = root if callable(root) else (lambda: Path(root))
    app = FastAPI(title="anbar data docs", docs_url=None, redoc_url=None, openapi_url=None)

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
    def index(may_read: MayRead) -> HTMLResponse:
        sites = [s for s in list_sites(docs_root()) if may_read(s["org"])]
        return HTMLResponse(_page("anbar — Data Docs", _sites_table(sites, "")))

    @app.api_route("/runs/{dag_id}/{run_id}/", methods=["GET", "HEAD"], response_class=HTMLResponse)
    def run_docs(dag_id: str, run_id: str, may_read: MayRead) -> HTMLResponse:
        org = dag_id.removeprefix(INGEST_DAG_PREFIX) if dag_id.startswith(INGEST_DAG_PREFIX) else None
        if org is not None and not may_read(org):
            raise HTTPException(status_code=403, detail="Forbidden")
        sites = [
            s
            for s in list_sites(docs_root())
            if org is not None and s["org"] == org and s["manifest"].get("airflow_run_id") == run_id
        ]
        body = _sites_table(sites, "../../../") if sites else "<p>No Data Docs were built by this run.</p>"
        return HTMLResponse(_page(f"Data Docs of {dag_id} / {run_id}", body))

    @app.api_route("/runs/{dag_id}/{run_id}", methods=["GET", "HEAD"], include_in_schema=False)
    def run_docs_slash(run_id: str) -> RedirectResponse:
        return RedirectResponse(quote(run_id, safe="") + "/")

    @app.api_route(f"/{ASSETS_ROUTE}/{{path:path}}", methods=["GET", "HEAD"], include_in_schema=False)
    async def assets(path: str, request: Request, user: Annotated[Any, Depends(current_user)]) -> Response:
        # Any signed-in user: the vendored libraries hold nothing of an organisation.
        static = StaticFiles(directory=ASSETS_DIR, check_dir=False)
        response = await static.get_response(os.path.normpath(path), request.scope)
        # The version is in the path: a file there never changes.
        response.headers["Cache-Control"] = "private, max-age=31536000, immutable"
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @app.api_route("/{org}/{path:path}", methods=["GET", "HEAD"])
    async def files(org: str, path: str, request: Request, may_read: MayRead) -> Response:
        parts = f"{org}/{path}".split("/")
        # A "." or ".." segment (sent encoded, %2E%2E, it reaches here as is) would make the path served
        # another than the one authorised: /sso/%2E%2E/tvto/... is tvto's. Refused, whatever it resolves to.
        if any(p in (".", "..") or "\\" in p or "\x00" in p for p in parts):
            raise HTTPException(status_code=404, detail="Not Found")
        relative = os.path.normpath(os.path.join(*parts))
        # Authorised on the path that is served: its first segment is the organisation.
        if not await run_in_threadpool(may_read, relative.split(os.sep)[0]):  # an auth manager may ask its database
            raise HTTPException(status_code=403, detail="Forbidden")
        static = StaticFiles(directory=docs_root(), html=True, check_dir=False)
        # lookup_path refuses anything outside the directory (symlinks, absolute paths) too.
        response = await static.get_response(relative, request.scope)
        response.headers.setdefault("Cache-Control", "no-cache")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    return app


def list_sites(root: Path) -> list[dict[str, Any]]:
    """Every site under ``root``, built or pending: org, dataset, period, version, path and its manifest
    (a pending site's manifest is its record, with ``pending``); newest first."""
    sites = []
    if not root.is_dir():
        return sites
    found = {p.parent for p in root.glob("*/*/*/v*/index.html")} | {p.parent for p in root.glob(f"*/*/*/v*/{PENDING}")}
    for site in found:
        org, dataset, period = site.relative_to(root).parts[:3]
        version = site.name[1:]
        record = site / (MANIFEST if (site / "index.html").is_file() else PENDING)
        try:
            manifest = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = {}
        sites.append(
            {
                "org": org,
                "dataset": dataset,
                "period": period,
                "version": version,
                "path": f"{org}/{dataset}/{period}/{site.name}/",
                "manifest": manifest if isinstance(manifest, dict) else {},
            }
        )
    sites.sort(key=lambda s: (s["period"], _as_int(s["version"])), reverse=True)
    sites.sort(key=lambda s: (s["org"], s["dataset"]))
    return sites


def _as_int(text: str) -> int:
    return int(text) if text.isdigit() else -1


# -- html -----------------------------------------------------------------------------------------


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}"
        ".ok{color:#1a7f37}.failed{color:#cf222e}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def _sites_table(sites: list[dict[str, Any]], to_root: str) -> str:
    """``to_root``: the relative way from the page to ``/anbar-docs/`` (links stay relative: the API
    server may sit under a path of its own)."""
    if not sites:
        return "<p>No Data Docs yet.</p>"
    rows = []
    for s in sites:
        link = to_root + "/".join(quote(p, safe="") for p in s["path"].rstrip("/").split("/")) + "/"
        pages = []
        for p in s["manifest"].get("pages") or []:
            if not isinstance(p, dict) or not isinstance(p.get("path"), str):
                continue
            state = "ok" if p.get("success") else "failed"
            pages.append(
                f'<li><a href="{html.escape(link + quote(p["path"]))}">{html.escape(str(p.get("suite")))}</a> '
                f'<span class="{state}">{state}</span> '
                f"({int(p.get('failed') or 0)} of {int(p.get('evaluated') or 0)} checks failed)</li>"
            )
        cells = [s["org"], s["dataset"], s["period"], f"v{s['version']}"]
        built = "being built (anbar_data_docs)" if s["manifest"].get("pending") else s["manifest"].get("built_at") or ""
        rows.append(
            "<tr>"
            + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
            + f'<td><a href="{html.escape(link)}">Data Docs</a><ul>{"".join(pages)}</ul></td>'
            + f"<td>{html.escape(str(built))}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("organisation", "dataset", "period", "version", "pages", "built"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


app = create_app()
