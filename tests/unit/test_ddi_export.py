"""The DDI-Codebook 2.5 writer (anbar.ddi_export) and its validation against the official XML Schema files."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pytest
from lxml import etree

from anbar import ddi_export
from anbar.periods import Period
from anbar.registry import load_registry

NS = {"d": ddi_export.DDI_NS}
LANG = ddi_export.XML_LANG
XSD_NS = "{http://www.w3.org/2001/XMLSchema}"


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture(scope="module")
def insured(registry):
    return registry.dataset("sso", "insured_persons")


def _texts(element, path: str) -> dict[str, str]:
    return {e.get(LANG): e.text for e in element.findall(path, NS)}


# The sha256 of codebook.xsd 2.5 as published (shared/reference/ddi-codebook-2.5/README.md).
OFFICIAL_CODEBOOK_SHA256 = "afee503fe7cfaa86ea887f890ad76ae76c07aaf89bb6e5b85146a9701e3fd8ab"
REFERENCE_COPY = Path(__file__).resolve().parents[3] / "shared" / "reference" / "ddi-codebook-2.5"
NOT_SCHEMA = {"README.md", ".gitattributes", "SHA256SUMS"}


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_schema_files_are_the_official_ones_unmodified():
    shipped = {
        p.relative_to(ddi_export.SCHEMA_DIR).as_posix(): _sha256(p)
        for p in ddi_export.SCHEMA_DIR.rglob("*")
        if p.is_file() and p.name not in NOT_SCHEMA
    }
    assert shipped["codebook.xsd"] == OFFICIAL_CODEBOOK_SHA256
    listed = dict(
        reversed(line.split("  ", 1))
        for line in (ddi_export.SCHEMA_DIR / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    )
    assert shipped == listed  # every file listed, nothing else shipped, each byte as listed
    if REFERENCE_COPY.is_dir():  # the project's reference copy, where it is beside the repository
        reference = {
            p.relative_to(REFERENCE_COPY).as_posix(): _sha256(p) for p in REFERENCE_COPY.rglob("*") if p.is_file()
        }
        assert shipped == reference


def test_the_schema_resolves_every_import_and_include_locally():
    """codebook.xsd and what it imports are all beside it: nothing is fetched over the network."""
    seen, pending = set(), [ddi_export.SCHEMA_DIR / "codebook.xsd"]
    while pending:
        path = pending.pop().resolve()
        if path in seen:
            continue
        seen.add(path)
        tree = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True))
        for tag in ("import", "include", "redefine"):
            for ref in tree.iter(f"{XSD_NS}{tag}"):
                location = ref.get("schemaLocation")
                assert location and "://" not in location, f"{path.name}: {tag} of {location}"
                target = path.parent / location
                assert target.is_file(), f"{path.name}: {location} is not vendored"
                pending.append(target)
    names = {p.name for p in seen}
    assert {"codebook.xsd", "xml.xsd", "dcterms.xsd", "ddi-xhtml11.xsd"} <= names
    assert ddi_export.schema() is ddi_export.schema()  # compiled once


def test_every_registry_dataset_exports_valid_ddi_codebook_2_5(registry):
    for ds in registry.datasets:
        document = ddi_export.codebook(registry, ds)
        assert ddi_export.validation_errors(document) == [], ds.key


def test_a_dataset_with_ledger_holdings_is_valid_and_says_what_it_covers(registry, insured):
    holdings = ddi_export.Holdings(
        first_period=Period.parse("1405-05", "jalali"),
        last_period=Period.parse("1405-07", "jalali"),
        periods=3,
        cases=31,
        submission_id=42,
        version=2,
    )
    document = ddi_export.codebook(registry, insured, holdings, produced=dt.date(2026, 11, 1))
    assert ddi_export.validation_errors(document) == []
    periods = document.findall("d:stdyDscr/d:stdyInfo/d:sumDscr/d:timePrd", NS)
    # Mordad 1405 starts on 2026-07-23; Mehr 1405 ends on 2026-10-22.
    assert [(p.get("event"), p.get("date"), p.text) for p in periods] == [
        ("start", "2026-07-23", "1405-05"),
        ("end", "2026-10-22", "1405-07"),
    ]
    dimensions = document.find("d:fileDscr/d:fileTxt/d:dimensns", NS)
    assert dimensions.findtext("d:caseQnty", namespaces=NS) == "31"
    assert dimensions.findtext("d:varQnty", namespaces=NS) == str(len(insured.columns))
    assert "version 2" in document.findtext("d:fileDscr/d:notes", namespaces=NS)
    assert document.find("d:docDscr/d:citation/d:prodStmt/d:prodDate", NS).get("date") == "2026-11-01"


def test_the_study_is_cited_in_both_languages_with_producer_and_distributor(registry, insured):
    document = ddi_export.codebook(registry, insured)
    org = registry.org("sso")
    citation = document.find("d:stdyDscr/d:citation", NS)
    assert citation.findtext("d:titlStmt/d:IDNo", namespaces=NS) == "IR-MCLS-SSO-INSURED_PERSONS"
    assert insured.description.en in citation.findtext("d:titlStmt/d:titl", namespaces=NS)
    par = citation.find("d:titlStmt/d:parTitl", NS)
    assert par.get(LANG) == "fa" and insured.description.fa in par.text
    assert _texts(citation, "d:prodStmt/d:producer") == {"en": org.names.en, "fa": org.names.fa}
    assert _texts(citation, "d:distStmt/d:distrbtr") == ddi_export.MINISTRY
    abstracts = _texts(document, "d:stdyDscr/d:stdyInfo/d:abstract")
    assert abstracts == {"en": insured.description.en, "fa": insured.description.fa}
    assert "licensed" in document.findtext("d:stdyDscr/d:dataAccs/d:useStmt/d:restrctn", namespaces=NS)
    # Without the ledger, no time period or case count is claimed.
    assert document.find("d:stdyDscr/d:stdyInfo/d:sumDscr/d:timePrd", NS) is None
    assert document.find("d:fileDscr/d:fileTxt/d:dimensns/d:caseQnty", NS) is None


def test_every_column_is_a_variable_with_labels_categories_format_and_tier(registry, insured):
    document = ddi_export.codebook(registry, insured)
    file_id = document.find("d:fileDscr", NS).get("ID")
    variables = {v.get("name"): v for v in document.findall("d:dataDscr/d:var", NS)}
    assert list(variables) == insured.column_names
    for col in insured.columns:
        var = variables[col.name]
        assert var.get("files") == file_id
        assert _texts(var, "d:labl") == {"en": col.description.en, "fa": col.description.fa}
        assert var.findtext("d:security", namespaces=NS) == col.access_tier.value
        numeric = col.type.value in ("integer", "bigint", "numeric")
        assert var.find("d:varFormat", NS).get("type") == ("numeric" if numeric else "character")
        categories = var.findall("d:catgry", NS)
        codes = registry.code_lists[col.code_list].codes if col.code_list else {}
        assert [c.findtext("d:catValu", namespaces=NS) for c in categories] == list(codes)
        for category in categories:
            label = codes[category.findtext("d:catValu", namespaces=NS)]
            assert _texts(category, "d:labl") == {"en": label.en, "fa": label.fa}
    assert variables["sex"].findall("d:catgry", NS), "sex has a code list"
    assert "Personal data." in variables["national_id"].findtext("d:notes", namespaces=NS)
    assert "Personal data." in variables["birth_date"].findtext("d:notes", namespaces=NS)
    assert "Personal data." not in variables["sex"].findtext("d:notes", namespaces=NS)
    assert variables["national_id"].findtext("d:security", namespaces=NS) == "confidential"


def _valid(registry, insured):
    return ddi_export.codebook(registry, insured)


def test_the_validator_rejects_what_the_schema_forbids(registry, insured):
    base = _valid(registry, insured)
    assert ddi_export.validation_errors(base) == []

    # A variable without its required name.
    no_name = copy.deepcopy(base)
    del no_name.find("d:dataDscr/d:var", NS).attrib["name"]
    assert any("name" in e for e in ddi_export.validation_errors(no_name))

    # security before labl: varType is a sequence.
    out_of_order = copy.deepcopy(base)
    var = out_of_order.find("d:dataDscr/d:var", NS)
    security = var.find("d:security", NS)
    var.remove(security)
    var.insert(0, security)
    assert ddi_export.validation_errors(out_of_order)

    # A study without its citation (stdyDscr requires one).
    no_citation = copy.deepcopy(base)
    study = no_citation.find("d:stdyDscr", NS)
    study.remove(study.find("d:citation", NS))
    assert ddi_export.validation_errors(no_citation)

    # An element DDI 2.5 does not have, and a value outside an enumeration.
    unknown = copy.deepcopy(base)
    etree.SubElement(unknown.find("d:dataDscr/d:var", NS), f"{{{ddi_export.DDI_NS}}}personalData")
    assert ddi_export.validation_errors(unknown)
    bad_interval = copy.deepcopy(base)
    bad_interval.find("d:dataDscr/d:var", NS).set("intrvl", "continuous")
    assert ddi_export.validation_errors(bad_interval)

    # Another namespace is not DDI Codebook 2.5 at all.
    wrong = etree.fromstring(etree.tostring(base).replace(b"ddi:codebook:2_5", b"ddi:codebook:2_6"))
    assert ddi_export.validation_errors(wrong)


def test_export_writes_one_file_per_dataset(registry, tmp_path: Path):
    paths = ddi_export.export(registry, tmp_path / "ddi")
    assert sorted(p.name for p in paths) == sorted(f"{ds.key}.xml" for ds in registry.datasets)
    for path in paths:
        parsed = etree.parse(str(path))
        assert ddi_export.validation_errors(parsed) == [], path.name
        assert parsed.docinfo.encoding.upper() == "UTF-8"
    one = ddi_export.export(registry, tmp_path / "one", datasets=["tvto__trainees"])
    assert [p.name for p in one] == ["tvto__trainees.xml"]


def test_export_refuses_an_unknown_dataset_and_writes_nothing(registry, tmp_path: Path):
    with pytest.raises(ddi_export.DdiExportError, match="nope__missing"):
        ddi_export.export(registry, tmp_path / "out", datasets=["nope__missing"])
    assert not (tmp_path / "out").exists()


def test_cli_without_the_ledger(tmp_path: Path, capsys):
    from anbar.cli import main

    assert main(["ddi-export", "--out", str(tmp_path), "--dataset", "cspf__pensioners", "--no-ledger"]) == 0
    assert (tmp_path / "cspf__pensioners.xml").is_file()
    assert "wrote" in capsys.readouterr().out
    assert main(["ddi-export", "--out", str(tmp_path), "--dataset", "x__y", "--no-ledger"]) == 1
