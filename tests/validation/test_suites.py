"""Suite files: the committed ones load and cover the registry; broken ones fail clearly."""

from __future__ import annotations

import copy
import json
import shutil

import great_expectations as gx
import pytest
from great_expectations.expectations import UnexpectedRowsExpectation

from anbar.suites import (
    PRINCIPLES,
    SEVERITIES,
    SuiteError,
    check_all,
    generate_suite,
    load_suite,
    read_suite,
    suite_path,
    write_suite,
)

from .conftest import EXPECTATIONS


def test_every_registry_dataset_has_a_committed_suite_that_loads(registry):
    assert check_all(EXPECTATIONS, registry) == []
    for ds in registry.datasets:
        path = suite_path(EXPECTATIONS, ds)
        suite = load_suite(path, ds)
        assert suite.name == ds.key
        assert len(suite.expectations) == len(json.loads(path.read_text())["expectations"])
        for exp in suite.expectations:
            assert exp.meta["principle"] in PRINCIPLES
            assert exp.meta["severity"] in SEVERITIES
            assert exp.meta["description"]["fa"] and exp.meta["description"]["en"]


def test_no_committed_suite_without_a_dataset(registry):
    keys = {ds.key for ds in registry.datasets}
    assert {p.stem for p in EXPECTATIONS.glob("*.json")} == keys


def test_gx_reads_the_committed_files_natively(registry):
    # GX's own constructor drops (and only logs) an expectation it cannot build: equal
    # counts mean GX 1.x accepts every expectation in the files as they are.
    for ds in registry.datasets:
        data = json.loads(suite_path(EXPECTATIONS, ds).read_text(encoding="utf-8"))
        suite = gx.ExpectationSuite(**data)
        assert len(suite.expectations) == len(data["expectations"])


def test_drafted_suite_covers_the_registry_rules(registry):
    ds = registry.dataset("sso", "insured_persons")
    data = generate_suite(ds, registry)
    by_rule = {e["meta"]["rule"]: e for e in data["expectations"]}
    assert by_rule["primary_key_unique"]["kwargs"] == {"column_list": ["national_id", "workshop_code"]}
    for col in ds.columns:
        assert (f"not_null.{col.name}" in by_rule) == col.required
    assert by_rule["code_list.insurance_type"]["kwargs"] == {
        "column": "insurance_type",
        "code_list": "sso_insurance_type",
    }
    assert by_rule["code_list.insurance_type"]["type"] == "expect_column_values_to_be_in_code_list"
    assert by_rule["code_list.insurance_type"]["meta"]["principle"] == "system"
    assert by_rule["range.days_worked"]["kwargs"] == {
        "column": "days_worked",
        "min_value": 0,
        "max_value": 31,
    }
    assert by_rule["range.insured_wage"]["kwargs"] == {"column": "insured_wage", "min_value": 0}
    assert by_rule["check_digit.national_id"]["type"] == "expect_column_values_to_be_valid_person_id"
    assert by_rule["order.employment_start_after_birth_date"]["meta"]["principle"] == "consistency"
    assert by_rule["plausible_age.employment_start"]["meta"]["severity"] == "warning"
    # conversion: values as delivered, on the raw table, in the organisation's calendar
    assert by_rule["calendar_date.birth_date"]["kwargs"] == {"column": "birth_date", "calendar": "jalali"}
    assert by_rule["calendar_date.birth_date"]["meta"]["table"] == "raw"
    assert by_rule["digits_only.national_id"]["meta"] == {**by_rule["digits_only.national_id"]["meta"], "table": "raw"}
    # consistency across periods
    assert by_rule["row_count_vs_previous_period"]["kwargs"] == {"tolerance": 0.3}
    assert by_rule["total_vs_previous_period.insured_wage"]["meta"]["severity"] == "warning"
    assert by_rule["not_younger_than_previous_period.national_id"]["kwargs"]["id_column"] == "national_id"
    # an optional column: a completeness warning, not a blocking rule
    assert by_rule["mostly_filled.employment_start"]["kwargs"]["mostly"] == 0.9
    assert data["meta"]["rejection"] == "file"
    assert {e["meta"]["principle"] for e in data["expectations"]} == set(PRINCIPLES)
    tvto = {
        e["meta"]["rule"]: e for e in generate_suite(registry.dataset("tvto", "trainees"), registry)["expectations"]
    }
    assert tvto["order.course_end_after_course_start"]["kwargs"]["column_A"] == "course_end"
    assert tvto["calendar_date.course_end"]["kwargs"]["calendar"] == "gregorian"
    workplaces = generate_suite(registry.dataset("sso", "workplaces"), registry)["expectations"]
    legal = next(e for e in workplaces if e["meta"]["rule"] == "check_digit.legal_id")
    assert legal["type"] == "expect_column_values_to_be_valid_legal_entity_id"


