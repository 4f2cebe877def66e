"""The statisticians' loop: edit one suite file, see its effect on a landed period with `anbar suites try`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from anbar import cli, ingest

from .db import fetch

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _state(conn) -> list:
    return [
        fetch(
            conn, "select submission_id, version, status, rows_loaded, rows_rejected, updated_at from anbar.submissions"
        ),
        fetch(conn, "select count(*) as n from anbar.row_findings"),
        fetch(conn, "select * from anbar.quality_scorecard order by submission_id, principle"),
        fetch(conn, "select count(*) as n from anbar.submission_events"),
    ]


@pytest.fixture
def suites(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "expectations"
    shutil.copytree(REPO / "expectations", folder)
    monkeypatch.setenv("ANBAR_EXPECTATIONS_DIR", str(folder))
    return folder


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")


def test_a_new_rule_shows_its_effect_without_touching_the_warehouse(fresh_warehouse, simulators, suites, capsys):
    conn = fresh_warehouse
    assert ingest.run_steps("cspf", "pensioners", "1404-05").state == "accepted"
    assert ingest.run_steps("cspf", "pensioners", "1404-06").state == "rejected"  # count_drop
    before = _state(conn)

    # The statistician's change, in one file: a plausibility ceiling on pensions, and a looser
    # month-to-month tolerance.
    def change(data):
        data["expectations"].append(
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "pension_amount", "max_value": 150_000_000},
                "meta": {
                    "rule": "plausible_pension",
                    "principle": "quality",
                    "severity": "warning",
                    "description": {"fa": "مستمری حداکثر ۱۵۰ میلیون ریال است", "en": "A pension is at most 150M rials"},
                },
            }
        )
        for e in data["expectations"]:
            if e["meta"]["rule"] == "row_count_vs_previous_period":
                e["kwargs"]["tolerance"] = 0.6

    _edit(suites / "cspf__pensioners.json", change)
    assert cli.main(["suites", "check"]) == 0

    assert cli.main(["suites", "try", "cspf__pensioners", "--period", "1404-06"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.rstrip().endswith("plausible_pension"))
    assert line.split()[:3] == ["quality", "FAIL", "warning"] and int(line.split()[3]) > 0
    count_line = next(x for x in out.splitlines() if x.rstrip().endswith("row_count_vs_previous_period"))
    assert count_line.split()[1] == "pass"
    assert "would be ACCEPTED" in out and "(recorded: rejected)" in out and "nothing was written" in out

    assert cli.main(["suites", "try", "cspf__pensioners", "--period", "1404-06", "--json"]) == 0
    trial = json.loads(capsys.readouterr().out)
    assert trial["would_be"] == "accepted" and trial["recorded_status"] == "rejected"
    by_rule = {e["rule"]: e for e in trial["summary"]["expectations"]}
    assert by_rule["plausible_pension"]["rows_failing"] == by_rule["plausible_pension"]["unexpected_count"] > 0

    assert _state(conn) == before  # the ledger, findings, scorecard and step log are untouched


def test_try_says_clearly_when_there_is_nothing_to_run_on(fresh_warehouse, simulators, suites, capsys):
    assert cli.main(["suites", "try", "cspf__pensioners", "--period", "1404-07"]) == 1
    assert "no delivery of cspf__pensioners for period 1404-07" in capsys.readouterr().err
    assert ingest.run_steps("sso", "workplaces", "1404-02").state == "rejected"  # checksum: never loaded
    assert cli.main(["suites", "try", "sso", "workplaces", "--period", "1404-02"]) == 1
    assert "reached the load step" in capsys.readouterr().err
    assert cli.main(["suites", "try", "cspf", "--period", "1404-07"]) == 2
