"""(c) The Cosmos warehouse DAG: imports cleanly, has the expected tasks, is scheduled on
the registry datasets' Assets, and does no work (no dbt, no database) at parse time."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess

import pytest
from anbar_dbt_testdata import EXPECTED_TASKS

from anbar.dbt import REPO_ROOT, dbt_executable


@pytest.fixture(scope="module")
def dag(dbt_manifest, registry):
    from anbar.dbt.dag import build_warehouse_dag

    return build_warehouse_dag(registry)


def test_dag_file_imports_without_errors(dbt_manifest, tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    shutil.copy(REPO_ROOT / "dags" / "anbar_warehouse.py", tmp_path / "anbar_warehouse.py")
    bag = DagBag(dag_folder=tmp_path, safe_mode=True)
    assert bag.import_errors == {}
    assert list(bag.dag_ids) == ["anbar_warehouse"]
    assert "airflow" in (REPO_ROOT / "dags" / "anbar_warehouse.py").read_text()


def test_expected_tasks(dag):
    assert set(dag.task_dict) == EXPECTED_TASKS
    assert dag.task_dict["int_person_records_model_build"].upstream_task_ids == {
        "stg_anbar__accepted_submissions_model_build",
        "stg_sso__insured_persons_model_build",
        "stg_sso__workplaces_model_build",
        "stg_tvto__trainees_model_build",
        "stg_cspf__pensioners_model_build",
        "stg_swo__beneficiaries_model_build",
    }
    # a model reading another incremental model takes its lineage from that model's build state
    assert dag.task_dict["fct_insured_employment_monthly_model_build"].upstream_task_ids == {
        "fct_insured_employment_model_build",
        "stg_ref__code_list_values_model_build",
    }
    assert dag.task_dict["assert_insured_employment_reconciles_test"].upstream_task_ids == {
        "fct_insured_employment_model_build",
        "fct_insured_employment_monthly_model_build",
    }
    # the first parent's build must not run the cross-model reconciliation early
    build = dag.task_dict["fct_insured_employment_model_build"]
    assert build.base_cmd == ["build"]
    assert "assert_insured_employment_reconciles" in build.exclude


def test_scheduled_on_the_registry_assets(dag, registry):
    from airflow.sdk import Asset
    from airflow.sdk.definitions.asset import AssetAny

    condition = dag.timetable.asset_condition
    assert isinstance(condition, AssetAny)
    assert {(a.name, a.uri) for a in condition.objects} == {(ds.key, ds.asset_uri) for ds in registry.datasets}
    assert all(isinstance(a, Asset) for a in condition.objects)
    assert ("sso__insured_persons", "anbar://warehouse/clean/sso__insured_persons") in {
        (a.name, a.uri) for a in condition.objects
    }


def test_dag_metadata(dag):
    assert dag.dag_id == "anbar_warehouse"
    assert dag.owner == "anbar-data-engineering"
    assert {"anbar", "warehouse", "dbt"} <= set(dag.tags)
    assert dag.default_args["retries"] >= 1
    assert dag.default_args["on_failure_callback"]
    assert dag.max_active_runs == 1
    assert not dag.catchup
    assert "Triage" in dag.doc_md and "anbar_warehouse" in dag.doc_md
    task = dag.task_dict["stg_sso__insured_persons_model_build"]
    assert task.owner == "anbar-data-engineering"
    assert task.retries == dag.default_args["retries"]
    assert task.retry_delay == dag.default_args["retry_delay"] > dt.timedelta(0)


def test_tasks_run_the_venv_dbt_on_the_warehouse_connection(dag):
    task = dag.task_dict["fct_insured_employment_monthly_model_build"]
    assert str(task.dbt_executable_path) == str(dbt_executable())
    profile = task.profile_config
    assert (profile.profile_name, profile.target_name) == ("anbar", "prod")
    assert profile.profile_mapping.conn_id == "anbar_warehouse"
    assert profile.profile_mapping.profile_args == {"schema": "analytics"}


def test_parse_runs_no_dbt_and_opens_no_connection(dbt_manifest, registry, monkeypatch):
    import psycopg2

    from anbar.dbt.dag import build_warehouse_dag

    def forbidden(*args, **kwargs):
        raise AssertionError(f"work at DAG parse time: {args[:1]}")

    monkeypatch.setattr(subprocess, "Popen", forbidden)
    monkeypatch.setattr(psycopg2, "connect", forbidden)
    build_warehouse_dag(registry, dag_id="anbar_warehouse_parse_check")


def test_missing_manifest_is_a_clear_error(registry, tmp_path):
    from anbar.dbt.dag import build_warehouse_dag

    with pytest.raises(FileNotFoundError, match=r"python -m anbar\.dbt parse"):
        build_warehouse_dag(registry, manifest_path=tmp_path / "manifest.json")


def test_assets_are_the_ones_the_ingest_dags_publish(dag, registry):
    """Same name, uri and group: Airflow keys assets by (name, uri) and keeps the group of
    whichever DAG it parsed last, so the two definitions must agree."""
    from anbar.ingest_dag import dataset_asset

    published = {dataset_asset(registry.org(ds.org), ds.name) for ds in registry.datasets}
    assert set(dag.timetable.asset_condition.objects) == published
