"""What a validation grants anbar_validator (anbar.engine.validate.tables_read, anbar.engine.validator): the
submission's table and the tables its SQL rules' placeholders name, in clean and raw, nothing else."""

from __future__ import annotations

import pytest

from anbar.engine import validate, validator
from anbar.registry import load_registry

CONTEXT = {
    "period_start": "date '2025-10-23'",
    "period_end": "date '2025-11-22'",
    "previous": 'clean."sso__insured_persons_s3"',
    "cspf__pensioners": 'clean."cspf__pensioners_s5"',
    "tvto__trainees": None,  # no accepted delivery yet: the rule naming it is not applicable
    "raw": 'raw."sso__insured_persons_s9"',
}


def _sql_rule(query: str) -> dict:
    return {"type": "unexpected_rows_expectation", "kwargs": {"unexpected_rows_query": query}, "meta": {}}


def test_the_tables_granted_are_the_submissions_and_those_its_rules_name():
    ds = load_registry().dataset("sso", "insured_persons")
    configs = [
        _sql_rule("select _file, _row_no from {batch} where birth_date >= {period_end} and _file ~ '.'"),
        _sql_rule("select b._file, b._row_no from {batch} b join {previous} p using (national_id) where p.x ~ 'y'"),
        {
            "type": "expect_persons_to_not_be_active_in_other_dataset",
            "kwargs": {"id_column": "national_id", "other_dataset": "cspf__pensioners"},
            "meta": {},
        },
        _sql_rule("select _file, _row_no from {batch} where exists (select 1 from {tvto__trainees})"),
    ]
    assert validate.tables_read(ds, 9, configs, CONTEXT) == [
        'clean."cspf__pensioners_s5"',
        'clean."sso__insured_persons_s3"',
        'clean."sso__insured_persons_s9"',
    ]
    # {raw} only when a rule reads it
    raw = _sql_rule("select r._file, r._row_no from {raw} r where r.days_worked ~ '٣'")
    assert validate.tables_read(ds, 9, [raw], CONTEXT) == [
        'clean."sso__insured_persons_s9"',
        'raw."sso__insured_persons_s9"',
    ]


@pytest.mark.parametrize(
    "table", ["anbar_secret.pseudonym_key", "anbar.submissions", 'clean."x"; drop table anbar.submissions; --', "ref.x"]
)
def test_nothing_outside_a_submissions_tables_in_clean_and_raw_is_ever_granted(table):
    with pytest.raises(ValueError, match="not a table of clean or raw"), validator.session([table]):
        pass
