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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from anbar.registry import AccessTier, Dataset
from anbar.suites import (
    PRINCIPLES,
    ROW_QUERY_TYPE,
    SuitePolicy,
    expectation_columns,
    expectation_table,
    is_row_query,
    load_suite,
)

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

log = logging.getLogger(__name__)

SAMPLE_SIZE = 5  # sample rows kept per failed expectation
ROW_REF_COLUMNS = ["_file", "_row_no"]  # where a sample sits in the delivery
_ROW_COUNT_ID = "anbar-row-count"
COMPOUND_UNIQUE = "expect_compound_columns_to_be_unique"


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
    table: str  # clean (converted values) or raw (values as delivered)
    skipped: str | None  # why the check did not apply to this submission (it counts as passed)
    row_level: bool  # its offending rows can be named (and rejected or flagged one by one)
    rows_failing: int | None  # distinct rows it found, once findings are recorded


class ValidationResult(TypedDict):
    """The summary of one validation run: a plain dict, JSON-serialisable as it is."""

    dataset: str
    submission_id: int
    table: str
    suite: str
    success: bool  # no blocking expectation failed
    policy: dict[str, Any] | None  # the suite's decision policy (whole-file or row-level rejection)
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


@dataclass
class SuiteRun:
    """What one run of a suite found: the summary, and how to find every offending row.

    ``row_queries`` maps the index of a failed expectation in ``summary["expectations"]`` to a SQL
    query selecting ``_file, _row_no`` of all its offending rows (row-level checks only; a check
    about the table as a whole, like a row count, has none). ``gx_results`` are GX's own
    ``ExpectationSuiteValidationResult`` objects, for Data Docs.
    """

    summary: ValidationResult
    row_queries: dict[int, str] = field(default_factory=dict)
    gx_results: list[Any] = field(default_factory=list)


def validate_submission(
    warehouse_url: str,
    dataset: Dataset,
    submission_id: int,
    suite_path: Path | str,
    context: dict[str, str | None] | None = None,
) -> ValidationResult:
    """Run the suite at ``suite_path`` on the submission's partitions; the summary only (see :func:`run_suite`)."""
    return run_suite(warehouse_url, dataset, submission_id, suite_path, context).summary


def run_suite(
    warehouse_url: str,
    dataset: Dataset,
    submission_id: int,
    suite_path: Path | str,
    context: dict[str, str | None] | None = None,
) -> SuiteRun:
    """Run the suite at ``suite_path`` on the submission's clean partition (and raw, for checks of the
    values as delivered).

    ``warehouse_url`` is a SQLAlchemy URL (``postgresql+psycopg2://...``). ``context`` maps the
    placeholders of context checks (``previous``, ``period_start``, other datasets' keys...) to SQL;
    a placeholder mapped to None makes its checks *not applicable* (they pass, with the reason).
    ``raw`` is always this submission's raw partition. Raises :class:`anbar.suites.SuiteError` for a
    broken suite file and :class:`ValidationRunError` when the partition cannot be validated at all.
    A check whose SQL fails is reported as a failed expectation with its ``error``.
    """
    from anbar import gx_custom

    started = time.monotonic()
    suite_path = Path(suite_path)
    suite = load_suite(suite_path, dataset)
    table = partition_table(dataset, submission_id)
    tables = {"clean": f'clean."{table}"', "raw": f'raw."{table}"'}
    context = {**(context or {}), "raw": tables["raw"]}

    # The GX runs, with the expectations tagged so results can be matched to the file.
    runs: dict[tuple[str, str], list[dict]] = {}
    by_id: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for exp in suite.expectations:
        config = exp.configuration.to_json_dict()
        config["id"] = str(uuid.uuid4())
        by_id[config["id"]] = config
        if config["type"] == ROW_QUERY_TYPE or config["type"] in gx_custom.CONTEXT_TYPES:
            try:
                query = gx_custom.resolve_query(config["kwargs"]["unexpected_rows_query"], context)
            except gx_custom.NotApplicable as exc:
                skipped[config["id"]] = _not_applicable_reason(exc.placeholder)
                continue
            config["kwargs"]["unexpected_rows_query"] = query
            kind = "rows"
        else:
            kind = "map"
        runs.setdefault((expectation_table(config), kind), []).append(config)
    runs.setdefault(("clean", "map"), []).append(
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 0}, "id": _ROW_COUNT_ID}
    )

    gx_raw_results = _run_gx(warehouse_url, dataset, submission_id, runs)

    ids = identifier_columns(dataset)
    row_count = None
    outcomes: dict[str, ExpectationOutcome] = {}
    for res in (r.to_json_dict() for suite_result in gx_raw_results for r in suite_result.results):
        exp_id = res["expectation_config"]["id"]
        if exp_id == _ROW_COUNT_ID:
            row_count = (res.get("result") or {}).get("observed_value")
            continue
        outcomes[exp_id] = _outcome(by_id[exp_id], res, ids)
    for exp_id, reason in skipped.items():
        outcomes[exp_id] = _skipped(by_id[exp_id], reason)
    for outcome in outcomes.values():
        if outcome["unexpected_percent"] is None and outcome["unexpected_count"] is not None:
            if row_count:
                outcome["unexpected_percent"] = 100.0 * outcome["unexpected_count"] / row_count
            elif row_count == 0:
                outcome["unexpected_percent"] = 0.0

    # In the order of the suite file; an expectation GX did not report counts as failed.
    ids_in_order = list(by_id)
    ordered = [outcomes.get(i) or _not_evaluated(by_id[i]) for i in ids_in_order]
    row_queries: dict[int, str] = {}
    for n, exp_id in enumerate(ids_in_order):
        if ordered[n]["success"]:
            continue
        query = failing_rows_sql(by_id[exp_id], tables[expectation_table(by_id[exp_id])])
        if query is not None:
            row_queries[n] = query
            ordered[n]["row_level"] = True
    summary = summarise(
        ordered,
        dataset=dataset.key,
        submission_id=int(submission_id),
        table=f"clean.{table}",
        suite=suite_path.name,
        row_count=row_count,
        policy=suite_policy(suite),
        duration_seconds=round(time.monotonic() - started, 3),
    )
    log.info(
        "validated clean.%s with %s: %s rows, %d expectations, %d blocking failures, %d warnings, %d not applicable, "
        "%.1fs",
        table,
        suite_path.name,
        row_count,
        len(ordered),
        summary["blocking_failures"],
        summary["warnings"],
        len(skipped),
        summary["duration_seconds"],
    )
    return SuiteRun(summary=summary, row_queries=row_queries, gx_results=gx_raw_results)


