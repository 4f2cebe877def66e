"""DDI-Codebook 2.5 export of the registry datasets, for a NADA microdata catalogue.

One XML document per registry dataset (``<org>__<dataset>.xml``), in the structure NADA's DDI
importer reads (``codeBook/stdyDscr/citation/titlStmt/IDNo`` is the study's id; ``fileDscr/@ID``
and ``var/@files`` tie the variables to the data file):

- ``docDscr``: who produced the document (the ministry) and when.
- ``stdyDscr``: the citation (title in English with its Persian parallel title, the IDNo
  ``IR-MCLS-<ORG>-<DATASET>``, the organisation as producer, the ministry as distributor), the study
  info (the abstract in both languages; the time periods covered and the periodicity, from the
  ledger when the warehouse is reachable; Iran as the nation; administrative records as the data
  kind), the collection frequency, and the access conditions of the dataset's tier.
- ``fileDscr``: one file per dataset (its clean table), with the case count of the latest accepted
  period (the rows loaded of the version the warehouse uses) and the variable count.
- ``dataDscr``: one ``var`` per registry column: name, its access tier as ``security``, labels in
  English and Persian (``xml:lang``), the categories of its code list with both labels, its format
  (numeric or character) and notes (required, identifier, personal data, calendar, bounds).

Every document is validated against the DDI Alliance's official DDI Codebook 2.5 XML Schema files, shipped
unmodified in ``anbar/schemas/ddi_codebook_2_5/`` (resolved locally, never over the network) before it is written;
an invalid one raises ``DdiExportError`` and nothing is written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lxml import etree

from anbar.periods import Period
from anbar.registry import AccessTier, ColumnType, Dataset, Registry

DDI_NS = "ddi:codebook:2_5"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = "ddi:codebook:2_5 http://www.ddialliance.org/Specification/DDI-Codebook/2.5/XMLSchema/codebook.xsd"
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas" / "ddi_codebook_2_5"

AGENCY = "IR_MCLS"
MINISTRY = {"en": "Ministry of Cooperatives, Labour and Social Welfare", "fa": "وزارت تعاون، کار و رفاه اجتماعی"}
MINISTRY_ABBR = "MCLS"
NATION = {"en": "Iran", "fa": "ایران"}
DATA_KIND = {"en": "Administrative records", "fa": "داده‌های ثبتی (اداری)"}
FREQUENCY = {
    "monthly": {"en": "Monthly", "fa": "ماهانه"},
    "quarterly": {"en": "Quarterly", "fa": "فصلی"},
    "yearly": {"en": "Yearly", "fa": "سالانه"},
}
# What each access tier means for a user of the catalogue (the committee's levels, anbar.registry.AccessTier).
TIER_CONDITIONS = {
    AccessTier.open: "Open: published without restriction.",
    AccessTier.internal: "Internal: for the ministry's staff only.",
    AccessTier.licensed: "Licensed microdata: available on a request approved by the data-exchange committee, "
    "for a stated purpose and until an expiry date.",
    AccessTier.enclave: "Data enclave only: to be analysed inside the ministry's data enclave, never copied out.",
    AccessTier.confidential: "Confidential: identifiers that never leave the raw schema; not released.",
}


class DdiExportError(RuntimeError):
    """A dataset is unknown, or a document does not validate against the DDI Codebook 2.5 schema."""


@dataclass(frozen=True)
class Holdings:
    """What the ledger holds of a dataset: its accepted periods and the latest one in use."""

    first_period: Period
    last_period: Period
    periods: int
    cases: int  # rows loaded of the version of the last period the warehouse uses
    submission_id: int
    version: int


def ledger_holdings(conn, registry: Registry, ds: Dataset) -> Holdings | None:
    """The accepted periods of ``ds`` in the ledger (``anbar.submissions``); None when there is none."""
    with conn.cursor() as cur:
        cur.execute(
            "select period, version, submission_id, rows_loaded from anbar.submissions "
            "where org = %s and dataset = %s and status = 'accepted'",
            (ds.org, ds.name),
        )
        rows = cur.fetchall()
    if not rows:
        return None
    calendar = registry.org(ds.org).calendar
    latest: dict[str, tuple[int, int, int]] = {}
    for period, version, submission_id, rows_loaded in rows:
        if period not in latest or version > latest[period][0]:
            latest[period] = (version, submission_id, rows_loaded or 0)
    periods = sorted(Period.parse(label, calendar) for label in latest)
    version, submission_id, cases = latest[periods[-1].label]
    return Holdings(periods[0], periods[-1], len(periods), cases, submission_id, version)


def study_id(ds: Dataset) -> str:
    """The study's IDNo in the catalogue: ``IR-MCLS-<ORG>-<DATASET>``."""
    return f"IR-MCLS-{ds.org.upper()}-{ds.name.upper()}"


