"""The monthly performance report to the minister's office: each supplier's timeliness, quality and rows.

One report per organisation (:func:`render_org_html`) and one ministry summary
(:func:`render_summary_html`), each a self-contained bilingual HTML e-mail body (Persian
right-to-left first, then English, as :mod:`anbar.feedback`) with its charts inlined as PNG
data URIs, and a PDF of the same page (:func:`render_pdf`) for the archive
(:func:`report_files`). The figures arrive as plain data (:class:`OrgMonthlyReport`, built from
the compliance mart); nothing here reads the database.

The derived figures follow DHIS2's definitions:

* a submission is **expected** once its due date has passed (``due_date < generated_on``);
  one not yet due counts nowhere;
* **reporting rate** = received / expected x 100, **on-time rate** = received on time (by the
  due date; the grace only decides when it is missing) / expected x 100: a late delivery counts
  in the first only, a missing one in neither; **accepted first time** = accepted at their first
  version / received x 100;
* **quality** of a principle = the mean, over the submissions (one per dataset in a period), of
  the share of that principle's rules passed; a submission not evaluated is left out.

The ministry reports in Jalali months while a supplier's periods follow its own calendar, so the
submissions *of a report month* are those whose due date falls within that Jalali month
(Mehr 1405 holds the Shahrivar 1405 deliveries of SSO, due on 15 Mehr).
Charts carry English text and Latin digits (matplotlib does not shape Persian); their
captions are in both languages.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jdatetime
from jinja2 import Environment, PackageLoader
from markupsafe import Markup

from anbar.feedback import PRINCIPLE_NAMES
from anbar.feedback import STATUS_NAMES as _FEEDBACK_STATUS_NAMES
from anbar.periods import Period, closing_month
from anbar.registry import Calendar
from anbar.suites import PRINCIPLES

STATUS_NAMES = {
    **_FEEDBACK_STATUS_NAMES,
    "late": {"fa": "دیر رسید، در انتظار بررسی", "en": "late, pending"},
    "expected": {"fa": "هنوز سررسید نشده", "en": "not yet due"},
    "received": {"fa": "رسید، در انتظار بررسی", "en": "received, pending"},
    "overdue": {"fa": "نرسیده، مهلت گذشته", "en": "overdue"},
}
JALALI_MONTHS = {
    "fa": ("فروردین", "اردیبهشت", "خرداد", "تیر", "مرداد", "شهریور", "مهر", "آبان", "آذر", "دی", "بهمن", "اسفند"),
    "en": (
        "Farvardin",
        "Ordibehesht",
        "Khordad",
        "Tir",
        "Mordad",
        "Shahrivar",
        "Mehr",
        "Aban",
        "Azar",
        "Dey",
        "Bahman",
        "Esfand",
    ),
}
PERIODS_SHOWN = 12

_PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
# Persian decimal separator U+066B, thousands separator U+066C, percent sign U+066A.
_PERSIAN_NUMBER = str.maketrans("0123456789.,%", "۰۱۲۳۴۵۶۷۸۹٫٬٪")


@dataclass(frozen=True)
class SubmissionFigures:
    """One expected submission: organisation x dataset x period, as the compliance mart reports it."""

    org: str
    dataset: str
    period: str  # in the organisation's calendar: "1405-06" (Jalali) or "2026-08"
    due_date: dt.date
    status: str  # accepted | rejected | missing | late (received after due, pending) | expected (not yet due)
    received: bool
    on_time: bool  # received on or before the due date (the grace only decides when it is missing)
    days_late: int | None  # None if not received; 0 if on time
    accepted_first_time: bool
    resubmissions: int  # versions after the first
    rows_delivered: int | None
    rows_rejected: int | None
    quality: Mapping[str, float | None]  # principle -> share of rules passed, 0..1; None = not evaluated


@dataclass(frozen=True)
class OrgMonthlyReport:
    org: str
    name_fa: str
    name_en: str
    report_month: str  # the Jalali month reported on, e.g. "1405-07"
    generated_on: dt.date
    submissions: tuple[SubmissionFigures, ...]  # the last 12 periods of every dataset of this org, any order


# --- derived figures ---------------------------------------------------------------------------


def _percent(part: int, whole: int) -> float | None:
    return part / whole * 100 if whole else None


@dataclass(frozen=True)
class Timeliness:
    """Counts over some submissions; the rates are percentages, None when nothing was expected."""

    expected: int
    received: int
    on_time: int
    accepted_first_time: int

    @property
    def reporting_rate(self) -> float | None:
        return _percent(self.received, self.expected)

    @property
    def on_time_rate(self) -> float | None:
        return _percent(self.on_time, self.expected)

    @property
    def accepted_first_time_rate(self) -> float | None:
        return _percent(self.accepted_first_time, self.received)


def is_expected(sub: SubmissionFigures, generated_on: dt.date) -> bool:
    """Expected once its due date has passed; a submission due today or later is not yet expected."""
    return sub.due_date < generated_on


def timeliness(subs: Sequence[SubmissionFigures], generated_on: dt.date) -> Timeliness:
    expected = [s for s in subs if is_expected(s, generated_on)]
    return Timeliness(
        expected=len(expected),
        received=sum(s.received for s in expected),
        on_time=sum(s.received and s.on_time for s in expected),
        accepted_first_time=sum(s.received and s.accepted_first_time for s in expected),
    )


def quality_scores(subs: Sequence[SubmissionFigures]) -> dict[str, float | None]:
    """Per principle, the mean share of rules passed (0..1) over the submissions evaluated."""
    scores: dict[str, float | None] = {}
    for principle in PRINCIPLES:
        shares = [s.quality[principle] for s in subs if s.quality.get(principle) is not None]
        scores[principle] = sum(shares) / len(shares) if shares else None
    return scores


@dataclass(frozen=True)
class Figures:
    """The figures of one period (or of the report month) over an organisation's datasets."""

    label: str
    timeliness: Timeliness
    quality: Mapping[str, float | None]
    rows_delivered: int
    rows_rejected: int


