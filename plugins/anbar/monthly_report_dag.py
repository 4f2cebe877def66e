"""The monthly performance report DAG: each supplier's report and the ministry summary, archived and mailed.

``anbar_monthly_report`` runs once a Jalali month, on ``registry.ministry.report_day`` (a
:class:`~anbar.timetables.JalaliMonthlyTimetable` with ``run_day``), and reports on the month
that ended before it (the run's data interval; or the ``report_month`` param of a manual run):

    sync_calendar ─► collect_figures ─► report.render_and_archive ─► report.send
                                        (mapped: one per organisation, and one for the ministry summary)

* ``sync_calendar`` puts the periods the report covers on the expected-submission calendar
  (:func:`anbar.expected.sync`; idempotent), so a period no ingest run ever waited for counts too;
* ``collect_figures`` reads the warehouse (:func:`anbar.compliance.collect`) and passes the figures
  on as plain JSON;
* ``report.render_and_archive`` renders one report (:mod:`anbar.monthly_report`: HTML and PDF) and
  writes both, read-only, to ``<reports dir>/<report month>/<org>-<report month>.{html,pdf}``
  (``ministry-summary-<month>`` for the summary; :func:`archive`): a rerun that renders the same
  bytes finds them there; a report that differs from the one archived is kept beside it as a
  revision (``<org>-<month>.r2.pdf``), never over it;
* ``report.send`` mails the HTML with the PDF attached to the minister's office
  (``registry.ministry.minister_office``) through :func:`anbar.notify.send`, keyed
  ``monthly-report:<org>:<month>`` (``monthly-report:ministry:<month>`` for the summary): a retry
  or a cleared run sends nothing twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from itertools import count
from pathlib import Path

from airflow.sdk import DAG, Param, get_current_context, task, task_group

from anbar import settings
from anbar.dag_defaults import MAP_LABEL, START_DATE, default_args, label_map_index
from anbar.registry import Calendar, Registry
from anbar.timetables import TEHRAN, JalaliMonthlyTimetable, resolve_run_period

log = logging.getLogger(__name__)

DAG_ID = "anbar_monthly_report"
SUMMARY = "ministry"  # the map index of the ministry summary; no organisation may be coded so (registry.MINISTRY_FILE)


# --- what a run reports on -----------------------------------------------------------------------


def report_month_for_run(context) -> str:
    """The Jalali month a run reports on: the ``report_month`` param, else the run's data interval,
    else (a manual run without a logical date) the month complete when it was triggered."""
    dag_run = context.get("dag_run")
    return resolve_run_period(
        Calendar.jalali,
        data_interval_start=context.get("data_interval_start"),
        run_after=getattr(dag_run, "run_after", None),
        conf={"period": (context.get("params") or {}).get("report_month")},
    ).label


def generated_on_for_run(context) -> dt.date:
    """The day the report is dated: the run's ``run_after`` in Tehran (the report day of a scheduled
    run), so a retry or a cleared run dates it as the first attempt did."""
    from zoneinfo import ZoneInfo

    dag_run = context.get("dag_run")
    when = getattr(dag_run, "run_after", None) or dt.datetime.now(dt.UTC)
    return when.astimezone(ZoneInfo(TEHRAN)).date()


def targets(registry: Registry) -> list[str]:
    """What the report task group maps over: every organisation's code, then the ministry summary."""
    return [*sorted(registry.organisations), SUMMARY]


# --- the archive ---------------------------------------------------------------------------------


def file_stem(target: str, report_month: str) -> str:
    """``sso-1405-07``; ``ministry-summary-1405-07`` for the summary. Also the attachment's name."""
    return f"{'ministry-summary' if target == SUMMARY else target}-{report_month}"


