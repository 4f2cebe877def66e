"""SDMX-CSV export of the analyst marts, with the SDMX structures they need.

Library: ``sdmx1`` (module ``sdmx``). It implements the whole SDMX 2.1 information model, so
names are international strings and every code, concept, code list and dataflow carries its
English *and* Persian label (``xml:lang="en"`` / ``xml:lang="fa"``); it writes SDMX-ML 2.1
structure messages and SDMX-CSV, and reads both back.

What is written (``export_marts``), in one directory:

- ``structure.xml`` — an SDMX-ML 2.1 structure message: the code lists (one per registry code
  list, codes and labels from ``ref.code_list_values``, plus ``CL_MEASURE``, ``CL_UNIT`` and
  ``CL_OBS_STATUS``), the concept scheme ``CS_ANBAR``, one data structure definition and one
  dataflow per mart, all maintained by ``IR_MCLS``, version 1.0.
- ``DF_<MART>.csv`` per mart — SDMX-CSV 2.0.0, one observation per mart row and measure.

Each mart becomes one dataflow (``DF_INSURED_EMPLOYMENT`` ...) whose key is: one dimension per
dimension column of the mart (codes of its registry code list), ``MEASURE`` (which measure
column the observation comes from; SDMX-CSV has a single ``OBS_VALUE``) and ``TIME_PERIOD``.
Attributes: ``OBS_STATUS`` (observation), ``UNIT_MEASURE`` (attached to ``MEASURE``: persons or
Iranian rials) and, on Jalali marts, ``REF_PERIOD_JALALI``.

Jalali periods. SDMX time periods are Gregorian: a Jalali month is neither an ISO 8601 month
nor an SDMX reporting month (reporting periods split a year that starts on a fixed day into
equal calendar-month steps, while Jalali months have 31/30/29 days and Nowruz moves between
20 and 21 March). SDMX 2.1 does allow a *time range* — a start date and an ISO 8601 duration —
as an observational time period, and that states a Jalali month exactly: Aban 1404 is
``2025-10-23/P30D``. So ``TIME_PERIOD`` of the Jalali marts is that range (their DSDs declare
the text type ``ObservationalTimePeriod``, which includes time ranges), and the observation attribute
``REF_PERIOD_JALALI`` repeats the mart's label (``1404-08``) for readers who think in Jalali
months. The TVTO mart reports on Gregorian months: its ``TIME_PERIOD`` is the ISO month
(``2025-10``, text type ``GregorianYearMonth``) and it has no Jalali attribute.

Suppression. A mart cell hidden by disclosure control (``is_suppressed``) gives, for every
measure, an observation with an empty ``OBS_VALUE`` and ``OBS_STATUS`` ``C`` (confidential);
published values have ``A`` (normal value), and a measure that is NULL in a cell that is not
suppressed (e.g. an average over nobody) gets ``O`` (missing value). A suppressed cell whose
measures are not NULL breaks the marts' contract and fails the export rather than leaking.

Codes. SDMX identifiers allow only ``A-Z a-z 0-9 _ @ $ -``; a registry code with any other
character gets an SDMX id in which ``+`` becomes ``_PLUS`` and any other such character
``_X<hex>`` (``65+`` -> ``65_PLUS``), and the code keeps the registry code in an annotation of
type ``ANBAR_REGISTRY_CODE`` (its title), which ``registry_code`` reads back.

The export checks every mart before writing anything: a missing mart, column or code list, a
period that is not a month label of the mart's calendar, a NULL or unknown code (the message
names the mart, the column and the code), a duplicate key or a suppressed cell with values
raise ``SdmxExportError`` and leave the directory as it was.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import sdmx
from psycopg2 import sql
from sdmx.format.csv.v2 import FormatOptions as CsvFormatOptions
from sdmx.message import DataMessage, Header, StructureMessage
from sdmx.model import common, v21

from anbar.normalize import spreadsheet_csv_rows
from anbar.periods import Period
from anbar.registry import Calendar

AGENCY_ID = "IR_MCLS"
AGENCY_NAME = {"en": "Ministry of Cooperatives, Labour and Social Welfare", "fa": "وزارت تعاون، کار و رفاه اجتماعی"}
VERSION = "1.0"
MART_SCHEMA = "marts"
STRUCTURE_FILE = "structure.xml"
CONCEPT_SCHEME_ID = "CS_ANBAR"
REGISTRY_CODE_ANNOTATION = "ANBAR_REGISTRY_CODE"

OBS_CONFIDENTIAL = "C"
OBS_NORMAL = "A"
OBS_MISSING = "O"


class SdmxExportError(Exception):
    """The marts cannot be exported as they are; the message says which mart, column and value."""


@dataclass(frozen=True)
class Dim:
    """A dimension column of a mart, coded by a registry code list.

    The code list is not stated here: it is the column's ``meta.code_list`` in the marts' dbt
    YAML, the one place that ties a mart column to the registry (``with_code_lists``).
    """

    column: str
    id: str
    en: str
    fa: str
    code_list: str = ""


@dataclass(frozen=True)
class Measure:
    """A measure column of a mart; ``id`` is its code in ``CL_MEASURE``, ``unit`` its code in ``CL_UNIT``."""

    column: str
    id: str
    unit: str
    en: str
    fa: str


@dataclass(frozen=True)
class MartFlow:
    """One mart described as one SDMX dataflow."""

    table: str
    flow_id: str
    en: str
    fa: str
    calendar: Calendar
    dimensions: tuple[Dim, ...]
    measures: tuple[Measure, ...]
    period_column: str = "period"

    @property
    def dsd_id(self) -> str:
        return "DSD_" + self.flow_id.removeprefix("DF_")

    @property
    def file_name(self) -> str:
        return f"{self.flow_id}.csv"

    @property
    def qualified_table(self) -> str:
        return f"{MART_SCHEMA}.{self.table}"


PROVINCE = Dim("province_code", "PROVINCE", "Province", "استان")
SEX = Dim("sex", "SEX", "Sex", "جنسیت")
AGE_BAND = Dim("age_band", "AGE_BAND", "Age band", "گروه سنی")
ISIC_SECTION = Dim("isic_section", "ISIC_SECTION", "Economic activity (ISIC Rev.4 section)", "بخش فعالیت اقتصادی")
PENSION_TYPE = Dim("pension_type", "PENSION_TYPE", "Pension type (CSPF)", "نوع مستمری")
SUPPORT_TYPE = Dim("support_type", "SUPPORT_TYPE", "Type of support (SWO)", "نوع حمایت")
COURSE_RESULT = Dim("course_result", "COURSE_RESULT", "Course result (TVTO)", "نتیجه دوره")

UNITS = {"PS": ("Persons", "نفر"), "IRR": ("Iranian rial", "ریال")}

#: The marts, in export order; their dimensions' code lists come from dbt (``with_code_lists``).
MART_FLOWS: tuple[MartFlow, ...] = (
    MartFlow(
        "mart_insured_employment",
        "DF_INSURED_EMPLOYMENT",
        "Insured employment (SSO)",
        "اشتغال بیمه‌شده (سازمان تأمین اجتماعی)",
        Calendar.jalali,
        (PROVINCE, ISIC_SECTION, SEX, AGE_BAND),
        (
            Measure("insured_persons", "INSURED_PERSONS", "PS", "Insured persons", "بیمه‌شدگان"),
            Measure(
                "avg_insured_wage_rials", "AVG_INSURED_WAGE", "IRR", "Average insured wage", "میانگین دستمزد مشمول بیمه"
            ),
        ),
    ),
    MartFlow(
        "mart_new_pensioners",
        "DF_NEW_PENSIONERS",
        "New pensioners (CSPF)",
        "مستمری‌بگیران جدید (صندوق بازنشستگی کشوری)",
        Calendar.jalali,
        (PROVINCE, PENSION_TYPE, SEX, AGE_BAND),
        (Measure("new_pensioners", "NEW_PENSIONERS", "PS", "New pensioners", "مستمری‌بگیران جدید"),),
    ),
    MartFlow(
        "mart_welfare_beneficiaries",
        "DF_WELFARE_BENEFICIARIES",
        "Welfare beneficiaries (SWO)",
        "مددجویان بهزیستی (سازمان بهزیستی کشور)",
        Calendar.jalali,
        (PROVINCE, SUPPORT_TYPE, SEX, AGE_BAND),
        (Measure("beneficiaries", "BENEFICIARIES", "PS", "Beneficiaries", "مددجویان"),),
    ),
    MartFlow(
        "mart_trainees",
        "DF_TRAINEES",
        "Vocational trainees and their insured employment after six months (TVTO, SSO)",
        "کارآموزان فنی و حرفه‌ای و اشتغال بیمه‌شده آنان پس از شش ماه",
        Calendar.gregorian,
        (PROVINCE, SEX, AGE_BAND, COURSE_RESULT),
        (
            Measure("trainees", "TRAINEES", "PS", "Trainees", "کارآموزان"),
            Measure(
                "insured_after_6_months",
                "INSURED_AFTER_6_MONTHS",
                "PS",
                "Trainees insured six months later",
                "کارآموزان بیمه‌شده پس از شش ماه",
            ),
        ),
    ),
)

# Concepts that are not dimension columns of a mart.
_FIXED_CONCEPTS = {
    "MEASURE": ("Measure", "سنجه"),
    "TIME_PERIOD": ("Time period", "دوره زمانی"),
    "OBS_VALUE": ("Observation value", "مقدار مشاهده"),
    "OBS_STATUS": ("Observation status", "وضعیت مشاهده"),
    "UNIT_MEASURE": ("Unit of measure", "واحد اندازه‌گیری"),
    "REF_PERIOD_JALALI": ("Reference period (Jalali month, YYYY-MM)", "دوره مرجع (ماه شمسی)"),
}
_OBS_STATUS_CODES = {
    OBS_NORMAL: ("Normal value", "مقدار عادی"),
    OBS_CONFIDENTIAL: ("Confidential: hidden by disclosure control", "محرمانه: پنهان‌شده در کنترل افشا"),
    OBS_MISSING: ("Missing value", "مقدار ناموجود"),
}

_ID_CHAR = re.compile(r"[A-Za-z0-9_@$\-]")


def sdmx_id(code: str) -> str:
    """The SDMX identifier of a registry code: the code itself when SDMX allows it (see the module doc)."""
    return "".join(c if _ID_CHAR.fullmatch(c) else ("_PLUS" if c == "+" else f"_X{ord(c):X}") for c in code)


def registry_code(code: common.Code) -> str:
    """The registry code an SDMX code stands for (read from a structure message)."""
    for annotation in code.annotations:
        if annotation.type == REGISTRY_CODE_ANNOTATION and annotation.title:
            return str(annotation.title)
    return code.id


def time_period(period: Period) -> str:
    """``TIME_PERIOD`` of a mart period: the ISO month, or the exact time range of a Jalali month."""
    if period.calendar is Calendar.gregorian:
        return period.label
    return f"{period.start.isoformat()}/P{(period.end - period.start).days}D"


# --------------------------------------------------------------------------- structures


def _name(en: str, fa: str) -> dict[str, str]:
    return {"en": en, "fa": fa}


def _maintainable(agency: common.Agency) -> dict:
    return {"maintainer": agency, "version": VERSION, "is_final": False, "is_external_reference": False}


def manifest_code_lists(manifest_path: Path | None = None) -> dict[tuple[str, str], str]:
    """``{(model, column): code list}`` from ``meta.code_list`` of the model columns in the dbt manifest."""
    from anbar.dbt import MANIFEST_PATH

    path = Path(manifest_path or MANIFEST_PATH)
    if not path.exists():
        raise SdmxExportError(f"{path} not found: run `python -m anbar.dbt parse` (the marts' code lists are in it)")
    nodes = json.loads(path.read_text(encoding="utf-8"))["nodes"]
    return {
        (node["name"], column["name"]): column["meta"]["code_list"]
        for node in nodes.values()
        if node["resource_type"] == "model"
        for column in node.get("columns", {}).values()
        if column.get("meta", {}).get("code_list")
    }


def with_code_lists(flows: Sequence[MartFlow] = MART_FLOWS, manifest_path: Path | None = None) -> tuple[MartFlow, ...]:
    """The flows with each dimension's code list taken from the dbt manifest."""
    lists = manifest_code_lists(manifest_path)
    missing = [f"{f.table}.{d.column}" for f in flows for d in f.dimensions if (f.table, d.column) not in lists]
    if missing:
        raise SdmxExportError(
            f"no meta.code_list in the marts' dbt YAML for {', '.join(missing)}: every exported dimension needs one"
        )
    return tuple(
        replace(f, dimensions=tuple(replace(d, code_list=lists[f.table, d.column]) for d in f.dimensions))
        for f in flows
    )