def _el(parent, tag: str, text: str | None = None, lang: str | None = None, **attrs: str):
    element = etree.SubElement(parent, f"{{{DDI_NS}}}{tag}", {k: v for k, v in attrs.items() if v is not None})
    if lang:
        element.set(XML_LANG, lang)
    if text is not None:
        element.text = text
    return element


def _bilingual(parent, tag: str, en: str, fa: str, **attrs: str) -> None:
    _el(parent, tag, en, "en", **attrs)
    _el(parent, tag, fa, "fa", **attrs)


def _var_notes(ds: Dataset, registry: Registry, name: str) -> list[str]:
    col = ds.column(name)
    person_level = any(c.identifier is not None and c.identifier.value == "person" for c in ds.columns)
    notes = [f"Access tier: {col.access_tier.value}.", "Required in every record." if col.required else "Optional."]
    if name in ds.primary_key:
        notes.append("Part of the dataset's primary key.")
    if col.identifier is not None:
        notes.append(f"Identifier with a check digit ({col.identifier.value}).")
    if (col.identifier is not None and col.identifier.value == "person") or (
        person_level and col.type is ColumnType.date
    ):
        notes.append("Personal data.")
    if col.type is ColumnType.date:
        calendar = registry.org(ds.org).date_calendar(col)
        notes.append(f"Delivered in the {calendar.value} calendar; stored as a Gregorian date (YYYY-MM-DD).")
    if col.min is not None or col.max is not None:
        low = "" if col.min is None else f"{col.min:g}"
        high = "" if col.max is None else f"{col.max:g}"
        notes.append(f"Valid range: [{low}, {high}].")
    if col.code_list:
        notes.append(f"Code list: {col.code_list}.")
    return notes


def codebook(registry: Registry, ds: Dataset, holdings: Holdings | None = None, *, produced: dt.date | None = None):
    """The DDI-Codebook 2.5 document of ``ds`` (an lxml element)."""
    org = registry.org(ds.org)
    produced = produced or dt.date.today()
    root = etree.Element(
        f"{{{DDI_NS}}}codeBook",
        {"version": "2.5", "ID": f"anbar-{ds.key}", f"{{{XSI_NS}}}schemaLocation": SCHEMA_LOCATION},
        nsmap={None: DDI_NS, "xsi": XSI_NS},
    )
    root.set(XML_LANG, "en")

    doc = _el(_el(root, "docDscr"), "citation")
    titles = _el(doc, "titlStmt")
    _el(titles, "titl", f"DDI codebook: {ds.description.en}", "en")
    _el(titles, "IDNo", f"DDI-{study_id(ds)}", agency=AGENCY)
    prod = _el(doc, "prodStmt")
    _el(prod, "producer", MINISTRY["en"], "en", abbr=MINISTRY_ABBR)
    _el(prod, "prodDate", produced.isoformat(), date=produced.isoformat())
    _el(prod, "software", "anbar ddi-export")

    study = _el(root, "stdyDscr")
    citation = _el(study, "citation")
    titles = _el(citation, "titlStmt")
    _el(titles, "titl", f"{org.names.en}: {ds.description.en}", "en")
    _el(titles, "parTitl", f"{org.names.fa}: {ds.description.fa}", "fa")
    _el(titles, "IDNo", study_id(ds), agency=AGENCY)
    rsp = _el(citation, "rspStmt")
    _bilingual(rsp, "AuthEnty", org.names.en, org.names.fa)
    prod = _el(citation, "prodStmt")
    _bilingual(prod, "producer", org.names.en, org.names.fa, abbr=org.code.upper())
    dist = _el(citation, "distStmt")
    _bilingual(dist, "distrbtr", MINISTRY["en"], MINISTRY["fa"], abbr=MINISTRY_ABBR)
    _el(_el(citation, "verStmt"), "version", f"schema version {ds.schema_version}")

    info = _el(study, "stdyInfo")
    _bilingual(info, "abstract", ds.description.en, ds.description.fa)
    summary = _el(info, "sumDscr")
    if holdings is not None:
        first, last = holdings.first_period, holdings.last_period
        _el(summary, "timePrd", first.label, event="start", date=first.start.isoformat(), cycle="P1")
        last_day = last.end - dt.timedelta(days=1)
        _el(summary, "timePrd", last.label, event="end", date=last_day.isoformat(), cycle="P1")
    _bilingual(summary, "nation", NATION["en"], NATION["fa"], abbr="IRN")
    _bilingual(summary, "dataKind", DATA_KIND["en"], DATA_KIND["fa"])

    method = _el(_el(study, "method"), "dataColl")
    frequency = FREQUENCY.get(ds.period, {"en": ds.period, "fa": ds.period})
    _bilingual(method, "frequenc", frequency["en"], frequency["fa"])
    use = _el(_el(study, "dataAccs"), "useStmt")
    _el(use, "restrctn", f"Access tier {ds.access_tier.value}. {TIER_CONDITIONS[ds.access_tier]}", "en")

    file_id = "F1"
    file_dscr = _el(root, "fileDscr", ID=file_id, URI=ds.asset_uri)
    text = _el(file_dscr, "fileTxt")
    _el(text, "fileName", ds.key)
    _el(text, "fileCont", ds.description.en, "en")
    dimensions = _el(text, "dimensns")
    if holdings is not None:
        _el(dimensions, "caseQnty", str(holdings.cases))
    _el(dimensions, "varQnty", str(len(ds.columns)))
    _el(text, "fileType", "PostgreSQL table clean." + ds.key)
    if holdings is not None:
        _el(
            file_dscr,
            "notes",
            f"Cases: the rows of period {holdings.last_period.label} (version {holdings.version}, ledger submission "
            f"{holdings.submission_id}), the latest accepted; {holdings.periods} period(s) accepted in all.",
            "en",
        )

    data = _el(root, "dataDscr")
    for number, col in enumerate(ds.columns, start=1):
        numeric = col.type in (ColumnType.integer, ColumnType.bigint, ColumnType.numeric)
        var = _el(
            data,
            "var",
            ID=f"V{number}",
            name=col.name,
            files=file_id,
            intrvl="contin" if numeric else "discrete",
        )
        _bilingual(var, "labl", col.description.en, col.description.fa)
        _el(var, "security", col.access_tier.value)
        if col.code_list:
            for code, label in registry.code_lists[col.code_list].codes.items():
                category = _el(var, "catgry")
                _el(category, "catValu", code)
                _bilingual(category, "labl", label.en, label.fa)
        _el(
            var,
            "varFormat",
            col.type.value,
            type="numeric" if numeric else "character",
            schema="other",
            formatname=col.type.value,
        )
        _el(var, "notes", " ".join(_var_notes(ds, registry, col.name)), "en")
    return root


