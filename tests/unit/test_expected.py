"""The expected-submission calendar from the registry: periods in the supplier's calendar, due dates,
grace, committee extensions, order. (The registry's checks of extensions: tests/unit/test_registry.py.)"""

from __future__ import annotations

import datetime as dt

import pytest

from anbar.expected import Extension, due_in_run, expected_submission, expected_submissions
from anbar.registry import Organisation, Registry, load_registry

D = dt.date


def _with_extensions(registry: Registry, org: str, dataset: str, *extensions: dict) -> Registry:
    """The registry with ``extensions`` on one dataset, validated as a registry file would be."""
    data = registry.org(org).model_dump(mode="json")
    for ds in data["datasets"]:
        if ds["name"] == dataset:
            ds["extensions"] = list(extensions)
    organisations = {**registry.organisations, org: Organisation.model_validate(data)}
    return Registry(root=registry.root, organisations=organisations, code_lists=registry.code_lists)


def test_a_jalali_month_is_due_due_day_days_after_its_last_day():
    # Aban 1404 = 2025-10-23 .. 2025-11-21; SSO insured persons: due_day 15, grace 5.
    sub = expected_submission(load_registry(), "sso", "insured_persons", "1404-08")
    assert (sub.period.start, sub.period.end) == (D(2025, 10, 23), D(2025, 11, 22))
    assert sub.due_date == D(2025, 12, 6)  # 15 Azar 1404
    assert sub.grace_until == D(2025, 12, 11)
    assert sub.extension is None
    assert sub.key == "sso/insured_persons/1404-08"


def test_esfand_has_30_days_in_a_leap_year_and_29_otherwise():
    registry = load_registry()
    leap = expected_submission(registry, "cspf", "pensioners", "1403-12")  # due_day 10
    common = expected_submission(registry, "cspf", "pensioners", "1404-12")
    assert (leap.period.start, leap.period.end) == (D(2025, 2, 19), D(2025, 3, 21))  # 30 days, Nowruz 1404
    assert (common.period.start, common.period.end) == (D(2026, 2, 20), D(2026, 3, 21))  # 29 days
    assert leap.due_date == D(2025, 3, 30)  # 10 Farvardin 1404
    assert common.due_date == D(2026, 3, 30)


def test_a_gregorian_supplier_follows_gregorian_months():
    sub = expected_submission(load_registry(), "tvto", "trainees", "2025-02")  # due_day 10, grace 3
    assert (sub.period.start, sub.period.end) == (D(2025, 2, 1), D(2025, 3, 1))
    assert (sub.due_date, sub.grace_until) == (D(2025, 3, 10), D(2025, 3, 13))


def test_a_period_label_of_the_wrong_calendar_is_refused():
    with pytest.raises(ValueError, match="not a Jalali year"):
        expected_submission(load_registry(), "sso", "insured_persons", "2025-10")


def test_the_calendar_lists_every_dataset_whose_period_ends_in_the_window_by_due_date():
    registry = load_registry()
    # Periods whose last day is in February 2025: Bahman 1403 (ends 2025-02-18) and February 2025.
    subs = expected_submissions(registry, D(2025, 2, 1), D(2025, 3, 1))
    keys = [s.key for s in subs]
    assert keys == [
        "cspf/pensioners/1403-11",
        "swo/beneficiaries/1403-11",
        "sso/insured_persons/1403-11",
        "sso/workplaces/1403-11",
        "tvto/trainees/2025-02",
    ]
    assert [s.due_date for s in subs] == sorted(s.due_date for s in subs)
    # The window's bounds: a period whose last day is the window's first day is in, one whose last day
    # is the window's (exclusive) end is out.
    bahman = expected_submissions(registry, D(2025, 2, 18), D(2025, 2, 19))
    assert {s.period.label for s in bahman} == {"1403-11"} and len(bahman) == 4
    only_tvto = expected_submissions(registry, D(2025, 2, 19), D(2025, 3, 1))
    assert [s.key for s in only_tvto] == ["tvto/trainees/2025-02"]
    assert expected_submissions(registry, D(2025, 2, 19), D(2025, 2, 28)) == []