def figures(label: str, subs: Sequence[SubmissionFigures], generated_on: dt.date) -> Figures:
    return Figures(
        label=label,
        timeliness=timeliness(subs, generated_on),
        quality=quality_scores(subs),
        rows_delivered=sum(s.rows_delivered or 0 for s in subs),
        rows_rejected=sum(s.rows_rejected or 0 for s in subs),
    )


def period_figures(report: OrgMonthlyReport) -> list[Figures]:
    """The figures of each of the last 12 months, oldest first; a quarterly or yearly dataset's period
    counts in the month it ends with (``1405-Q2`` in ``1405-06``)."""
    labels = sorted({closing_month(s.period) for s in report.submissions})[-PERIODS_SHOWN:]
    return [
        figures(label, [s for s in report.submissions if closing_month(s.period) == label], report.generated_on)
        for label in labels
    ]


def month_submissions(subs: Sequence[SubmissionFigures], report_month: str) -> list[SubmissionFigures]:
    """The submissions due within the Jalali report month."""
    month = Period.parse(report_month, Calendar.jalali)
    return [s for s in subs if month.start <= s.due_date < month.end]


def month_figures(report: OrgMonthlyReport, report_month: str, generated_on: dt.date) -> Figures:
    return figures(report_month, month_submissions(report.submissions, report_month), generated_on)


# --- formatting --------------------------------------------------------------------------------


def digits(text: object, lang: str) -> str:
    """Persian digits in the Persian section; nothing else changes (period labels, dates)."""
    return str(text).translate(_PERSIAN_DIGITS) if lang == "fa" else str(text)


def label(text: str, lang: str) -> Markup:
    """A period label (1405-06) kept left to right inside Persian text, so the year stays first."""
    return Markup('<span dir="ltr">{}</span>').format(digits(text, lang)) if lang == "fa" else Markup.escape(text)


def num(value: float | None, lang: str) -> str:
    """12,345 / ۱۲٬۳۴۵; a dash for no value."""
    if value is None:
        return "—"
    text = f"{value:,.0f}"
    return text.translate(_PERSIAN_NUMBER) if lang == "fa" else text


def pct(value: float | None, lang: str) -> str:
    """A percentage (0..100) with one decimal: 83.3% / ۸۳٫۳٪; a dash when undefined."""
    if value is None:
        return "—"
    text = f"{value:.1f}%"
    return text.translate(_PERSIAN_NUMBER) if lang == "fa" else text


def share(value: float | None, lang: str) -> str:
    """A share of rules passed (0..1) as a percentage."""
    return pct(None if value is None else value * 100, lang)


def jalali_date(value: dt.date) -> str:
    """1405/07/14."""
    j = jdatetime.date.fromgregorian(date=value)
    return f"{j.year:04d}/{j.month:02d}/{j.day:02d}"


def day(value: dt.date, lang: str) -> str:
    """A date as the Jalali ۱۴۰۵/۰۷/۱۴ in the Persian section, the Gregorian ISO 2026-10-06 in the English one."""
    return digits(jalali_date(value), lang) if lang == "fa" else value.isoformat()