def _codelist_id(code_list: str) -> str:
    return "CL_" + code_list.upper()


def _code_list_users(flows: Sequence[MartFlow]) -> dict[str, list[str]]:
    users: dict[str, list[str]] = defaultdict(list)
    for flow in flows:
        for dim in flow.dimensions:
            users[dim.code_list].append(f"{flow.qualified_table}.{dim.column}")
    return users


# Codes every mart dimension may hold besides its registry code list: '_T' is the total over the
# dimension (a margin of the table), '_U' a value the sources did not give (SDMX SDMX_CL conventions).
MART_EXTRA_CODES: dict[str, tuple[str, str]] = {"_T": ("Total", "مجموع"), "_U": ("Unknown", "نامعلوم")}


def load_code_lists(conn, flows: Sequence[MartFlow]) -> dict[str, dict[str, tuple[str, str]]]:
    """``{code_list: {code: (label_en, label_fa)}}`` from ``ref.code_list_values``, for the code lists the marts use.

    A code list without rows fails: labels are never made up.
    """
    users = _code_list_users(flows)
    with conn.cursor() as cur:
        cur.execute(
            "select code_list, code, label_en, label_fa from ref.code_list_values"
            " where code_list = any(%s) order by code_list, code",
            (sorted(users),),
        )
        rows = cur.fetchall()
    lists: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
    for code_list, code, en, fa in rows:
        lists[code_list][code] = (en, fa)
    missing = [name for name in sorted(users) if name not in lists]
    # The marts' margins and unknowns, as SDMX's cross-domain conventions code them.
    for name in lists:
        for code, labels in MART_EXTRA_CODES.items():
            lists[name].setdefault(code, labels)
    if missing:
        raise SdmxExportError(
            "no codes in ref.code_list_values for "
            + "; ".join(f"code list {name!r} (used by {', '.join(users[name])})" for name in missing)
            + ": add the code list to the registry and run `anbar bootstrap`"
        )
    return dict(lists)


