"""Emails to suppliers and the warehouse team, over SMTP through Airflow's smtp provider.

Each mail has a dedup key recorded in ``anbar.notifications``; a retried task or a
cleared run finds the key already sent and sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import Environment, PackageLoader, select_autoescape

from anbar import settings
from anbar.registry import Dataset, Organisation

_env = Environment(
    loader=PackageLoader("anbar", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

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

PRINCIPLES_FA = {"conversion": "تبدیل", "system": "نظام‌های طبقه‌بندی", "consistency": "سازگاری", "quality": "کیفیت"}


@dataclass
class Mail:
    dedup_key: str
    kind: str
    recipients: list[str]
    subject: str
    html: str
    submission_id: int | None = None


def _sample_text(sample: dict | str) -> str:
    """One offending row as 'file:row col=value' (identifiers arrive masked by the validator)."""
    if not isinstance(sample, dict):
        return str(sample)
    where = f"{sample.get('_file', '')}:{sample.get('_row_no', '')}"
    values = " ".join(f"{k}={v}" for k, v in sample.items() if not k.startswith("_"))
    return f"{where} {values}".strip()


def _failures(summary: dict | None) -> list[dict]:
    out = []
    for e in (summary or {}).get("expectations", []):
        if e.get("success"):
            continue
        desc = e.get("description") or {}
        out.append(
            {
                "principle": e.get("principle", ""),
                "severity": e.get("severity", ""),
                "description_en": desc.get("en", e.get("type", "")),
                "description_fa": desc.get("fa", ""),
                "unexpected_count": e.get("unexpected_count"),
                "sample": [_sample_text(s) for s in (e.get("samples") or [])][:5],
            }
        )
    return out


def rejection_mail(
    org: Organisation,
    ds: Dataset,
    *,
    submission_id: int,
    period: str,
    version: int,
    reason: str,
    message: str,
    rows_manifest: int | None,
    rows_loaded: int | None,
    rows_rejected: int | None,
    summary: dict | None = None,
) -> Mail:
    subject = f"[anbar] REJECTED {org.code}/{ds.name} {period} v{version}: {reason} | رد تحویل"
    return _supplier_mail(
        f"rejected:{submission_id}",
        "rejected",
        org,
        subject,
        "rejection.html",
        submission_id=submission_id,
        ds=ds,
        period=period,
        version=version,
        reason=reason,
        reason_fa=REASONS_FA.get(reason, reason),
        message=message,
        rows_manifest=rows_manifest,
        rows_loaded=rows_loaded or 0,
        rows_rejected=rows_rejected or 0,
        failures=_failures(summary),
        principles_fa=PRINCIPLES_FA,
    )


def missing_mail(org: Organisation, ds: Dataset, period: str, detail: str) -> Mail:
    subject = f"[anbar] MISSING {org.code}/{ds.name} {period}: no delivery by the due date | عدم تحویل"
    return _supplier_mail(
        f"missing:{org.code}/{ds.name}/{period}",
        "missing",
        org,
        subject,
        "missing.html",
        ds=ds,
        period=period,
        detail=detail,
    )


def _supplier_mail(
    dedup_key: str,
    kind: str,
    org: Organisation,
    subject: str,
    template: str,
    submission_id: int | None = None,
    **context,
) -> Mail:
    """A mail to the organisation's focal points, copied to the warehouse team."""
    return Mail(
        dedup_key=dedup_key,
        kind=kind,
        recipients=[*org.focal_points, *settings.warehouse_team()],
        subject=subject,
        html=_env.get_template(template).render(subject=subject, org=org, **context),
        submission_id=submission_id,
    )


def send(conn, mail: Mail, smtp_conn_id: str | None = None) -> bool:
    """Send once. Returns False if this dedup key was already sent."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with conn.cursor() as cur:
        cur.execute(
            "insert into anbar.notifications (dedup_key, kind, submission_id, recipients, subject) "
            "values (%s, %s, %s, %s, %s) on conflict (dedup_key) do nothing",
            (mail.dedup_key, mail.kind, mail.submission_id, mail.recipients, mail.subject),
        )
        cur.execute("select sent_at from anbar.notifications where dedup_key = %s for update", (mail.dedup_key,))
        (sent_at,) = cur.fetchone()
        if sent_at is not None:
            conn.commit()
            return False
        # The row stays locked while we talk to the SMTP server, so a concurrent retry waits
        # and then sees sent_at set; if sending fails, the rollback leaves it unsent for the retry.
        try:
            with SmtpHook(smtp_conn_id=smtp_conn_id or settings.SMTP_CONN_ID) as smtp:
                smtp.send_email_smtp(
                    to=mail.recipients, subject=mail.subject, html_content=mail.html, from_email=settings.mail_from()
                )
        except BaseException:
            conn.rollback()
            raise
        cur.execute("update anbar.notifications set sent_at = now() where dedup_key = %s", (mail.dedup_key,))
    conn.commit()
    return True