def month_name(report_month: str, lang: str) -> str:
    """مهر ۱۴۰۵ / Mehr 1405 (2026-09-23 – 2026-10-22)."""
    month = Period.parse(report_month, Calendar.jalali)
    name = f"{JALALI_MONTHS[lang][month.month - 1]} {digits(month.year, lang)}"
    if lang == "fa":
        return name
    return f"{name} ({month.start.isoformat()} – {(month.end - dt.timedelta(days=1)).isoformat()})"


# --- charts ------------------------------------------------------------------------------------

RATE_COLOURS = {"reporting": "#1f6fb4", "on_time": "#2e9a3e"}
PRINCIPLE_COLOURS = {"conversion": "#7b3fa0", "system": "#1f6fb4", "consistency": "#e07b00", "quality": "#c0392b"}
ROWS_COLOUR = "#3f7fbf"


def _png(draw: Callable, size: tuple[float, float] = (7.2, 2.6)) -> str:
    """Draw on a fresh Agg figure (no pyplot, so no global state) and return it as a PNG data URI."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=130, layout="constrained")
    ax = fig.subplots()
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)
    draw(ax)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _period_axis(ax, labels: Sequence[str]) -> None:
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")


def _rate_axis(ax) -> None:
    ax.set_ylim(0, 105)
    ax.set_ylabel("%", fontsize=8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)


def _trend(periods: Sequence[Figures], title: str, series: Sequence[tuple[str, str, list[float | None]]]) -> str:
    """One line of percentages per (name, colour, values) over the periods; a gap where a value is None."""
    labels = [p.label for p in periods]

    def draw(ax) -> None:
        for name, colour, values in series:
            y = [float("nan") if v is None else v for v in values]
            ax.plot(range(len(labels)), y, marker="o", markersize=4, color=colour, label=name)
        ax.set_title(title, fontsize=9)
        _period_axis(ax, labels)
        _rate_axis(ax)

    return _png(draw)


def timeliness_chart(periods: Sequence[Figures]) -> str:
    return _trend(
        periods,
        "Timeliness by period",
        [
            ("reporting rate", RATE_COLOURS["reporting"], [p.timeliness.reporting_rate for p in periods]),
            ("on-time rate", RATE_COLOURS["on_time"], [p.timeliness.on_time_rate for p in periods]),
        ],
    )


def quality_chart(periods: Sequence[Figures]) -> str:
    def percent(value: float | None) -> float | None:
        return None if value is None else value * 100

    return _trend(
        periods,
        "Rules passed by principle (mean over datasets)",
        [(pr, PRINCIPLE_COLOURS[pr], [percent(p.quality[pr]) for p in periods]) for pr in PRINCIPLES],
    )


def rows_chart(periods: Sequence[Figures]) -> str:
    def draw(ax) -> None:
        ax.bar(range(len(periods)), [p.rows_delivered for p in periods], color=ROWS_COLOUR)
        ax.yaxis.set_major_formatter("{x:,.0f}")
        ax.set_title("Rows delivered by period", fontsize=9)
        _period_axis(ax, [p.label for p in periods])

    return _png(draw)


def summary_chart(rows: Sequence[tuple[str, Figures]]) -> str:
    """Reporting and on-time rate of the report month, one pair of bars per organisation."""
    codes = [code for code, _ in rows]

    def draw(ax) -> None:
        width = 0.38
        for offset, key, attr, name in (
            (-width / 2, "reporting", "reporting_rate", "reporting rate"),
            (width / 2, "on_time", "on_time_rate", "on-time rate"),
        ):
            values = [getattr(f.timeliness, attr) or 0 for _, f in rows]
            ax.bar([i + offset for i in range(len(codes))], values, width, color=RATE_COLOURS[key], label=name)
        ax.set_title("Timeliness in the report month by organisation", fontsize=9)
        ax.set_xticks(range(len(codes)), codes)
        _rate_axis(ax)

    return _png(draw, size=(7.2, 2.4))


# --- HTML --------------------------------------------------------------------------------------

_env = Environment(loader=PackageLoader("anbar", "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True)
_env.globals.update(
    digits=digits,
    label=label,
    num=num,
    pct=pct,
    share=share,
    day=day,
    jalali_date=jalali_date,
    PRINCIPLES=PRINCIPLES,
    PRINCIPLE_NAMES=PRINCIPLE_NAMES,
    STATUS_NAMES=STATUS_NAMES,
)


def org_subject(report: OrgMonthlyReport) -> str:
    where = f"{report.name_en} ({report.org}), {report.report_month}"
    return f"[anbar] Monthly performance report: {where} | گزارش ماهانهٔ عملکرد"


def summary_subject(report_month: str) -> str:
    return f"[anbar] Monthly performance summary of the suppliers, {report_month} | خلاصهٔ ماهانهٔ عملکرد تأمین‌کنندگان"


def render_org_html(report: OrgMonthlyReport) -> str:
    periods = period_figures(report)
    labels = {p.label for p in periods}
    shown = sorted(
        (s for s in report.submissions if closing_month(s.period) in labels), key=lambda s: (s.dataset, s.period)
    )
    month_subs = month_submissions(report.submissions, report.report_month)
    return _env.get_template("monthly_report.html").render(
        r=report,
        subject=org_subject(report),
        month={lang: month_name(report.report_month, lang) for lang in ("fa", "en")},
        month_periods=sorted({s.period for s in month_subs}),
        month_figures=month_figures(report, report.report_month, report.generated_on),
        periods=periods,
        datasets=[(name, [s for s in shown if s.dataset == name]) for name in sorted({s.dataset for s in shown})],
        charts=[
            (timeliness_chart(periods), "روند نرخ گزارش‌دهی و نرخ تحویل به‌موقع", "Reporting and on-time rate"),
            (quality_chart(periods), "درصد قواعد موفق به تفکیک اصل", "Share of rules passed by principle"),
            (rows_chart(periods), "ردیف‌های تحویل‌شده در هر دوره", "Rows delivered per period"),
        ],
    )


def render_summary_html(reports: Sequence[OrgMonthlyReport], report_month: str, generated_on: dt.date) -> str:
    """The ministry summary: each organisation's figures for the report month, and all of them together."""
    rows = [(r, month_figures(r, report_month, generated_on)) for r in sorted(reports, key=lambda r: r.org)]
    everything = [s for r in reports for s in month_submissions(r.submissions, report_month)]
    return _env.get_template("monthly_summary.html").render(
        subject=summary_subject(report_month),
        report_month=report_month,
        generated_on=generated_on,
        month={lang: month_name(report_month, lang) for lang in ("fa", "en")},
        rows=rows,
        total=figures(report_month, everything, generated_on),
        chart=summary_chart([(r.org, f) for r, f in rows]),
    )