def test_a_year_lists_twelve_periods_of_each_dataset():
    registry = load_registry()
    subs = expected_submissions(registry, D(2025, 3, 21), D(2026, 3, 21))  # Jalali year 1404
    for ds in registry.datasets:
        periods = [s.period.label for s in subs if (s.org, s.dataset) == (ds.org, ds.name)]
        assert len(periods) == {"monthly": 12, "quarterly": 4, "yearly": 1}[ds.period], ds.key
    sso = [s.period.label for s in subs if s.org == "sso" and s.dataset == "workplaces"]
    assert sso == [f"1404-{m:02d}" for m in range(1, 13)]


def test_an_extension_moves_one_period_of_one_dataset():
    registry = _with_extensions(
        load_registry(),
        "sso",
        "insured_persons",
        {"period": "1405-07", "due_date": "2026-11-20", "decision": "1405/7/12-34"},
    )
    extended = expected_submission(registry, "sso", "insured_persons", "1405-07")
    assert extended.extension == Extension("1405-07", D(2026, 11, 20), "1405/7/12-34")
    assert extended.due_date == D(2026, 11, 20)
    assert extended.grace_until == D(2026, 11, 25)  # the dataset's grace runs from the new due date
    # Not the other dataset of the period, nor the next period.
    assert expected_submission(registry, "sso", "workplaces", "1405-07").extension is None
    following = expected_submission(registry, "sso", "insured_persons", "1405-08")
    assert following.extension is None and following.due_date == following.period.due_date(15)
    in_calendar = [s for s in expected_submissions(registry, D(2026, 10, 1), D(2026, 11, 1)) if s.extension]
    assert [s.key for s in in_calendar] == ["sso/insured_persons/1405-07"]


def test_the_calendar_command_prints_due_dates_in_both_calendars(capsys):
    from anbar.cli import main

    assert main(["calendar", "--org", "sso", "--from", "1404/08/01", "--to", "1404/09/01"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "periods ending 2025-10-23 .. 2025-11-21, by due date"
    rows = [line.split() for line in out[2:]]
    assert [r[:3] for r in rows] == [["sso", "insured_persons", "1404-08"], ["sso", "workplaces", "1404-08"]]
    # period, due date (Jalali, Gregorian), missing after (Jalali, Gregorian)
    assert rows[0][3:] == ["2025-10-23", "..", "2025-11-21", "1404/09/15", "2025-12-06", "1404/09/20", "2025-12-11"]


def test_the_calendar_command_refuses_a_bad_day_or_organisation(capsys):
    from anbar.cli import main

    assert main(["calendar", "--from", "1404/13/01"]) == 2
    assert main(["calendar", "--org", "nope"]) == 2
    err = capsys.readouterr().err
    assert "not a day" in err and "no organisation 'nope'" in err


def test_a_quarterly_dataset_is_expected_once_a_quarter_after_the_quarter_ends():
    registry = load_registry()
    quarterly = expected_submission(registry, "swo", "disability_assessments", "1405-Q2")  # Tir..Shahrivar
    assert (quarterly.period.start, quarterly.period.end) == (D(2026, 6, 22), D(2026, 9, 23))
    assert quarterly.due_date == D(2026, 10, 12)  # due_day 20 after Shahrivar's last day, 2026-09-22
    assert quarterly.grace_until == D(2026, 10, 22)
    subs = expected_submissions(registry, D(2026, 3, 21), D(2027, 3, 21))  # Jalali year 1405
    labels = [s.period.label for s in subs if s.dataset == "disability_assessments"]
    assert labels == ["1405-Q1", "1405-Q2", "1405-Q3", "1405-Q4"]
    with pytest.raises(ValueError, match="is a monthly period; this dataset is quarterly"):
        expected_submission(registry, "swo", "disability_assessments", "1405-06")


def test_the_run_of_a_quarters_last_month_ingests_the_quarter_too():
    swo = load_registry().org("swo")

    def due(label):
        return [(ds.name, p.label) for ds, p in due_in_run(swo, label)]

    assert due("1405-05") == [("beneficiaries", "1405-05")]
    assert due("1405-06") == [("beneficiaries", "1405-06"), ("disability_assessments", "1405-Q2")]
    assert due("1405-Q2") == [("disability_assessments", "1405-Q2")]  # a manual re-run of the quarter
    assert due("1405-12") == [("beneficiaries", "1405-12"), ("disability_assessments", "1405-Q4")]
