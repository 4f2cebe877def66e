"""(c) The Cosmos warehouse DAG: imports cleanly, has the expected tasks — one `dbt build` of the whole project
(Cosmos' watcher mode) after the gate that coalesces deliveries, then per model a task group reading what the
build did —, is scheduled on the registry datasets' Assets, and does no work (no dbt, no database) at parse time."""

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
    assert dag.task_dict["int_person_records.run"].upstream_task_ids == {
        "stg_anbar__accepted_submissions.test",
        "stg_sso__insured_persons.test",
        "stg_sso__workplaces.test",
        "stg_tvto__trainees.test",
        "stg_cspf__pensioners.test",
        "stg_swo__beneficiaries.test",
    }
    # a model reading another incremental model takes its lineage from that model's build state
    assert dag.task_dict["fct_insured_employment_monthly.run"].upstream_task_ids == {
        "fct_insured_employment.test",
        "stg_ref__code_list_values.test",
    }
    assert dag.task_dict["fct_insured_employment_monthly.test"].upstream_task_ids == {
        "fct_insured_employment_monthly.run"
    }


def test_one_dbt_build_of_the_whole_project(dag):
    """The producer builds every model and runs every test: no selection, no --resource-type, 4 dbt threads."""
    from cosmos.operators.watcher import DbtProducerWatcherOperator

    build = dag.task_dict["dbt_producer_watcher"]
    assert isinstance(build, DbtProducerWatcherOperator)
    assert build.base_cmd == ["build"]
    assert not build.select and not build.exclude and not build.selector
    assert "--resource-type" not in build.add_cmd_flags()
    assert build.upstream_task_ids == {"coalesce_deliveries"}
    assert build.profile_config.profile_mapping.profile_args["threads"] == 4
    # A retried producer only skips (Cosmos): it fails at once instead, and the model tasks retry model by model.
    assert build.retries == 0
    # Tests over several models count in the outcome of each of their models' `.test` task.
    tests = build.tests_per_model
    for model in ("fct_insured_employment", "fct_insured_employment_monthly"):
        assert "test.anbar.assert_insured_employment_reconciles" in tests[f"model.anbar.{model}"]
    assert "test.anbar.assert_no_published_count_under_threshold" in tests["model.anbar.mart_trainees"]


def test_the_model_tasks_read_the_build_once_it_has_ended(dag):
    from cosmos.operators.watcher import DbtRunWatcherOperator, DbtTestWatcherOperator

    build = dag.task_dict["dbt_producer_watcher"]
    after = {t.task_id for t in build.get_flat_relatives(upstream=False)}
    assert after == EXPECTED_TASKS - {"coalesce_deliveries", "dbt_producer_watcher"}
    for task_id in build.downstream_task_ids:
        # ... whatever the build's outcome, so a failed build still shows which models it built
        assert dag.task_dict[task_id].trigger_rule == "all_done", task_id
    assert "stg_sso__insured_persons.run" in build.downstream_task_ids
    for task_id in EXPECTED_TASKS - {"coalesce_deliveries", "dbt_producer_watcher"}:
        task = dag.task_dict[task_id]
        kind = DbtTestWatcherOperator if task_id.endswith(".test") else DbtRunWatcherOperator
        assert type(task) is kind, task_id
        # poking, not deferred: no triggerer round trip, and no deferral race (apache/airflow#67287)
        assert not task.deferrable and task.mode == "poke", task_id
        assert task.producer_task_id == "dbt_producer_watcher"


def test_deliveries_accepted_close_together_are_built_once(dag, registry):
    from airflow.providers.standard.operators.python import ShortCircuitOperator

    from anbar.dbt import coalesce
    from anbar.dbt.dag import dataset_assets

    gate = dag.task_dict["coalesce_deliveries"]
    assert isinstance(gate, ShortCircuitOperator)
    assert gate.python_callable is coalesce.coalesce_deliveries
    # a run it skips skips every task, the model tasks' all_done notwithstanding
    assert gate.ignore_downstream_trigger_rules
    assert not gate.upstream_task_ids and gate.downstream_task_ids == {"dbt_producer_watcher"}
    # it reads when each dataset was last updated through its inlets
    assert set(gate.inlets) == set(dataset_assets(registry))
    assert gate.owner == "anbar-data-engineering"


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
    for task_id in ("stg_sso__insured_persons.run", "stg_sso__insured_persons.test", "coalesce_deliveries"):
        task = dag.task_dict[task_id]
        assert task.owner == "anbar-data-engineering"
        assert task.retries == dag.default_args["retries"]
        assert task.retry_delay == dag.default_args["retry_delay"] > dt.timedelta(0)


def test_tasks_run_the_venv_dbt_on_the_warehouse_connection(dag):
    # the build, and a model task's own dbt when it is retried
    for task_id in ("dbt_producer_watcher", "fct_insured_employment_monthly.run"):
        task = dag.task_dict[task_id]
        assert str(task.dbt_executable_path) == str(dbt_executable())
        profile = task.profile_config
        assert (profile.profile_name, profile.target_name) == ("anbar", "prod")
        assert profile.profile_mapping.conn_id == "anbar_warehouse"
        assert profile.profile_mapping.profile_args == {"schema": "analytics", "threads": 4}


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
