"""Rules anbar applies itself, outside the suite files, and the principle each belongs to.

Every finding reported to a supplier or counted in the scorecard carries one of the four
principles. Suite files tag their own rules; this module tags the rest:

- the checks of receiving and loading a delivery (the exchange standard's reason codes: a
  broken manifest, a wrong checksum, a wrong encoding...), which reject a delivery before any
  suite runs;
- ``conversion.types``: every value converts to its registry type (rows that do not are
  rejected at load, with their reasons, in ``raw.rejected_rows``);
- ``quality.timeliness``: the delivery arrived by its due date.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    rule: str
    principle: str
    fa: str
    en: str


# Reason codes of the exchange standard (Appendix B), by the principle they break.
REASON_RULES: dict[str, Rule] = {
    "missing": Rule(
        "quality.delivered", "quality", "داده تا پایان مهلت تحویل شده است", "The data was delivered by the deadline"
    ),
    "invalid_manifest": Rule(
        "quality.manifest_valid",
        "quality",
        "فایل manifest.json کامل و مطابق استاندارد است",
        "manifest.json is complete and follows the standard",
    ),
    "manifest_mismatch": Rule(
        "quality.manifest_matches",
        "quality",
        "manifest همان سازمان، مجموعه‌داده و دوره را نام می‌برد",
        "The manifest names the same organisation, dataset and period",
    ),
    "missing_file": Rule(
        "quality.files_present",
        "quality",
        "همهٔ فایل‌های نام‌برده در manifest تحویل شده‌اند",
        "Every file the manifest lists was delivered",
    ),
    "unsafe_file_name": Rule(
        "quality.file_names",
        "quality",
        "نام فایل‌ها مطابق استاندارد و بی‌خطر است",
        "File names follow the standard and are safe",
    ),
    "size_mismatch": Rule(
        "quality.file_sizes",
        "quality",
        "اندازهٔ هر فایل با manifest برابر است (فایل ناقص نیست)",
        "Each file has the size the manifest declares (no truncated file)",
    ),
    "checksum_mismatch": Rule(
        "quality.checksums",
        "quality",
        "چکیدهٔ sha256 هر فایل با manifest برابر است",
        "Each file has the sha256 the manifest declares",
    ),
    "row_count_mismatch": Rule(
        "quality.row_counts",
        "quality",
        "تعداد ردیف‌ها با manifest برابر است",
        "The number of rows is the one the manifest declares",
    ),
    "missing_column": Rule(
        "quality.required_columns",
        "quality",
        "همهٔ ستون‌های الزامی مصوب وجود دارند",
        "Every required column of the approved schema is present",
    ),
    "unexpected_column": Rule(
        "quality.approved_columns",
        "quality",
        "ستونی خارج از طرح مصوب وجود ندارد",
        "No column outside the approved schema",
    ),
    "schema_version": Rule(
        "quality.schema_version",
        "quality",
        "تحویل در نسخهٔ مصوب طرح داده است",
        "The delivery follows the approved schema version",
    ),
    "unsupported_encoding": Rule(
        "conversion.encoding",
        "conversion",
        "کدگذاری اعلام‌شده یکی از کدگذاری‌های مجاز است",
        "The declared encoding is one of those allowed",
    ),
    "encoding_error": Rule(
        "conversion.encoding",
        "conversion",
        "کدگذاری متن همان است که manifest اعلام کرده (UTF-8 یا Windows-1256)",
        "The text encoding is the one the manifest declares (UTF-8 or Windows-1256)",
    ),
    "invalid_header": Rule(
        "conversion.csv_header",
        "conversion",
        "سطر سرستون CSV مطابق استاندارد است",
        "The CSV header line follows the standard",
    ),
    "malformed_csv": Rule(
        "conversion.csv_format",
        "conversion",
        "فایل CSV مطابق استاندارد است (نقل‌قول‌ها، تعداد فیلدها)",
        "The CSV follows the standard (quoting, number of fields)",
    ),
    "malformed_records": Rule(
        "conversion.api_records",
        "conversion",
        "رکوردهای API در قالب JSON توافق‌شده‌اند",
        "The API records are JSON of the agreed form",
    ),
}

CONVERSION_TYPES = Rule(
    "conversion.types",
    "conversion",
    "هر مقدار به نوع مصوب خود (عدد، تاریخ شمسی یا میلادی) تبدیل‌پذیر است",
    "Every value converts to its approved type (number, Jalali or Gregorian date)",
)
TIMELINESS = Rule(
    "quality.timeliness",
    "quality",
    "تحویل تا روز سررسید انجام شده است",
    "The delivery arrived by its due date",
)


def rule_for_reason(reason: str) -> Rule:
    """The rule a rejection reason code breaks (unknown codes count as quality)."""
    return REASON_RULES.get(reason) or Rule(f"quality.{reason}", "quality", reason, reason)