def test_drafted_suites_load_and_are_only_written_once(registry, tmp_path):
    for ds in registry.datasets:
        path = write_suite(tmp_path, ds, registry)
        load_suite(path, ds)
        with pytest.raises(FileExistsError):
            write_suite(tmp_path, ds, registry)
    assert check_all(tmp_path, registry) == []


def test_row_query_checks_become_gx_unexpected_rows_expectations(registry):
    ds = registry.dataset("tvto", "trainees")
    suite = load_suite(suite_path(EXPECTATIONS, ds), ds)
    row_checks = [e for e in suite.expectations if isinstance(e, UnexpectedRowsExpectation)]
    assert row_checks
    assert all("{batch}" in e.unexpected_rows_query for e in row_checks)
    # anbar's severity is mirrored into GX's own field
    assert {e.severity.value for e in suite.expectations} <= {"critical", "warning"}


# -- the loader refuses broken files ------------------------------------------------------------


@pytest.fixture
def tvto_suite(registry):
    ds = registry.dataset("tvto", "trainees")
    return ds, generate_suite(ds, registry)


def _rule(data: dict, rule: str) -> dict:
    return next(e for e in data["expectations"] if e["meta"].get("rule") == rule)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (
            lambda d: _rule(d, "not_null.sex")["meta"].update(principle="accuracy"),
            "unknown principle 'accuracy'",
        ),
        (
            lambda d: _rule(d, "not_null.sex")["meta"].update(severity="fatal"),
            "unknown severity 'fatal'",
        ),
        (lambda d: _rule(d, "not_null.sex")["meta"].pop("principle"), "unknown principle None"),
        (lambda d: _rule(d, "not_null.sex").pop("meta"), "meta is missing"),
        (lambda d: _rule(d, "not_null.sex")["meta"]["description"].pop("fa"), "'fa' and 'en'"),
        (
            lambda d: _rule(d, "not_null.sex")["kwargs"].update(column="gender"),
            "column 'gender' is not a column",
        ),
        (
            lambda d: _rule(d, "primary_key_unique")["kwargs"].update(column_list=["national_id", "course"]),
            "column 'course' is not a column",
        ),
        (
            lambda d: _rule(d, "plausible_age.course_start")["meta"].update(columns=["nid"]),
            "column 'nid' is not a column",
        ),
        (
            lambda d: _rule(d, "plausible_age.course_start")["meta"].pop("columns"),
            "meta.columns is required",
        ),
        (
            lambda d: _rule(d, "code_list.province")["kwargs"].update(code_list=["province"]),
            "bad kwargs: code_list: str type expected",
        ),
        (
            lambda d: _rule(d, "code_list.province")["kwargs"].update(valueset=["23"]),
            "valueset: extra fields not permitted",
        ),
        (
            lambda d: _rule(d, "calendar_date.birth_date")["kwargs"].update(calendar="lunar"),
            "bad kwargs: calendar",
        ),
        (
            lambda d: _rule(d, "calendar_date.birth_date")["meta"].update(table="clean"),
            "runs on the raw table only",
        ),
        (lambda d: _rule(d, "not_null.sex")["meta"].update(table="staging"), "meta.table must be one of"),
        (
            lambda d: _rule(d, "row_count_vs_previous_period")["kwargs"].update(unexpected_rows_query="select 1"),
            "kwargs.unexpected_rows_query is written by anbar",
        ),
        (
            lambda d: _rule(d, "row_count_vs_previous_period")["kwargs"].update(tolerance="a lot"),
            "tolerance must be a share",
        ),
        (
            lambda d: _rule(d, "not_younger_than_previous_period.national_id")["kwargs"].update(
                id_column="national_id; drop table x"
            ),
            "is not a column of tvto__trainees",
        ),
        (lambda d: d["meta"].update(rejection="some"), "meta.rejection must be one of file, rows"),
        (lambda d: d["meta"].update(max_rejected_percent=150), "max_rejected_percent must be a number"),
        (
            lambda d: _rule(d, "range.hours")["kwargs"].update(min_value=3000),
            "min_value 3000 is greater than max_value 2000",
        ),
        (lambda d: _rule(d, "range.hours")["kwargs"].update(mostly=2), "mostly"),
        (
            lambda d: _rule(d, "order.course_end_after_course_start")["kwargs"].update(or_equal="yes"),
            "kwargs.or_equal must be true or false",
        ),
        (
            lambda d: _rule(d, "not_null.sex").update(type="expect_column_to_be_nice"),
            "unknown expectation type",
        ),
        (
            lambda d: _rule(d, "plausible_age.course_start")["kwargs"].update(
                unexpected_rows_query="select * from clean.tvto__trainees where true"
            ),
            "selecting from {batch}",
        ),
        (
            lambda d: _rule(d, "plausible_age.course_start")["kwargs"].update(
                unexpected_rows_query="select * from {batch} where national_id ~ '^[0-9]{10}$'"
            ),
            "unknown placeholders: {10}",
        ),
        (
            lambda d: _rule(d, "plausible_age.course_start")["kwargs"].update(
                unexpected_rows_query="select * from {batch} where national_id ~ '^[0-9]{10'"
            ),
            "unpaired brace",
        ),
        (
            lambda d: _rule(d, "not_null.sex")["meta"].update(rule="not_null.result"),
            "repeats expectations",
        ),
        (lambda d: d.update(name="tvto__courses"), "is not the dataset 'tvto__trainees'"),
        (lambda d: d.update(expectations=[]), "non-empty list"),
        (lambda d: d.update(checkpoints=[]), "unknown top-level keys: checkpoints"),
    ],
)
def test_loader_rejects(tvto_suite, write_suite_file, edit, reason):
    ds, data = tvto_suite
    data = copy.deepcopy(data)
    edit(data)
    path = write_suite_file(data, ds.key)
    with pytest.raises(SuiteError) as err:
        load_suite(path, ds)
    message = str(err.value)
    assert str(path) in message
    assert reason in message


