"""Great Expectations Data Docs for one validation run, and where they are served.

:func:`build_data_docs` renders GX's own Data Docs site (its site builder: an index page, one page per
suite and one per validation result) for the ``ExpectationSuiteValidationResult`` objects of one
:func:`anbar.validation.run_suite` run. GX runs in an ephemeral context with no data source, so
rendering opens no database connection; the site is written by GX's filesystem store backend.

Before rendering, every result is copied and cleaned: values of identifier columns (the dataset's
:func:`anbar.validation.identifier_columns`) keep their first 3 and last character
(:func:`anbar.validation.mask`), wherever GX put them (partial unexpected values and their counts,
row references, rows found by SQL checks, value sets), and any remaining run of 8 or more digits in
a string (an error message, a traceback) is masked too. Each expectation's row reads
``<rule>: <description> [<principle>, <severity>] (<GX type>)`` (GX's ``description``; GX's
``meta_properties_to_render`` columns fail to render in 1.24).

The pages load Bootstrap, jQuery, Font Awesome and GX's logo from public CDNs, as GX's templates
do: without network access the validation pages still show every table, unstyled, but GX's own
index page is filled in by JavaScript and stays empty (the web app's index lists the same pages in
plain HTML). Of GX's static assets only those a page names are kept (the rest, about 4 MB of fonts
and animations, is referenced by no page).

Sites are kept per delivery: ``<data_docs_dir>/<org>/<dataset>/<period>/v<version>/index.html``,
served by the Airflow API server under ``/anbar-docs/`` (:mod:`anbar.web`).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import os
import re
import shutil
import traceback
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

from anbar import settings
from anbar.registry import Dataset
from anbar.suites import expectation_columns, is_row_query
from anbar.validation import identifier_columns, mask

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

log = logging.getLogger(__name__)

SITE_NAME = "anbar"
MANIFEST = "anbar.json"  # the site's pages and their outcome, read by anbar.web
PENDING = "anbar-pending.json"  # a decided delivery whose site anbar_data_docs builds
URL_PREFIX = "/anbar-docs"

# Every asset GX's page templates load from a public CDN or GX's own bucket, and what replaces it: pages load
# nothing from outside the Airflow server (a ministry intranet has no internet). The libraries are vendored in
# ASSETS_DIR, each under <npm package>@<version>/ (pinned: the version in the path; GX names vega, vega-lite
# and vega-embed by major version only, pinned here to the newest of that major); the web app serves them at
# /anbar-docs/_assets/ (anbar.web). GX's logo is the copy GX puts in every site's static/images.
ASSETS_DIR = Path(__file__).resolve().parent / "static" / "data_docs"
ASSETS_ROUTE = "_assets"
_FILTER_CONTROL = "dist/extensions/filter-control/bootstrap-table-filter-control"
_GX_BUCKET = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com"
VENDORED_ASSETS = {
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery@3.7.1/dist/jquery.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": (
        "bootstrap@4.3.1/dist/css/bootstrap.min.css"
    ),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": (
        "bootstrap@4.3.1/dist/js/bootstrap.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": (
        "popper.js@1.12.9/dist/umd/popper.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
        "bootstrap-table@1.19.1/dist/bootstrap-table.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
        "bootstrap-table@1.19.1/dist/bootstrap-table.min.js"
    ),
    f"https://unpkg.com/bootstrap-table@1.19.1/{_FILTER_CONTROL}.min.js": (
        f"bootstrap-table@1.19.1/{_FILTER_CONTROL}.min.js"
    ),
    f"https://unpkg.com/bootstrap-table@1.19.0/{_FILTER_CONTROL}.min.css": (
        f"bootstrap-table@1.19.0/{_FILTER_CONTROL}.min.css"
    ),
    f"https://unpkg.com/bootstrap-table@1.19.0/{_FILTER_CONTROL}.css": (
        f"bootstrap-table@1.19.0/{_FILTER_CONTROL}.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "bootstrap-datepicker@1.9.0/dist/css/bootstrap-datepicker.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "bootstrap-datepicker@1.9.0/dist/js/bootstrap-datepicker.min.js"
    ),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (
        "@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        "@fortawesome/fontawesome-free@6.6.0/css/all.min.css"
    ),
    "https://cdn.jsdelivr.net/npm/vega@5": "vega@5.33.1/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite@5.23.0/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed@6.29.0/build/vega-embed.min.js",
}
SITE_IMAGES = {
    f"{_GX_BUCKET}/logo-long.png": "static/images/logo-long.png",
    f"{_GX_BUCKET}/full_logo_dark.png": "static/images/logo-long.png",
}
# Links (not loads) to GX's own web site: kept as text, pointing nowhere.
LINK_ONLY_HOSTS = ("greatexpectations.io",)
# A URL in a page: an attribute that loads or links (src, href, action), or a CSS url().
_URL_IN_ATTRIBUTE = re.compile(
    r"""(?P<head>\b(?:src|href|action)\s*=\s*)(?P<q>["'])(?P<url>[^"']*)(?P=q)""", re.IGNORECASE
)
_URL_IN_CSS = re.compile(r"""(?P<head>url\(\s*)(?P<q>["']?)(?P<url>[^"')]*)(?P=q)(?=\s*\))""", re.IGNORECASE)
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.I)

