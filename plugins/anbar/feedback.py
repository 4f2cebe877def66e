"""Feedback to the supplier for every submission: per principle, the rules passed and failed.

:func:`build` turns a ledger row and its validation summary into one plain dict (kept as
``report.json`` beside the landed delivery); :func:`render_html` makes the bilingual page
(Persian right-to-left first, then English) that is both mailed to the focal points and kept
as ``feedback.html`` beside the delivery; :func:`findings_csv` lists every offending row by
file and row number (no values, so no identifiers) as ``findings.csv``.

A delivery rejected before any suite ran (a broken manifest, a wrong checksum...) is reported
the same way: the one rule it broke, under its principle (:mod:`anbar.rules`).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from anbar.normalize import spreadsheet_csv_rows
from anbar.registry import Dataset, Organisation
from anbar.rules import rule_for_reason
from anbar.suites import PRINCIPLES

_env = Environment(
    loader=PackageLoader("anbar", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

PRINCIPLE_NAMES = {
    "conversion": {"fa": "تبدیل", "en": "Conversion"},
    "system": {"fa": "نظام‌های طبقه‌بندی", "en": "Classification systems"},
    "consistency": {"fa": "سازگاری", "en": "Consistency"},
    "quality": {"fa": "کیفیت", "en": "Quality"},
}
STATUS_NAMES = {
    "accepted": {"fa": "پذیرفته شد", "en": "accepted"},
    "rejected": {"fa": "رد شد", "en": "rejected"},
    "missing": {"fa": "تحویل نشد", "en": "missing"},
}
REASONS_FA = {
    "missing": "تحویل انجام نشده است",
    "invalid_manifest": "فایل manifest نامعتبر است",
    "manifest_mismatch": "مشخصات manifest با محل تحویل مطابقت ندارد",
    "schema_version": "نسخه طرح داده مصوب نیست",
    "unsupported_encoding": "کدگذاری نویسه پشتیبانی نمی‌شود",
    "unsafe_file_name": "نام فایل مجاز نیست",
    "missing_file": "فایل اعلام‌شده تحویل نشده است",
    "size_mismatch": "اندازه فایل با manifest مطابقت ندارد",
    "checksum_mismatch": "چکیده sha256 فایل با manifest مطابقت ندارد",
    "encoding_error": "کدگذاری فایل با کدگذاری اعلام‌شده مطابقت ندارد",
    "missing_column": "ستون الزامی وجود ندارد",
    "unexpected_column": "ستون خارج از طرح مصوب",
    "invalid_header": "سطر عنوان نامعتبر است",
    "malformed_csv": "ساختار CSV نامعتبر است",
    "malformed_records": "رکوردهای API نامعتبر است",
    "row_count_mismatch": "تعداد سطرها با manifest مطابقت ندارد",
    "validation": "داده در بررسی استانداردها رد شد",
}
MAX_SAMPLES = 5


def _sample_text(sample: dict | str) -> str:
    """One offending row as 'file:row col=value' (identifiers arrive masked by the validator)."""
    if not isinstance(sample, dict):
        return str(sample)
    where = f"{sample.get('_file', '')}:{sample.get('_row_no', '')}" if "_file" in sample else ""
    values = " ".join(f"{k}={v}" for k, v in sample.items() if not k.startswith("_"))
    return f"{where} {values}".strip()


def _rule_entry(outcome: dict) -> dict[str, Any]:
    status = "not_applicable" if outcome.get("skipped") else "passed" if outcome.get("success") else "failed"
    desc = outcome.get("description") or {}
    return {
        "rule": outcome.get("rule") or outcome.get("type"),
        "type": outcome.get("type"),
        "severity": outcome.get("severity"),
        "status": status,
        "description": {"fa": desc.get("fa", ""), "en": desc.get("en", "")},
        "rows_failing": outcome.get("rows_failing")
        if outcome.get("rows_failing") is not None
        else outcome.get("unexpected_count"),
        "unexpected_percent": outcome.get("unexpected_percent"),
        "observed": outcome.get("observed_value"),
        "note": outcome.get("skipped") or outcome.get("error"),
        "samples": [_sample_text(s) for s in (outcome.get("samples") or [])][:MAX_SAMPLES],
    }


def _outcomes(submission: dict, summary: dict | None) -> list[dict]:
    if summary and summary.get("expectations"):
        return list(summary["expectations"])
    reason = submission.get("reason")
    if not reason or submission.get("status") == "accepted":
        return []
    broken = rule_for_reason(reason)
    return [
        {
            "rule": broken.rule,
            "type": "anbar",
            "principle": broken.principle,
            "severity": "blocking",
            "description": {"fa": broken.fa, "en": broken.en},
            "success": False,
            "unexpected_count": None,
            "samples": [],
            "error": submission.get("message"),
        }
    ]


def build(org: Organisation, ds: Dataset, submission: dict, summary: dict | None) -> dict[str, Any]:
    """The feedback report of one submission (JSON-ready). ``submission`` holds the ledger's columns."""
    outcomes = _outcomes(submission, summary)
    principles = []
    for p in PRINCIPLES:
        rules = [_rule_entry(o) for o in outcomes if o.get("principle") == p]
        principles.append(
            {
                "principle": p,
                "name": PRINCIPLE_NAMES[p],
                "passed": sum(1 for r in rules if r["status"] == "passed"),
                "failed": sum(1 for r in rules if r["status"] == "failed"),
                "not_applicable": sum(1 for r in rules if r["status"] == "not_applicable"),
                "rules": rules,
            }
        )
    decision = (summary or {}).get("decision") or {}
    status = submission["status"]
    reason = submission.get("reason")
    return {
        "submission_id": submission.get("submission_id"),
        "org": org.code,
        "organisation": {"fa": org.names.fa, "en": org.names.en},
        "dataset": ds.name,
        "dataset_description": {"fa": ds.description.fa, "en": ds.description.en},
        "period": submission["period"],
        "version": submission.get("version"),
        "status": status,
        "status_name": STATUS_NAMES.get(status, {"fa": status, "en": status}),
        "reason": reason,
        "reason_fa": REASONS_FA.get(reason or "", reason),
        "message": submission.get("message"),
        "rows_manifest": submission.get("rows_manifest"),
        "rows_counted": submission.get("rows_counted"),
        "rows_loaded": submission.get("rows_loaded"),
        "rows_rejected": submission.get("rows_rejected"),
        "rows_flagged": decision.get("rows_flagged", 0),
        "policy": (summary or {}).get("policy"),
        "principles": principles,
        "rules_failed": sum(p["failed"] for p in principles),
        "data_docs_url": (summary or {}).get("data_docs_url"),
    }


def subject(report: dict[str, Any]) -> str:
    where = f"{report['org']}/{report['dataset']} {report['period']} v{report['version']}"
    if report["status"] == "rejected":
        return f"[anbar] REJECTED {where}: {report['reason']} | رد تحویل"
    rejected = report.get("rows_rejected") or 0
    flagged = report.get("rows_flagged") or 0
    return (
        f"[anbar] ACCEPTED {where}: {report.get('rows_loaded') or 0} rows loaded, {rejected} rejected, "
        f"{flagged} flagged | پذیرش تحویل"
    )


def render_html(report: dict[str, Any]) -> str:
    return _env.get_template("feedback.html").render(r=report, subject=subject(report))


def findings_csv(rows: list[tuple]) -> str:
    """``file,row_no,principle,rule,severity`` for every offending row (from ``anbar.row_findings``), each
    text cell safe to open in a spreadsheet (a rule named ``=x`` would otherwise run as a formula)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", "row_no", "principle", "rule", "severity"])
    writer.writerows(spreadsheet_csv_rows(rows))
    return out.getvalue()
