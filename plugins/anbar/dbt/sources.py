"""dbt sources generated from the registry.

``dbt_project/models/staging/_sources.yml`` is rendered from the registry so the
warehouse never drifts from what suppliers deliver: one ``clean`` table per
registry dataset (with its bilingual descriptions, column docs and access tiers),
the submission ledger and Jalali calendar in ``anbar``, and the code lists in
``ref``. The file is committed; ``check`` (and a test) say whether it is current.

    python -m anbar.dbt sources           # rewrite the file
    python -m anbar.dbt sources --check   # exit 1 if it is stale
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from anbar.ddl import META_COLUMNS_CLEAN, clean_type
from anbar.registry import Dataset, Registry

HEADER = (
    "# GENERATED from the registry by anbar.dbt.sources: do not edit by hand.\n"
    "# Regenerate with `python -m anbar.dbt sources` after changing registry/*.yml.\n"
)

META_DOCS = {
    "_submission_id": ("Ledger id of the delivery (anbar.submissions.submission_id); one partition per delivery."),
    "_file": "Name of the delivered file the row came from.",
    "_row_no": "Row number of the record in the delivered file.",
    "_period": ("Reporting period label in the organisation's calendar (YYYY-MM, e.g. 1405-07 Jalali)."),
    "_flags": (
        "Warning rules of the expectation suite this row failed ('principle: rule'); the row is loaded all the "
        "same. Empty when it passed every rule."
    ),
}

SUBMISSIONS_COLUMNS = {
    "submission_id": "Ledger id of the delivery; the partition key of raw and clean tables.",
    "org": "Organisation code from the registry (e.g. sso).",
    "dataset": "Dataset name from the registry (e.g. insured_persons).",
    "period": "Reporting period label in the organisation's calendar (YYYY-MM).",
    "version": ("Delivery version of the period: a re-delivery supersedes the earlier ones once accepted."),
    "received_at": "When the delivery was received.",
    "status": ("received, landed, loaded, validated, accepted, rejected or failed; only accepted is used."),
    "updated_at": "When the delivery last changed status (for an accepted one: when it was accepted).",
}

JALALI_CALENDAR_COLUMNS = {
    "jalali": "Jalali date written YYYY/MM/DD.",
    "jalali_year": "Jalali year.",
    "jalali_month": "Jalali month (1-12).",
    "jalali_day": "Jalali day of the month.",
    "gregorian": "The same day in the Gregorian calendar.",
}

EXPECTED_SUBMISSIONS_COLUMNS = {
    "org": SUBMISSIONS_COLUMNS["org"],
    "dataset": SUBMISSIONS_COLUMNS["dataset"],
    "period": SUBMISSIONS_COLUMNS["period"],
    "period_start": "First Gregorian day of the period.",
    "period_end": "First Gregorian day after the period (exclusive).",
    "due_date": "Last day to deliver on time: due_day days after the period ends, or a committee extension's date.",
    "grace_until": "Due date plus the dataset's grace days: nothing delivered by the end of this day is missing.",
    "extension_decision": "The committee decision that extended this period's due date, if any.",
    "timezone": "The organisation's time zone, in which the due date is a day.",
    "synced_at": "When the registry last added or changed the row.",
}

SUBMISSION_STATUS_COLUMNS = {
    **{k: v for k, v in EXPECTED_SUBMISSIONS_COLUMNS.items() if k not in ("timezone", "synced_at")},
    "status": "expected, late, missing, received, validated, resubmitted, loaded or rejected (see anbar.ddl).",
    "first_received_at": "When the first version was received.",
    "latest_received_at": "When the latest version was received.",
    "validated_at": "When the latest version passed validation.",
    "accepted_at": "When the version the warehouse uses was accepted.",
    "rejected_at": "When the latest version was rejected.",
    "missing_recorded_at": "When the ingest recorded the period missing (nothing by the end of the grace).",
    "on_time": "The first version arrived on or before the due date (null: nothing yet, not yet due).",
    "days_late": "Days between the due date and the first version's arrival (0 if on time; null if none).",
    "versions": "Versions delivered.",
    "resubmissions": "Versions delivered after the first.",
    "accepted_first_time": "The first version was accepted (null while it is undecided, or nothing arrived).",
    "latest_submission_id": "Ledger id of the latest version.",
    "latest_version": "Version number of the latest version.",
    "latest_ledger_status": "The latest version's status in anbar.submissions.",
    "reason": "Why the latest version was rejected, if it was.",
    "rows_manifest": "Rows the latest version's manifest declares.",
    "rows_loaded": "Rows of the latest version loaded.",
    "rows_rejected": "Rows of the latest version rejected.",
    "in_use_submission_id": "Ledger id of the accepted version the warehouse uses.",
    "timezone": EXPECTED_SUBMISSIONS_COLUMNS["timezone"],
    "status_on": "The day (in the organisation's time zone) the status is as of.",
}

QUALITY_SCORECARD_COLUMNS = {
    "submission_id": "Ledger id of the delivery scored.",
    "org": SUBMISSIONS_COLUMNS["org"],
    "dataset": SUBMISSIONS_COLUMNS["dataset"],
    "period": SUBMISSIONS_COLUMNS["period"],
    "version": "Version of the delivery scored (0: the period was recorded missing).",
    "principle": "conversion, system, consistency or quality.",
    "rules_evaluated": "Rules of the principle evaluated.",
    "rules_failed": "Rules of the principle that failed.",
    "blocking_failed": "Blocking rules of the principle that failed.",
    "rows_failing": "Rows failing a rule of the principle.",
    "outcome": "The delivery's outcome.",
    "scored_at": "When the delivery was scored.",
}

CODE_LIST_COLUMNS = {
    "code_list": "Name of the code list (registry/code_lists/<name>.yml).",
    "code": "The code as delivered.",
    "label_fa": "Persian label.",
    "label_en": "English label.",
}


def _bilingual(en: str, fa: str) -> str:
    return f"{en} / {fa}"


def _column(ds: Dataset, name: str) -> dict[str, Any]:
    col = ds.column(name)
    meta: dict[str, Any] = {"access_tier": col.access_tier.value, "required": col.required}
    if col.identifier:
        meta["identifier"] = col.identifier.value
    if col.code_list:
        meta["code_list"] = col.code_list
    if col.calendar:
        meta["supplier_calendar"] = col.calendar.value
    if col.min is not None:
        meta["min"] = col.min
    if col.max is not None:
        meta["max"] = col.max
    meta["description_fa"] = col.description.fa
    meta["description_en"] = col.description.en
    return {
        "name": col.name,
        "description": _bilingual(col.description.en, col.description.fa),
        "data_type": clean_type(col),
        "config": {"meta": meta},
    }


def _clean_table(registry: Registry, ds: Dataset) -> dict[str, Any]:
    org = registry.org(ds.org)
    columns = [
        {"name": name, "description": META_DOCS[name], "data_type": type_.split()[0]}
        for name, type_ in META_COLUMNS_CLEAN
    ]
    columns += [_column(ds, c.name) for c in ds.columns]
    return {
        "name": ds.key,
        "description": _bilingual(ds.description.en, ds.description.fa),
        "config": {
            "meta": {
                "org": ds.org,
                "org_name_en": org.names.en,
                "org_name_fa": org.names.fa,
                "dataset": ds.name,
                "schema_version": ds.schema_version,
                "access_tier": ds.access_tier.value,
                "calendar": org.calendar.value,
                "period": ds.period,
                "due_day": ds.due_day,
                "grace_days": ds.grace_days,
                "transport": org.transport.kind,
                "primary_key": list(ds.primary_key),
                "asset_uri": ds.asset_uri,
                "description_fa": ds.description.fa,
                "description_en": ds.description.en,
            },
        },
        "columns": columns,
    }


def _simple_table(name: str, description: str, columns: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "columns": [{"name": n, "description": d} for n, d in columns.items()],
    }


def sources_document(registry: Registry) -> dict[str, Any]:
    datasets = sorted(registry.datasets, key=lambda d: d.key)
    return {
        "version": 2,
        "sources": [
            {
                "name": "clean",
                "schema": "clean",
                "description": (
                    "Delivered rows converted and typed, one partition per submission "
                    "(every version, accepted or not). Read only by staging, through the "
                    "latest_accepted macro."
                ),
                "tables": [_clean_table(registry, ds) for ds in datasets],
            },
            {
                "name": "anbar",
                "schema": "anbar",
                "description": "Submission ledger and calendar tables kept by the ingest DAGs.",
                "tables": [
                    _simple_table(
                        "submissions",
                        "Submission ledger: one row per delivery (org, dataset, period, version).",
                        SUBMISSIONS_COLUMNS,
                    ),
                    _simple_table(
                        "jalali_calendar",
                        "One row per day: the Jalali date and its Gregorian equivalent.",
                        JALALI_CALENDAR_COLUMNS,
                    ),
                    _simple_table(
                        "expected_submissions",
                        "The expected-submission calendar: one row per organisation, dataset and period due "
                        "(anbar.expected).",
                        EXPECTED_SUBMISSIONS_COLUMNS,
                    ),
                    _simple_table(
                        "submission_status",
                        "View: the status of every expected submission as of today, with its timestamps and "
                        "punctuality.",
                        SUBMISSION_STATUS_COLUMNS,
                    ),
                    _simple_table(
                        "quality_scorecard_latest",
                        "View: per principle, the rules evaluated and failed of the latest version of each period.",
                        QUALITY_SCORECARD_COLUMNS,
                    ),
                ],
            },
            {
                "name": "ref",
                "schema": "ref",
                "description": "Reference data loaded from the registry.",
                "tables": [
                    _simple_table(
                        "code_list_values",
                        "Codes and bilingual labels of every registry code list.",
                        CODE_LIST_COLUMNS,
                    )
                ],
            },
        ],
    }


class _IndentedDumper(yaml.SafeDumper):
    """Indents block sequences under their key (the style of the hand-written YAML)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def render_sources(registry: Registry) -> str:
    """The text of ``_sources.yml`` for this registry (deterministic)."""
    body = yaml.dump(
        sources_document(registry),
        Dumper=_IndentedDumper,
        allow_unicode=True,
        sort_keys=False,
        width=1000,
        default_flow_style=False,
    )
    return HEADER + body


def default_path() -> Path:
    from anbar.dbt import PROJECT_DIR

    return PROJECT_DIR / "models" / "staging" / "_sources.yml"


def write_sources(registry: Registry, path: Path | str | None = None) -> Path:
    path = Path(path) if path is not None else default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_sources(registry), encoding="utf-8")
    return path


def check(registry: Registry, path: Path | str | None = None) -> bool:
    """True when the file on disk is exactly what the registry renders to."""
    path = Path(path) if path is not None else default_path()
    try:
        current = path.read_text(encoding="utf-8")
    except OSError:
        return False
    return current == render_sources(registry)
