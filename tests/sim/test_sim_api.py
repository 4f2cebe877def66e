"""The TVTO extract API end to end over HTTP (uvicorn on 127.0.0.1, httpx client)."""

from __future__ import annotations

import httpx
import pytest

from anbar.sim.api_server import ApiServer, create_api_app
from anbar.sim.defects import ROW_COUNT_SURPLUS, SimConfig

from .helpers import TVTO_PERIODS, api_client, context_problems, delivery_context, value_problems

TOKEN = "test-token-tvto"
PAGE = 10  # small pages, so paging is exercised


@pytest.fixture(scope="module")
def api(loop, population, registry, config):
    cfg = SimConfig(
        seed=config.seed,
        persons=config.persons,
        workplaces=config.workplaces,
        overrides={
            "tvto/trainees/2026-08": "row_count_mismatch",
            "tvto/trainees/2026-09": None,
            "tvto/trainees/2026-10": "duplicate_keys",
            "tvto/trainees/2026-06": "invalid_national_ids",
            "tvto/trainees/2026-05": "unknown_codes",
            "tvto/trainees/2026-04": "invalid_dates",
            "tvto/trainees/2026-03": "out_of_range",
            "tvto/trainees/2026-02": "inconsistent_dates",
            "tvto/trainees/2026-07": "count_drop",
            "tvto/trainees/2026-12": "rejuvenated_persons",
        },
    )
    periods = {"tvto": [*TVTO_PERIODS, "2026-02", "2026-03", "2026-04", "2026-05", "2026-06", "2026-07", "2026-12"]}
    app = create_api_app(population, registry, cfg, periods, {"tvto": TOKEN}, page_size=PAGE)
    with api_client(loop, app, TOKEN) as client:
        yield client


def _pull(client: httpx.Client, period: str) -> tuple[dict, list[dict], int]:
    manifest = client.get(f"/v1/extracts/trainees/{period}/manifest")
    assert manifest.status_code == 200, manifest.text
    records, cursor, pages = [], None, 0
    while True:
        params = {"cursor": cursor} if cursor else {}
        body = client.get(f"/v1/extracts/trainees/{period}", params=params).json()
        assert len(body["records"]) <= PAGE
        records += body["records"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return manifest.json(), records, pages
        assert pages < 1000


def _url(client: httpx.Client, path: str) -> str:
    return str(client.base_url).rstrip("/") + path


def test_health_needs_no_token(api):
    assert httpx.get(_url(api, "/v1/health"), trust_env=False).json() == {"status": "ok"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": ""},
    ],
)
def test_401_without_a_valid_token(api, headers):
    for path in ("/v1/extracts/trainees/2026-09/manifest", "/v1/extracts/trainees/2026-09"):
        response = httpx.get(_url(api, path), headers=headers, trust_env=False)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "records" not in response.text


def test_404_for_unpublished_period_and_unknown_dataset(api):
    for path in (
        "/v1/extracts/trainees/2026-11/manifest",
        "/v1/extracts/trainees/2026-11",
        "/v1/extracts/graduates/2026-09/manifest",
    ):
        response = api.get(path)
        assert response.status_code == 404
        assert isinstance(response.json()["detail"], str) and response.json()["detail"]
    assert api.get("/v1/extracts/trainees/1405-06/manifest").status_code == 400


def test_good_delivery_pages_to_the_end(api, registry):
    manifest, records, pages = _pull(api, "2026-09")
    ds = registry.dataset("tvto", "trainees")
    assert manifest == {
        "org": "tvto",
        "dataset": "trainees",
        "period": "2026-09",
        "schema_version": 1,
        "rows": len(records),
        "page_size": PAGE,
    }
    assert pages == -(-len(records) // PAGE) and pages > 1
    for r in records:
        assert list(r) == ds.column_names
        assert all(isinstance(v, str) for v in r.values())
    assert value_problems(records, ds, registry) == set()
    assert _pull(api, "2026-09")[1] == records, "a stable snapshot"


def test_row_count_mismatch_means_the_manifest_lies(api):
    manifest, records, _ = _pull(api, "2026-08")
    assert manifest["rows"] == len(records) + ROW_COUNT_SURPLUS


@pytest.mark.parametrize(
    ("period", "problem"),
    [
        ("2026-10", "duplicate_keys"),
        ("2026-06", "invalid_national_ids"),
        ("2026-05", "unknown_codes"),
        ("2026-04", "invalid_dates"),
        ("2026-03", "out_of_range"),
        ("2026-02", "inconsistent_dates"),
        ("2026-07", "count_drop"),
        ("2026-12", "rejuvenated_persons"),
    ],
)
def test_record_defects_are_detectable(api, population, registry, period, problem):
    manifest, records, _ = _pull(api, period)
    assert manifest["rows"] == len(records)
    ds = registry.dataset("tvto", "trainees")
    context = delivery_context(population, registry, "tvto", "trainees", period)
    assert value_problems(records, ds, registry) | context_problems(records, ds, context) == {problem}


def test_cursors_are_checked(api):
    first = api.get("/v1/extracts/trainees/2026-09").json()
    cursor = first["next_cursor"]
    assert api.get("/v1/extracts/trainees/2026-09", params={"cursor": cursor}).status_code == 200
    tampered = cursor[:-2] + ("00" if not cursor.endswith("00") else "11")
    assert api.get("/v1/extracts/trainees/2026-09", params={"cursor": tampered}).status_code == 400
    other = api.get("/v1/extracts/trainees/2026-10", params={"cursor": cursor})
    assert other.status_code == 400, "a cursor of another extract is refused"


def test_default_page_size_comes_from_the_registry(population, registry, config, loop):
    app = create_api_app(population, registry, config, {"tvto": ["2026-09"]}, {"tvto": TOKEN})
    server = loop.run(ApiServer.start(app))
    try:
        response = httpx.get(
            f"http://127.0.0.1:{server.port}/v1/extracts/trainees/2026-09/manifest",
            headers={"Authorization": f"Bearer {TOKEN}"},
            trust_env=False,
        )
        assert response.json()["page_size"] == registry.org("tvto").transport.page_size == 500
    finally:
        loop.run(server.close())
    with pytest.raises(ValueError, match="does not deliver over the API"):
        create_api_app(population, registry, config, {}, {"sso": "x"})
