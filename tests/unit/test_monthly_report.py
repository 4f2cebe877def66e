"""The monthly performance report: DHIS2 rates by hand, the bilingual HTML, and the PDF as pages of pixels."""

from __future__ import annotations

import datetime as dt
import re

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest

from anbar import monthly_report as mr
from anbar.periods import Period
from anbar.registry import load_registry

REGISTRY = load_registry()
GENERATED_ON = dt.date(2026, 10, 25)  # 1405/08/03, two days after Mehr 1405 ended
REPORT_MONTH = "1405-07"  # Mehr 1405 = 2026-09-23 .. 2026-10-22

# One letter per period, 1404-08 .. 1405-07 (oldest first):
# A accepted on time at the first version; a accepted on time after a resubmission; D accepted but delivered late;
# R rejected (its last version); M missing; L received late, pending; E not yet due.
SSO_DATASETS = {
    "insured_persons": ("AAaADAAARAAE", 1_204_000),
    "workplaces": ("AAAMAADAAALE", 85_300),
    "pensioners": ("ADAAARAAMAME", 412_700),
}
SSO_PERIODS = Period.parse("1405-07", "jalali").last_complete(12)
STATUS = {
    "A": "accepted",
    "a": "accepted",
    "D": "accepted",
    "R": "rejected",
    "M": "missing",
    "L": "late",
    "E": "expected",
}


def _quality(code: str, i: int) -> dict[str, float | None]:
    if code in "ME":
        return dict.fromkeys(mr.PRINCIPLES)
    if code == "R":
        return {"conversion": 1.0, "system": 0.75, "consistency": 0.8, "quality": 0.5}
    if code == "L":
        return dict.fromkeys(mr.PRINCIPLES)  # pending: not validated yet
    return {"conversion": 1.0, "system": 1.0 - (i % 3) * 0.05, "consistency": 0.9 + (i % 2) * 0.1, "quality": 0.95}


def sub(org: str, dataset: str, period: Period, due_day: int, code: str, rows: int, i: int) -> mr.SubmissionFigures:
    received = code not in "ME"
    late_days = {"D": 6, "L": 3}.get(code, 0)
    return mr.SubmissionFigures(
        org=org,
        dataset=dataset,
        period=period.label,
        due_date=period.due_date(due_day),
        status=STATUS[code],
        received=received,
        on_time=received and code not in "DL",
        days_late=late_days if received else None,
        accepted_first_time=code in "AD",
        resubmissions={"a": 1, "R": 2}.get(code, 0),
        rows_delivered=rows + i * 1_250 if received else None,
        rows_rejected=(0 if code == "A" else 37 * (i + 1)) if received and code != "L" else None,
        quality=_quality(code, i),
    )


def _report(org: str, subs: list[mr.SubmissionFigures]) -> mr.OrgMonthlyReport:
    names = REGISTRY.org(org).names
    return mr.OrgMonthlyReport(org, names.fa, names.en, REPORT_MONTH, GENERATED_ON, tuple(subs))


def sso_report() -> mr.OrgMonthlyReport:
    subs = [
        sub("sso", name, period, 15, codes[i], rows, i)
        for name, (codes, rows) in SSO_DATASETS.items()
        for i, period in enumerate(SSO_PERIODS)
    ]
    return _report("sso", subs[::-1])  # any order


def tvto_report() -> mr.OrgMonthlyReport:
    """A supplier on Gregorian months: 2026-09 is due on 2026-10-10, within Mehr 1405."""
    periods = Period.parse("2026-10", "gregorian").last_complete(12)
    return _report(
        "tvto", [sub("tvto", "trainees", p, 10, "AAAAADAAAAaE"[i], 18_000, i) for i, p in enumerate(periods)]
    )


# --- derived figures, by hand ------------------------------------------------------------------


