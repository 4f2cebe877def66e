"""End to end: a real month through the ingest DAG, then the monthly report DAG with dag.test().

The report's PDFs are read back as a person would see them: each page rendered to an image
(pypdfium2), and its text checked against the ledger of that month.
"""

from __future__ import annotations

import datetime as dt
import os
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import psycopg2
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest

from anbar.expected import expected_submissions
from anbar.periods import Period
from anbar.registry import load_registry
from anbar.timetables import data_interval_for

pytestmark = pytest.mark.e2e

REGISTRY = load_registry()
TEHRAN = ZoneInfo("Asia/Tehran")
MONTH = "1404-09"  # Azar 1404 (2025-11-22 .. 2025-12-21): sso's 1404-08 and tvto's 2025-11 deliveries are due in it
REPORT_DAY = dt.datetime(2025, 12, 26, tzinfo=TEHRAN)  # 5 Dey 1404, when the scheduled run would start
AZAR = data_interval_for(Period.parse(MONTH, "jalali"))


@pytest.fixture(scope="module")
def dags(airflow_db, simulators, dagbag):
    assert dagbag.import_errors == {}
    return dagbag.dags


def _query(sql, *args):
    conn = psycopg2.connect(os.environ["ANBAR_WAREHOUSE_URL"].replace("postgresql+psycopg2://", "postgresql://"))
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def _ledger_figures() -> dict[str, dict]:
    """Per organisation, from the ledger alone: the deliveries due in the month, received, on time, rows."""
    month = Period.parse(MONTH, "jalali")
    out = {code: {"expected": 0, "received": 0, "on_time": 0, "rows": 0} for code in REGISTRY.organisations}
    for e in expected_submissions(REGISTRY, month.start - dt.timedelta(days=62), month.end):
        if not month.start <= e.due_date < month.end:
            continue
        versions = _query(
            "select received_at, rows_manifest from anbar.submissions where org = %s and dataset = %s "
            "and period = %s and version > 0 order by version",
            e.org,
            e.dataset,
            e.period.label,
        )
        f = out[e.org]
        f["expected"] += 1
        if versions:
            f["received"] += 1
            f["on_time"] += versions[0][0].astimezone(TEHRAN).date() <= e.due_date
            f["rows"] += versions[-1][1]
    return out


def _mails(mailbox) -> list[EmailMessage]:
    """The monthly reports of MONTH this test sent (not an earlier test's or run's)."""
    return [m for m in mailbox.received("Monthly performance") if MONTH in str(m["subject"])]


def _pdf_text_and_pages(pdf: bytes, coloured: bool = False) -> tuple[str, int]:
    """The text of every page, after rendering each page to an image that must show ink (and, if ``coloured``,
    charts with colour: lines and bars of figures other than zero)."""
    doc = pdfium.PdfDocument(pdf)
    texts, charts = [], 0
    for page in doc:
        image = page.render(scale=1).to_pil().convert("RGB")
        assert image.getextrema() != ((255, 255), (255, 255), (255, 255)), "a blank page"
        for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE]):
            left, bottom, right, top = obj.get_bounds()
            box = (int(left), int(page.get_height() - top), int(right), int(page.get_height() - bottom))
            if coloured:
                assert sum(max(px) - min(px) > 80 for px in image.crop(box).getdata()) > 100, "a chart without colour"
            charts += 1
        texts.append(page.get_textpage().get_text_range())
    return "\n".join(texts), charts


def _pct(part: int, whole: int) -> str:
    return f"{part / whole * 100:.1f}%"