def _codelist(
    agency: common.Agency, cl_id: str, name: Mapping[str, str], codes: Iterable[tuple[str, str, str]]
) -> common.Codelist:
    cl = common.Codelist(id=cl_id, name=dict(name), **_maintainable(agency))
    seen: dict[str, str] = {}
    for code, en, fa in codes:
        code_id = sdmx_id(code)
        if code_id in seen:
            raise SdmxExportError(
                f"code list {cl_id}: registry codes {seen[code_id]!r} and {code!r} both become SDMX code {code_id!r}"
            )
        seen[code_id] = code
        annotations = [] if code_id == code else [v21.Annotation(type=REGISTRY_CODE_ANNOTATION, title=code)]
        cl.append(common.Code(id=code_id, name=_name(en, fa), annotations=annotations))
    return cl


def build_structures(
    code_lists: Mapping[str, Mapping[str, tuple[str, str]]], flows: Sequence[MartFlow]
) -> StructureMessage:
    """The structure message: code lists, concept scheme, one DSD and one dataflow per mart."""
    agency = common.Agency(id=AGENCY_ID, name=dict(AGENCY_NAME))
    msg = StructureMessage(
        header=Header(
            id="ANBAR_SDMX_STRUCTURE",
            prepared=dt.datetime.now(dt.UTC).replace(microsecond=0),
            sender=common.Agency(id=AGENCY_ID),
            test=False,
        )
    )

    concepts = common.ConceptScheme(
        id=CONCEPT_SCHEME_ID, name=_name("anbar statistical concepts", "مفاهیم آماری انبار"), **_maintainable(agency)
    )
    for cid, (en, fa) in _FIXED_CONCEPTS.items():
        concepts.append(common.Concept(id=cid, name=_name(en, fa)))
    dims = {d.id: d for flow in flows for d in flow.dimensions}
    for d in dims.values():
        concepts.append(common.Concept(id=d.id, name=_name(d.en, d.fa)))

    codelists: dict[str, common.Codelist] = {}
    for d in dims.values():
        if d.code_list not in codelists:
            codes = ((code, en, fa) for code, (en, fa) in code_lists[d.code_list].items())
            codelists[d.code_list] = _codelist(agency, _codelist_id(d.code_list), _name(d.en, d.fa), codes)
    measures = {m.id: m for flow in flows for m in flow.measures}
    cl_measure = _codelist(
        agency, "CL_MEASURE", _name("Measure", "سنجه"), ((m.id, m.en, m.fa) for m in measures.values())
    )
    cl_unit = _codelist(
        agency, "CL_UNIT", _name("Unit of measure", "واحد اندازه‌گیری"), ((k, *v) for k, v in UNITS.items())
    )
    cl_status = _codelist(
        agency,
        "CL_OBS_STATUS",
        _name("Observation status", "وضعیت مشاهده"),
        ((k, *v) for k, v in _OBS_STATUS_CODES.items()),
    )

    def enumerated(cl: common.Codelist) -> common.Representation:
        return common.Representation(enumerated=cl)

    def text(value_type: common.FacetValueType) -> common.Representation:
        return common.Representation(non_enumerated=[common.Facet(value_type=value_type)])

    dsds, dataflows = [], []
    for flow in flows:
        dsd = v21.DataStructureDefinition(id=flow.dsd_id, name=_name(flow.en, flow.fa), **_maintainable(agency))
        dsd.dimensions.id, dsd.attributes.id, dsd.measures.id = (
            "DimensionDescriptor",
            "AttributeDescriptor",
            "MeasureDescriptor",
        )
        for d in flow.dimensions:
            dsd.dimensions.getdefault(
                d.id, concept_identity=concepts[d.id], local_representation=enumerated(codelists[d.code_list])
            )
        measure_dim = dsd.dimensions.getdefault(
            "MEASURE", concept_identity=concepts["MEASURE"], local_representation=enumerated(cl_measure)
        )
        time_type = (
            common.FacetValueType.gregorianYearMonth
            if flow.calendar is Calendar.gregorian
            else common.FacetValueType.observationalTimePeriod
        )
        dsd.dimensions.getdefault(
            "TIME_PERIOD",
            cls=common.TimeDimension,
            concept_identity=concepts["TIME_PERIOD"],
            local_representation=text(time_type),
        )
        dsd.measures.getdefault(
            "OBS_VALUE",
            concept_identity=concepts["OBS_VALUE"],
            local_representation=text(common.FacetValueType.decimal),
        )
        dsd.attributes.getdefault(
            "OBS_STATUS",
            concept_identity=concepts["OBS_STATUS"],
            local_representation=enumerated(cl_status),
            related_to=v21.PrimaryMeasureRelationship(),
            usage_status=common.UsageStatus.mandatory,
        )
        dsd.attributes.getdefault(
            "UNIT_MEASURE",
            concept_identity=concepts["UNIT_MEASURE"],
            local_representation=enumerated(cl_unit),
            related_to=common.DimensionRelationship(dimensions=[measure_dim]),
            usage_status=common.UsageStatus.mandatory,
        )
        if flow.calendar is Calendar.jalali:
            dsd.attributes.getdefault(
                "REF_PERIOD_JALALI",
                concept_identity=concepts["REF_PERIOD_JALALI"],
                local_representation=text(common.FacetValueType.string),
                related_to=v21.PrimaryMeasureRelationship(),
                usage_status=common.UsageStatus.mandatory,
            )
        dsds.append(dsd)
        dataflows.append(
            v21.DataflowDefinition(
                id=flow.flow_id, name=_name(flow.en, flow.fa), structure=dsd, **_maintainable(agency)
            )
        )

    for cl in [*codelists.values(), cl_measure, cl_unit, cl_status]:
        msg.add(cl)
    msg.add(concepts)
    for obj in [*dsds, *dataflows]:
        msg.add(obj)
    return msg