def test_not_yet_due_is_not_expected_late_counts_in_reporting_only_missing_in_neither():
    period = Period.parse("1405-06", "jalali")  # due 2026-10-07 with due_day 15
    accepted, late, missing = (sub("sso", "d", period, 15, code, 100, 0) for code in "ALM")
    not_due = sub("sso", "d", Period.parse("1405-07", "jalali"), 15, "E", 100, 0)  # due 2026-11-05
    assert mr.is_expected(accepted, GENERATED_ON) and not mr.is_expected(not_due, GENERATED_ON)
    assert not mr.is_expected(accepted, accepted.due_date)  # due today: not yet expected

    t = mr.timeliness([accepted, late, missing, not_due], GENERATED_ON)
    assert (t.expected, t.received, t.on_time, t.accepted_first_time) == (3, 2, 1, 1)
    assert t.reporting_rate == pytest.approx(200 / 3)  # the late one counts, the missing one does not
    assert t.on_time_rate == pytest.approx(100 / 3)  # only the accepted one
    assert t.accepted_first_time_rate == pytest.approx(50.0)  # 1 of the 2 received
    assert mr.timeliness([not_due], GENERATED_ON).reporting_rate is None  # nothing expected: no rate


def test_period_and_month_figures_of_a_year_of_sso_deliveries():
    report = sso_report()
    periods = mr.period_figures(report)
    assert [p.label for p in periods] == [p.label for p in SSO_PERIODS]  # oldest first, 12 of them
    by_label = {p.label: p for p in periods}
    # 1404-08: A A A
    assert by_label["1404-08"].timeliness.reporting_rate == 100.0
    # 1404-11: A, M, A -> 2 of 3 received, both on time
    t = by_label["1404-11"].timeliness
    assert (t.expected, t.received, t.on_time) == (3, 2, 2)
    assert t.reporting_rate == pytest.approx(66.667, abs=1e-3) and t.on_time_rate == pytest.approx(66.667, abs=1e-3)
    # 1404-12: D, A, A -> all received, one late
    t = by_label["1404-12"].timeliness
    assert t.reporting_rate == 100.0 and t.on_time_rate == pytest.approx(66.667, abs=1e-3)
    # 1405-07 is not due yet: nothing expected
    assert by_label["1405-07"].timeliness.expected == 0 and by_label["1405-07"].timeliness.reporting_rate is None
    # rows: period index 4 (1404-12) delivers 1,204,000 + 85,300 + 412,700 + 3 x 5,000; rejected 37 x 5 for D only
    assert by_label["1404-12"].rows_delivered == 1_204_000 + 85_300 + 412_700 + 3 * 5_000
    assert by_label["1404-12"].rows_rejected == 37 * 5

    # Mehr 1405 holds the 1405-06 deliveries (due 2026-10-07): A, L, M
    month = mr.month_submissions(report.submissions, REPORT_MONTH)
    assert sorted((s.dataset, s.period) for s in month) == [
        ("insured_persons", "1405-06"),
        ("pensioners", "1405-06"),
        ("workplaces", "1405-06"),
    ]
    f = mr.figures(REPORT_MONTH, month, GENERATED_ON)
    assert (f.timeliness.expected, f.timeliness.received, f.timeliness.on_time) == (3, 2, 1)
    assert f"{f.timeliness.reporting_rate:.1f}%" == "66.7%"
    assert f"{f.timeliness.on_time_rate:.1f}%" == "33.3%"
    assert f.timeliness.accepted_first_time_rate == 50.0
    # only the accepted one was evaluated (i = 10): system 1 - 1 x 0.05, consistency 0.9
    assert f.quality == pytest.approx({"conversion": 1.0, "system": 0.95, "consistency": 0.9, "quality": 0.95})


