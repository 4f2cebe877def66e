"""Emails to suppliers and the warehouse team, over SMTP through Airflow's smtp provider.

Each mail has a dedup key recorded in ``anbar.notifications``; a retried task or a
cleared run finds the key already sent and sends nothing.

The table is also the outbox: a mail the server refused (or could not be reached for) stays
there unsent, with its content, attempts and last error, and ``send_pending`` (the
``anbar_mail_outbox`` DAG) sends it once the server is back — a deadline alert, which Airflow
fires only once, is not lost to a mail server outage.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from jinja2 import Environment, PackageLoader, select_autoescape
from psycopg2.extras import Json

from anbar import feedback, settings
from anbar.registry import Dataset, Organisation

log = logging.getLogger(__name__)

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

    def content(self) -> dict:
        """What the outbox keeps to send the mail later (``anbar.notifications.mail``)."""
        return {k: v for k, v in asdict(self).items() if k not in ("dedup_key", "kind", "submission_id")}


class MailNotSent(RuntimeError):
    """The mail server refused the mail or could not be reached; the mail waits in the outbox."""


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


# What an error's text may quote of the data: a quoted literal (PostgreSQL quotes the value it could not
# convert), a key's values in a constraint's detail ("Key (national_id)=(0076229645) already exists"),
# a long run of digits (an identifier, an amount).
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'|«[^»]*»")
_KEY_VALUES = re.compile(r"\)=\([^)]*\)")
_LONG_NUMBER = re.compile(r"[0-9۰-۹٠-٩]{5,}")
ERROR_SUMMARY_LENGTH = 300


def error_summary(exc: BaseException | None) -> str:
    """An exception for a mail: its type and the first line of its message, with quoted text, key values and
    long numbers left out (a database error can quote the row it failed on; mails carry no row values)."""
    if exc is None:
        return "(no exception recorded)"
    lines = str(exc).strip().splitlines()
    first = _LONG_NUMBER.sub("…", _QUOTED.sub("«…»", _KEY_VALUES.sub(")=(…)", lines[0] if lines else "")))
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text if len(text) <= ERROR_SUMMARY_LENGTH else text[: ERROR_SUMMARY_LENGTH - 1] + "…"


def task_failure_mail(dag_id: str, task_id: str, map_index: int, run_id: str, exc: BaseException | None) -> Mail:
    """The warehouse team's mail about a task that failed after its retries (one per task instance).

    Everything from the run (ids, the error) is escaped by the template; the error is :func:`error_summary`'s."""
    subject = f"[anbar] task failed: {dag_id}.{task_id}[{map_index}] {run_id}"
    return Mail(
        dedup_key=f"task-failed:{dag_id}:{run_id}:{task_id}:{map_index}",
        kind="task_failed",
        recipients=settings.warehouse_team(),
        subject=subject,
        html=_env.get_template("task_failed.html").render(
            subject=subject,
            dag_id=dag_id,
            task_id=task_id,
            map_index=map_index,
            run_id=run_id,
            error=error_summary(exc),
        ),
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
    """Send once. Returns False if this dedup key was already sent.

    If the mail server fails, the mail stays in the outbox unsent and ``MailNotSent`` is raised: a retry of
    the caller, or ``send_pending``, sends it (once) when the server is back."""
    with conn.cursor() as cur:
        cur.execute(
            "insert into anbar.notifications (dedup_key, kind, submission_id, recipients, subject, mail) "
            "values (%s, %s, %s, %s, %s, %s) on conflict (dedup_key) do nothing",
            _recorded(mail),
        )
    return _send_locked(conn, mail, smtp_conn_id)


def _recorded(mail: Mail) -> tuple:
    """The outbox columns dedup_key, kind, submission_id, recipients, subject, mail."""
    recipients = [*mail.recipients, *mail.cc]
    return (mail.dedup_key, mail.kind, mail.submission_id, recipients, mail.subject, Json(mail.content()))


def send_pending(
    conn, smtp_conn_id: str | None = None, *, withdraw: Callable[[object, Mail], str | None] | None = None
) -> dict[str, list[str]]:
    """Send every mail of the outbox (recorded, never sent), oldest first, each at most once as by ``send``.

    ``withdraw(conn, mail)`` says why a mail should no longer go out (a reminder whose delivery arrived
    while the server was down), or None: such a mail is taken out of the outbox unsent, with the reason.
    Returns the dedup keys ``sent``, ``failed`` (still unsent: the server refused them again) and
    ``withdrawn``."""
    with conn.cursor() as cur:
        cur.execute(
            "select dedup_key, kind, submission_id, mail from anbar.notifications "
            "where sent_at is null and mail is not null order by notification_id"
        )
        pending = [Mail(dedup_key=k, kind=kind, submission_id=sid, **mail) for k, kind, sid, mail in cur.fetchall()]
    conn.commit()
    done: dict[str, list[str]] = {"sent": [], "failed": [], "withdrawn": []}
    for mail in pending:
        reason = withdraw(conn, mail) if withdraw else None
        if reason:
            with conn.cursor() as cur:
                # mail null: out of the outbox; sent_at null: never sent, so a later send() of the key may
                cur.execute(
                    "update anbar.notifications set mail = null, last_error = %s "
                    "where dedup_key = %s and sent_at is null",
                    (f"withdrawn, not sent: {reason}", mail.dedup_key),
                )
            conn.commit()
            log.info("%s withdrawn, not sent: %s", mail.dedup_key, reason)
            done["withdrawn"].append(mail.dedup_key)
            continue
        try:
            # skip_locked: a mail a concurrent sender holds is theirs to send
            if _send_locked(conn, mail, smtp_conn_id, skip_locked=True):
                done["sent"].append(mail.dedup_key)
        except MailNotSent as exc:
            log.warning("%s", exc)
            done["failed"].append(mail.dedup_key)
    return done


def _send_locked(conn, mail: Mail, smtp_conn_id: str | None, *, skip_locked: bool = False) -> bool:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with conn.cursor() as cur:
        cur.execute(
            "select sent_at from anbar.notifications where dedup_key = %s for update"
            + (" skip locked" if skip_locked else ""),
            (mail.dedup_key,),
        )
        row = cur.fetchone()
        if row is None or row[0] is not None:
            conn.commit()
            return False
        # The row stays locked while we talk to the SMTP server, so a concurrent retry waits
        # and then sees sent_at set; if sending fails, the mail is kept unsent for the retry.
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
        except Exception as exc:
            conn.rollback()
            try:
                _keep_unsent(conn, mail, exc)
            except Exception:
                log.exception("could not keep %s unsent in the outbox", mail.dedup_key)
                raise exc from None
            raise MailNotSent(
                f"{mail.dedup_key} not sent: the mail server failed ({type(exc).__name__}: {exc}); it is kept "
                "unsent in anbar.notifications, and anbar_mail_outbox sends it when the server is back"
            ) from exc
        except BaseException:
            conn.rollback()
            raise
        cur.execute(
            "update anbar.notifications set sent_at = now(), attempts = attempts + 1, last_attempt_at = now(), "
            "last_error = null where dedup_key = %s",
            (mail.dedup_key,),
        )
    conn.commit()
    return True


def _keep_unsent(conn, mail: Mail, exc: Exception) -> None:
    """Record a failed attempt; the mail stays in the outbox (never marks it sent)."""
    error = f"{type(exc).__name__}: {exc}"[:2000]
    with conn.cursor() as cur:
        cur.execute(
            "insert into anbar.notifications as n (dedup_key, kind, submission_id, recipients, subject, mail, "
            "attempts, last_attempt_at, last_error) values (%s, %s, %s, %s, %s, %s, 1, now(), %s) "
            "on conflict (dedup_key) do update set attempts = n.attempts + 1, last_attempt_at = now(), "
            "last_error = excluded.last_error, mail = coalesce(n.mail, excluded.mail) where n.sent_at is null",
            (*_recorded(mail), error),
        )
    conn.commit()
