"""Emails to suppliers and the warehouse team, over SMTP through Airflow's smtp provider.

Each mail has a dedup key recorded in ``anbar.notifications``; a retried task or a
cleared run finds the key already sent and sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jinja2 import Environment, PackageLoader, select_autoescape

from anbar import feedback, settings
from anbar.registry import Dataset, Organisation

_env = Environment(
    loader=PackageLoader("anbar", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass
class Mail:
    dedup_key: str
    kind: str
    recipients: list[str]
    subject: str
    html: str
    submission_id: int | None = None
    attachments: list[str] = field(default_factory=list)  # file paths, attached under their file names
    cc: list[str] = field(default_factory=list)


def feedback_mail(org: Organisation, ds: Dataset, report: dict) -> Mail:
    """The feedback on one submission (accepted or rejected), per principle, to the focal points."""
    kind = "rejected" if report["status"] == "rejected" else "accepted"
    return Mail(
        dedup_key=f"{kind}:{report['submission_id']}",
        kind=kind,
        recipients=[*org.focal_points, *settings.warehouse_team()],
        subject=feedback.subject(report),
        html=feedback.render_html(report),
        submission_id=report["submission_id"],
    )


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
    submission = {
        "submission_id": submission_id,
        "period": period,
        "version": version,
        "status": "rejected",
        "reason": reason,
        "message": message,
        "rows_manifest": rows_manifest,
        "rows_loaded": rows_loaded or 0,
        "rows_rejected": rows_rejected or 0,
    }
    return feedback_mail(org, ds, feedback.build(org, ds, submission, summary))


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
            (mail.dedup_key, mail.kind, mail.submission_id, [*mail.recipients, *mail.cc], mail.subject),
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
                    to=mail.recipients,
                    subject=mail.subject,
                    html_content=mail.html,
                    from_email=settings.mail_from(),
                    files=list(mail.attachments) or None,
                    cc=list(mail.cc) or None,
                )
        except BaseException:
            conn.rollback()
            raise
        cur.execute("update anbar.notifications set sent_at = now() where dedup_key = %s", (mail.dedup_key,))
    conn.commit()
    return True