def test_quality_is_the_mean_over_datasets_of_the_rules_passed_leaving_out_what_was_not_evaluated():
    period = Period.parse("1405-01", "jalali")
    subs = [
        mr.SubmissionFigures(
            "sso", f"d{i}", period.label, period.due_date(15), "accepted", True, True, 0, True, 0, 10, 0, q
        )
        for i, q in enumerate(
            [
                {"conversion": 1.0, "system": 0.5, "consistency": None, "quality": 0.8},
                {"conversion": 0.5, "system": None, "consistency": None, "quality": 0.6},
                {"conversion": 0.0, "system": 1.0, "consistency": None},  # quality not reported at all
            ]
        )
    ]
    assert mr.quality_scores(subs) == pytest.approx(
        {"conversion": 0.5, "system": 0.75, "consistency": None, "quality": 0.7}
    )


def test_numbers_in_the_persian_section_use_persian_digits():
    assert mr.pct(200 / 3, "fa") == "۶۶٫۷٪" and mr.pct(200 / 3, "en") == "66.7%"
    assert mr.num(1_204_000, "fa") == "۱٬۲۰۴٬۰۰۰" and mr.num(None, "fa") == "—"
    assert mr.day(GENERATED_ON, "fa") == "۱۴۰۵/۰۸/۰۳" and mr.day(GENERATED_ON, "en") == "2026-10-25"
    assert mr.month_name(REPORT_MONTH, "fa") == "مهر ۱۴۰۵"
    assert mr.month_name(REPORT_MONTH, "en") == "Mehr 1405 (2026-09-23 – 2026-10-22)"


# --- HTML ----------------------------------------------------------------------------------------


def _without_images(html: str) -> str:
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:", html)


def _assert_no_national_ids(html: str) -> None:
    text = _without_images(html)
    assert not re.search(r"(?<!\d)\d{10}(?!\d)", text)
    assert not re.search(r"(?<![۰-۹])[۰-۹]{10}(?![۰-۹])", text)


@pytest.fixture(scope="module")
def org_html() -> str:
    return mr.render_org_html(sso_report())


def test_org_html_is_persian_first_and_bilingual(org_html):
    fa = org_html.index('dir="rtl" lang="fa"')
    en = org_html.index('dir="ltr" lang="en"')
    assert fa < en
    persian, english = org_html[fa:en], org_html[en:]
    assert "سازمان تأمین اجتماعی" in persian and "مهر ۱۴۰۵" in persian
    assert "Social Security Organization" in english and "Mehr 1405" in english
    for dataset in SSO_DATASETS:
        assert persian.count(f"<code>{dataset}</code>") == 1 and english.count(f"<code>{dataset}</code>") == 1
    for status in ("accepted", "rejected", "missing", "late", "expected"):
        assert f'class="st st-{status}">{mr.STATUS_NAMES[status]["fa"]}<' in persian
        assert f'class="st st-{status}">{mr.STATUS_NAMES[status]["en"]}<' in english
    # The Persian section writes its numbers in Persian digits, the English one in Latin digits.
    assert "<b>۶۶٫۷٪</b>" in persian and "<b>66.7%</b>" in english
    assert "1,204,000" not in _without_images(persian) and "1,204,000" in english
    # Three charts, inline, each captioned in both languages.
    assert org_html.count('<img src="data:image/png;base64,') == 3
    assert "Figure 3 — Rows delivered per period" in org_html and "نمودار ۳ — " in org_html
    _assert_no_national_ids(org_html)


def test_summary_html_has_a_row_per_organisation_and_the_total():
    html = mr.render_summary_html([tvto_report(), sso_report()], REPORT_MONTH, GENERATED_ON)
    fa, en = html.index('dir="rtl" lang="fa"'), html.index('dir="ltr" lang="en"')
    assert fa < en
    persian, english = html[fa:en], html[en:]
    assert persian.index("سازمان آموزش فنی") > persian.index("سازمان تأمین اجتماعی")  # ordered by code
    assert "Technical and Vocational Training Organization" in english and "Social Security Organization" in english
    # sso: 2 of 3 received, 1 on time; tvto (2026-09, accepted on time): 1 of 1; together 3 of 4 and 2 of 4
    assert english.count("66.7%") >= 1 and '<td class="n">75.0%</td>' in english and ">50.0%<" in english
    assert html.count('<img src="data:image/png;base64,') == 1
    _assert_no_national_ids(html)