_VALUE_LISTS = ("partial_unexpected_list", "unexpected_list")
_COUNT_LISTS = ("partial_unexpected_counts", "unexpected_counts")
_LONG_NUMBER = re.compile(r"[0-9]{8,}")


# -- where ----------------------------------------------------------------------------------------


def site_path(org_code: str, dataset: str, period: str, version: int | str) -> Path:
    """The part of a site's directory below :func:`anbar.settings.data_docs_dir`."""
    parts = [str(org_code), str(dataset), str(period), f"v{version}"]
    for part in parts:
        if not part or part in (".", "..") or "/" in part or "\\" in part or "\x00" in part:
            raise ValueError(f"not a valid path component for data docs: {part!r}")
    return Path(*parts)


# From a site's root to the vendored assets, as the web app serves them: up from <org>/<dataset>/<period>/v<n>/.
SITE_TO_ASSETS = "../" * len(site_path("o", "d", "p", 1).parts) + ASSETS_ROUTE + "/"


def api_base_url() -> str:
    """The Airflow API server's address (``[api] base_url``), without a trailing slash."""
    try:
        from airflow.configuration import conf

        base = conf.get("api", "base_url", fallback="") or ""
    except Exception:  # Airflow not importable or not configured: the default address
        base = ""
    return (base or "http://localhost:8080").rstrip("/")


def data_docs_url(org: str, dataset: str, period: str, version: int | str) -> str:
    """The link to a delivery's Data Docs in the Airflow API server, e.g.
    ``http://localhost:8080/anbar-docs/sso/insured_persons/1404-08/v1/``."""
    path = "/".join(quote(p, safe="") for p in site_path(org, dataset, period, version).parts)
    return f"{api_base_url()}{URL_PREFIX}/{path}/"


# -- building -------------------------------------------------------------------------------------


class DataDocsError(RuntimeError):
    """Great Expectations could not render a page."""