def suite_policy(suite: Any) -> SuitePolicy:
    return SuitePolicy.from_meta(getattr(suite, "meta", None) or {})


def summarise(outcomes: list[ExpectationOutcome], **fields: Any) -> ValidationResult:
    """The summary of a list of outcomes: counts overall and per principle."""
    by_principle: dict[str, PrincipleCounts] = {p: {"evaluated": 0, "failed": 0} for p in PRINCIPLES}
    for o in outcomes:
        if o.get("skipped"):
            continue
        by_principle[o["principle"]]["evaluated"] += 1
        by_principle[o["principle"]]["failed"] += 0 if o["success"] else 1
    blocking = sum(1 for o in outcomes if not o["success"] and o["severity"] == "blocking")
    warnings = sum(1 for o in outcomes if not o["success"] and o["severity"] == "warning")
    policy = fields.pop("policy", None)
    return ValidationResult(
        success=blocking == 0,
        evaluated=sum(1 for o in outcomes if not o.get("skipped")),
        blocking_failures=blocking,
        warnings=warnings,
        by_principle=by_principle,
        expectations=outcomes,
        policy=policy.as_dict() if isinstance(policy, SuitePolicy) else policy,
        great_expectations_version=_gx_version(),
        **fields,
    )


def _not_applicable_reason(placeholder: str) -> str:
    if placeholder == "previous":
        return "not applicable: no accepted delivery of an earlier period to compare with"
    return f"not applicable: no accepted delivery of {placeholder} yet"


def _gx_version() -> str:
    from importlib.metadata import version  # not GX itself: importing it takes seconds

    return version("great_expectations")


