"""HTTP extract API of the organisations whose registry transport is ``api`` (TVTO, SWO).

Endpoints (bearer token per organisation; the token decides the organisation)::

    GET /v1/extracts/{dataset}/{period}/manifest
        200 {"org", "dataset", "period", "schema_version", "rows", "page_size"}
        404 {"detail": "..."} when the period is not published
    GET /v1/extracts/{dataset}/{period}?cursor=<opaque>
        200 {"records": [{column: string | null}], "next_cursor": string | null}
    GET /v1/health                                  (no token) {"status": "ok"}

401 without a token or with a wrong one. Defects: ``row_count_mismatch`` makes
the manifest lie about ``rows``; the row-level ones (``VALUE_DEFECTS`` in
``anbar.sim.defects``: duplicate keys, invalid IDs, unknown codes, invalid,
out-of-range or inconsistent values, dropped rows, rejuvenated persons) damage
the records. Server faults (500, 429 with Retry-After, slow answers, malformed pages)
are injected on demand through ``anbar.sim.faults``.

Recorded extracts (``recorded_root``, e.g. the bad-input corpus of the tests): when
``<recorded_root>/<org>/<dataset>/<period>/`` exists, that extract is served byte for
byte from its files instead of the population, whatever they hold (not JSON, lying,
compressed)::

    manifest.json        body of GET .../manifest
    page-1.json          body of the first page (no cursor)
    page-<cursor>.json   body of GET ...?cursor=<cursor> (the pages name their next_cursor)
    <name>.json.gz       instead of <name>.json: sent as is with Content-Encoding: gzip
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import re
import socket
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from anbar.registry import Registry
from anbar.sim.defects import ROW_COUNT_SURPLUS, SimConfig, apply_row_defect
from anbar.sim.extracts import Row, as_period, dataset_periods, extract_rows
from anbar.sim.faults import Faults, HttpFault
from anbar.sim.population import Population


def api_delivery_rows(
    population: Population,
    registry: Registry,
    config: SimConfig,
    org: str,
    dataset: str,
    period_label: str,
) -> tuple[list[Row], str | None]:
    """The records the API serves for (org, dataset, period), and the delivery's defect."""
    organisation = registry.org(org)
    ds = organisation.dataset(dataset)
    period = as_period(period_label, organisation.calendar)
    defect = config.defect_for(org, dataset, period.label)
    rows = extract_rows(population, ds, period, registry=registry)
    rows = apply_row_defect(
        rows, ds, defect, registry=registry, seed=config.seed, period=period.label, population=population
    )
    return rows, defect


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


_RECORDED_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")


def recorded_extract(root: Path | None, org: str, dataset: str, period: str) -> Path | None:
    """The directory of a recorded extract, if one is there for (org, dataset, period)."""
    if root is None or not all(_RECORDED_PART.fullmatch(part) for part in (dataset, period)):
        return None
    folder = Path(root) / org / dataset / period
    return folder if folder.is_dir() else None


def recorded_body(folder: Path, stem: str) -> Response:
    """``<stem>.json`` as it is, or ``<stem>.json.gz`` sent with Content-Encoding: gzip; 404 if neither."""
    if _RECORDED_PART.fullmatch(stem):
        plain, gzipped = folder / f"{stem}.json", folder / f"{stem}.json.gz"
        if plain.is_file():
            return Response(plain.read_bytes(), media_type="application/json")
        if gzipped.is_file():
            return Response(gzipped.read_bytes(), media_type="application/json", headers={"Content-Encoding": "gzip"})
    raise HTTPException(404, detail=f"no recorded {stem} in {folder.name}")


