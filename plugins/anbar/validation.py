"""Validate one loaded submission with its expectation suite, inside PostgreSQL.

Great Expectations (1.x) runs the suite against the submission's partition table
``clean."<org>__<dataset>_s<submission_id>"`` through SQLAlchemy: every check is a SQL
query computed by the server (counts, plus a handful of sample rows), so a
1M-row extract never travels to Python. The outcome is a plain JSON-ready summary
(:class:`ValidationResult`) that the ledger stores and the rejection mail quotes.

Samples never show an identifier in clear: values of identifier columns (registry
``identifier`` set, or access tier ``confidential``) keep their first 3 and last
character only.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from contextlib import suppress
from pathlib import Path
from typing import Any, TypedDict

from anbar.registry import AccessTier, Dataset
from anbar.suites import PRINCIPLES, ROW_QUERY_TYPE, expectation_columns, load_suite

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

log = logging.getLogger(__name__)

SAMPLE_SIZE = 5  # sample rows kept per failed expectation
ROW_REF_COLUMNS = ["_file", "_row_no"]  # where a sample sits in the delivery
_ROW_COUNT_ID = "anbar-row-count"


class PrincipleCounts(TypedDict):
    evaluated: int
    failed: int


class ExpectationOutcome(TypedDict):
    rule: str | None
    type: str
    column: str | None  # the columns joined by ", " (for one-line messages)
    columns: list[str]
    principle: str
    severity: str
    description: dict[str, str]
    success: bool
    unexpected_count: int | None
    unexpected_percent: float | None
    observed_value: Any
    samples: list[dict[str, Any]]
    error: str | None


class ValidationResult(TypedDict):
    """The summary of one validation run: a plain dict, JSON-serialisable as it is."""

    dataset: str
    submission_id: int
    table: str
    suite: str
    success: bool  # no blocking expectation failed
    row_count: int | None
    evaluated: int
    blocking_failures: int  # failed blocking expectations
    warnings: int  # failed warning expectations
    by_principle: dict[str, PrincipleCounts]
    expectations: list[ExpectationOutcome]
    great_expectations_version: str
    duration_seconds: float


class ValidationRunError(RuntimeError):
    """The validation could not run (no partition table, no database...)."""


# -- masking ---------------------------------------------------------------------------------------


def identifier_columns(dataset: Dataset) -> set[str]:
    return {c.name for c in dataset.columns if c.identifier is not None or c.access_tier is AccessTier.confidential}


def mask(value: Any) -> Any:
    """Keep the first 3 and the last character: ``0076229645`` -> ``007******5``."""
    if value is None:
        return None
    text = str(value)
    if len(text) <= 4:
        return "*" * len(text)
    return text[:3] + "*" * (len(text) - 4) + text[-1]


def partition_table(dataset: Dataset, submission_id: int) -> str:
    return f"{dataset.key}_s{int(submission_id)}"


# -- running ---------------------------------------------------------------------------------------


def validate_submission(
    warehouse_url: str, dataset: Dataset, submission_id: int, suite_path: Path | str
) -> ValidationResult:
    """Run the suite at ``suite_path`` on the submission's clean partition.

    ``warehouse_url`` is a SQLAlchemy URL (``postgresql+psycopg2://...``). Raises
    :class:`anbar.suites.SuiteError` for a broken suite file and
    :class:`ValidationRunError` when the partition cannot be validated at all. A check
    whose SQL fails is reported as a failed expectation with its ``error``.
    """
    started = time.monotonic()
    suite_path = Path(suite_path)
    suite = load_suite(suite_path, dataset)
    table = partition_table(dataset, submission_id)

    # The GX run, with the expectations tagged so results can be matched to the file.
    plain, row_queries, by_id = [], [], {}
    for exp in suite.expectations:
        config = exp.configuration.to_json_dict()
        config["id"] = str(uuid.uuid4())
        by_id[config["id"]] = config
        (row_queries if config["type"] == ROW_QUERY_TYPE else plain).append(config)
    plain.append(
        {
            "type": "expect_table_row_count_to_be_between",
            "kwargs": {"min_value": 0},
            "id": _ROW_COUNT_ID,
        }
    )

    gx_results = _run_gx(warehouse_url, dataset, submission_id, table, plain, row_queries)

    ids = identifier_columns(dataset)
    row_count = None
    outcomes: dict[str, ExpectationOutcome] = {}
    for res in gx_results:
        exp_id = res["expectation_config"]["id"]
        if exp_id == _ROW_COUNT_ID:
            row_count = (res.get("result") or {}).get("observed_value")
            continue
        outcomes[exp_id] = _outcome(by_id[exp_id], res, ids)
    for outcome in outcomes.values():
        if outcome["unexpected_percent"] is None and outcome["unexpected_count"] is not None:
            if row_count:
                outcome["unexpected_percent"] = 100.0 * outcome["unexpected_count"] / row_count
            elif row_count == 0:
                outcome["unexpected_percent"] = 0.0

    # In the order of the suite file; an expectation GX did not report counts as failed.
    ordered = [outcomes.get(i) or _not_evaluated(by_id[i]) for i in by_id]
    by_principle: dict[str, PrincipleCounts] = {p: {"evaluated": 0, "failed": 0} for p in PRINCIPLES}
    for o in ordered:
        by_principle[o["principle"]]["evaluated"] += 1
        by_principle[o["principle"]]["failed"] += 0 if o["success"] else 1
    blocking = sum(1 for o in ordered if not o["success"] and o["severity"] == "blocking")
    warnings = sum(1 for o in ordered if not o["success"] and o["severity"] == "warning")
    duration = round(time.monotonic() - started, 3)
    log.info(
        "validated clean.%s with %s: %s rows, %d expectations, %d blocking failures, %d warnings, %.1fs",
        table,
        suite_path.name,
        row_count,
        len(ordered),
        blocking,
        warnings,
        duration,
    )
    return ValidationResult(
        dataset=dataset.key,
        submission_id=int(submission_id),
        table=f"clean.{table}",
        suite=suite_path.name,
        success=blocking == 0,
        row_count=row_count,
        evaluated=len(ordered),
        blocking_failures=blocking,
        warnings=warnings,
        by_principle=by_principle,
        expectations=ordered,
        great_expectations_version=_gx_version(),
        duration_seconds=duration,
    )


def _gx_version() -> str:
    import great_expectations as gx

    return gx.__version__


def _run_gx(
    warehouse_url: str,
    dataset: Dataset,
    submission_id: int,
    table: str,
    plain: list[dict],
    row_queries: list[dict],
) -> list[dict]:
    """Validate, and return the expectation results as JSON dicts. Leaves no connection open."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # Progress bars are on unless the context says otherwise (tqdm on stderr).
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    name = f"anbar-{table}"
    datasource = context.data_sources.add_postgres(
        name=name,
        connection_string=warehouse_url,
        kwargs={"connect_args": _connect_args(warehouse_url, table)},
    )
    try:
        try:
            asset = datasource.add_table_asset(name=table, table_name=table)
            batch = asset.add_batch_definition_whole_table("whole-partition").get_batch()
        except Exception as exc:
            raise ValidationRunError(
                f"cannot validate clean.{table} (submission {submission_id} of {dataset.key}): "
                f"{_scrub(_first_line(exc))}"
            ) from exc
        results: list[dict] = []
        runs = [
            # Map expectations: counts, plus SAMPLE_SIZE unexpected values with their row
            # references, each a LIMITed query (never COMPLETE: that fetches every value).
            (
                plain,
                {
                    "result_format": "SUMMARY",
                    "partial_unexpected_count": SAMPLE_SIZE,
                    "unexpected_index_column_names": ROW_REF_COLUMNS,
                },
            ),
            # SQL checks only return their rows under COMPLETE; GX fetches at most 200 of
            # them (MAX_RESULT_RECORDS) and counts the rest with a COUNT(*) query.
            (row_queries, {"result_format": "COMPLETE"}),
        ]
        for configs, result_format in runs:
            if not configs:
                continue
            suite = gx.ExpectationSuite(name=f"{dataset.key}-{uuid.uuid4().hex[:8]}", expectations=configs)
            validation = batch.validate(suite, result_format=result_format)
            results.extend(r.to_json_dict() for r in validation.results)
        return results
    finally:
        _dispose(datasource)
        with suppress(Exception):
            context.data_sources.delete(name)


def _connect_args(warehouse_url: str, table: str) -> dict[str, str]:
    """libpq settings for GX's connections.

    The partition is found through ``search_path`` (clean first): ``TableAsset.schema_name``
    is deprecated since GX 1.14 ("pass the schema in your datasource's connection
    configuration"). Options already in the URL are kept.
    """
    from sqlalchemy.engine import make_url

    options = make_url(warehouse_url).query.get("options") or ""
    if not isinstance(options, str):  # given more than once in the URL
        options = " ".join(options)
    return {
        "options": f"{options} -c search_path=clean,public".strip(),
        "application_name": f"anbar-validate-{table}"[:63],
    }


def _dispose(datasource: Any) -> None:
    """Close the pools of both engines GX made (the datasource's and its execution engine's)."""
    execution_engine = getattr(datasource, "_execution_engine", None)
    if execution_engine is not None:
        with suppress(Exception):
            execution_engine.close()
    engine = getattr(datasource, "_engine", None)
    if engine is not None:
        with suppress(Exception):
            engine.dispose()


# -- summarising -----------------------------------------------------------------------------------


def _first_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_LONG_NUMBER = re.compile(r"[0-9]{8,}")


def _scrub(message: str) -> str:
    """Mask anything in a database message that could be an identifier."""
    return _LONG_NUMBER.sub(lambda m: mask(m.group()), message)


def _not_evaluated(config: dict) -> ExpectationOutcome:
    return _identified(
        config,
        expectation_columns(config),
        success=False,
        unexpected_count=None,
        unexpected_percent=None,
        observed_value=None,
        samples=[],
        error="not evaluated: Great Expectations returned no result for this expectation",
    )


def _identified(config: dict, columns: list[str], **result) -> ExpectationOutcome:
    """An outcome carrying the expectation's identity (rule, type, columns, principle, severity, description)."""
    meta = config.get("meta") or {}
    return ExpectationOutcome(
        rule=meta.get("rule"),
        type=config["type"],
        column=", ".join(columns) or None,
        columns=columns,
        principle=meta["principle"],
        severity=meta["severity"],
        description={"fa": meta["description"]["fa"], "en": meta["description"]["en"]},
        **result,
    )


def _error(res: dict) -> str | None:
    info = res.get("exception_info") or {}
    # Either one exception for the expectation, or several keyed by the metric that failed.
    infos = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for i in infos:
        if i.get("raised_exception") or i.get("exception_message"):
            message = i.get("exception_message") or "exception"
            # psycopg2 messages carry the SQL after a newline: keep the first line.
            return _scrub(_first_line(message))
    return None


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _samples(config: dict, result: dict, columns: list[str], ids: set[str]) -> list[dict]:
    """Up to SAMPLE_SIZE offending rows as ``{column: value}``, identifiers masked."""
    rows: list[dict] = []
    if config["type"] == ROW_QUERY_TYPE:
        found = (result.get("details") or {}).get("unexpected_rows") or []
        keep = [c for c in ROW_REF_COLUMNS if c not in columns] + columns
        for row in found[:SAMPLE_SIZE]:
            if isinstance(row, dict):
                rows.append({c: row[c] for c in keep if c in row})
    elif result.get("partial_unexpected_index_list"):
        for row in result["partial_unexpected_index_list"][:SAMPLE_SIZE]:
            rows.append({c: row[c] for c in [*ROW_REF_COLUMNS, *columns] if c in row})
    else:
        for value in (result.get("partial_unexpected_list") or [])[:SAMPLE_SIZE]:
            if isinstance(value, dict):
                rows.append({c: value.get(c) for c in columns if c in value})
            elif isinstance(value, (list, tuple)) and len(value) == len(columns):
                rows.append(dict(zip(columns, value, strict=True)))
            elif len(columns) == 1:
                rows.append({columns[0]: value})
    return [{c: (mask(v) if c in ids else _jsonable(v)) for c, v in row.items()} for row in rows]


def _outcome(config: dict, res: dict, ids: set[str]) -> ExpectationOutcome:
    result = res.get("result") or {}
    columns = expectation_columns(config)
    error = _error(res)
    if config["type"] == ROW_QUERY_TYPE:
        count = result.get("observed_value")
        unexpected_count = count if isinstance(count, int) else None
        unexpected_percent = None  # filled from the row count
        observed = None
    else:
        unexpected_count = result.get("unexpected_count")
        unexpected_percent = result.get("unexpected_percent")
        observed = _jsonable(result.get("observed_value"))
    success = bool(res.get("success")) and error is None
    return _identified(
        config,
        columns,
        success=success,
        unexpected_count=unexpected_count,
        unexpected_percent=unexpected_percent,
        observed_value=observed,
        samples=[] if success else _samples(config, result, columns, ids),
        error=error,
    )
