"""SDMX-CSV export of the marts against a real PostgreSQL, read back with sdmx1.

The four marts are stand-in tables with the contract's columns (the dbt marts replace them in
a later test); ``age_band`` codes are loaded here, as the registry does not carry them yet.
"""

from __future__ import annotations

import csv
from decimal import Decimal

import pytest

from anbar import cli
from anbar.sdmx_export import (
    MART_EXTRA_CODES,
    MART_FLOWS,
    STRUCTURE_FILE,
    SdmxExportError,
    export_marts,
    observation_rows,
    read_back,
    registry_code,
    sdmx_id,
    with_code_lists,
)

pytestmark = pytest.mark.integration

AGE_BANDS = {
    "15-24": ("15-24 years", "۱۵ تا ۲۴ سال"),
    "25-34": ("25-34 years", "۲۵ تا ۳۴ سال"),
    "35-44": ("35-44 years", "۳۵ تا ۴۴ سال"),
    "45-54": ("45-54 years", "۴۵ تا ۵۴ سال"),
    "55-64": ("55-64 years", "۵۵ تا ۶۴ سال"),
    "65+": ("65 years or over", "۶۵ سال و بیشتر"),
    "unknown": ("Unknown", "نامعلوم"),
}
SWO_SUPPORT_TYPES = {"1": ("Disability pension", "مستمری معلولان"), "2": ("Rehabilitation services", "خدمات توانبخشی")}

# Jalali months as exact Gregorian day ranges (Mehr and Aban 1404; Esfand 1403 of a leap year has 30 days).
TIME_RANGES = {"1404-07": "2025-09-23/P30D", "1404-08": "2025-10-23/P30D", "1403-12": "2025-02-19/P30D"}

MARTS = {
    "mart_insured_employment": (
        "period text, province_code text, isic_section text, sex text, age_band text,"
        " insured_persons integer, avg_insured_wage_rials numeric, is_suppressed boolean",
        [
            ("1404-07", "00", "C", "1", "25-34", 120, Decimal("152000000.50"), False),
            ("1404-07", "00", "C", "2", "65+", None, None, True),
            ("1404-08", "01", "A", "1", "unknown", 45, None, False),
            ("1403-12", "23", "G", "2", "15-24", 8, Decimal("98000000"), False),
        ],
    ),
    "mart_new_pensioners": (
        "period text, province_code text, pension_type text, sex text, age_band text,"
        " new_pensioners integer, is_suppressed boolean",
        [
            ("1404-07", "00", "1", "1", "55-64", 31, False),
            ("1404-07", "01", "3", "2", "65+", None, True),
        ],
    ),
    "mart_welfare_beneficiaries": (
        "period text, province_code text, support_type text, sex text, age_band text,"
        " beneficiaries integer, is_suppressed boolean",
        [
            ("1404-08", "02", "1", "2", "35-44", 260, False),
            ("1404-08", "02", "2", "1", "45-54", None, True),
        ],
    ),
    "mart_trainees": (
        "period text, province_code text, sex text, age_band text, course_result text,"
        " trainees integer, insured_after_6_months integer, is_suppressed boolean",
        [
            ("2025-10", "00", "1", "15-24", "P", 54, 21, False),
            ("2025-10", "00", "2", "15-24", "F", None, None, True),
            ("2025-09", "01", "1", "25-34", "A", 12, 0, False),
        ],
    ),
}


@pytest.fixture
def warehouse(fresh_warehouse):
    """The bootstrapped warehouse with the age_band codes and the four marts filled."""
    conn = fresh_warehouse
    with conn.cursor() as cur:
        cur.execute("delete from ref.code_list_values where code_list = 'age_band'")
        for code_list, codes in (("age_band", AGE_BANDS), ("swo_support_type", SWO_SUPPORT_TYPES)):
            cur.executemany(
                "insert into ref.code_list_values (code_list, code, label_en, label_fa) values (%s, %s, %s, %s)"
                " on conflict (code_list, code) do nothing",
                [(code_list, code, en, fa) for code, (en, fa) in codes.items()],
            )
        cur.execute("create schema if not exists marts")
        for table, (columns, rows) in MARTS.items():
            cur.execute(f"create table marts.{table} ({columns})")
            placeholders = ", ".join(["%s"] * len(rows[0]))
            cur.executemany(f"insert into marts.{table} values ({placeholders})", rows)
    conn.commit()
    return conn


