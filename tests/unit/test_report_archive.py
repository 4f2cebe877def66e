"""The monthly report DAG's helpers: the archive never overwrites, the run's month and date."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pendulum
import pytest

from anbar import monthly_report_dag as mrd


def test_archive_writes_read_only_and_a_rerun_finds_the_same_files(tmp_path):
    files = {".html": b"<p>report</p>", ".pdf": b"%PDF-1.7 report"}
    paths = mrd.archive(tmp_path / "1405-07", "sso-1405-07", files)
    assert paths == {
        ".html": tmp_path / "1405-07" / "sso-1405-07.html",
        ".pdf": tmp_path / "1405-07" / "sso-1405-07.pdf",
    }
    assert {s: p.read_bytes() for s, p in paths.items()} == files
    assert all(p.stat().st_mode & 0o222 == 0 for p in paths.values())
    assert mrd.archive(tmp_path / "1405-07", "sso-1405-07", files) == paths  # identical: nothing new
    assert sorted(p.name for p in (tmp_path / "1405-07").iterdir()) == ["sso-1405-07.html", "sso-1405-07.pdf"]


def test_archive_keeps_a_different_report_beside_the_one_archived(tmp_path, caplog):
    first = mrd.archive(tmp_path, "sso-1405-07", {".html": b"a", ".pdf": b"A"})
    second = mrd.archive(tmp_path, "sso-1405-07", {".html": b"a", ".pdf": b"B"})  # the figures changed
    assert second == {".html": tmp_path / "sso-1405-07.r2.html", ".pdf": tmp_path / "sso-1405-07.r2.pdf"}
    assert first[".pdf"].read_bytes() == b"A" and second[".pdf"].read_bytes() == b"B"
    assert "a different report is archived as sso-1405-07" in caplog.text
    assert mrd.archive(tmp_path, "sso-1405-07", {".html": b"a", ".pdf": b"B"}) == second
    third = mrd.archive(tmp_path, "sso-1405-07", {".html": b"c", ".pdf": b"C"})
    assert third[".pdf"].name == "sso-1405-07.r3.pdf"
    # an interrupted run left only the HTML: the PDF is completed beside it
    (tmp_path / "cspf-1405-07.html").write_bytes(b"h")
    assert mrd.archive(tmp_path, "cspf-1405-07", {".html": b"h", ".pdf": b"P"})[".pdf"].read_bytes() == b"P"
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_file_stems_and_targets():
    from anbar.registry import load_registry

    assert mrd.file_stem("sso", "1405-07") == "sso-1405-07"
    assert mrd.file_stem(mrd.SUMMARY, "1405-07") == "ministry-summary-1405-07"
    targets = mrd.targets(load_registry())
    assert targets[-1] == "ministry" and sorted(targets[:-1]) == targets[:-1] and "sso" in targets


def test_the_month_and_the_date_of_a_run():
    mehr = pendulum.datetime(2026, 9, 22, 20, 30, tz="UTC")  # 1 Mehr 1405 in Tehran
    report_day = pendulum.datetime(2026, 10, 26, 20, 30, tz="UTC")  # 00:00 on 5 Aban 1405 in Tehran
    scheduled = {"data_interval_start": mehr, "dag_run": SimpleNamespace(run_after=report_day), "params": {}}
    assert mrd.report_month_for_run(scheduled) == "1405-07"
    assert mrd.generated_on_for_run(scheduled) == dt.date(2026, 10, 27)  # the Tehran date, not the UTC one
    manual = {**scheduled, "params": {"report_month": "1405-05"}}
    assert mrd.report_month_for_run(manual) == "1405-05"
    no_interval = {"dag_run": SimpleNamespace(run_after=report_day), "params": {}}
    assert mrd.report_month_for_run(no_interval) == "1405-07"  # the month complete when triggered
    with pytest.raises(ValueError):
        mrd.report_month_for_run({"params": {}})