@cache
def schema() -> etree.XMLSchema:
    """The DDI Codebook 2.5 XML Schema, read from ``SCHEMA_DIR`` only: a parser that resolves nothing
    over the network (imports and includes are relative paths beside codebook.xsd)."""
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / "codebook.xsd"), parser))


def validation_errors(document) -> list[str]:
    """What the DDI Codebook 2.5 schema says is wrong with ``document`` (an element or tree); [] when valid."""
    validator = schema()
    if validator.validate(document):
        return []
    return [f"line {e.line}: {e.message}" for e in validator.error_log]


def to_bytes(document) -> bytes:
    return etree.tostring(document, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def export(
    registry: Registry,
    out_dir: Path,
    *,
    conn=None,
    datasets: list[str] | None = None,
    produced: dt.date | None = None,
) -> list[Path]:
    """Write ``<org>__<dataset>.xml`` for every registry dataset (or those named ``org__dataset``) into
    ``out_dir``; with a warehouse connection, time periods and case counts come from the ledger.
    Every document is validated first: nothing is written unless all of them are valid."""
    by_key = {ds.key: ds for ds in registry.datasets}
    unknown = sorted(set(datasets or []) - set(by_key))
    if unknown:
        raise DdiExportError(f"not a registry dataset: {', '.join(unknown)} (known: {', '.join(sorted(by_key))})")
    chosen = [by_key[k] for k in (datasets or sorted(by_key))]
    documents = {}
    for ds in chosen:
        holdings = ledger_holdings(conn, registry, ds) if conn is not None else None
        document = codebook(registry, ds, holdings, produced=produced)
        errors = validation_errors(document)
        if errors:
            raise DdiExportError(f"{ds.key}: not valid DDI Codebook 2.5:\n  " + "\n  ".join(errors[:20]))
        documents[ds.key] = document
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for key, document in documents.items():
        path = out_dir / f"{key}.xml"
        path.write_bytes(to_bytes(document))
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------
# command line: anbar ddi-export
# --------------------------------------------------------------------------------------
def _run(args) -> int:
    from anbar import warehouse
    from anbar.registry import load_registry

    registry = load_registry(args.registry)
    conn = None
    if not args.no_ledger:
        try:
            conn = warehouse.connect()
        except Exception as exc:  # an unreachable warehouse only leaves periods and case counts out
            reason = exc.__class__.__name__
            print(f"warehouse not reachable ({reason}): no time periods or case counts", file=sys.stderr)
    try:
        paths = export(registry, Path(args.out), conn=conn, datasets=args.dataset)
    except DdiExportError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        if conn is not None:
            conn.close()
    for path in paths:
        print(f"wrote {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ddi-export", help="write a DDI-Codebook 2.5 XML per registry dataset, for a NADA catalogue (docs/catalog.md)"
    )
    p.add_argument("--out", required=True, help="directory to write <org>__<dataset>.xml into")
    p.add_argument(
        "--dataset", action="append", metavar="ORG__DATASET", help="only this dataset (repeatable; default: all)"
    )
    p.add_argument("--no-ledger", action="store_true", help="do not read the warehouse (no periods, no case counts)")
    p.set_defaults(func=_run)