# --------------------------------------------------------------------------- data


def _format_value(value) -> str:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a measure value")
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _mart_columns(conn, flow: MartFlow) -> set[str] | None:
    with conn.cursor() as cur:
        cur.execute(
            "select column_name from information_schema.columns where table_schema = %s and table_name = %s",
            (MART_SCHEMA, flow.table),
        )
        columns = {r[0] for r in cur.fetchall()}
    return columns or None


def _mart_rows(conn, flow: MartFlow) -> list[tuple]:
    columns = [flow.period_column, *(d.column for d in flow.dimensions), *(m.column for m in flow.measures)]
    query = sql.SQL("select {cols}, is_suppressed from {table} order by {keys}").format(
        cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
        table=sql.Identifier(MART_SCHEMA, flow.table),
        keys=sql.SQL(", ").join(map(sql.Identifier, columns[: 1 + len(flow.dimensions)])),
    )
    with conn.cursor() as cur:
        cur.execute(query)
        return cur.fetchall()


def _dataset(
    flow: MartFlow,
    rows: Sequence[tuple],
    dataflow: v21.DataflowDefinition,
    code_lists: Mapping[str, Mapping[str, tuple[str, str]]],
    problems: list[str],
) -> v21.DataSet:
    """The SDMX data set of one mart; what is wrong with its rows is appended to ``problems``."""
    dsd = dataflow.structure
    primary = dsd.measures.get("OBS_VALUE")
    attr = {a.id: a for a in dsd.attributes.components}
    unknown: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    bad_periods: dict[str, int] = defaultdict(int)
    leaks = duplicates = null_flags = 0
    seen: set[tuple] = set()
    periods: dict[str, Period | None] = {}
    n_dims = len(flow.dimensions)
    observations = []
    for row in rows:
        label, codes = row[0], row[1 : 1 + n_dims]
        values, suppressed = row[1 + n_dims : -1], row[-1]
        if label not in periods:
            try:
                periods[label] = Period.parse(label, flow.calendar)
            except (ValueError, TypeError):
                periods[label] = None
        period = periods[label]
        if period is None:
            bad_periods[repr(label)] += 1
        ok = period is not None
        for d, code in zip(flow.dimensions, codes, strict=True):
            if code is None or code not in code_lists[d.code_list]:
                unknown[d.column]["NULL" if code is None else repr(code)] += 1
                ok = False
        if suppressed is None:
            null_flags += 1
            ok = False
        elif suppressed and any(v is not None for v in values):
            leaks += 1
            ok = False
        if not ok:
            continue
        key = (label, *codes)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        key_values = {d.id: sdmx_id(code) for d, code in zip(flow.dimensions, codes, strict=True)}
        key_values["TIME_PERIOD"] = time_period(period)
        for m, value in zip(flow.measures, values, strict=True):
            if suppressed:
                status, obs_value = OBS_CONFIDENTIAL, ""
            elif value is None:
                status, obs_value = OBS_MISSING, ""
            else:
                status, obs_value = OBS_NORMAL, _format_value(value)
            attached = {
                "OBS_STATUS": common.AttributeValue(value=status, value_for=attr["OBS_STATUS"]),
                "UNIT_MEASURE": common.AttributeValue(value=m.unit, value_for=attr["UNIT_MEASURE"]),
            }
            if "REF_PERIOD_JALALI" in attr:
                attached["REF_PERIOD_JALALI"] = common.AttributeValue(value=label, value_for=attr["REF_PERIOD_JALALI"])
            observations.append(
                v21.Observation(
                    dimension=dsd.make_key(common.Key, {**key_values, "MEASURE": m.id}),
                    value=obs_value,
                    value_for=primary,
                    attached_attribute=attached,
                )
            )
    for column, codes in unknown.items():
        code_list = next(d.code_list for d in flow.dimensions if d.column == column)
        listed = ", ".join(f"{c} ({n} row{'s' if n > 1 else ''})" for c, n in sorted(codes.items()))
        problems.append(
            f"{flow.qualified_table}.{column}: code(s) not in code list {code_list!r} of ref.code_list_values: {listed}"
        )
    if bad_periods:
        problems.append(
            f"{flow.qualified_table}.{flow.period_column}: not a {flow.calendar.value} month label (YYYY-MM): "
            + ", ".join(sorted(bad_periods))
        )
    if null_flags:
        problems.append(f"{flow.qualified_table}.is_suppressed: NULL in {null_flags} row(s)")
    if leaks:
        problems.append(f"{flow.qualified_table}: {leaks} suppressed cell(s) with measure values (they must be NULL)")
    if duplicates:
        problems.append(f"{flow.qualified_table}: {duplicates} duplicate cell(s) (same period and dimension codes)")
    ds = v21.DataSet(described_by=dataflow, structured_by=dsd)
    ds.add_obs(observations)
    return ds


