"""GX Data Docs of a real validation (PostgreSQL), and the web app that serves them in the API server."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from anbar import web
from anbar.data_docs import (
    build_data_docs,
    data_docs_url,
    pending_sites,
    publish_data_docs,
    schedule_from_results,
    site_path,
)
from anbar.suites import suite_path
from anbar.validation import SuiteRun, mask, run_suite

from .conftest import EXPECTATIONS, good_value
from .test_validation import wrong_check_digit

pytestmark = pytest.mark.integration

ROWS_RULE = "test.rows_with_invalid_national_id"


@pytest.fixture
def tvto(registry):
    return registry.dataset("tvto", "trainees")


def _suite_with_row_check(tvto) -> dict:
    """The committed suite, plus a SQL check returning offending rows with their national ID."""
    data = json.loads(suite_path(EXPECTATIONS, tvto).read_text(encoding="utf-8"))
    data["expectations"].append(
        {
            "type": "unexpected_rows_expectation",
            "kwargs": {
                "unexpected_rows_query": "select _file, _row_no, national_id from {batch} "
                "where not anbar.is_valid_person_id(national_id)"
            },
            "meta": {
                "rule": ROWS_RULE,
                "principle": "quality",
                "severity": "warning",
                "columns": ["national_id"],
                "description": {"fa": "آزمون", "en": "rows whose national ID is invalid"},
            },
        }
    )
    return data


@pytest.fixture(scope="module")
def failed_run_of_the_module(warehouse, registry, tmp_path_factory):
    """A validation that fails: a wrong check digit, a non-digit ID, a duplicated key, an unknown code. Run once
    for the module: the tests only read it (each through a copy of its own, see ``failed_run``)."""
    tvto = registry.dataset("tvto", "trainees")
    rows = [{c.name: good_value(tvto, c, i, registry) for c in tvto.columns} for i in range(40)]  # as good_rows
    rows[2]["national_id"] = wrong_check_digit(rows[2]["national_id"])
    rows[9]["national_id"] = rows[9]["national_id"][:2] + "A" + rows[9]["national_id"][3:]
    rows[5]["province"] = "99"
    rows.append(dict(rows[20]))
    suite = tmp_path_factory.mktemp("suite") / "tvto__trainees.json"
    suite.write_text(json.dumps(_suite_with_row_check(tvto), ensure_ascii=False, indent=2), encoding="utf-8")
    sid = warehouse.partition(tvto, rows)
    run = run_suite(warehouse.url, tvto, sid, suite)
    assert not run.summary["success"]
    return run, rows


@pytest.fixture
def failed_run(failed_run_of_the_module):
    """The module's failed validation, a copy for each test: building Data Docs masks the results it is given,
    and a test must never see results another test already masked."""
    return copy.deepcopy(failed_run_of_the_module)


def _files(site: Path) -> list[Path]:
    return [p for p in site.rglob("*") if p.is_file()]


def _page_text(path: Path) -> str:
    """What a browser shows of a GX page: no scripts, no tags, entities decoded, spaces collapsed."""
    import html

    text = path.read_text(encoding="utf-8")
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text)))


# -- building ---------------------------------------------------------------------------------------


def test_data_docs_show_every_expectation_and_its_result(failed_run, tvto, tmp_path, warehouse, capfd):
    run, rows = failed_run
    site = tmp_path / "docs" / site_path("tvto", "trainees", "2025-10", 1)
    connections = warehouse.connections()
    capfd.readouterr()

    index = build_data_docs(run.gx_results, site, tvto, run_name="submission-7")

    assert capfd.readouterr().err == ""  # no progress bars, no GX rendering errors
    assert warehouse.connections() == connections
    assert index == site / "index.html" and index.is_file()
    manifest = json.loads((site / "anbar.json").read_text(encoding="utf-8"))
    assert [p["suite"] for p in manifest["pages"]] == [r.suite_name for r in run.gx_results]
    assert manifest["run_name"] == "submission-7"

    pages = {p["suite"]: _page_text(site / p["path"]) for p in manifest["pages"]}
    assert set(pages) == {"tvto__trainees.clean.map", "tvto__trainees.clean.rows", "tvto__trainees.raw.map"}
    for page in manifest["pages"]:
        assert page["success"] is False
    everything = " ".join(pages.values())
    for outcome in run.summary["expectations"]:
        if outcome["skipped"]:
            continue  # not run: GX has no result for it
        assert outcome["rule"] in everything, outcome["rule"]
        assert outcome["type"] in everything, outcome["type"]

    clean = pages["tvto__trainees.clean.map"]
    assert "Status: Failed" in clean and "Unsuccessful Expectations" in clean
    check_digit = clean[clean.index("check_digit.national_id") :]
    assert "2 unexpected values found" in check_digit[:600]
    assert mask(rows[2]["national_id"]) in check_digit[:600]
    assert "99" in clean[clean.index("code_list.province") :][:600]  # not an identifier: in clear
    raw = pages["tvto__trainees.raw.map"]
    assert "digits_only.national_id" in raw and mask(rows[9]["national_id"]) in raw
    # The suite pages the result pages link to.
    assert (site / "expectations" / "tvto__trainees" / "clean" / "map.html").is_file()


def test_no_national_id_in_clear_in_any_file(failed_run, tvto, tmp_path):
    run, rows = failed_run
    site = tmp_path / "site"
    build_data_docs(run.gx_results, site, tvto)
    text = "\n".join(p.read_bytes().decode("utf-8", errors="replace") for p in _files(site))
    # The IDs GX lists (check digit, duplicated key, digits only as delivered) are there, masked...
    for n in (2, 9, 20):
        assert mask(rows[n]["national_id"]) in text, n
    # ...and no ID of the delivery appears in clear.
    for row in rows:
        assert row["national_id"] not in text
    # GX's own results are left as they were (the summary and the ledger use them).
    reported = json.dumps([r.to_json_dict() for r in run.gx_results], default=str)
    assert rows[2]["national_id"] in reported


def test_masks_identifiers_wherever_gx_puts_them(tvto, tmp_path):
    """Value sets, SQL, pairs of columns, rows, exceptions: a hand-made result with IDs everywhere."""
    import great_expectations as gx
    from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    ids = ["0076229645", "12A4567890", "1230000144", "4311112222"]
    meta = {"rule": "hand_made", "principle": "quality", "severity": "warning"}

    def result(exp_type, kwargs, res, **extra):
        config = ExpectationConfiguration(type=exp_type, kwargs=kwargs, meta=meta)
        return ExpectationValidationResult(success=False, expectation_config=config, result=res, **extra)

    suite_result = ExpectationSuiteValidationResult(
        success=False,
        suite_name="tvto__trainees.clean.map",
        results=[
            result(
                "expect_column_values_to_not_be_in_set",
                {"column": "national_id", "value_set": [ids[0]]},
                {"unexpected_count": 1, "partial_unexpected_list": [ids[0]], "unexpected_list": [ids[0]]},
            ),
            result(
                "expect_column_pair_values_to_be_equal",
                {"column_A": "national_id", "column_B": "course_code"},
                {
                    "unexpected_count": 1,
                    "partial_unexpected_list": [[ids[1], "C1"]],
                    "partial_unexpected_counts": [{"value": [ids[1], "C1"], "count": 1}],
                    "partial_unexpected_index_list": [{"_row_no": 4, "national_id": ids[1]}],
                },
            ),
            result(
                "unexpected_rows_expectation",
                {"unexpected_rows_query": f"select * from {{batch}} where national_id = '{ids[2]}'"},
                {"observed_value": 1, "details": {"unexpected_rows": [{"national_id": [ids[2]]}]}},
                exception_info={
                    "raised_exception": True,
                    "exception_message": f"duplicate key (national_id)=({ids[3]})",
                    "exception_traceback": f"Traceback: ... {ids[3]}",
                },
            ),
        ],
        statistics={"evaluated_expectations": 3, "successful_expectations": 0, "unsuccessful_expectations": 3},
        meta={"great_expectations_version": gx.__version__},
    )
    site = tmp_path / "docs" / "site"
    build_data_docs([suite_result], site, tvto)

    text = "\n".join(p.read_bytes().decode("utf-8", errors="replace") for p in _files(site))
    assert "hand_made" in text and "expect_column_pair_values_to_be_equal" in text
    for value in ids:
        assert value not in text, value
    assert mask(ids[0]) in text and mask(ids[1]) in text


def test_rebuilding_replaces_the_site_and_keeps_static_assets_small(failed_run, tvto, tmp_path):
    run, _ = failed_run
    site = tmp_path / "docs" / "site"
    build_data_docs(run.gx_results, site, tvto, run_name="first")
    build_data_docs(run.gx_results, site, tvto, run_name="second")
    assert list(site.parent.iterdir()) == [site]  # no staging directory left behind
    assert not list(site.rglob("first"))
    assert sum(p.stat().st_size for p in _files(site / "static")) < 100_000


def test_a_page_gx_cannot_render_is_an_error_not_a_half_site(failed_run, tvto, tmp_path, monkeypatch, capfd):
    """GX logs a rendering failure and carries on; anbar raises instead, without quoting values in clear."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer

    from anbar.data_docs import DataDocsError

    def broken(self, *args, **kwargs):
        raise ValueError("cannot render 1230000144")

    run, _ = failed_run
    monkeypatch.setattr(ValidationResultsPageRenderer, "render", broken)
    capfd.readouterr()
    with pytest.raises(DataDocsError, match=r"cannot render 123\*+4"):
        build_data_docs(run.gx_results, tmp_path / "docs" / "site", tvto)
    assert "1230000144" not in capfd.readouterr().err
    assert list((tmp_path / "docs").iterdir()) == []