def _labels(conn) -> dict[tuple[str, str], tuple[str, str]]:
    with conn.cursor() as cur:
        cur.execute("select code_list, code, label_en, label_fa from ref.code_list_values")
        labels = {(cl, code): (en, fa) for cl, code, en, fa in cur.fetchall()}
    conn.commit()
    return labels


def _expected(flow) -> list[dict[str, str]]:
    """The observations a mart's rows must give, computed here independently of the exporter."""
    _columns, rows = MARTS[flow.table]
    expected = []
    n = len(flow.dimensions)
    for row in rows:
        period, codes, values, suppressed = row[0], row[1 : 1 + n], row[1 + n : -1], row[-1]
        for measure, value in zip(flow.measures, values, strict=True):
            obs = {d.id: sdmx_id(code) for d, code in zip(flow.dimensions, codes, strict=True)}
            obs["MEASURE"] = measure.id
            obs["TIME_PERIOD"] = TIME_RANGES.get(period, period)
            obs["OBS_VALUE"] = "" if value is None else str(value)
            obs["OBS_STATUS"] = "C" if suppressed else ("O" if value is None else "A")
            obs["UNIT_MEASURE"] = "IRR" if measure.column.endswith("_rials") else "PS"
            if flow.calendar.value == "jalali":
                obs["REF_PERIOD_JALALI"] = period
            expected.append(obs)
    return expected


def _key(obs: dict[str, str]) -> tuple:
    return tuple(sorted(obs.items()))


def test_marts_round_trip_through_sdmx(warehouse, tmp_path):
    out = tmp_path / "sdmx"
    paths = export_marts(warehouse, out)

    assert [p.name for p in paths] == [STRUCTURE_FILE, *(f.file_name for f in MART_FLOWS)]
    assert all(p.parent == out and p.stat().st_size > 0 for p in paths)

    structures = read_back(out / STRUCTURE_FILE)
    assert sorted(structures.dataflow) == sorted(f.flow_id for f in MART_FLOWS)
    labels = _labels(warehouse)

    # Code lists carry every registry code with its English and Persian labels.
    for flow in with_code_lists():
        dfd = structures.dataflow[flow.flow_id]
        assert dfd.maintainer.id == "IR_MCLS" and dfd.version == "1.0"
        assert dfd.name.localizations == {"en": flow.en, "fa": flow.fa}
        dsd = dfd.structure
        assert [d.id for d in dsd.dimensions.components] == [*(d.id for d in flow.dimensions), "MEASURE", "TIME_PERIOD"]
        for d in flow.dimensions:
            codelist = dsd.dimensions.get(d.id).local_representation.enumerated
            # the registry's codes, plus the marts' total and unknown (SDMX's _T and _U)
            registry = {code: lab for (cl, code), lab in labels.items() if cl == d.code_list} | MART_EXTRA_CODES
            assert {registry_code(c): (c.name.localizations["en"], c.name.localizations["fa"]) for c in codelist} == (
                registry
            )
    age = structures.codelist["CL_AGE_BAND"]
    assert registry_code(age["65_PLUS"]) == "65+" and age["65_PLUS"].name.localizations["fa"] == "۶۵ سال و بیشتر"
    assert registry_code(age["15-24"]) == "15-24"

    for flow in MART_FLOWS:
        path = out / flow.file_name
        with path.open(newline="", encoding="utf-8") as f:
            raw = list(csv.DictReader(f))
        assert list(raw[0])[:3] == ["STRUCTURE", "STRUCTURE_ID", "ACTION"]
        assert {r["STRUCTURE_ID"] for r in raw} == {f"IR_MCLS:{flow.flow_id}(1.0)"}

        message = read_back(path)
        assert message.data[0].described_by.id == flow.flow_id
        got = observation_rows(message)
        assert sorted(got, key=_key) == sorted(_expected(flow), key=_key)

        # Every code read back is a code of its code list, and maps back to the mart's registry code.
        dsd = structures.dataflow[flow.flow_id].structure
        for obs in got:
            for d in [*flow.dimensions]:
                assert obs[d.id] in dsd.dimensions.get(d.id).local_representation.enumerated
        # Suppressed cells: confidential, no value, in the file itself as well.
        suppressed = [r for r in raw if r["OBS_STATUS"] == "C"]
        assert suppressed and all(r["OBS_VALUE"] == "" for r in suppressed)
        assert len(suppressed) == len(flow.measures) * sum(1 for row in MARTS[flow.table][1] if row[-1])

    insured = observation_rows(read_back(out / "DF_INSURED_EMPLOYMENT.csv"))
    (wage,) = [o for o in insured if o["MEASURE"] == "AVG_INSURED_WAGE" and o["OBS_STATUS"] == "A" and o["SEX"] == "1"]
    assert wage["OBS_VALUE"] == "152000000.50" and wage["TIME_PERIOD"] == "2025-09-23/P30D"
    assert wage["REF_PERIOD_JALALI"] == "1404-07" and wage["UNIT_MEASURE"] == "IRR"


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        pytest.param(
            "insert into marts.mart_new_pensioners values ('1404-08', '00', '9', '1', '25-34', 3, false)",
            r"marts\.mart_new_pensioners\.pension_type: code\(s\) not in code list 'cspf_pension_type'.*'9' \(1 row\)",
            id="unknown-code",
        ),
        pytest.param(
            "update marts.mart_trainees set sex = null where course_result = 'A'",
            r"marts\.mart_trainees\.sex: .*NULL \(1 row\)",
            id="null-code",
        ),
        pytest.param(
            "delete from ref.code_list_values where code_list = 'age_band'",
            r"code list 'age_band' \(used by marts\.mart_insured_employment\.age_band, .*\)",
            id="age-band-not-loaded",
        ),
        pytest.param(
            "update marts.mart_welfare_beneficiaries set beneficiaries = 2 where is_suppressed",
            r"marts\.mart_welfare_beneficiaries: 1 suppressed cell\(s\) with measure values",
            id="suppressed-cell-with-values",
        ),
        pytest.param(
            "update marts.mart_new_pensioners set period = '2025-10' where age_band = '55-64'",
            r"marts\.mart_new_pensioners\.period: not a jalali month label \(YYYY-MM\): '2025-10'",
            id="gregorian-period-in-jalali-mart",
        ),
    ],
)
def test_a_mart_breaking_the_contract_fails_the_export_and_writes_nothing(warehouse, tmp_path, statement, expected):
    with warehouse.cursor() as cur:
        cur.execute(statement)
    warehouse.commit()
    out = tmp_path / "sdmx"
    with pytest.raises(SdmxExportError, match=expected):
        export_marts(warehouse, out)
    assert not out.exists()