def build_data_docs(
    gx_results: Iterable[Any],
    site_dir: Path,
    dataset: Dataset,
    *,
    run_name: str = "validation",
    meta: Mapping[str, Any] | None = None,
    assets_url: str = SITE_TO_ASSETS,
) -> Path:
    """Render GX Data Docs for ``gx_results`` into ``site_dir`` (replacing what was there); returns its
    ``index.html``.

    ``dataset`` names the identifier columns to mask. The results given are not modified. Beside the
    site, ``anbar.json`` lists its validation pages with their outcome (for the web app's index), with
    ``meta`` added. The pages load their scripts, styles and fonts from ``assets_url`` (relative to the
    site's root; by default where the web app serves the vendored ones), never from outside.
    """
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    import anbar.gx_custom  # noqa: F401  (registers anbar's expectations, to render their results)

    site_dir = Path(site_dir)
    ids = identifier_columns(dataset)
    run_id = RunIdentifier(run_name=run_name, run_time=dt.datetime.now(dt.UTC))
    results = [_prepared(r, ids, run_id) for r in gx_results]

    site_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = site_dir.with_name(f".{site_dir.name}.new-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        context.variables.data_docs_sites = {
            SITE_NAME: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(staging)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "site_section_builders": {"profiling": "None"},
            }
        }
        keys = []
        for result in results:
            _add_suite(context, result)
            key = ValidationResultIdentifier(
                expectation_suite_identifier=ExpectationSuiteIdentifier(name=result.suite_name),
                run_id=run_id,
                batch_identifier=_batch_name(result),
            )
            context.validation_results_store.set(key, result)
            keys.append(key)
        with _gx_render_errors() as errors:
            context.build_data_docs(site_names=[SITE_NAME])
        missing = [k for k in keys if not context.get_docs_sites_urls(k, site_name=SITE_NAME, only_if_exists=True)]
        if errors or missing or not (staging / "index.html").is_file():
            raise DataDocsError(
                f"Great Expectations could not render {len(missing)} of {len(keys)} validation pages"
                + (f": {errors[0]}" if errors else "")
            )
        pages = [_page_entry(staging, context, key, result) for key, result in zip(keys, results, strict=True)]
        manifest = {
            **(meta or {}),
            "dataset": dataset.key,
            "run_name": run_name,
            "built_at": run_id.run_time.isoformat(timespec="seconds"),
            "great_expectations_version": gx.__version__,
            "pages": pages,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        _serve_assets_locally(staging, assets_url)
        _prune_static(staging)
        _replace_dir(staging, site_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return site_dir / "index.html"


def _run_meta(org_code: str, period: str, version: int | str, submission_id: int | None) -> dict[str, Any]:
    """What a site's manifest says of the delivery and, inside an Airflow task, of the DAG run that decided it
    (for the run's "Data Docs" tab)."""
    return {
        "org": org_code,
        "period": period,
        "version": version,
        "submission_id": submission_id,
        "airflow_dag_id": os.environ.get("AIRFLOW_CTX_DAG_ID"),
        "airflow_run_id": os.environ.get("AIRFLOW_CTX_DAG_RUN_ID"),
    }


def publish_data_docs(
    run: Any, dataset: Dataset, org_code: str, period: str, version: int | str, meta: Mapping[str, Any] | None = None
) -> tuple[Path, str] | None:
    """Build the Data Docs of one :class:`anbar.validation.SuiteRun` into the delivery's directory under
    :func:`anbar.settings.data_docs_dir`; returns ``(index.html, url)``, or None (logged) when they could
    not be built: Data Docs never make a validation fail."""
    try:
        site = settings.data_docs_dir() / site_path(org_code, dataset.name, period, version)
        submission = (getattr(run, "summary", None) or {}).get("submission_id")
        meta = dict(meta) if meta is not None else _run_meta(org_code, period, version, submission)
        run_name = f"submission-{submission}" if submission is not None else "validation"
        index = build_data_docs(run.gx_results, site, dataset, run_name=run_name, meta=meta)
        url = data_docs_url(org_code, dataset.name, period, version)
    except Exception as exc:
        log.warning(
            "could not build the Data Docs of %s %s v%s: %s",
            dataset.key,
            period,
            version,
            _scrubbed("".join(traceback.format_exception(exc)), set()),
        )
        return None
    log.info("Data Docs of %s %s v%s: %s", dataset.key, period, version, url)
    return index, url


def results_from_json(document: dict[str, Any]) -> Any:
    """GX's ExpectationSuiteValidationResult from the JSON the pass keeps (anbar.engine.delivery)."""
    from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    import anbar.gx_custom  # noqa: F401  (anbar's types, for their configurations)

    results = []
    for r in document["results"]:
        config = {k: v for k, v in r["expectation_config"].items() if k in ("type", "kwargs", "meta", "id")}
        results.append(
            ExpectationValidationResult(
                success=r["success"],
                expectation_config=ExpectationConfiguration(**config),
                result=r.get("result") or {},
                meta=r.get("meta") or {},
                exception_info=r.get("exception_info"),
            )
        )
    return ExpectationSuiteValidationResult(
        success=document["success"],
        results=results,
        suite_name=document["suite_name"],
        statistics=document.get("statistics"),
        meta=document.get("meta") or {},
    )


def schedule_from_results(
    landing_dir: Path, dataset: Dataset, org_code: str, period: str, version: int | str, submission_id: int
) -> str | None:
    """Record that a decided delivery's Data Docs are to be built from the GX results the pass wrote beside
    it, and return their URL (None when there are no results).

    Nothing of GX is imported here: the site is built by the ``anbar_data_docs`` DAG (:func:`build_pending`,
    for every pending site in one process), or by ``anbar docs build``. Until then the site's directory holds
    only :data:`PENDING`."""
    from anbar.engine.delivery import GX_RESULTS

    results = Path(landing_dir) / GX_RESULTS
    if not results.is_file():
        return None
    site = settings.data_docs_dir() / site_path(org_code, dataset.name, period, version)
    site.mkdir(parents=True, exist_ok=True)
    pending = {
        **_run_meta(org_code, period, version, submission_id),
        "dataset": dataset.name,
        "results": str(results),
        "pending": True,
    }
    staged = site / f".{PENDING}.{uuid.uuid4().hex[:8]}"
    staged.write_text(json.dumps(pending, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(staged, site / PENDING)
    return data_docs_url(org_code, dataset.name, period, version)


def pending_sites(root: Path) -> list[Path]:
    """Sites recorded by :func:`schedule_from_results` and not built yet."""
    return sorted(p.parent for p in Path(root).glob(f"*/*/*/v*/{PENDING}") if not (p.parent / "index.html").exists())


def build_pending(site: Path, registry: Any = None) -> Path | None:
    """Build a pending site from the results it names; its ``index.html``, or None when it could not be built
    (the results are gone, or GX failed: logged, and the site stays pending)."""
    from types import SimpleNamespace

    from anbar.registry import load_registry

    site = Path(site)
    if (site / "index.html").is_file():
        return site / "index.html"
    try:
        pending = json.loads((site / PENDING).read_text(encoding="utf-8"))
        dataset = (registry or load_registry()).dataset(pending["org"], pending["dataset"])
        document = json.loads(Path(pending["results"]).read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError) as exc:
        log.warning("the pending Data Docs at %s cannot be built: %s", site, exc)
        return None
    meta = {k: v for k, v in pending.items() if k not in ("dataset", "results", "pending")}
    results = [results_from_json(document)]
    run = SimpleNamespace(summary={"submission_id": pending.get("submission_id")}, gx_results=results)
    published = publish_data_docs(run, dataset, pending["org"], pending["period"], pending["version"], meta)
    return published[0] if published else None


# -- preparing results ----------------------------------------------------------------------------


def _prepared(result: Any, ids: set[str], run_id: Any) -> Any:
    """A copy of one suite validation result, identifiers masked, ready for GX's store and renderers."""
    result = copy.deepcopy(result)
    result.meta = {**(result.meta or {}), "run_id": run_id, "validation_time": run_id.run_time}
    for res in result.results:
        config = res.expectation_config
        if config is None:
            continue
        # The store's schema wants a UUID (anbar's row-count check has a readable id).
        try:
            uuid.UUID(str(config.id))
        except ValueError:
            config.id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"anbar:{config.id}"))
        description = _description(config)
        if description:
            config.description = description
        _mask_result(res, ids)
    return result


def _description(config: Any) -> str | None:
    """What GX shows in an expectation's row: anbar's rule, its description, principle, severity and the
    GX type (GX's own sentence otherwise; it has none for anbar's expectation types)."""
    from great_expectations.expectations.registry import get_renderer_impl
    from great_expectations.render.components import LegacyRendererType

    meta = config.meta or {}
    text = meta.get("description")
    text = text.get("en") if isinstance(text, dict) else text
    tags = ", ".join(str(meta[k]) for k in ("principle", "severity") if meta.get(k))
    if meta.get("rule"):
        head = f"{meta['rule']}: {text}" if text else str(meta["rule"])
        return f"{head} [{tags}] ({config.type})" if tags else f"{head} ({config.type})"
    if get_renderer_impl(config.type, LegacyRendererType.PRESCRIPTIVE):
        return None
    return f"{text} ({config.type})" if text else config.type


def _mask_result(res: Any, ids: set[str]) -> None:
    """Mask the identifiers in one expectation's result, its kwargs and its exception, in place."""
    config = res.expectation_config
    columns = expectation_columns({"kwargs": config.kwargs, "meta": config.meta})
    for key, value in list(config.kwargs.items()):
        if key == "value_set" and not is_row_query(config.type) and any(c in ids for c in columns):
            config.kwargs[key] = _masked_all(value)
        else:
            config.kwargs[key] = _scrubbed(value, set())  # e.g. an ID written into a SQL check
    result = res.result or {}
    for key in _VALUE_LISTS:
        if isinstance(result.get(key), list):
            result[key] = [_found_value(v, columns, ids) for v in result[key]]
    for key in _COUNT_LISTS:
        if isinstance(result.get(key), list):
            result[key] = [
                {**c, "value": _found_value(c.get("value"), columns, ids)} if isinstance(c, dict) else c
                for c in result[key]
            ]
    res.result = _scrubbed(result, ids)
    res.exception_info = _scrubbed(res.exception_info or {}, ids)


def _found_value(value: Any, columns: list[str], ids: set[str]) -> Any:
    """One unexpected value GX listed: a value of the expectation's column, a row of its columns (dict),
    or a tuple of its columns' values."""
    if isinstance(value, dict):
        return {k: _masked_all(v) if k in ids else v for k, v in value.items()}
    if isinstance(value, (list, tuple)) and len(columns) > 1 and len(value) == len(columns):
        return [_masked_all(v) if c in ids else v for c, v in zip(columns, value, strict=True)]
    if any(c in ids for c in columns):
        return _masked_all(value)
    return value


def _scrubbed(value: Any, ids: set[str]) -> Any:
    """``value`` with identifier columns masked at any depth, and long digit runs in strings masked."""
    if isinstance(value, dict):
        return {k: _masked_all(v) if k in ids else _scrubbed(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v, ids) for v in value]
    if isinstance(value, tuple):
        return tuple(_scrubbed(v, ids) for v in value)
    if isinstance(value, str):
        return _LONG_NUMBER.sub(lambda m: mask(m.group()), value)
    return value


def _masked_all(value: Any) -> Any:
    """Every value in ``value`` masked (a value, or a list of values, of an identifier column)."""
    if isinstance(value, (list, tuple)):
        return [_masked_all(v) for v in value]
    if isinstance(value, dict):
        return {k: _masked_all(v) for k, v in value.items()}
    return mask(value)


def _page_entry(site: Path, context: Any, key: Any, result: Any) -> dict[str, Any]:
    """One validation page of the site, for the manifest."""
    (url,) = context.get_docs_sites_urls(key, site_name=SITE_NAME, only_if_exists=True)
    page = Path(unquote(urlparse(url["site_url"]).path)).relative_to(site.resolve())
    stats = result.statistics or {}
    return {
        "suite": result.suite_name,
        "asset": _batch_name(result),
        "success": bool(result.success),
        "evaluated": stats.get("evaluated_expectations"),
        "failed": stats.get("unsuccessful_expectations"),
        "path": page.as_posix(),
    }


def _batch_name(result: Any) -> str:
    batch = (result.meta or {}).get("active_batch_definition") or {}
    name = batch.get("data_asset_name") if isinstance(batch, dict) else None
    return str(name or result.suite_name)


def _add_suite(context: Any, result: Any) -> None:
    """The suite a result came from, for its Data Docs page (the result pages link to it)."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(
        name=result.suite_name,
        expectations=[r.expectation_config.to_json_dict() for r in result.results if r.expectation_config],
    )
    context.suites.add(suite)


@contextmanager
def _gx_render_errors() -> Iterator[list[str]]:
    """Collect what GX's site builder logs as errors (it logs a rendering failure and goes on), masked,
    instead of letting it reach stderr with the values it may quote."""
    errors: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = _scrubbed(record.getMessage(), set())
            line = next((line for line in text.splitlines() if "Error:" in line), text[:300])
            errors.append(line.split("Traceback:")[0].strip())
            log.debug("Great Expectations: %s", text)

    gx_log = logging.getLogger("great_expectations.render.renderer.site_builder")
    handler, propagate = Collect(level=logging.ERROR), gx_log.propagate
    gx_log.addHandler(handler)
    gx_log.propagate = False
    try:
        yield errors
    finally:
        gx_log.removeHandler(handler)
        gx_log.propagate = propagate


# -- files ----------------------------------------------------------------------------------------


def _serve_assets_locally(site: Path, assets_url: str) -> None:
    """Point every page's external references at the vendored assets (or the site's own images); a link to
    GX's web site goes nowhere. An external asset anbar does not vendor is an error, not a page that would
    reach outside (a GX upgrade that adds one fails here, in the tests, first)."""
    for page in site.rglob("*.html"):
        up = "../" * (len(page.relative_to(site).parts) - 1)
        text = page.read_text(encoding="utf-8")

        def local(match: re.Match, up: str = up, page: Path = page) -> str:
            url = match.group("url")
            bare = url.split("?", 1)[0].split("#", 1)[0]
            if not _EXTERNAL.match(url):
                if not re.match(r"^(?:\.\.?/)*static/", url):
                    return match.group(0)
                # GX's own files, from the site's root: GX miscounts a validation page's depth for its favicon.
                url = up + url[url.index("static/") :]
            elif bare in VENDORED_ASSETS:
                url = up + assets_url + VENDORED_ASSETS[bare]
            elif bare in SITE_IMAGES:
                url = up + SITE_IMAGES[bare]
            elif urlparse(url).hostname in LINK_ONLY_HOSTS and match.group("head").lower().startswith("href"):
                url = "#"
            else:
                raise DataDocsError(f"{page.relative_to(site)} loads {url}, which anbar does not serve")
            return f"{match.group('head')}{match.group('q')}{url}{match.group('q')}"

        page.write_text(_URL_IN_CSS.sub(local, _URL_IN_ATTRIBUTE.sub(local, text)), encoding="utf-8")


def _prune_static(site: Path) -> None:
    """Remove GX's static assets that no page refers to (fonts and animations: ~4 MB a site)."""
    static = site / "static"
    if not static.is_dir():
        return
    pages = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in site.rglob("*.html"))
    for asset in [p for p in static.rglob("*") if p.is_file()]:
        if asset.name not in pages:
            asset.unlink()
    for folder in sorted((p for p in static.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def _replace_dir(new: Path, target: Path) -> None:
    """Put ``new`` where ``target`` is, so a reader sees the old site or the new one, never half of one."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        target.rename(old)
    new.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