def test_passing_delivery(warehouse, tvto, good_rows, tmp_path):
    sid = warehouse.partition(tvto, good_rows(tvto))
    run = run_suite(warehouse.url, tvto, sid, suite_path(EXPECTATIONS, tvto))
    build_data_docs(run.gx_results, tmp_path / "site", tvto)
    manifest = json.loads((tmp_path / "site" / "anbar.json").read_text(encoding="utf-8"))
    assert all(p["success"] and p["failed"] == 0 for p in manifest["pages"])
    assert "Status: Succeeded" in _page_text(tmp_path / "site" / manifest["pages"][0]["path"])


# -- publishing -------------------------------------------------------------------------------------


def test_publish_builds_under_the_data_docs_dir(failed_run, tvto, tmp_path, monkeypatch):
    run, _ = failed_run
    monkeypatch.setenv("ANBAR_DATA_DOCS_DIR", str(tmp_path / "dd"))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example:8080/")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "anbar_ingest__tvto")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "scheduled__2025-11-01T00:00:00+00:00")

    published = publish_data_docs(run, tvto, "tvto", "2025-10", 2)

    assert published is not None
    path, url = published
    assert path == tmp_path / "dd" / "tvto" / "trainees" / "2025-10" / "v2" / "index.html"
    assert path.is_file()
    assert url == "http://airflow.example:8080/anbar-docs/tvto/trainees/2025-10/v2/"
    assert url == data_docs_url("tvto", "trainees", "2025-10", 2)
    manifest = json.loads((path.parent / "anbar.json").read_text(encoding="utf-8"))
    assert manifest["airflow_run_id"] == "scheduled__2025-11-01T00:00:00+00:00"
    assert manifest["submission_id"] == run.summary["submission_id"]