def test_loader_names_the_expectation_in_the_message(tvto_suite, write_suite_file):
    ds, data = tvto_suite
    index = next(i for i, e in enumerate(data["expectations"]) if e["meta"]["rule"] == "range.hours")
    data["expectations"][index]["meta"]["principle"] = "beauty"
    path = write_suite_file(data, ds.key)
    with pytest.raises(SuiteError, match=rf"expectations\[{index}\] \(expect_column_values_to_be_between\)"):
        load_suite(path, ds)


def test_loader_rejects_unreadable_files(tvto_suite, tmp_path):
    ds, _ = tvto_suite
    path = tmp_path / "tvto__trainees.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(SuiteError, match=r"tvto__trainees.json: cannot read"):
        load_suite(path, ds)
    with pytest.raises(SuiteError, match=r"suite file not found"):
        load_suite(tmp_path / "nothing.json", ds)


def test_statisticians_may_edit_and_add_checks(tvto_suite, write_suite_file):
    ds, data = tvto_suite
    data["expectations"].append(
        {
            "type": "expect_column_values_to_match_regex",
            "kwargs": {"column": "isco_code", "regex": "^[0-9]{4}$"},
            "meta": {
                "principle": "system",
                "severity": "warning",
                "description": {"fa": "کد ISCO چهار رقمی است", "en": "ISCO code has four digits"},
            },
        }
    )
    _rule(data, "range.hours")["meta"]["severity"] = "warning"
    path = write_suite_file(data, ds.key)
    suite = load_suite(path, ds)
    assert suite.expectations[-1].severity.value == "warning"
    assert len(suite.expectations) == len(data["expectations"])


# -- check_all -------------------------------------------------------------------------------------


def test_check_all_reports_missing_orphan_broken_and_stale(registry, tmp_path):
    for p in EXPECTATIONS.glob("*.json"):
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "sso__workplaces.json").unlink()
    (tmp_path / "ikrf__members.json").write_text("{}", encoding="utf-8")
    tvto = json.loads((tmp_path / "tvto__trainees.json").read_text(encoding="utf-8"))
    _rule(tvto, "code_list.province")["kwargs"]["code_list"] = "provinces"
    tvto["expectations"].append(
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "sex", "value_set": ["1", "9"]},
            "meta": {
                "rule": "sex_copy",
                "principle": "system",
                "severity": "warning",
                "description": {"fa": "کپی فهرست", "en": "a copy of the code list"},
            },
        }
    )
    _rule(tvto, "not_younger_than_previous_period.national_id")["type"] = (
        "expect_persons_to_not_be_active_in_other_dataset"
    )
    _rule(tvto, "not_younger_than_previous_period.national_id")["kwargs"] = {
        "id_column": "national_id",
        "other_dataset": "ikrf__members",
    }
    (tmp_path / "tvto__trainees.json").write_text(json.dumps(tvto), encoding="utf-8")
    insured = json.loads((tmp_path / "sso__insured_persons.json").read_text(encoding="utf-8"))
    _rule(insured, "not_null.sex")["meta"]["principle"] = "timeliness"
    (tmp_path / "sso__insured_persons.json").write_text(json.dumps(insured), encoding="utf-8")

    problems = check_all(tmp_path, registry)
    text = "\n".join(problems)
    assert len(problems) == 7, text
    assert "sso__workplaces.json: missing" in text
    assert "ikrf__members.json: no dataset 'ikrf__members' in the registry" in text
    assert "sso__insured_persons.json" in text and "unknown principle 'timeliness'" in text
    assert "no code list 'provinces' in the registry" in text
    assert "codes not in code list 'sex': 9" in text
    assert "missing from value_set: 2" in text
    assert "(expect_persons_to_not_be_active_in_other_dataset): no dataset 'ikrf__members'" in text


def test_read_suite_returns_the_checked_file(registry):
    ds = registry.dataset("sso", "workplaces")
    data = read_suite(suite_path(EXPECTATIONS, ds), ds)
    assert data["name"] == "sso__workplaces"