# --- PDF ---------------------------------------------------------------------------------------


def _font_dir() -> Path:
    """matplotlib's wheel ships DejaVu Sans, which covers the Arabic script (Persian letters and digits)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _print_css() -> str:
    fonts = _font_dir()
    return f"""
@font-face {{ font-family: "anbar-sans"; src: url("{(fonts / "DejaVuSans.ttf").as_uri()}"); }}
@font-face {{ font-family: "anbar-sans"; font-weight: bold; src: url("{(fonts / "DejaVuSans-Bold.ttf").as_uri()}"); }}
@page {{
  size: A4; margin: 16mm 12mm 18mm;
  @bottom-center {{ content: counter(page) " / " counter(pages); font-family: "anbar-sans"; font-size: 8pt; }}
}}
html body {{ font-family: "anbar-sans"; font-size: 9pt; }}
h2 {{ font-size: 13pt; }} h3 {{ font-size: 11pt; }} h4 {{ margin: 8px 0 2px; }}
table {{ width: 100%; font-size: 7pt; }} table.headline {{ width: auto; }} tr {{ page-break-inside: avoid; }}
td, th {{ padding: 2px 3px; }} th {{ hyphens: auto; }}
img {{ max-width: 100%; }} figure {{ page-break-inside: avoid; }}
div.en {{ break-before: page; }}
"""


def render_pdf(html: str) -> bytes:
    """The page as an A4 PDF, numbered in the footer, set in DejaVu Sans (shaped Persian via Pango/HarfBuzz)."""
    from weasyprint import CSS, HTML

    # The same report renders to the same bytes (a re-run finds it archived, no revision): fontTools stamps the
    # font subsets it embeds with the time, unless SOURCE_DATE_EPOCH (reproducible builds) says which.
    saved = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = saved or "0"
    try:
        return HTML(string=html).write_pdf(stylesheets=[CSS(string=_print_css())])
    finally:
        if saved is None:
            del os.environ["SOURCE_DATE_EPOCH"]


def _files(html: str) -> dict[str, bytes]:
    return {"report.html": html.encode("utf-8"), "report.pdf": render_pdf(html)}


def report_files(report: OrgMonthlyReport) -> dict[str, bytes]:
    """``report.html`` and ``report.pdf`` of one organisation, for the archive."""
    return _files(render_org_html(report))


def summary_files(reports: Sequence[OrgMonthlyReport], report_month: str, generated_on: dt.date) -> dict[str, bytes]:
    """``report.html`` and ``report.pdf`` of the ministry summary, for the archive."""
    return _files(render_summary_html(reports, report_month, generated_on))