def test_publish_never_raises(tvto, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("ANBAR_DATA_DOCS_DIR", str(tmp_path / "dd"))

    broken = SuiteRun(summary={"submission_id": 1}, gx_results=[object()])  # type: ignore[arg-type]

    assert publish_data_docs(broken, tvto, "tvto", "2025-10", 1) is None
    assert "could not build the Data Docs" in caplog.text
    assert publish_data_docs(broken, tvto, "tvto", "../..", 1) is None
    assert not (tmp_path / "dd").exists() or not list((tmp_path / "dd").rglob("*.html"))


def test_site_path_refuses_path_tricks():
    assert site_path("sso", "insured_persons", "1404-08", 3) == Path("sso/insured_persons/1404-08/v3")
    for bad in ("..", "a/b", "", "."):
        with pytest.raises(ValueError):
            site_path("sso", bad, "1404-08", 1)


# -- the web app ------------------------------------------------------------------------------------


@pytest.fixture
def docs_root(failed_run, tvto, tmp_path):
    run, _ = failed_run
    root = tmp_path / "data_docs"
    build_data_docs(
        run.gx_results,
        root / site_path("tvto", "trainees", "2025-10", 1),
        tvto,
        meta={"airflow_run_id": "manual__1"},
    )
    (tmp_path / "secret.txt").write_text("outside the data docs", encoding="utf-8")
    (root / "tvto" / "link").symlink_to(tmp_path)
    return root


def _client(root: Path, may_read=lambda org: True) -> TestClient:
    """The app mounted as the Airflow API server mounts a plugin's app; access decided by ``may_read``."""
    app = web.create_app(root)
    app.dependency_overrides[web.org_access] = lambda: may_read
    app.dependency_overrides[web.current_user] = lambda: "a signed-in user"
    server = FastAPI()
    server.mount("/anbar-docs", app)
    return TestClient(server)


def test_serves_the_pages(docs_root):
    client = _client(docs_root)
    page = client.get("/anbar-docs/tvto/trainees/2025-10/v1/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "Data Docs" in page.text
    manifest = json.loads((docs_root / "tvto/trainees/2025-10/v1/anbar.json").read_text(encoding="utf-8"))
    result = client.get(f"/anbar-docs/tvto/trainees/2025-10/v1/{manifest['pages'][0]['path']}")
    assert result.status_code == 200 and "check_digit.national_id" in result.text
    assert client.head("/anbar-docs/tvto/trainees/2025-10/v1/index.html").status_code == 200
    redirect = client.get("/anbar-docs/tvto/trainees/2025-10/v1", follow_redirects=False)
    assert redirect.status_code == 307
    assert redirect.headers["location"].endswith("/anbar-docs/tvto/trainees/2025-10/v1/")
    assert client.get("/anbar-docs/tvto/trainees/2025-10/v9/").status_code == 404
    assert client.post("/anbar-docs/tvto/trainees/2025-10/v1/index.html").status_code == 405


@pytest.mark.parametrize(
    "path",
    [
        "/anbar-docs/tvto/..%2F..%2Fsecret.txt",
        "/anbar-docs/tvto/%2E%2E/%2E%2E/secret.txt",
        "/anbar-docs/tvto/trainees/..%2F..%2F..%2F..%2Fsecret.txt",
        "/anbar-docs/tvto/%2Fetc%2Fpasswd",
        "/anbar-docs/tvto/link/secret.txt",  # a symlink out of the directory
    ],
)
def test_refuses_path_traversal(docs_root, path):
    response = _client(docs_root).get(path)
    assert response.status_code in (403, 404)
    assert "outside the data docs" not in response.text


_REFERENCE = re.compile(
    r"""\b(src|href|action)\s*=\s*["']([^"']*)["']|url\(\s*["']?([^"')]*)["']?\s*\)""", re.IGNORECASE
)
_INTEGRITY = re.compile(
    r'<(?:script|link)\b[^>]*?\b(?:src|href)="([^"]+)"[^>]*?\bintegrity="sha384-([^"]+)"', re.IGNORECASE
)


def _references(text: str) -> list[str]:
    """Every URL a page or a style sheet loads or links (attributes src, href, action; CSS url())."""
    return [m.group(2) if m.group(2) is not None else m.group(3) for m in _REFERENCE.finditer(text)]


def test_no_served_page_references_an_external_host(docs_root):
    """A ministry intranet has no internet: every page the app serves, and every style sheet they load, refer
    to the Airflow server only, and everything they load is served (scripts, styles, fonts, images), the
    vendored files byte for byte the ones their pinned versions published (the pages' integrity hashes)."""
    import base64
    import hashlib
    from urllib.parse import urljoin, urlsplit

    client = _client(docs_root)
    site = docs_root / "tvto" / "trainees" / "2025-10" / "v1"
    pages = ["/anbar-docs/", "/anbar-docs/runs/anbar_ingest__tvto/manual__1/"]
    pages += [f"/anbar-docs/{p.relative_to(docs_root).as_posix()}" for p in sorted(site.rglob("*.html"))]
    assert len(pages) >= 6  # the index, a run, the site's index, its validation and suite pages
    loaded: dict[str, str] = {}
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        queue = [(page, response.text)]
        while queue:
            where, text = queue.pop()
            for ref in _references(text):
                assert not re.match(r"^(?:[a-z][a-z0-9+.-]*:)?//", ref, re.I), f"{where} refers to {ref}"
                if not ref or ref.startswith(("#", "data:")):
                    continue
                target = urlsplit(urljoin("http://testserver" + where, ref)).path
                if target in loaded:
                    continue
                fetched = client.get(target)
                assert fetched.status_code == 200, f"{where} refers to {ref}: {fetched.status_code}"
                loaded[target] = where
                if target.endswith(".css"):
                    queue.append((target, fetched.text))
        for src, digest in _INTEGRITY.findall(response.text):
            body = client.get(urlsplit(urljoin("http://testserver" + page, src)).path).content
            assert base64.b64encode(hashlib.sha384(body).digest()).decode() == digest, src
    vendored = {t for t in loaded if t.startswith("/anbar-docs/_assets/")}
    assert any("jquery@3.7.1" in t for t in vendored) and any("bootstrap@4.3.1" in t for t in vendored)
    assert any(t.endswith(".woff2") for t in vendored)  # the fonts Font Awesome's style sheet loads


def test_the_vendored_assets_need_a_login_and_stay_inside_their_directory(docs_root, airflow_db, monkeypatch):
    from airflow.api_fastapi import app as api_app
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "anbar-test-" + "x" * 64)
    monkeypatch.setattr(api_app._AuthManagerState, "instance", SimpleAuthManager())
    server = FastAPI()
    server.mount("/anbar-docs", web.create_app(docs_root))
    client = TestClient(server)
    asset = "/anbar-docs/_assets/jquery@3.7.1/dist/jquery.min.js"
    assert client.get(asset).status_code == 401
    client.cookies.set("_token", SimpleAuthManager().generate_jwt(_viewer()))
    response = client.get(asset)
    assert response.status_code == 200 and "immutable" in response.headers["cache-control"]
    for path in ("/anbar-docs/_assets/..%2Fweb.py", "/anbar-docs/_assets/%2E%2E/%2E%2E/web.py"):
        assert client.get(path).status_code == 404, path


def _viewer():
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return SimpleAuthManagerUser(username="statistician", role="viewer")


def test_index_lists_the_versions_the_user_may_read(docs_root):
    (docs_root / "sso" / "insured_persons" / "1404-08" / "v3").mkdir(parents=True)
    (docs_root / "sso" / "insured_persons" / "1404-08" / "v3" / "index.html").write_text("<html></html>")

    index = _client(docs_root).get("/anbar-docs/")
    assert index.status_code == 200
    assert 'href="tvto/trainees/2025-10/v1/"' in index.text
    assert 'href="sso/insured_persons/1404-08/v3/"' in index.text
    assert "tvto__trainees.clean.map" in index.text and "failed" in index.text

    only_tvto = _client(docs_root, may_read=lambda org: org == "tvto")
    index = only_tvto.get("/anbar-docs/")
    assert "tvto/trainees/2025-10/v1/" in index.text and "sso/" not in index.text
    assert only_tvto.get("/anbar-docs/sso/insured_persons/1404-08/v3/").status_code == 403


def test_run_page_lists_the_sites_the_run_built(docs_root):
    client = _client(docs_root)
    page = client.get("/anbar-docs/runs/anbar_ingest__tvto/manual__1/")
    assert page.status_code == 200
    assert 'href="../../../tvto/trainees/2025-10/v1/"' in page.text
    other = client.get("/anbar-docs/runs/anbar_ingest__tvto/manual__2/")
    assert "No Data Docs were built by this run" in other.text
    assert client.get("/anbar-docs/runs/anbar_ingest__tvto/manual__1", follow_redirects=False).status_code == 307


def test_airflow_authentication_applies(docs_root, airflow_db, monkeypatch):
    """The real thing: Airflow's JWT (cookie or bearer) and its auth manager's DAG permissions."""
    from airflow.api_fastapi import app as api_app
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "anbar-test-" + "x" * 64)
    manager = SimpleAuthManager()
    monkeypatch.setattr(api_app._AuthManagerState, "instance", manager)
    viewer = manager.generate_jwt(SimpleAuthManagerUser(username="statistician", role="viewer"))
    nobody = manager.generate_jwt(SimpleAuthManagerUser(username="nobody", role=None))

    server = FastAPI()
    server.mount("/anbar-docs", web.create_app(docs_root))
    client = TestClient(server)
    page = "/anbar-docs/tvto/trainees/2025-10/v1/"

    assert client.get(page).status_code == 401
    assert client.get("/anbar-docs/").status_code == 401
    assert client.get(page, headers={"Authorization": "Bearer not-a-token"}).status_code == 403
    assert client.get(page, headers={"Authorization": f"Bearer {nobody}"}).status_code == 403
    assert client.get(page, headers={"Authorization": f"Bearer {viewer}"}).status_code == 200
    client.cookies.set("_token", viewer)  # how the UI's session reaches the app
    assert client.get(page).status_code == 200
    assert "tvto/trainees/2025-10/v1/" in client.get("/anbar-docs/").text