def test_report_of_a_month_ingested_for_real(dags, simulators, fresh_warehouse, mailbox, tmp_path, monkeypatch):
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    monkeypatch.setenv("ANBAR_REPORTS_DIR", str(tmp_path / "reports"))
    # A real month through the ingest DAGs: sso 1404-08 over SFTP (insured persons rejected for bad national
    # IDs, workplaces accepted) and tvto 2025-11 over the API (rejected: duplicate keys). The simulators
    # deliver now, a year late; sso workplaces is dated back to two days before its due date, so the month
    # has one delivery on time.
    assert dags["anbar_ingest__sso"].test(run_conf={"period": "1404-08"}).state == "success"
    assert dags["anbar_ingest__tvto"].test(run_conf={"period": "2025-11"}).state == "success"
    _query(
        "update anbar.submissions set received_at = %s where org = 'sso' and dataset = 'workplaces' "
        "and period = '1404-08'",
        dt.datetime(2025, 12, 4, 11, tzinfo=TEHRAN),
    )
    assert sorted(_query("select org, dataset, status from anbar.submissions")) == [
        ("sso", "insured_persons", "rejected"),
        ("sso", "workplaces", "accepted"),
        ("tvto", "trainees", "rejected"),
    ]
    ledger = _ledger_figures()
    assert ledger["sso"] | {"rows": 0} == {"expected": 2, "received": 2, "on_time": 1, "rows": 0}

    dag = dags["anbar_monthly_report"]
    run = dag.test(logical_date=AZAR.end, run_after=REPORT_DAY)  # the scheduled run's interval: Azar 1404
    assert run.state == "success"
    with create_session() as session:
        labels = {
            ti.rendered_map_index
            for ti in session.query(TaskInstance).filter_by(dag_id=dag.dag_id, run_id=run.run_id)
            if ti.task_id == "report.send"
        }
    assert labels == {f"{code} {MONTH}" for code in [*REGISTRY.organisations, "ministry"]}

    # Archived: HTML and PDF of every organisation and of the summary, read-only.
    archive = tmp_path / "reports" / MONTH
    stems = [*(f"{code}-{MONTH}" for code in sorted(REGISTRY.organisations)), f"ministry-summary-{MONTH}"]
    assert sorted(p.name for p in archive.iterdir()) == sorted(f"{s}{x}" for s in stems for x in (".html", ".pdf"))
    assert all(p.stat().st_mode & 0o222 == 0 for p in archive.iterdir())

    # Mailed: one per organisation and the summary, to the minister's office, with the archived PDF attached.
    mails = _mails(mailbox)
    assert len(mails) == len(stems)
    by_attachment = {}
    for m in mails:
        assert m["To"] == ", ".join(REGISTRY.ministry.minister_office)
        [attachment] = list(m.iter_attachments())
        by_attachment[attachment.get_filename()] = (m, attachment.get_content())
    assert sorted(by_attachment) == sorted(f"{s}.pdf" for s in stems)
    sso_mail, sso_pdf = by_attachment[f"sso-{MONTH}.pdf"]
    assert "Social Security Organization (sso), 1404-09" in str(sso_mail["subject"])
    assert sso_pdf == (archive / f"sso-{MONTH}.pdf").read_bytes()
    assert "سازمان تأمین اجتماعی" in sso_mail.get_body(("html",)).get_content()

    # The PDFs say what the ledger says.
    for code, f in ledger.items():
        text, charts = _pdf_text_and_pages((archive / f"{code}-{MONTH}.pdf").read_bytes())
        assert charts == 3
        english = text[text.index("Monthly delivery performance") :]
        assert f"{f['received']} of {f['expected']} expected deliveries received" in english
        assert f"{f['on_time']} of {f['expected']} received by the due date" in english
        assert _pct(f["received"], f["expected"]) in english and _pct(f["on_time"], f["expected"]) in english
        assert f"rows delivered {f['rows']:,}" in english.replace("\n", " "), code
    sso_text, _ = _pdf_text_and_pages(sso_pdf, coloured=True)
    assert "100.0%" in sso_text and "50.0%" in sso_text  # reporting and on-time rates of sso in Azar

    summary, charts = _pdf_text_and_pages((archive / f"ministry-summary-{MONTH}.pdf").read_bytes())
    assert charts == 1
    expected_all = sum(f["expected"] for f in ledger.values())
    received_all = sum(f["received"] for f in ledger.values())
    on_time_all = sum(f["on_time"] for f in ledger.values())
    total = summary[summary.index("all organisations") :].split()
    assert total[2:6] == [
        str(expected_all),
        str(received_all),
        _pct(received_all, expected_all),
        _pct(on_time_all, expected_all),
    ]

    # A second run of the same month (a cleared run) finds every report archived and every mail sent.
    files = {p.name: p.read_bytes() for p in archive.iterdir()}
    assert dag.test(logical_date=AZAR.end, run_after=REPORT_DAY).state == "success"
    assert len(_mails(mailbox)) == len(stems)
    assert {p.name: p.read_bytes() for p in archive.iterdir()} == files