# --- PDF -----------------------------------------------------------------------------------------

A4 = (595.28, 841.89)  # points


@pytest.fixture(scope="module")
def org_pdf(org_html) -> pdfium.PdfDocument:
    return pdfium.PdfDocument(mr.render_pdf(org_html))


def test_pdf_is_a4_and_holds_the_figures_as_text(org_pdf):
    assert len(org_pdf) >= 1
    for page in org_pdf:
        assert page.get_size() == pytest.approx(A4, abs=0.5)
    text = "\n".join(page.get_textpage().get_text_range() for page in org_pdf)
    assert "Social Security Organization" in text
    assert "1405-07" in text and "Mehr 1405" in text
    assert "66.7%" in text  # the reporting rate computed above
    # Persian is shaped by HarfBuzz and set in DejaVu Sans; pdfium maps the glyphs back to the logical characters.
    assert "سازمان تأمین اجتماعی" in text
    assert "وضعیت" in text
    # Page numbers in the footer.
    last = org_pdf[len(org_pdf) - 1].get_textpage().get_text_range()
    assert f"{len(org_pdf)} / {len(org_pdf)}" in last


def _saturated(pixel: tuple[int, int, int]) -> bool:
    return max(pixel) - min(pixel) > 80


def test_pdf_pages_are_not_blank_and_the_charts_have_colour(org_pdf):
    scale = 1.0
    images_seen = 0
    for page in org_pdf:
        image = page.render(scale=scale).to_pil().convert("RGB")
        assert image.getextrema() != ((255, 255), (255, 255), (255, 255)), "a blank page"
        for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE]):
            left, bottom, right, top = obj.get_bounds()
            height = page.get_height()
            box = (int(left * scale), int((height - top) * scale), int(right * scale), int((height - bottom) * scale))
            chart = image.crop(box)
            coloured = sum(1 for px in chart.getdata() if _saturated(px))
            assert coloured > 200, f"chart at {box} has {coloured} coloured pixels"
            images_seen += 1
    assert images_seen == 3


def test_report_files_holds_the_html_and_the_pdf():
    files = mr.report_files(tvto_report())
    assert set(files) == {"report.html", "report.pdf"}
    assert files["report.pdf"].startswith(b"%PDF-")
    assert "Technical and Vocational Training Organization" in files["report.html"].decode("utf-8")


def test_a_quarterly_dataset_counts_in_the_month_its_quarter_closes_and_in_the_month_it_is_due():
    months = Period.parse("1405-06", "jalali").last_complete(4)  # 1405-03 .. 1405-06
    monthly = [sub("swo", "beneficiaries", p, 10, "A", 1_000, i) for i, p in enumerate(months)]
    quarterly = sub("swo", "disability_assessments", Period.parse("1405-Q2", "jalali"), 20, "M", 300, 0)
    report = mr.OrgMonthlyReport("swo", "fa", "en", "1405-07", GENERATED_ON, (*monthly, quarterly))
    periods = {p.label: p for p in mr.period_figures(report)}
    assert list(periods) == ["1405-03", "1405-04", "1405-05", "1405-06"]  # no "1405-Q2" column of its own
    assert periods["1405-06"].timeliness.expected == 2 and periods["1405-06"].timeliness.received == 1
    # 1405-Q2 is due 2026-10-12, in Mehr 1405 with beneficiaries 1405-06 (due 2026-10-01)
    assert sorted(s.period for s in mr.month_submissions(report.submissions, "1405-07")) == ["1405-06", "1405-Q2"]


def test_the_same_report_renders_to_the_same_pdf_bytes(org_html, monkeypatch):
    """A re-run finds the report it archived (no revision): nothing in the PDF depends on when it was made."""
    import os
    import time

    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    first = mr.render_pdf(org_html)
    time.sleep(1.1)  # the fonts' timestamps are in seconds
    assert mr.render_pdf(org_html) == first
    assert "SOURCE_DATE_EPOCH" not in os.environ