def _run_gx(
    warehouse_url: str,
    dataset: Dataset,
    submission_id: int,
    runs: dict[tuple[str, str], list[dict]],
) -> list[Any]:
    """Validate, and return GX's suite validation results. Leaves no connection open."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    import anbar.gx_custom  # noqa: F401  (registers anbar's expectations with GX)

    context = gx.get_context(mode="ephemeral")
    # Progress bars are on unless the context says otherwise (tqdm on stderr).
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    table = partition_table(dataset, submission_id)
    results: list[Any] = []
    for schema in ("clean", "raw"):
        schema_runs = {kind: configs for (s, kind), configs in runs.items() if s == schema and configs}
        if not schema_runs:
            continue
        name = f"anbar-{schema}-{table}"
        datasource = context.data_sources.add_postgres(
            name=name,
            connection_string=warehouse_url,
            kwargs={"connect_args": _connect_args(warehouse_url, table, schema)},
        )
        try:
            try:
                asset = datasource.add_table_asset(name=f"{schema}.{table}", table_name=table)
                batch = asset.add_batch_definition_whole_table("whole-partition").get_batch()
            except Exception as exc:
                raise ValidationRunError(
                    f"cannot validate {schema}.{table} (submission {submission_id} of {dataset.key}): "
                    f"{_scrub(_first_line(exc))}"
                ) from exc
            for kind, configs in schema_runs.items():
                suite = gx.ExpectationSuite(name=f"{dataset.key}.{schema}.{kind}", expectations=configs)
                if kind == "map":
                    results.append(_validate_map(gx, batch, suite, configs))
                else:
                    # SQL checks only return their rows under COMPLETE; GX fetches at most 200 of
                    # them (MAX_RESULT_RECORDS) and counts the rest with a COUNT(*) query.
                    results.append(batch.validate(suite, result_format={"result_format": "COMPLETE"}))
        finally:
            _dispose(datasource)
            with suppress(Exception):
                context.data_sources.delete(name)
    return results


def _map_format(samples: int) -> dict[str, Any]:
    return {
        "result_format": "SUMMARY",
        "partial_unexpected_count": samples,
        "unexpected_index_column_names": ROW_REF_COLUMNS,
    }


def _validate_map(gx: Any, batch: Any, suite: Any, configs: list[dict]) -> Any:
    """Map expectations: counts, plus SAMPLE_SIZE unexpected values with their row references (each a
    LIMITed query; never COMPLETE, which fetches every value).

    GX asks for the samples of every expectation, and a sample query of one that finds nothing reads the
    whole partition to the end: two more scans per expectation, most of the time of a suite on a large
    delivery (bench/run_all.py). So the counts come first, with no samples (LIMIT 0 reads nothing), and
    only the expectations that found unexpected values are run again for their samples; the results are
    the ones a single run with samples gives.
    """
    counted = batch.validate(suite, result_format=_map_format(0))
    again = set()
    for r in counted.results:
        result = r.result or {}
        if result.get("unexpected_count") and not (r.exception_info or {}).get("raised_exception"):
            again.add(r.expectation_config.id)
        # The empty lists a run with samples gives when there is nothing to sample (GX names no rows
        # of a compound key in SQL).
        if "partial_unexpected_list" in result:
            result.setdefault("partial_unexpected_counts", [])
        if "unexpected_index_column_names" in result and r.expectation_config.type != COMPOUND_UNIQUE:
            result.setdefault("partial_unexpected_index_list", [])
    if not again:
        return counted
    retry = gx.ExpectationSuite(name=suite.name, expectations=[c for c in configs if c["id"] in again])
    sampled = {
        r.expectation_config.id: r for r in batch.validate(retry, result_format=_map_format(SAMPLE_SIZE)).results
    }
    counted.results = [sampled.get(r.expectation_config.id, r) for r in counted.results]
    return counted


def _connect_args(warehouse_url: str, table: str, schema: str = "clean") -> dict[str, str]:
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
        # Read-only: the suite's SQL (statisticians write some of it) can read, never write.
        "options": f"{options} -c search_path={schema},public -c default_transaction_read_only=on".strip(),
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
        table=expectation_table(config),
        skipped=result.pop("skipped", None),
        row_level=False,
        rows_failing=None,
        **result,
    )


def _skipped(config: dict, reason: str) -> ExpectationOutcome:
    return _identified(
        config,
        expectation_columns(config),
        success=True,
        unexpected_count=None,
        unexpected_percent=None,
        observed_value=None,
        samples=[],
        error=None,
        skipped=reason,
    )


# The metric of an unexpected_rows_expectation that runs the rule's query as written (its count runs it inside
# GX's SELECT COUNT(*) FROM (...)): where the two fail differently, the error of the query as written comes first.
_RULE_AS_WRITTEN = "metric_name='unexpected_rows_query.table'"


def _error(res: dict) -> str | None:
    """The first line of what made an expectation fail to evaluate (identifiers masked), or None.

    GX gives either one exception for the expectation, or one per metric that failed, keyed by the metric, in
    the order its graph gave up on them: the order in which it iterates a set of metrics, which Python's string
    hashing makes differ from one process to the next. Taking the first of them reported, for a rule whose
    metrics fail differently, one error or the other at random (a data-modifying WITH in an unexpected_rows
    query is refused as a write when run as written, and by the parser once GX nests it in its COUNT: the
    flaky test_a_rule_written_in_sql_cannot_change_the_warehouse). Every distinct error is reported, in an
    order of their own: the rule's query as written first, then by metric."""
    info = res.get("exception_info") or {}
    if "raised_exception" in info:
        infos = [info]
    else:
        keys = sorted((k for k, v in info.items() if isinstance(v, dict)), key=lambda k: (_RULE_AS_WRITTEN not in k, k))
        infos = [info[k] for k in keys]
    messages: list[str] = []
    for i in infos:
        if i.get("raised_exception") or i.get("exception_message"):
            # psycopg2 messages carry the SQL after a newline: keep the first line.
            message = _scrub(_first_line(i.get("exception_message") or "exception"))
            if message not in messages:
                messages.append(message)
    return "; ".join(messages) or None


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
    if is_row_query(config["type"]):
        found = (result.get("details") or {}).get("unexpected_rows") or []
        keep = [c for c in ROW_REF_COLUMNS if c not in columns] + columns
        for row in found[:SAMPLE_SIZE]:
            if isinstance(row, dict):
                # A row without a row reference is an aggregate (a count, a total): shown whole.
                rows.append({c: row[c] for c in keep if c in row} if "_file" in row else dict(row))
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
    if is_row_query(config["type"]):
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