def test_a_missing_mart_is_named(fresh_warehouse, tmp_path, capsys):
    with pytest.raises(SdmxExportError, match=r"marts\.mart_trainees does not exist"):
        export_marts(fresh_warehouse, tmp_path / "sdmx")
    assert cli.main(["sdmx-export", "--out", str(tmp_path / "cli")]) == 1
    assert "marts.mart_insured_employment does not exist" in capsys.readouterr().err


def test_cli_sdmx_export(warehouse, tmp_path, capsys):
    with warehouse.cursor() as cur:
        cur.execute("truncate marts.mart_welfare_beneficiaries")
    warehouse.commit()
    assert cli.main(["sdmx-export", "--out", str(tmp_path / "cli")]) == 0
    printed = capsys.readouterr().out
    assert all(f"wrote {tmp_path / 'cli' / f.file_name}" in printed for f in MART_FLOWS)
    trainees = observation_rows(read_back(tmp_path / "cli" / "DF_TRAINEES.csv"))
    assert {o["TIME_PERIOD"] for o in trainees} == {"2025-10", "2025-09"}
    assert "REF_PERIOD_JALALI" not in trainees[0]
    # An empty mart gives a file with the header only, read back as a message without data.
    empty = tmp_path / "cli" / "DF_WELFARE_BENEFICIARIES.csv"
    assert empty.read_text(encoding="utf-8").count("\n") == 1
    assert observation_rows(read_back(empty)) == []


def test_code_lists_come_from_the_marts_dbt_yaml(warehouse, tmp_path):
    """One place ties a mart column to its code list: ``meta.code_list`` in the marts' YAML."""
    import json

    from anbar.dbt import MANIFEST_PATH

    flows = {f.table: f for f in with_code_lists()}
    assert {d.column: d.code_list for d in flows["mart_new_pensioners"].dimensions} == {
        "province_code": "province",
        "pension_type": "cspf_pension_type",
        "sex": "sex",
        "age_band": "age_band",
    }
    manifest = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
    del manifest["nodes"]["model.anbar.mart_trainees"]["columns"]["course_result"]["meta"]["code_list"]
    stale = tmp_path / "manifest.json"
    stale.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(SdmxExportError, match=r"mart_trainees\.course_result"):
        export_marts(warehouse, tmp_path / "sdmx", manifest_path=stale)
    assert not (tmp_path / "sdmx").exists()