@pytest.fixture
def teams_of_organisations(airflow_db, monkeypatch):
    """Airflow in multi-team mode, each organisation's ingest DAG in a bundle its team owns (tvto, sso).

    The session's Airflow database may know those DAGs already (an end-to-end test of the same worker ran
    them): they are moved into the teams' bundles for the test, and back after it."""
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.models.team import Team
    from airflow.utils.session import create_session

    monkeypatch.setenv("AIRFLOW__CORE__MULTI_TEAM", "True")
    orgs = ("tvto", "sso")
    known: dict[str, str] = {}  # dag_id: its bundle before the test
    with create_session() as session:
        for org in orgs:
            team = Team(name=org)
            bundle = DagBundleModel(name=f"anbar_{org}")
            bundle.teams = [team]
            session.add_all([team, bundle])
            session.flush()
            dag_id = f"{web.INGEST_DAG_PREFIX}{org}"
            dag = session.get(DagModel, dag_id)
            if dag is not None:
                known[dag_id] = dag.bundle_name
                dag.bundle_name = bundle.name
                continue
            session.add(
                DagModel(
                    dag_id=dag_id,
                    bundle_name=bundle.name,
                    max_active_tasks=16,
                    max_consecutive_failed_dag_runs=0,
                    has_task_concurrency_limits=False,
                )
            )
    yield orgs
    with create_session() as session:
        for org in orgs:
            dag_id = f"{web.INGEST_DAG_PREFIX}{org}"
            if dag_id in known:
                session.get(DagModel, dag_id).bundle_name = known[dag_id]
            else:
                session.query(DagModel).filter(DagModel.dag_id == dag_id).delete()
            session.flush()
            session.query(DagBundleModel).filter(DagBundleModel.name == f"anbar_{org}").delete()
            session.query(Team).filter(Team.name == org).delete()