def _write_new(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all, read-only; FileExistsError if it is there already."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o444)
        os.link(tmp, path)  # unlike rename, never replaces a file another run wrote meanwhile
    finally:
        os.unlink(tmp)


def archive(directory: Path, stem: str, files: dict[str, bytes]) -> dict[str, Path]:
    """Keep ``files`` (suffix -> bytes: ``{".html": ..., ".pdf": ...}``) as ``<directory>/<stem><suffix>``.

    Returns the paths that hold exactly these bytes: the same report archived before (a rerun), or
    the files just written. A different report already archived under the name is never replaced:
    these bytes become the next revision, ``<stem>.r2<suffix>`` (then ``.r3`` ...), with a warning.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for revision in count(1):
        name = stem if revision == 1 else f"{stem}.r{revision}"
        paths = {suffix: directory / f"{name}{suffix}" for suffix in files}
        there = {suffix: path.read_bytes() for suffix, path in paths.items() if path.exists()}
        if any(there[suffix] != files[suffix] for suffix in there):
            log.warning("a different report is archived as %s; keeping this one beside it", name)
            continue
        try:
            for suffix, data in files.items():
                if suffix not in there:
                    _write_new(paths[suffix], data)
        except FileExistsError:  # another run wrote it in the meantime: compare again
            return archive(directory, stem, files)
        return paths
    raise AssertionError("unreachable")


# --- the DAG ---------------------------------------------------------------------------------------

DOC_MD = """
# Monthly performance report to the minister's office

On day **{report_day}** of every Jalali month (Asia/Tehran), one report per organisation and a ministry summary on
the month that ended before it: timeliness (DHIS2 reporting and on-time rates) of the deliveries due in that month
and over the last 12 periods, quality by principle (share of rules passed, from `anbar.quality_scorecard_latest`) and
rows delivered. Each goes to {recipients} as an HTML e-mail with the PDF attached, and is archived under
`$ANBAR_REPORTS_DIR/<report month>/` (`<org>-<month>.pdf` and `.html`, `ministry-summary-<month>.*`).
Recipients and the day are in `registry/ministry.yml`.

## Tasks
0. `sync_calendar` — puts the last 12 periods of every dataset on `anbar.expected_submissions` (idempotent), so
   a period that no ingest run waited for is expected (and missing) all the same.
1. `collect_figures` — reads the warehouse (read-only): the expected submissions of the last 12 periods of every
   dataset with their status (`anbar.submission_status`), rows of the latest version, the scorecard.
2. `report.render_and_archive` — mapped, one per organisation and one (`ministry`) for the summary: renders the
   HTML and the PDF and archives both, read-only.
3. `report.send` — mails the archived report once (dedup key `monthly-report:<org>:<month>` in
   `anbar.notifications`).

## Triage
- **Re-run a month** (e.g. after late deliveries were accepted): trigger with the param `report_month`
  (`1405-07`). The files are regenerated; if the figures changed, the new report is archived beside the old one
  as `<org>-<month>.r2.pdf` (never over it) and **no mail is sent again**. To send it again, delete its row:
  `delete from anbar.notifications where dedup_key = 'monthly-report:sso:1405-07';` and clear `report.send`.
- **`collect_figures` fails**: the warehouse is down, or a table or view it reads is missing (the ledger tables
  are created by the first ingest). The log names the relation.
- **`render_and_archive` fails**: WeasyPrint (Pango, fonts) or a full disk under `$ANBAR_REPORTS_DIR`; clearing the
  task is safe (a file is written whole or not at all).
- **`send` fails**: the SMTP relay (connection `anbar_smtp`). Clear the task: the dedup key is only marked sent
  once the relay took the mail. No recipients in `registry/ministry.yml`: the task logs a warning and sends nothing.
"""


def build_monthly_report_dag(registry: Registry) -> DAG:
    ministry = registry.ministry
    recipients = ", ".join(ministry.minister_office) or "nobody (no `minister_office` in registry/ministry.yml)"

    with DAG(
        dag_id=DAG_ID,
        description="Monthly delivery performance report of every supplier to the minister's office",
        schedule=JalaliMonthlyTimetable(TEHRAN, run_day=ministry.report_day),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(),
        tags=["anbar", "report", "compliance", "jalali"],
        doc_md=DOC_MD.format(report_day=ministry.report_day, recipients=recipients),
        params={
            "report_month": Param(
                None,
                type=["null", "string"],
                pattern=r"^\d{4}-\d{2}$",
                description="Report on this Jalali month (YYYY-MM) instead of the run's data interval",
            )
        },
    ) as dag:

        @task
        def sync_calendar() -> None:
            """Put every period the report covers on the expected-submission calendar (idempotent)."""
            from anbar import compliance, expected, warehouse

            start, end = compliance.calendar_window(registry, report_month_for_run(get_current_context()))
            conn = warehouse.connect()
            try:
                changed = expected.sync(conn, registry, start, end)
            finally:
                conn.close()
            log.info("expected-submission calendar %s .. %s: %d rows added or changed", start, end, changed)

        @task
        def collect_figures() -> dict:
            from anbar import compliance, warehouse

            context = get_current_context()
            report_month = report_month_for_run(context)
            generated_on = generated_on_for_run(context)
            conn = warehouse.connect()
            try:
                reports = compliance.collect(conn, registry, report_month, generated_on)
            finally:
                conn.close()
            return compliance.to_xcom(report_month, generated_on, reports)

        @task(map_index_template=MAP_LABEL)
        def render_and_archive(target: str, figures: dict) -> dict:
            from anbar import compliance
            from anbar import monthly_report as mr

            context = get_current_context()
            month, generated_on, reports = compliance.from_xcom(figures)
            label_map_index(context, f"{target} {month}")
            if target == SUMMARY:
                subject = mr.summary_subject(month)
                files = mr.summary_files(reports, month, generated_on)
            else:
                [report] = [r for r in reports if r.org == target]
                subject = mr.org_subject(report)
                files = mr.report_files(report)
            paths = archive(
                settings.reports_dir() / month,
                file_stem(target, month),
                {".html": files["report.html"], ".pdf": files["report.pdf"]},
            )
            log.info("archived %s", ", ".join(str(p) for p in paths.values()))
            return {"target": target, "month": month, "subject": subject, **{k[1:]: str(p) for k, p in paths.items()}}

        @task(map_index_template=MAP_LABEL)
        def send(archived: dict) -> bool:
            from anbar import notify, warehouse

            context = get_current_context()
            label_map_index(context, f"{archived['target']} {archived['month']}")
            if not ministry.minister_office:
                log.warning("no minister_office recipients in registry/ministry.yml: %s not mailed", archived["pdf"])
                return False
            mail = notify.Mail(
                dedup_key=f"monthly-report:{archived['target']}:{archived['month']}",
                kind="monthly_report",
                recipients=list(ministry.minister_office),
                subject=archived["subject"],
                html=Path(archived["html"]).read_text(encoding="utf-8"),
                attachments=[archived["pdf"]],
            )
            conn = warehouse.connect()
            try:
                sent = notify.send(conn, mail)
            finally:
                conn.close()
            log.info("%s %s", "sent" if sent else "already sent, not again:", mail.dedup_key)
            return sent

        @task_group(group_id="report")
        def report(target: str, figures: dict):
            send(render_and_archive(target, figures))

        figures = collect_figures()
        sync_calendar() >> figures
        report.partial(figures=figures).expand(target=targets(registry))

    return dag
