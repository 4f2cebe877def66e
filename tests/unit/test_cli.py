"""The command line's checks pass on the committed tree and fail on a broken one."""

from __future__ import annotations

import shutil

from anbar.cli import main
from anbar.registry import default_root


def test_checks_pass_on_the_committed_tree(capsys):
    assert main(["registry-check"]) == 0
    assert main(["suites", "check"]) == 0
    assert main(["dbt-sources", "--check"]) == 0
    assert "sso: 2 dataset(s) over sftp" in capsys.readouterr().out


def test_registry_check_fails_naming_the_file(tmp_path, capsys):
    broken = tmp_path / "registry"
    shutil.copytree(default_root(), broken)
    (broken / "tvto.yml").write_text((broken / "tvto.yml").read_text().replace("due_day: 10", "due_day: -3"))
    assert main(["--registry", str(broken), "registry-check"]) == 1
    err = capsys.readouterr().err
    assert "tvto.yml" in err and "datasets.0.due_day" in err


def test_suites_draft_writes_the_registry_suite_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ANBAR_EXPECTATIONS_DIR", str(tmp_path))
    assert main(["suites", "draft", "sso", "workplaces"]) == 0
    assert (tmp_path / "sso__workplaces.json").exists()
    assert main(["suites", "check"]) == 1  # the other datasets have no suite in this directory
    assert "sso__insured_persons" in capsys.readouterr().err