def test_a_user_of_one_organisation_reads_no_other_through_dot_segments(docs_root, teams_of_organisations, monkeypatch):
    """Real Airflow auth (the simple auth manager, its JWT) and a user allowed one organisation only: the
    path is authorised as it is served, so /tvto/%2E%2E/sso/... is sso's, and refused."""
    from airflow.api_fastapi import app as api_app
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    sso_site = docs_root / "sso" / "insured_persons" / "1404-08" / "v3"
    sso_site.mkdir(parents=True)
    (sso_site / "index.html").write_text("<html>SSO ONLY</html>", encoding="utf-8")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "anbar-test-" + "x" * 64)
    manager = SimpleAuthManager()
    monkeypatch.setattr(api_app._AuthManagerState, "instance", manager)
    token = manager.generate_jwt(SimpleAuthManagerUser(username="tvto_statistician", role="viewer", teams=["tvto"]))
    server = FastAPI()
    server.mount("/anbar-docs", web.create_app(docs_root))
    client = TestClient(server, headers={"Authorization": f"Bearer {token}"})

    assert client.get("/anbar-docs/tvto/trainees/2025-10/v1/").status_code == 200
    assert client.get("/anbar-docs/sso/insured_persons/1404-08/v3/").status_code == 403
    index = client.get("/anbar-docs/").text
    assert "tvto/trainees/2025-10/v1/" in index and "sso/" not in index
    for path in (
        "/anbar-docs/tvto/%2E%2E/sso/insured_persons/1404-08/v3/index.html",
        "/anbar-docs/tvto/%2e%2e/sso/insured_persons/1404-08/v3/",
        "/anbar-docs/tvto/trainees/%2E%2E/%2E%2E/sso/insured_persons/1404-08/v3/index.html",
        "/anbar-docs/tvto/..%2Fsso/insured_persons/1404-08/v3/index.html",
        "/anbar-docs/tvto/%2E/%2E%2E/sso/insured_persons/1404-08/v3/index.html",
    ):
        response = client.get(path)
        assert response.status_code in (403, 404), path
        assert "SSO ONLY" not in response.text, path
    # A dot segment is refused even when it stays inside the organisation.
    assert client.get("/anbar-docs/tvto/trainees/%2E%2E/trainees/2025-10/v1/").status_code == 404