# -- offending rows, in SQL --------------------------------------------------------------------------


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _col(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _row_predicate(exp_type: str, kw: dict[str, Any], table: str) -> str | None:
    """SQL true for a row the expectation finds unexpected, for the types anbar knows; else None."""
    c = _col(kw["column"]) if isinstance(kw.get("column"), str) else None
    if exp_type == "expect_column_values_to_not_be_null" and c:
        return f"{c} is null"
    if exp_type in ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set") and c:
        values = kw.get("value_set")
        if not isinstance(values, list) or not values:
            return None
        negate = "not " if exp_type == "expect_column_values_to_be_in_set" else ""
        return f"{c} is not null and {c} {negate}in ({', '.join(_literal(v) for v in values)})"
    if exp_type == "expect_column_values_to_be_between" and c:
        out = []
        if kw.get("min_value") is not None:
            out.append(f"{c} {'<=' if kw.get('strict_min') else '<'} {_literal(kw['min_value'])}")
        if kw.get("max_value") is not None:
            out.append(f"{c} {'>=' if kw.get('strict_max') else '>'} {_literal(kw['max_value'])}")
        return f"{c} is not null and ({' or '.join(out)})" if out else None
    if exp_type == "expect_column_values_to_match_regex" and c and isinstance(kw.get("regex"), str):
        return f"{c} is not null and {c}::text !~ {_literal(kw['regex'])}"
    if exp_type == "expect_column_values_to_not_match_regex" and c and isinstance(kw.get("regex"), str):
        return f"{c} is not null and {c}::text ~ {_literal(kw['regex'])}"
    if exp_type == "expect_column_values_to_be_unique" and c:
        return f"{c} in (select {c} from {table} group by {c} having count(*) > 1)"
    if exp_type == "expect_compound_columns_to_be_unique" and isinstance(kw.get("column_list"), list):
        cols = ", ".join(_col(x) for x in kw["column_list"])
        return f"({cols}) in (select {cols} from {table} group by {cols} having count(*) > 1)"
    if exp_type == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = _col(kw["column_A"]), _col(kw["column_B"])
        op = ">=" if kw.get("or_equal") else ">"
        missing = kw.get("ignore_row_if", "both_values_are_missing")
        if missing == "either_value_is_missing":
            guard = f"{a} is not null and {b} is not null"
        elif missing == "both_values_are_missing":
            guard = f"not ({a} is null and {b} is null)"
        else:
            guard = "true"
        return f"{guard} and not coalesce({a} {op} {b}, false)"
    from anbar.gx_custom import MAP_CONDITIONS, condition_sql, sa

    condition = MAP_CONDITIONS.get(exp_type)
    if condition is not None and c:
        if exp_type == "expect_column_values_to_be_in_code_list" and not isinstance(kw.get("code_list"), str):
            return None
        return f"{c} is not null and not ({condition_sql(condition(sa.column(kw['column']), kw))})"
    return None


def failing_rows_sql(config: dict, table: str) -> str | None:
    """A query selecting ``_file, _row_no`` of every row the (failed) expectation found, or None when
    its finding is about the table as a whole or anbar cannot name the rows.

    ``table`` is the partition the expectation ran on (SQL, quoted). A check restricted by GX's
    ``row_condition`` is treated as a table-level finding.
    """
    kw = config.get("kwargs") or {}
    if kw.get("row_condition"):
        return None
    if is_row_query(config["type"]):
        from anbar.gx_custom import CONTEXT_TYPES

        query = kw.get("unexpected_rows_query")
        context_type = CONTEXT_TYPES.get(config["type"])
        if not isinstance(query, str) or (context_type is not None and not context_type.row_level):
            return None
        # The query's own literal braces are doubled; format fills {batch} and undoubles them.
        body = query.format(batch=table)
        return f"select q._file, q._row_no from ({body}) q"
    predicate = _row_predicate(config["type"], kw, table)
    if predicate is None:
        return None
    return f"select _file, _row_no from {table} where {predicate}"
