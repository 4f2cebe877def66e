"""Every defect mode of the simulators trips a rule of the right principle, end to end.

Each case pulls the defective delivery from the real simulators (SFTP or API), loads it into
PostgreSQL, runs the committed suite and decides; the finding must show up under the expected
principle in the validation summary and in the quality scorecard. Cross-period and
cross-supplier defects first get their comparison period accepted.
"""

from __future__ import annotations

import datetime as dt

import pytest

from anbar import ingest
from anbar.sim.defects import DEFECT_PRINCIPLE, DEFECTS

from .db import fetch

pytestmark = pytest.mark.integration

LATE = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)  # long after every deadline: a delivery not there is missing

# defect -> (org, dataset, period, periods accepted first, expected principle, rule that must fail, outcome)
CASES = {
    "missing_manifest": ("sso", "workplaces", "1404-01", [], "quality", "quality.delivered", "missing"),
    "checksum_mismatch": ("sso", "workplaces", "1404-02", [], "quality", "quality.checksums", "rejected"),
    "truncated_file": ("sso", "workplaces", "1404-03", [], "quality", "quality.file_sizes", "rejected"),
    "wrong_encoding": ("sso", "workplaces", "1404-04", [], "conversion", "conversion.encoding", "rejected"),
    "missing_column": ("sso", "workplaces", "1404-05", [], "quality", "quality.required_columns", "rejected"),
    "hostile_file_name": ("sso", "workplaces", "1404-06", [], "quality", "quality.file_names", "rejected"),
    "row_count_mismatch": ("tvto", "trainees", "2025-10", [], "quality", "quality.row_counts", "rejected"),
    "duplicate_keys": ("tvto", "trainees", "2025-11", [], "quality", "primary_key_unique", "rejected"),
    # sso insured persons are rejected row by row, up to 2% of rows: 3% bad IDs reject the delivery.
    "invalid_national_ids": (
        "sso",
        "insured_persons",
        "1404-08",
        [],
        "quality",
        "check_digit.national_id",
        "rejected",
    ),
    "unknown_codes": ("cspf", "pensioners", "1404-01", [], "system", "code_list.", "rejected"),
    "invalid_dates": ("cspf", "pensioners", "1404-02", [], "conversion", "calendar_date.", "rejected"),
    "out_of_range": ("cspf", "pensioners", "1404-03", [], "quality", "range.pension_amount", "rejected"),
    "inconsistent_dates": (
        "cspf",
        "pensioners",
        "1404-04",
        [],
        "consistency",
        "order.retirement_date_after_birth_date",
        "rejected",
    ),
    "count_drop": (
        "cspf",
        "pensioners",
        "1404-06",
        [("cspf", "pensioners", "1404-05")],
        "consistency",
        "row_count_vs_previous_period",
        "rejected",
    ),
    "rejuvenated_persons": (
        "cspf",
        "pensioners",
        "1404-08",
        [("cspf", "pensioners", "1404-07")],
        "consistency",
        "not_younger_than_previous_period.national_id",
        "rejected",
    ),
    # A warning: the rows are loaded and flagged.
    "pensioners_hired": (
        "sso",
        "insured_persons",
        "1404-05",
        [("cspf", "pensioners", "1404-05")],
        "consistency",
        "new_employee_not_civil_service_pensioner",
        "accepted",
    ),
}


def test_every_defect_mode_has_a_case():
    assert set(CASES) == set(DEFECTS)
    for defect, case in CASES.items():
        if defect in DEFECT_PRINCIPLE:  # the simulator's own statement of intent agrees
            assert DEFECT_PRINCIPLE[defect] == case[4], defect


@pytest.mark.parametrize("defect", sorted(CASES))
def test_defect_trips_a_rule_of_its_principle(defect, fresh_warehouse, simulators):
    conn = fresh_warehouse
    org, dataset, period, first, principle, rule, outcome = CASES[defect]
    for before in first:
        assert ingest.run_steps(*before, now=LATE).state == "accepted", before

    step = ingest.run_steps(org, dataset, period, now=LATE)
    assert step.state == outcome, step

    [sub] = fetch(
        conn,
        "select submission_id, status, reason, rows_manifest, rows_counted, rows_loaded, rows_rejected, "
        "validation_summary "
        "from anbar.submissions where org = %s and dataset = %s and period = %s",
        org,
        dataset,
        period,
    )
    assert sub["status"] == outcome
    if sub["rows_counted"] is not None:  # rows counted = loaded + rejected, wherever they were counted
        assert sub["rows_counted"] == sub["rows_loaded"] + sub["rows_rejected"]
    elif outcome != "missing":  # refused before its records were counted: nothing loaded, nothing claimed
        assert (sub["rows_loaded"], sub["rows_rejected"]) == (0, None)

    scores = {
        r["principle"]: r
        for r in fetch(conn, "select * from anbar.quality_scorecard where submission_id = %s", sub["submission_id"])
    }
    assert set(scores) == {"conversion", "system", "consistency", "quality"}
    assert scores[principle]["rules_failed"] >= 1, scores

    summary = sub["validation_summary"]
    if summary is None:  # rejected before validation: the reason code names the rule
        from anbar.rules import rule_for_reason

        broken = rule_for_reason(sub["reason"])
        assert (broken.principle, broken.rule) == (principle, rule)
        return
    failed = [e for e in summary["expectations"] if not e["success"]]
    assert not [e for e in summary["expectations"] if e["error"]], "a rule's SQL failed"
    assert any(e["rule"].startswith(rule) and e["principle"] == principle for e in failed), [
        (e["principle"], e["rule"]) for e in failed
    ]
    if outcome == "accepted":  # a warning: the rows are loaded, flagged with the rule
        flagged = fetch(
            conn,
            f'select count(*) as n from clean."{org}__{dataset}_s{sub["submission_id"]}" where %s = any(_flags)',
            f"{principle}: {rule}",
        )
        assert flagged[0]["n"] >= 1