def export_marts(
    conn, out_dir: Path, flows: Sequence[MartFlow] = MART_FLOWS, manifest_path: Path | None = None
) -> list[Path]:
    """Write ``structure.xml`` and one SDMX-CSV file per mart into ``out_dir``; return their paths (structure first).

    Everything is checked before the first file is written; see ``SdmxExportError``.
    """
    out_dir = Path(out_dir)
    flows = with_code_lists(flows, manifest_path)
    problems: list[str] = []
    for flow in flows:
        columns = _mart_columns(conn, flow)
        if columns is None:
            problems.append(f"{flow.qualified_table} does not exist: build the marts (dbt) before exporting them")
            continue
        wanted = [flow.period_column, *(d.column for d in flow.dimensions), *(m.column for m in flow.measures)]
        missing = [c for c in [*wanted, "is_suppressed"] if c not in columns]
        if missing:
            problems.append(f"{flow.qualified_table} has no column(s) {', '.join(missing)}")
    if problems:
        raise SdmxExportError("\n".join(problems))

    code_lists = load_code_lists(conn, flows)
    structures = build_structures(code_lists, flows)
    datasets = [
        (flow, _dataset(flow, _mart_rows(conn, flow), structures.dataflow[flow.flow_id], code_lists, problems))
        for flow in flows
    ]
    if problems:
        raise SdmxExportError("\n".join(problems))

    out_dir.mkdir(parents=True, exist_ok=True)
    structure_path = out_dir / STRUCTURE_FILE
    structure_path.write_bytes(sdmx.to_xml(structures, pretty_print=True))
    paths = [structure_path]
    for flow, ds in datasets:
        path = out_dir / flow.file_name
        sdmx.to_csv(ds, path=path, attributes="o", dtype=None, format_options=CsvFormatOptions())
        _spreadsheet_safe(path)
        paths.append(path)
    return paths