def create_api_app(
    population: Population,
    registry: Registry,
    config: SimConfig,
    periods: Mapping[str, Sequence[str]],
    tokens: Mapping[str, str],
    *,
    page_size: int | None = None,
    faults: Faults | None = None,
    recorded_root: Path | str | None = None,
) -> FastAPI:
    """The API app for every organisation with a token in ``tokens`` (org -> token).

    ``periods`` (org -> period labels) says what is published; ``page_size``
    overrides the registry's ``transport.page_size`` (handy in tests); ``faults`` injects the
    faults armed in it; an extract recorded under ``recorded_root`` is served from its files (see the
    module docstring).
    """
    recorded = Path(recorded_root) if recorded_root is not None else None
    orgs = {}
    for org in tokens:
        organisation = registry.org(org)
        if organisation.transport.kind != "api":
            kind = organisation.transport.kind
            raise ValueError(f"{org} does not deliver over the API (transport {kind})")
        orgs[org] = organisation
    # (org, dataset) -> the period labels served: a quarterly dataset's quarter once its last month is.
    published = {
        (org, ds.name): set(dataset_periods(orgs[org], ds, labels))
        for org, labels in periods.items()
        if org in orgs
        for ds in orgs[org].datasets
    }
    secret = hashlib.sha256(f"anbar.sim|cursor|{config.seed}".encode()).digest()
    by_token = {token.encode(): org for org, token in tokens.items()}

    @lru_cache(maxsize=64)
    def records(org: str, dataset: str, period: str) -> tuple[tuple[dict, ...], str | None]:
        rows, defect = api_delivery_rows(population, registry, config, org, dataset, period)
        return tuple({k: (v if v != "" else None) for k, v in r.items()} for r in rows), defect

    def caller(request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise _unauthorized("missing bearer token")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("expected 'Authorization: Bearer <token>'")
        given = token.strip().encode()
        for known, org in by_token.items():
            if hmac.compare_digest(given, known):
                return org
        raise _unauthorized("invalid token")

    def resolve(org: str, dataset: str, period: str) -> tuple[str, int, int]:
        organisation = orgs[org]
        try:
            ds = organisation.dataset(dataset)
        except KeyError:
            raise HTTPException(404, detail=f"{org} has no dataset {dataset!r}") from None
        try:
            label = as_period(period, organisation.calendar).label
        except ValueError as exc:
            raise HTTPException(400, detail=str(exc)) from None
        if label not in published.get((org, ds.name), set()):
            raise HTTPException(404, detail=f"{org}/{dataset} for {label} is not published")
        size = page_size or organisation.transport.page_size
        return label, ds.schema_version, size

    def sign(payload: bytes) -> str:
        return hmac.new(secret, payload, hashlib.sha256).hexdigest()[:24]

    def make_cursor(org: str, dataset: str, period: str, offset: int) -> str:
        payload = json.dumps([org, dataset, period, offset], separators=(",", ":")).encode()
        token = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{token}.{sign(payload)}"

    def read_cursor(cursor: str, org: str, dataset: str, period: str) -> int:
        try:
            token, mac = cursor.rsplit(".", 1)
            payload = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            if not hmac.compare_digest(mac, sign(payload)):
                raise ValueError("bad signature")
            c_org, c_dataset, c_period, offset = json.loads(payload)
            if (c_org, c_dataset, c_period) != (org, dataset, period) or offset < 0:
                raise ValueError("cursor of another extract")
            return int(offset)
        except (ValueError, TypeError, json.JSONDecodeError):
            raise HTTPException(400, detail="invalid cursor") from None

    app = FastAPI(title="anbar simulated supplier API", docs_url=None, redoc_url=None)

    if faults is not None:

        @app.middleware("http")
        async def inject_faults(request: Request, call_next):
            action = faults.http_action(request.url.path, request.url.query)
            if action is None:
                return await call_next(request)
            return await _faulty_answer(action, request, call_next)

    @app.get("/v1/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/extracts/{dataset}/{period}/manifest")
    def manifest(dataset: str, period: str, org: str = Depends(caller)):
        folder = recorded_extract(recorded, org, dataset, period)
        if folder is not None:
            return recorded_body(folder, "manifest")
        label, schema_version, size = resolve(org, dataset, period)
        rows, defect = records(org, dataset, label)
        count = len(rows) + (ROW_COUNT_SURPLUS if defect == "row_count_mismatch" else 0)
        return {
            "org": org,
            "dataset": dataset,
            "period": label,
            "schema_version": schema_version,
            "rows": count,
            "page_size": size,
        }

    @app.get("/v1/extracts/{dataset}/{period}")
    def page(dataset: str, period: str, cursor: str | None = None, org: str = Depends(caller)):
        folder = recorded_extract(recorded, org, dataset, period)
        if folder is not None:
            return recorded_body(folder, f"page-{cursor or 1}")
        label, _, size = resolve(org, dataset, period)
        rows, _ = records(org, dataset, label)
        offset = read_cursor(cursor, org, dataset, label) if cursor else 0
        chunk = rows[offset : offset + size]
        more = offset + size < len(rows)
        return JSONResponse(
            {
                "records": list(chunk),
                "next_cursor": make_cursor(org, dataset, label, offset + size) if more else None,
            }
        )

    return app


async def _faulty_answer(action: HttpFault, request: Request, call_next) -> Response:
    if action.kind == "status":
        headers = {"Retry-After": action.retry_after} if action.retry_after is not None else None
        detail = {"detail": f"simulated fault: status {action.status_code}"}
        return JSONResponse(detail, status_code=action.status_code, headers=headers)
    if action.kind == "delay":
        await asyncio.sleep(action.seconds)
        return await call_next(request)
    return Response(action.body, status_code=200, media_type="application/json")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling (the host process owns the signals)."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class ApiServer:
    """A uvicorn server on an already-bound socket; ``await ApiServer.start(app)``."""

    def __init__(self, server: _Server, task: asyncio.Task, sock: socket.socket) -> None:
        self._server = server
        self._task = task
        self._sock = sock
        self.host, self.port = sock.getsockname()[:2]

    @classmethod
    async def start(cls, app: FastAPI, *, host: str = "127.0.0.1", port: int = 0) -> ApiServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=3,
        )
        server = _Server(config)
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                sock.close()
                task.result()  # re-raise the startup error
                raise RuntimeError("the API server stopped during startup")
            await asyncio.sleep(0.02)
        return cls(server, task, sock)

    async def close(self) -> None:
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._sock.close()