def test_the_plugin_mounts_the_app():
    import anbar_plugin

    (entry,) = anbar_plugin.AnbarPlugin.fastapi_apps
    assert entry["url_prefix"] == "/anbar-docs" and entry["app"] is web.app
    (view,) = anbar_plugin.AnbarPlugin.external_views
    assert view["destination"] == "dag_run" and "{RUN_ID}" in view["href"]


def test_a_decided_delivery_is_recorded_by_the_ingest_and_built_by_anbar_data_docs(
    failed_run, tvto, tmp_path, monkeypatch
):
    from anbar.cli import main as anbar_cli
    from anbar.data_docs_dag import build_data_docs_dag
    from anbar.engine.delivery import GX_RESULTS

    run, _ = failed_run
    root = tmp_path / "dd"
    monkeypatch.setenv("ANBAR_DATA_DOCS_DIR", str(root))
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "anbar_ingest__tvto")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "manual__7")
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / GX_RESULTS).write_text(json.dumps(run.gx_results[0].to_json_dict()), encoding="utf-8")

    # The ingest records the site and quotes its address; nothing is rendered yet.
    url = schedule_from_results(landing, tvto, "tvto", "2025-10", 3, 7)
    site = root / site_path("tvto", "trainees", "2025-10", 3)
    assert url == data_docs_url("tvto", "trainees", "2025-10", 3)
    assert pending_sites(root) == [site] and not (site / "index.html").exists()
    client = _client(root)
    assert "being built (anbar_data_docs)" in client.get("/anbar-docs/").text
    assert "2025-10" in client.get("/anbar-docs/runs/anbar_ingest__tvto/manual__7/").text
    assert client.get("/anbar-docs/tvto/trainees/2025-10/v3/").status_code == 404

    # The DAG's task builds it from the results beside the delivery, with the run that decided it.
    task = build_data_docs_dag().get_task("build_pending")
    assert task.python_callable() == {"built": [str(site)], "not_built": []}
    page = client.get("/anbar-docs/tvto/trainees/2025-10/v3/")
    assert page.status_code == 200 and "Data Docs" in page.text
    manifest = json.loads((site / "anbar.json").read_text(encoding="utf-8"))
    assert (manifest["airflow_run_id"], manifest["submission_id"]) == ("manual__7", 7)
    assert [p["success"] for p in manifest["pages"]] == [False]
    assert pending_sites(root) == []

    # Or by hand; a site whose results are gone stays pending and says so.
    schedule_from_results(landing, tvto, "tvto", "2025-10", 4, 8)
    assert anbar_cli(["docs", "build"]) == 0
    assert (root / site_path("tvto", "trainees", "2025-10", 4) / "index.html").is_file()
    schedule_from_results(landing, tvto, "tvto", "2025-10", 5, 9)
    (landing / GX_RESULTS).unlink()
    assert anbar_cli(["docs", "build"]) == 1
    assert pending_sites(root) == [root / site_path("tvto", "trainees", "2025-10", 5)]