def _spreadsheet_safe(path: Path) -> None:
    """SDMX-CSV is opened in spreadsheets too: a text cell that would run as a formula gets an apostrophe."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    safe = list(spreadsheet_csv_rows(rows))
    if safe != rows:
        with path.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f, lineterminator="\n").writerows(safe)


# --------------------------------------------------------------------------- reading back


def _dataflow_of(path: Path, structures: StructureMessage) -> v21.DataflowDefinition:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        first = next(reader, None)
    if first and first.get("STRUCTURE_ID"):
        ref = first["STRUCTURE_ID"]  # AGENCY:ID(VERSION)
        flow_id = ref.split(":", 1)[-1].split("(", 1)[0]
    else:  # a mart without rows: a file with the header only
        flow_id = path.stem
    try:
        return structures.dataflow[flow_id]
    except KeyError:
        raise SdmxExportError(f"{path}: dataflow {flow_id!r} is not in the structure message") from None


def read_back(path: Path, structure: Path | None = None) -> StructureMessage | DataMessage:
    """Read an exported file with sdmx1.

    ``structure.xml`` gives the ``StructureMessage``. An SDMX-CSV file gives a ``DataMessage``
    read against its dataflow from ``structure`` (default: ``structure.xml`` beside it); it holds no
    data set when the mart was empty (the file has its header only).
    """
    path = Path(path)
    if path.suffix.lower() == ".xml":
        return sdmx.read_sdmx(path)
    structures = sdmx.read_sdmx(Path(structure) if structure else path.parent / STRUCTURE_FILE)
    return sdmx.read_sdmx(path, structure=_dataflow_of(path, structures))


def observation_rows(message: DataMessage) -> list[dict[str, str]]:
    """The observations of a data message as flat rows: dimension and attribute ids, and ``OBS_VALUE``."""
    rows = []
    for ds in message.data:
        for obs in ds.obs:
            row = {k: str(kv.value) for k, kv in obs.dimension.values.items()}
            row["OBS_VALUE"] = "" if obs.value is None else str(obs.value)
            row.update({k: str(av.value) for k, av in obs.attached_attribute.items()})
            rows.append(row)
    return rows
