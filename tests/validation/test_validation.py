"""Validation of a loaded submission inside a real PostgreSQL 18, with the committed suites."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from anbar.ids import is_valid_legal_entity_id, is_valid_person_id
from anbar.suites import generate_suite, suite_path
from anbar.validation import (
    ValidationRunError,
    identifier_columns,
    mask,
    partition_table,
    validate_submission,
)

from .conftest import EXPECTATIONS

pytestmark = pytest.mark.integration

MASKED = re.compile(r"^[0-9]{3}\*+[0-9]$")


def run(warehouse, ds, rows, suite=None):
    sid = warehouse.partition(ds, rows)
    return validate_submission(warehouse.url, ds, sid, suite or suite_path(EXPECTATIONS, ds))


def by_rule(result, rule):
    return next(e for e in result["expectations"] if e["rule"] == rule)


def failed_rules(result):
    return {e["rule"] for e in result["expectations"] if not e["success"]}


def wrong_check_digit(value: str) -> str:
    bad = value[:-1] + str((int(value[-1]) + 1) % 10)
    assert not is_valid_person_id(bad)
    return bad


@pytest.fixture
def tvto(registry):
    return registry.dataset("tvto", "trainees")


@pytest.fixture
def insured(registry):
    return registry.dataset("sso", "insured_persons")


@pytest.fixture
def workplaces(registry):
    return registry.dataset("sso", "workplaces")


# -- good deliveries pass ------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["tvto__trainees", "sso__insured_persons", "sso__workplaces"])
def test_good_rows_pass_every_check(warehouse, registry, good_rows, key):
    org, name = key.split("__")
    ds = registry.dataset(org, name)
    result = run(warehouse, ds, good_rows(ds, 60))
    assert result["success"] is True, failed_rules(result)
    assert failed_rules(result) == set()
    assert result["row_count"] == 60
    assert result["blocking_failures"] == 0 and result["warnings"] == 0
    assert result["dataset"] == key
    assert result["table"].startswith(f"clean.{key}_s")
    applicable = [e for e in result["expectations"] if not e["skipped"]]
    assert result["evaluated"] == len(applicable) > 5
    assert sum(p["evaluated"] for p in result["by_principle"].values()) == result["evaluated"]
    assert set(result["by_principle"]) == {"conversion", "system", "consistency", "quality"}
    # Without a context, the cross-period and cross-supplier checks have nothing to compare with.
    for e in result["expectations"]:
        if e["skipped"]:
            assert e["skipped"].startswith("not applicable") and e["success"], e
            continue
        assert e["unexpected_count"] in (0, None), e
        assert e["samples"] == [] and e["error"] is None


def test_summary_is_plain_json(warehouse, tvto, good_rows):
    rows = good_rows(tvto)
    rows[0]["province"] = "99"
    result = run(warehouse, tvto, rows)
    assert isinstance(result, dict)
    assert json.loads(json.dumps(result, ensure_ascii=False)) == result


# -- each kind of defect fails the right check, with the right count -------------------------------


def test_duplicate_primary_key(warehouse, tvto, good_rows):
    rows = good_rows(tvto)
    rows += [dict(rows[3]), dict(rows[8])]  # two injected copies
    result = run(warehouse, tvto, rows)
    pk = by_rule(result, "primary_key_unique")
    assert result["success"] is False
    assert failed_rules(result) == {"primary_key_unique"}
    assert (pk["principle"], pk["severity"]) == ("quality", "blocking")
    assert pk["columns"] == ["national_id", "course_code"]
    # GX counts every row that shares a key: each copy and the row it copies.
    assert pk["unexpected_count"] == 2 * 2
    assert pk["unexpected_percent"] == pytest.approx(100 * 4 / 42)
    assert result["by_principle"]["quality"]["failed"] == 1
    assert {s["course_code"] for s in pk["samples"]} <= {
        rows[3]["course_code"],
        rows[8]["course_code"],
    }


def test_duplicate_single_column_key(warehouse, workplaces, good_rows):
    rows = good_rows(workplaces)
    rows.append({**rows[5], "workshop_name": "another name"})
    result = run(warehouse, workplaces, rows)
    assert failed_rules(result) == {"primary_key_unique"}
    assert by_rule(result, "primary_key_unique")["unexpected_count"] == 2


def test_wrong_person_check_digit_is_found_inside_postgres(warehouse, tvto, good_rows):
    rows = good_rows(tvto)
    for i in (2, 11, 30):
        rows[i]["national_id"] = wrong_check_digit(rows[i]["national_id"])
    result = run(warehouse, tvto, rows)
    check = by_rule(result, "check_digit.national_id")
    assert failed_rules(result) == {"check_digit.national_id"}
    assert check["type"] == "expect_column_values_to_be_valid_person_id"
    assert (check["principle"], check["severity"]) == ("quality", "blocking")
    assert check["unexpected_count"] == 3
    assert check["unexpected_percent"] == pytest.approx(100 * 3 / 40)
    assert [s["_row_no"] for s in check["samples"]] == [3, 12, 31]
    assert result["success"] is False and result["blocking_failures"] == 1


def test_wrong_legal_entity_check_digit(warehouse, workplaces, good_rows):
    rows = good_rows(workplaces)
    bad = rows[4]["legal_id"][:-1] + str((int(rows[4]["legal_id"][-1]) + 1) % 10)
    assert not is_valid_legal_entity_id(bad)
    rows[4]["legal_id"] = bad
    rows[5]["legal_id"] = None  # optional: a missing legal ID is not a wrong one
    result = run(warehouse, workplaces, rows)
    check = by_rule(result, "check_digit.legal_id")
    assert failed_rules(result) == {"check_digit.legal_id"}
    assert check["unexpected_count"] == 1
    assert check["samples"] == [{"_file": "part-1.csv", "_row_no": 5, "legal_id": mask(bad)}]


def test_unknown_province_code(warehouse, tvto, good_rows):
    rows = good_rows(tvto)
    rows[1]["province"] = "99"
    rows[7]["province"] = "31"
    result = run(warehouse, tvto, rows)
    check = by_rule(result, "code_list.province")
    assert failed_rules(result) == {"code_list.province"}
    assert (check["principle"], check["severity"]) == ("system", "blocking")
    assert check["unexpected_count"] == 2
    assert result["by_principle"]["system"] == {"evaluated": 4, "failed": 1}
    assert check["samples"] == [
        {"_file": "part-1.csv", "_row_no": 2, "province": "99"},
        {"_file": "part-1.csv", "_row_no": 8, "province": "31"},
    ]


def test_null_required_value(warehouse, insured, good_rows):
    rows = good_rows(insured)
    for i in (0, 9):
        rows[i]["insurance_type"] = None
    rows[3]["employment_start"] = None  # optional: not a failure
    result = run(warehouse, insured, rows)
    check = by_rule(result, "not_null.insurance_type")
    assert failed_rules(result) == {"not_null.insurance_type"}  # the code-list check ignores nulls
    assert (check["principle"], check["severity"]) == ("quality", "blocking")
    assert check["unexpected_count"] == 2
    assert check["unexpected_percent"] == pytest.approx(5.0)


def test_out_of_range_value(warehouse, insured, good_rows):
    rows = good_rows(insured)
    rows[6]["days_worked"] = 32
    rows[7]["insured_wage"] = -5
    result = run(warehouse, insured, rows)
    assert failed_rules(result) == {"range.days_worked", "range.insured_wage"}
    assert by_rule(result, "range.days_worked")["unexpected_count"] == 1
    assert by_rule(result, "range.days_worked")["samples"][0]["days_worked"] == 32


def test_within_record_consistency(warehouse, tvto, good_rows):
    rows = good_rows(tvto)
    rows[12]["course_end"] = rows[12]["course_start"] - dt.timedelta(days=1)
    result = run(warehouse, tvto, rows)
    check = by_rule(result, "order.course_end_after_course_start")
    assert failed_rules(result) == {"order.course_end_after_course_start"}
    assert (check["principle"], check["severity"]) == ("consistency", "blocking")
    assert check["unexpected_count"] == 1
    assert result["by_principle"]["consistency"]["failed"] == 1
    sample = check["samples"][0]
    assert sample["_row_no"] == 13
    assert sample["course_end"] < sample["course_start"]


def test_a_failed_warning_does_not_reject(warehouse, insured, good_rows):
    rows = good_rows(insured)
    born = rows[2]["birth_date"]
    rows[2]["employment_start"] = born.replace(year=born.year + 12)
    result = run(warehouse, insured, rows)
    check = by_rule(result, "plausible_age.employment_start")
    assert failed_rules(result) == {"plausible_age.employment_start"}
    assert check["severity"] == "warning"
    assert check["unexpected_count"] == 1
    assert result["success"] is True
    assert (result["blocking_failures"], result["warnings"]) == (0, 1)


def test_several_defects_at_once(warehouse, insured, good_rows):
    rows = good_rows(insured, 100)
    rows[0]["national_id"] = wrong_check_digit(rows[0]["national_id"])
    rows[1]["sex"] = "3"
    rows[2]["sex"] = None
    rows[3]["employment_start"] = rows[3]["birth_date"] - dt.timedelta(days=1)
    rows.append(dict(rows[50]))
    result = run(warehouse, insured, rows)
    counts = {e["rule"]: e["unexpected_count"] for e in result["expectations"] if not e["success"]}
    assert counts == {
        "check_digit.national_id": 1,
        "code_list.sex": 1,
        "not_null.sex": 1,
        "order.employment_start_after_birth_date": 1,
        "primary_key_unique": 2,
    }
    assert result["by_principle"]["quality"]["failed"] == 3
    assert result["by_principle"]["system"]["failed"] == 1
    assert result["by_principle"]["consistency"]["failed"] == 1
    assert result["blocking_failures"] == 5


# -- identifiers never appear in clear ------------------------------------------------------------


def test_identifier_samples_are_masked(warehouse, tvto, good_rows):
    rows = good_rows(tvto)
    rows[2]["national_id"] = wrong_check_digit(rows[2]["national_id"])
    rows.append(dict(rows[20]))
    result = run(warehouse, tvto, rows)
    text = json.dumps(result)
    for r in rows:
        assert r["national_id"] not in text
    check = by_rule(result, "check_digit.national_id")
    (sample,) = check["samples"]
    assert sample["national_id"] == rows[2]["national_id"][:3] + "******" + rows[2]["national_id"][-1]
    for s in by_rule(result, "primary_key_unique")["samples"]:
        assert MASKED.match(s["national_id"])
        assert s["course_code"] == rows[20]["course_code"]  # not an identifier: in clear


def test_masking_rules(registry):
    assert mask("0076229645") == "007******5"
    assert mask("10380284790") == "103*******0"
    assert mask("12345") == "123*5"
    assert mask("1234") == "****"
    assert mask(None) is None
    assert identifier_columns(registry.dataset("sso", "insured_persons")) == {"national_id"}
    assert identifier_columns(registry.dataset("sso", "workplaces")) == {"legal_id"}


# -- the run itself --------------------------------------------------------------------------------


def test_no_connection_is_left_open(warehouse, tvto, good_rows):
    run(warehouse, tvto, good_rows(tvto))
    with pytest.raises(ValidationRunError):
        validate_submission(warehouse.url, tvto, 999_999, suite_path(EXPECTATIONS, tvto))
    assert warehouse.connections() == 0


def test_missing_partition(warehouse, tvto):
    with pytest.raises(ValidationRunError, match=r"clean\.tvto__trainees_s424242"):
        validate_submission(warehouse.url, tvto, 424242, suite_path(EXPECTATIONS, tvto))


def test_failing_sql_is_a_failed_check_with_its_error(warehouse, tvto, registry, good_rows, write_suite_file):
    data = generate_suite(tvto, registry)
    data["expectations"].append(
        {
            "type": "unexpected_rows_expectation",
            "kwargs": {"unexpected_rows_query": "select * from {batch} where not anbar.no_such_rule(isco_code)"},
            "meta": {
                "rule": "broken",
                "principle": "system",
                "severity": "blocking",
                "columns": ["isco_code"],
                "description": {"fa": "آزمون", "en": "test"},
            },
        }
    )
    data["expectations"].append(
        {
            "type": "unexpected_rows_expectation",
            "kwargs": {"unexpected_rows_query": "select * from {batch} where national_id::smallint < 0"},
            "meta": {
                "rule": "leaky",
                "principle": "quality",
                "severity": "warning",
                "columns": ["national_id"],
                "description": {"fa": "آزمون", "en": "test"},
            },
        }
    )
    rows = good_rows(tvto)
    result = run(warehouse, tvto, rows, write_suite_file(data))
    broken = by_rule(result, "broken")
    assert failed_rules(result) == {"broken", "leaky"}
    assert result["success"] is False
    assert (result["blocking_failures"], result["warnings"]) == (1, 1)
    assert "anbar.no_such_rule" in broken["error"] and "\n" not in broken["error"]
    # PostgreSQL quotes the value it could not cast: the ID is masked in the message too
    leaky = by_rule(result, "leaky")["error"]
    assert "out of range for type smallint" in leaky
    assert re.search(r"[0-9]{3}\*{6}[0-9]", leaky)
    assert not any(r["national_id"] in json.dumps(result) for r in rows)
    assert warehouse.connections() == 0


def test_validation_is_quiet(warehouse, tvto, good_rows, capfd):
    rows = good_rows(tvto)
    rows[0]["province"] = "99"
    run(warehouse, tvto, rows)
    out, err = capfd.readouterr()
    assert out == ""
    assert "Calculating Metrics" not in err
    assert err == ""


def test_connection_options_in_the_url_are_kept():
    from anbar.validation import _connect_args

    url = "postgresql+psycopg2://u:p@h:5432/wh?options=-c%20statement_timeout%3D600000"
    args = _connect_args(url, "tvto__trainees_s1")
    assert args["options"] == (
        "-c statement_timeout=600000 -c search_path=clean,public -c default_transaction_read_only=on"
    )
    assert args["application_name"] == "anbar-validate-tvto__trainees_s1"


def _with_vandal(ds, registry, query: str) -> dict:
    """The suite the registry implies, plus the rule "vandal" running ``query``."""
    data = generate_suite(ds, registry)
    data["expectations"].append(
        {
            "type": "unexpected_rows_expectation",
            "kwargs": {"unexpected_rows_query": query},
            "meta": {
                "rule": "vandal",
                "principle": "system",
                "severity": "warning",
                "columns": ["province"],
                "description": {"fa": "آزمون", "en": "test"},
            },
        }
    )
    return data


def test_a_rule_written_in_sql_cannot_change_the_warehouse(warehouse, tvto, registry, good_rows, write_suite_file):
    """Suite SQL runs in read-only transactions: a rule that writes fails and changes nothing.

    The write hides in a function, so it reaches the server's read-only guard however GX wraps
    the rule's query (a data-modifying WITH would be refused earlier, by the parser, when GX
    nests it in a subquery)."""
    conn = warehouse.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "create or replace function public.anbar_test_vandal() returns boolean language plpgsql as "
                "$$ begin delete from ref.code_list_values; return true; end $$"
            )
        conn.commit()
        data = _with_vandal(
            tvto, registry, "select _file, _row_no, province from {batch} where public.anbar_test_vandal()"
        )
        result = run(warehouse, tvto, good_rows(tvto), write_suite_file(data))
        # Refused as a write both where GX runs the query as written and inside its COUNT: one error.
        assert by_rule(result, "vandal")["error"] == (
            "(psycopg2.errors.ReadOnlySqlTransaction) cannot execute DELETE in a read-only transaction"
        )
        with conn.cursor() as cur:
            cur.execute("select count(*) from ref.code_list_values")
            assert cur.fetchone()[0] > 0
    finally:
        with conn.cursor() as cur:
            cur.execute("drop function if exists public.anbar_test_vandal()")
        conn.commit()
        conn.close()


def test_a_data_modifying_with_is_reported_as_a_write_whatever_order_gx_gives_its_errors(
    warehouse, tvto, registry, good_rows, write_suite_file
):
    """The write as a data-modifying WITH: refused as a write where GX runs the query as written, by the parser
    once GX nests it in its COUNT. GX hands the two errors over in an order that changes from one process to
    the next (hash order); the rule's error is the same in every process, the write's refusal first."""
    data = _with_vandal(
        tvto,
        registry,
        "with gone as (delete from ref.code_list_values returning code) "
        "select _file, _row_no, province from {batch} where province in (select code from gone)",
    )
    result = run(warehouse, tvto, good_rows(tvto), write_suite_file(data))
    assert by_rule(result, "vandal")["error"] == (
        "(psycopg2.errors.ReadOnlySqlTransaction) cannot execute SELECT in a read-only transaction; "
        "(psycopg2.errors.FeatureNotSupported) WITH clause containing a data-modifying statement must be at the "
        "top level"
    )
    conn = warehouse.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("select count(*) from ref.code_list_values")
            assert cur.fetchone()[0] > 0
    finally:
        conn.close()


def test_a_rules_error_does_not_depend_on_the_order_gx_gave_up_on_its_metrics():
    """GX keys a failed expectation's exceptions by metric, in the order it gave up on them (set iteration
    order, which changes with the process's hash seed): the error anbar reports is the same in every order."""
    from anbar.validation import _error

    def metric(name: str) -> str:
        return f"MetricConfigurationID(metric_name='{name}', metric_domain_kwargs_id='d', metric_value_kwargs_id='v')"

    failures = {
        metric("unexpected_rows_query.row_count"): {
            "raised_exception": True,
            "exception_message": "(psycopg2.errors.FeatureNotSupported) nested\n[SQL: select count(*) ...]",
            "exception_traceback": "...",
        },
        metric("unexpected_rows_query.table"): {
            "raised_exception": True,
            "exception_message": "(psycopg2.errors.ReadOnlySqlTransaction) as written\n[SQL: select ...]",
            "exception_traceback": "...",
        },
    }
    orders = [dict(failures), dict(reversed(failures.items()))]
    errors = {_error({"success": False, "exception_info": info}) for info in orders}
    assert errors == {
        "(psycopg2.errors.ReadOnlySqlTransaction) as written; (psycopg2.errors.FeatureNotSupported) nested"
    }
    same = {key: {"raised_exception": True, "exception_message": "refused\n[SQL: ...]"} for key in failures}
    assert _error({"exception_info": same}) == "refused"
    assert _error({"exception_info": {"raised_exception": False, "exception_message": None}}) is None


def test_partition_name(tvto):
    assert partition_table(tvto, 42) == "tvto__trainees_s42"


def test_sql_check_digit_functions_agree_with_python(warehouse):
    from anbar.ids import make_legal_entity_id, make_person_id

    people = ["0076229645", "1583250689", "11537027", "9999999999", "0076229646", "", "abc"]
    people += [make_person_id(b) for b in range(1, 200_000_000, 9_999_991)]
    people += [str(n).zfill(10) for n in range(1, 10**10, 987_654_321)]
    entities = ["10380284790", "10380284791", "10300000090", "123"]
    entities += [make_legal_entity_id(b) for b in range(1, 10**10, 987_654_3)]
    entities += [str(n).zfill(11) for n in range(1, 10**11, 9_876_543_211)]
    conn = warehouse.connect()
    try:
        with conn.cursor() as cur:
            for value in people:
                cur.execute("select anbar.is_valid_person_id(%s)", (value,))
                assert cur.fetchone()[0] == is_valid_person_id(value), value
            for value in entities:
                cur.execute("select anbar.is_valid_legal_entity_id(%s)", (value,))
                assert cur.fetchone()[0] == is_valid_legal_entity_id(value), value
    finally:
        conn.close()
