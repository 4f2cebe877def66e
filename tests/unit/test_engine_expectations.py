"""anbar.engine.expectations without PostgreSQL: what the pass leaves to GX and why, the regular expressions
and SQL conditions it carries over, PostgreSQL's numeric division, and evaluate() where GX has no say
(contexts that do not exist, the committed suites). Agreement with GX itself is
tests/validation/test_engine_differential.py."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from anbar.engine import duck
from anbar.engine import expectations as ev
from anbar.registry import load_registry

REPO = Path(__file__).resolve().parents[2]
_DUCK_TYPES = {"text": ev.TEXT, "integer": ev.INTEGER, "bigint": ev.BIGINT, "date": ev.DATE, "boolean": "BOOLEAN"}


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    connection = duck.connect(tmp_path_factory.mktemp("spill"), registry=load_registry(), threads=1, lookups=True)
    yield connection
    connection.close()


def matches(con, regex: str, texts: list[str]) -> list[bool]:
    pattern = ev.pg_regex_to_re2(regex)
    return [con.execute("select regexp_matches(?, ?)", [t, pattern]).fetchall()[0][0] for t in texts]


# -- regular expressions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("regex", "texts", "expected"),
    [
        ("^a.b$", ["a\nb", "ab", "a\u200cb"], [True, False, True]),  # '.' matches a newline, one code point
        ("a$", ["a\n", "ba"], [False, True]),  # '$' is the end of the text only
        ("a\\bb", ["a\x08b", "ab"], [True, False]),  # \b is a backspace in PostgreSQL, not a word boundary
        ("\\u0643", ["كتاب", "کتاب"], [True, False]),
        ("^\\s+$", ["\u2003\t", "\u00a0", "\x0b"], [True, False, True]),  # PostgreSQL's spaces, not NBSP
        ("^\\S+$", ["ab", "a b", "a\u3000b"], [True, False, False]),
        ("^\\d+$", ["0123", "۰۱۲"], [True, False]),  # \d is ASCII in PostgreSQL
        ("^[\\s\\d]+$", [" 1 2", "a"], [True, False]),
        ("^[^0-9 ]+$", ["abc", "a b", "a\nb"], [True, False, True]),
        ("^[]a]+$", ["]a]", "b"], [True, False]),
        ("^[a\\-c]+$", ["a-c", "b"], [True, False]),
        ("^[آ-ی]+$", ["کتاب", "كتاب"], [True, True]),  # Arabic kaf U+0643 is inside the range U+0622-U+06CC
        ("^x{2,3}y$", ["xxy", "xxxy", "xy", "xxxxy"], [True, True, False, False]),
        ("^(?:ab|cd)+?$", ["abcd", "ac"], [True, False]),
        ("\\A12\\Z", ["12", "123", "12\n"], [True, False, False]),
        ("^a\\.b\\\\$", ["a.b\\", "axb\\"], [True, False]),
        ("\\x6b\\U0001F600", ["k😀"], [True]),
        ("", ["", "x"], [True, True]),
        ("a|", ["b"], [True]),
    ],
)
def test_regex_translation_means_what_postgresql_means(con, regex, texts, expected):
    assert matches(con, regex, texts) == expected


@pytest.mark.parametrize(
    "regex",
    [
        "\\w+",  # the server's letter tables
        "\\W",
        "[[:alpha:]]",
        "[[.a.]]",
        "[[=a=]]",
        "\\m",
        "\\y",
        "(a)\\1",  # back-references
        "\\0",
        "a(?=b)",  # lookaround
        "a(?!b)",
        "(?i)a",  # embedded options
        "***:a",  # directors
        "a{256}",  # beyond PostgreSQL's bound
        "a{3,2}",
        "a{,2}",
        "a{x}",
        "a**",
        "*a",
        "^*",
        "[z-a]",
        "[a-c-e]",
        "[\\S]",
        "[\\d-z]",
        "a\\",
        "[abc",
        "(abc",
        "abc)",
        "\\x",
        "\\u12",
        "\\uD800",
        "\\cA",
        "\\q",
    ],
)
def test_regexes_without_an_exact_translation_are_refused(regex):
    with pytest.raises(ev.UnsupportedRegex):
        ev.pg_regex_to_re2(regex)
    config = {"type": ev.MATCH_REGEX, "kwargs": {"column": "v", "regex": regex}}
    assert not ev.evaluable(config)


# -- PostgreSQL's numeric division -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "quotient", "rounded"),
    [  # as PostgreSQL 18 gives them (select a::numeric / b::numeric, round(a::numeric / b::numeric, 1))
        ("100.0", "3", "33.3333333333333333", "33.3"),
        ("-100.0", "7", "-14.2857142857142857", "-14.3"),
        ("12.5", "8", "1.5625000000000000", "1.6"),
        ("0.0", "9", "0E-20", "0.0"),
        ("1.0", "123456789012345678901234567890", "8.100000072900000663E-30", "0.0"),
        ("300.0", "299", "1.0033444816053512", "1.0"),
        ("99999.0", "9999", "10.0009000900090009", "10.0"),
        ("100.0", "10001", "0.00999900009999000100", "0.0"),
        ("100000000000000000000.0", "3", "33333333333333333333.3", "33333333333333333333.3"),
        ("-0.5", "1", "-0.50000000000000000000", "-0.5"),
    ],
)
def test_numeric_division_is_postgresqls(a, b, quotient, rounded):
    result = ev.pg_numeric_div(Decimal(a), Decimal(b))
    assert str(result) == quotient
    assert str(ev.pg_round(result, 1)) == rounded


def test_half_rounds_away_from_zero_as_postgresql():
    assert str(ev.pg_round(Decimal("0.25"), 1)) == "0.3"
    assert str(ev.pg_round(Decimal("-0.25"), 1)) == "-0.3"


# -- what stays with GX -----------------------------------------------------------------------------------

SCHEMA = {
    "clean": {"_file": "VARCHAR", "_row_no": "INTEGER", "v": "VARCHAR", "n": "INTEGER", "d": "DATE", "kind": "VARCHAR"},
    "raw": {"_file": "VARCHAR", "_row_no": "INTEGER", "v": "VARCHAR", "n": "VARCHAR", "d": "VARCHAR"},
    "previous": {"_file": "VARCHAR", "_row_no": "INTEGER", "v": "VARCHAR", "n": "VARCHAR", "d": "DATE"},
    "cspf__pensioners": {"national_id": "VARCHAR", "pension_type": "VARCHAR", "since": "DATE"},
}


def not_active(**conditions: str) -> dict:
    kwargs = {"id_column": "v", "other_dataset": "cspf__pensioners", "other_id_column": "national_id", **conditions}
    return {"type": ev.NOT_ACTIVE_ELSEWHERE, "kwargs": kwargs}


def rows_query(query: str) -> dict:
    return {"type": ev.ROWS_QUERY, "kwargs": {"unexpected_rows_query": query}}


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"type": "expect_column_values_to_be_dateutil_parseable", "kwargs": {"column": "v"}}, "does not evaluate"),
        ({"type": ev.NOT_NULL, "kwargs": {"column": "v", "row_condition": 'v=="a"'}}, "row_condition"),
        ({"type": ev.NOT_NULL, "kwargs": {"column": "v", "condition_parser": "pandas"}}, "condition_parser"),
        ({"type": ev.NOT_NULL, "kwargs": {"column": "v", "result_format": "COMPLETE"}}, "result_format"),
        ({"type": ev.NOT_NULL, "kwargs": {"column": "v", "mostly": {"$PARAMETER": "m"}}}, "suite parameter"),
        ({"type": ev.NOT_NULL, "kwargs": {"column": "v", "mostly": 1.5}}, "mostly"),
        ({"type": ev.NOT_NULL, "kwargs": {"column": "v", "mostly": True}}, "mostly"),
        ({"type": ev.NOT_NULL, "kwargs": {"column": "missing"}}, "no column"),
        ({"type": ev.IN_SET, "kwargs": {"column": "v", "value_set": ["می\u200cخواهم"]}}, "GX cannot render"),
        ({"type": ev.IN_SET, "kwargs": {"column": "v", "value_set": ["a\u00a0b"]}}, "GX cannot render"),
        ({"type": ev.IN_SET, "kwargs": {"column": "v", "value_set": []}}, "value_set"),
        ({"type": ev.IN_SET, "kwargs": {"column": "v", "value_set": [None]}}, "NULL only"),
        ({"type": ev.IN_SET, "kwargs": {"column": "v", "value_set": ["1", 2]}}, "kind"),
        ({"type": ev.IN_SET, "kwargs": {"column": "n", "value_set": ["1"]}}, "kind"),
        ({"type": ev.IN_SET, "kwargs": {"column": "n", "value_set": [1.5]}}, "kind"),
        ({"type": ev.IN_SET, "kwargs": {"column": "n", "value_set": [True]}}, "kind"),
        ({"type": ev.BETWEEN, "kwargs": {"column": "n"}}, "neither"),
        ({"type": ev.BETWEEN, "kwargs": {"column": "n", "min_value": 3, "max_value": 1}}, "greater"),
        ({"type": ev.BETWEEN, "kwargs": {"column": "v", "min_value": "a"}}, "between check on a VARCHAR"),
        ({"type": ev.BETWEEN, "kwargs": {"column": "n", "min_value": "2025-01-01"}}, "date bound"),
        ({"type": ev.BETWEEN, "kwargs": {"column": "d", "min_value": 1}}, "numeric bound"),
        ({"type": ev.BETWEEN, "kwargs": {"column": "d", "min_value": "2025-01-01T00:00:00"}}, "YYYY-MM-DD"),
        ({"type": ev.BETWEEN, "kwargs": {"column": "n", "min_value": float("nan")}}, "neither a number"),
        ({"type": ev.BETWEEN, "kwargs": {"column": "n", "min_value": 1, "strict_min": "yes"}}, "true or false"),
        ({"type": ev.MATCH_REGEX, "kwargs": {"column": "n", "regex": "1"}}, "regular expression on a INTEGER"),
        ({"type": ev.MATCH_REGEX, "kwargs": {"column": "v", "regex": "a\u200c"}}, "GX cannot render"),
        ({"type": ev.MEDIAN, "kwargs": {"column": "d", "min_value": "2025-01-01"}}, "median check on a DATE"),
        ({"type": ev.MIN, "kwargs": {"column": "v", "min_value": "a"}}, "min check on a VARCHAR"),
        ({"type": ev.ROW_COUNT_BETWEEN, "kwargs": {"min_value": 1.5}}, "whole number"),
        ({"type": ev.ROW_COUNT_EQUAL, "kwargs": {"value": "3"}}, "whole number"),
        ({"type": ev.COMPOUND_UNIQUE, "kwargs": {"column_list": ["v"]}}, "two or more"),
        ({"type": ev.COMPOUND_UNIQUE, "kwargs": {"column_list": ["v", "n"], "ignore_row_if": "sometimes"}}, "ignore"),
        (
            {"type": ev.A_GREATER_THAN_B, "kwargs": {"column_A": "v", "column_B": "kind"}},
            "pair comparison on a VARCHAR",
        ),
        ({"type": ev.A_GREATER_THAN_B, "kwargs": {"column_A": "n", "column_B": "d"}}, "INTEGER with DATE"),
        ({"type": ev.VALID_PERSON_ID, "kwargs": {"column": "n"}}, "person ID check on a INTEGER"),
        ({"type": ev.VALID_CALENDAR_DATE, "kwargs": {"column": "v", "calendar": "hijri"}}, "calendar"),
        ({"type": ev.IN_CODE_LIST, "kwargs": {"column": "d", "code_list": "sex"}}, "code-list check on a DATE"),
        ({"type": ev.ROW_COUNT_VS_PREVIOUS, "kwargs": {"tolerance": 11}}, "tolerance"),
        ({"type": ev.ROW_COUNT_VS_PREVIOUS, "kwargs": {"tolerance": 0.1}, "meta": {"table": "raw"}}, "raw"),
        ({"type": ev.TOTAL_VS_PREVIOUS, "kwargs": {"column": "v", "tolerance": 0.1}}, "sum total on a VARCHAR"),
        ({"type": ev.TOTAL_VS_PREVIOUS, "kwargs": {"column": "n", "aggregate": "avg", "tolerance": 0.1}}, "aggregate"),
        ({"type": ev.NO_YOUNGER, "kwargs": {"id_column": "v", "birth_date_column": "kind"}}, "birth date comparison"),
        ({"type": ev.NO_YOUNGER, "kwargs": {"id_column": "n", "birth_date_column": "d"}}, "compared with previous.n"),
        ({"type": ev.NOT_ACTIVE_ELSEWHERE, "kwargs": {"id_column": "v", "other_dataset": "pensioners"}}, "key"),
        (not_active(row_condition_sql="lower(b.kind) = 'a'"), "SQL fragment"),
        (not_active(row_condition_sql="b.start::date > {period_start}"), "SQL fragment"),
        (not_active(row_condition_sql="b.n / 2 = 1"), "SQL fragment"),
        (not_active(row_condition_sql="b.n + 1 = 2"), "SQL fragment"),
        (not_active(row_condition_sql="b.kind > '5'"), "texts compared by order"),
        (not_active(row_condition_sql="b.kind between 'a' and 'b'"), "texts compared by order"),
        (not_active(row_condition_sql="b.kind = 6"), "comparison of text with number"),
        (not_active(row_condition_sql="b.d = '2025-1-1'"), "comparison of date with text"),
        (not_active(row_condition_sql="b.n in (b.n)"), "IN list"),
        (not_active(row_condition_sql="o.pension_type = '1'"), "qualifier"),
        (not_active(row_condition_sql="b.nothing = '1'"), "no column"),
        (not_active(row_condition_sql="b.kind = E'\\\\x41'"), "SQL fragment"),
        (not_active(row_condition_sql="b.kind like '6%'"), "SQL fragment"),
        (not_active(row_condition_sql="exists (select 1 from {previous} p)"), "SQL fragment"),
        (not_active(row_condition_sql="b.kind = '{{6}}'"), "literal braces"),
        (not_active(other_condition_sql="o.since > b.d + interval '1 year 2 months'"), "interval"),
        (not_active(other_condition_sql="o.since > b.d + interval '1 hour'"), "interval"),
        (rows_query("select * from {batch} where n > 1"), "shape"),
        (rows_query("select _file, _row_no, n, n from {batch} where n > 1"), "not distinct plain names"),
        (rows_query("select _file, n from {batch} where n > 1"), "_file, _row_no"),
        (rows_query("select _file, _row_no from {batch} b join x on true where n > 1"), "shape"),
        (rows_query("select _file, _row_no from {batch} where n > 1 order by n"), "SQL fragment"),
        (rows_query("select _file, _row_no from {batch} where n in (select n from {previous})"), "SQL fragment"),
        (rows_query("select _file, _row_no from {batch} where left(n, 2) = '1'"), "left()"),
        (rows_query("select _file, _row_no from {batch} where (n > 1) < (n > 2)"), "SQL fragment"),
    ],
)
def test_what_the_pass_cannot_match_exactly_stays_with_gx(config, reason):
    why = ev.why_not_evaluable(config, SCHEMA)
    assert why is not None and reason in why, why
    assert not ev.evaluable(config, SCHEMA)


@pytest.mark.parametrize(
    "config",
    [
        not_active(row_condition_sql="b.d >= {period_start} and b.d < {period_end}"),
        not_active(row_condition_sql="not (b.n between 1 and 30) or b.kind is null", other_condition_sql="since > d"),
        not_active(other_condition_sql="o.pension_type in ('1', '2') and o.since >= '2025-09-23'"),
        not_active(other_condition_sql="(o.since is null) <> (o.pension_type = '1') or o.since < date '2025-01-01'"),
        rows_query("SELECT _row_no, _file FROM {batch} WHERE d + interval '15 years' <= {period_start};"),
        rows_query("select _file, _row_no, v from {batch} where left(v, 2) != kind"),
        {"type": ev.IN_SET, "kwargs": {"column": "v", "value_set": ["a\nb", "x\\y", None], "catch_exceptions": True}},
        {"type": ev.BETWEEN, "kwargs": {"column": "n", "min_value": 0, "max_value": 1e20, "mostly": 0}},
    ],
)
def test_what_the_pass_evaluates(config):
    assert ev.why_not_evaluable(config, SCHEMA) is None


def test_the_lists_of_types_are_gxs():
    from anbar import gx_custom

    assert ev.RAW_TYPES == gx_custom.RAW_TYPES
    assert set(gx_custom.CONTEXT_TYPES) == ev.CONTEXT_TYPES
    assert ev.CONTEXT_TYPES | {ev.ROWS_QUERY} == ev.ROW_QUERY_TYPES <= ev.EVALUATED


def test_every_expectation_of_the_committed_suites_is_evaluated():
    """With the column types the registry gives the clean and raw relations, the pass evaluates every rule of
    every committed suite: nothing of them needs GX on PostgreSQL before the decision."""
    registry = load_registry()
    for path in sorted((REPO / "expectations").glob("*.json")):
        suite = json.loads(path.read_text(encoding="utf-8"))
        dataset = registry.dataset(*suite["name"].split("__"))
        meta = {"_file": "VARCHAR", "_row_no": "INTEGER"}
        schema = {
            "clean": {**meta, **{c.name: _DUCK_TYPES[c.type.value] for c in dataset.columns}},
            "raw": {**meta, **{c.name: "VARCHAR" for c in dataset.columns}},
        }
        for exp in suite["expectations"]:
            assert ev.why_not_evaluable(exp, schema) is None, (path.name, exp)


# -- evaluate() where no GX result is involved -----------------------------------------------------------


@pytest.fixture(scope="module")
def tables(con):
    con.execute(
        "create or replace table cur as select 'part-1.csv' as _file, i::integer as _row_no, "
        "case when i % 4 = 0 then null else lpad(i::varchar, 10, '0') end as v, i::integer as n, "
        "DATE '2025-09-20' + i::integer as d, '6' as kind from range(1, 21) r(i)"
    )
    con.execute("create or replace view cur_view as select * from cur where n <= 10")
    return ev.Relations(
        clean="cur",
        raw="cur",
        context={"previous": None},
        period_start=dt.date(2025, 9, 23),
        period_end=dt.date(2025, 10, 23),
    )


def test_a_context_that_does_not_exist_makes_the_check_not_applicable(con, tables):
    configs = [
        {"type": ev.ROW_COUNT_VS_PREVIOUS, "kwargs": {"tolerance": 0.3}},
        {"type": ev.NO_YOUNGER, "kwargs": {"id_column": "v", "birth_date_column": "d"}},
        not_active(),
        rows_query("select _file, _row_no from {batch} where d >= {period_end}"),
    ]
    no_period = ev.Relations(clean="cur", raw="cur", context={"previous": None})
    out = ev.evaluate(con, configs, no_period)
    assert [e.not_applicable for e in out] == ["previous", "previous", "cspf__pensioners", "period_end"]
    assert all(e.success and e.result == {} and e.failing_rows is None for e in out)


def test_evaluate_refuses_what_the_column_types_do_not_allow(con, tables):
    with pytest.raises(ev.NotEvaluable, match="expectation 1"):
        ev.evaluate(
            con, [{"type": ev.NOT_NULL, "kwargs": {"column": "v"}}, {"type": ev.MIN, "kwargs": {"column": "v"}}], tables
        )


def test_without_samples_the_result_has_gxs_shape(con, tables):
    """partial_unexpected_count 0: no counts of values and no index list, as GX leaves them out."""
    (out,) = ev.evaluate(con, [{"type": ev.NOT_NULL, "kwargs": {"column": "v"}}], tables, sample_size=0)
    assert out.result == {
        "element_count": 20,
        "unexpected_count": 5,
        "unexpected_percent": 25.0,
        "partial_unexpected_list": [],
        "unexpected_index_column_names": ["_file", "_row_no"],
    }


def test_failing_rows_name_every_offending_row_and_samples_come_first_in_order(con, tables):
    configs = [
        {"type": ev.NOT_NULL, "kwargs": {"column": "v"}},
        {"type": ev.BETWEEN, "kwargs": {"column": "d", "max_value": "2025-10-01"}},
        {"type": ev.UNIQUE, "kwargs": {"column": "kind"}},
        {"type": ev.ROW_COUNT_EQUAL, "kwargs": {"value": 20}},
        rows_query("select _file, _row_no, d from {batch} where d >= {period_end}"),
    ]
    nulls, late, same, count, future = ev.evaluate(con, configs, tables)
    assert sorted(r[1] for r in con.execute(nulls.failing_rows).fetchall()) == [4, 8, 12, 16, 20]
    assert [r["_row_no"] for r in nulls.result["partial_unexpected_index_list"]] == [4, 8, 12, 16, 20]
    assert sorted(r[1] for r in con.execute(late.failing_rows).fetchall()) == list(range(12, 21))
    assert late.result["partial_unexpected_list"] == [dt.date(2025, 10, 2) + dt.timedelta(days=k) for k in range(5)]
    assert len(con.execute(same.failing_rows).fetchall()) == 20 and same.result["unexpected_count"] == 20
    assert count.success and count.failing_rows is None
    assert future.result["observed_value"] == 0 and future.success
    assert con.execute(future.failing_rows).fetchall() == []


def test_relations_may_be_views(con, tables):
    view = ev.Relations(clean="cur_view", raw="cur_view")
    (out,) = ev.evaluate(con, [{"type": ev.NOT_NULL, "kwargs": {"column": "v"}}], view)
    assert (out.result["element_count"], out.result["unexpected_count"]) == (10, 2)


def test_medians_of_extreme_values_are_exact(con):
    con.execute(
        "create or replace table extremes as select 'f' as _file, i::integer as _row_no, "
        "case i when 1 then -9223372036854775807 - 1 else 9223372036854775807 end::bigint as n from range(1, 3) r(i)"
    )
    (median,) = ev.evaluate(
        con, [{"type": ev.MEDIAN, "kwargs": {"column": "n"}}], ev.Relations(clean="extremes", raw="extremes")
    )
    # GX on PostgreSQL: the mean of the two middle values, as a float.
    assert median.result["observed_value"] == float(-(2**63) + 2**63 - 1) / 2.0


def test_holistic_aggregates_of_a_large_delivery_fit_the_memory_limit(tmp_path):
    """Two medians and a distinct count over 3,000,000 rows in 160 MB: each state (every value kept, not
    spillable) is held alone; in one query together they need more than the limit."""
    con = duck.connect(tmp_path / "spill", threads=2, memory_limit="160MB")
    con.execute(
        "create table big as select 'f' as _file, i as _row_no, (i * 7919 % 3000017)::bigint as n, "
        "(i % 1000003)::bigint as m from range(3000000) r(i)"
    )
    con.execute("create table before as select * from big")
    configs = [
        {"type": ev.MEDIAN, "kwargs": {"column": "n"}},
        {"type": ev.MEDIAN, "kwargs": {"column": "m"}},
        {"type": ev.TOTAL_VS_PREVIOUS, "kwargs": {"column": "n", "aggregate": "count_distinct", "tolerance": 0.1}},
    ]
    relations = ev.Relations(clean="big", raw="big", context={"previous": "before"})
    with pytest.raises(duckdb.OutOfMemoryException):
        con.execute(
            "select quantile_disc(n, 0.5), ~quantile_disc(~n, 0.5), quantile_disc(m, 0.5), ~quantile_disc(~m, 0.5), "
            "count(distinct n) from big"
        ).fetchall()
    n_median, m_median, distinct = ev.evaluate(con, configs, relations)
    exact = con.execute("select median(n)::double, median(m)::double from big").fetchone()
    assert (n_median.result["observed_value"], m_median.result["observed_value"]) == exact
    assert distinct.success
    con.close()
