"""The warehouse DAG: the dbt project rendered by astronomer-cosmos, one task group per model.

It is scheduled on the registry datasets' Assets: the ingest DAG publishes a dataset's
Asset when a delivery is accepted, and any of them triggers a rebuild. Parsing reads
only the registry and ``dbt_project/target/manifest.json`` (``LoadMode.DBT_MANIFEST``):
no dbt command, no database connection at parse time.
"""

from __future__ import annotations

import functools
from pathlib import Path

from anbar import settings
from anbar.dag_defaults import START_DATE, default_args
from anbar.dbt import MANIFEST_PATH, PROJECT_DIR, PROJECT_NAME, dbt_executable
from anbar.registry import Registry

DAG_ID = "anbar_warehouse"
WAREHOUSE_CONN_ID = settings.TRANSFORMER_CONN_ID  # anbar_transformer's connection; default "anbar_warehouse"
TARGET_SCHEMA = "analytics"
ASSET_GROUP = "anbar-clean"  # the group the ingest DAGs give the same Assets

DOC_MD = """
# Warehouse build (dbt via Cosmos)

Builds the `anbar` dbt project (`dbt_project/`) into PostgreSQL schemas `staging`,
`intermediate` and `marts`. Each dbt model is one task, `<model>_model_build`: `dbt build` of the model, then its tests
(a failing test fails the task and stops everything downstream). Tests over several models
(`assert_*_test`, `relationships_*_test`) run once, after all their models.

**Trigger**: any accepted delivery. The ingest DAG publishes the dataset's Asset
(`anbar://warehouse/clean/<org>__<dataset>`) when a submission is accepted; this DAG is
scheduled on all of them combined with `|`. A manual trigger rebuilds everything too.

**Data read**: `clean.<org>__<dataset>`, restricted by the `latest_accepted` macro to the
latest *accepted* version of each period in `anbar.submissions`; `anbar.jalali_calendar`;
`ref.code_list_values`. National IDs are replaced by `person_key` (HMAC-SHA256 by the database function
`anbar.pseudonymise`, whose key dbt never sees) in staging.

## Triage: what to check when a task fails
1. **Open the task log**: Cosmos logs the exact `dbt` command and dbt's own error.
2. **Connection errors** (`could not connect`, `password authentication failed`): the Airflow
   connection `anbar_warehouse` (host, port, login, password, schema = database name), or the one
   `ANBAR_TRANSFORMER_CONN_ID` names (login `anbar_transformer`; docs/access.md).
   **`permission denied`** or **`must be owner of table`**: dbt is not running as `anbar_transformer`,
   or the access plan is out of date: `anbar access apply` (it hands the model tables back to it).
3. **`the pseudonym key is not installed in this warehouse`** (the run's first statement): run
   `anbar pseudonym install` on a worker with `ANBAR_PSEUDONYM_KEY` set (or the Airflow
   connection `anbar_pseudonym`). A different key is refused: a new key changes every `person_key`.
4. **A `staging` model fails** (`relation "clean..." does not exist`, missing column): the
   registry and `_sources.yml` disagree with the database; run the ingest bootstrap and
   `python -m anbar.dbt sources --check`.
5. **`not_null_..._period_start`** fails: `anbar.jalali_calendar` does not cover the period.
6. **`unique_..._id`** fails in staging: two rows share a key inside one accepted delivery
   (the validation step should have rejected it): find them with
   `select <key cols>, count(*) ... group by ... having count(*) > 1` and open the submission.
7. **`assert_insured_employment_reconciles`** fails: the mart lost or duplicated jobs; check
   duplicate `workshop_code`s in the workplaces delivery of that period.
8. **`in_code_list_...`** fails on a mart: a published cell has a code outside its registry code
   list (the list changed, or a code got past validation); compare `registry/code_lists/` with the
   dataset's suite and rebuild.
9. A task for a model that no longer exists, or a new model without a task: the manifest is
   stale; run `python -m anbar.dbt parse` on deployment.
10. **Every model below staging is incremental**: a run rebuilds only the periods whose accepted
   deliveries changed (`analytics.dbt_build_state` holds what each model last built, and its log
   line `INSERT 0 n` how much). A run with nothing new is quick and writes nothing. To rebuild a
   model and everything after it from all deliveries: `dbt build --full-refresh --select <model>+`
   (see `dbt_project/README.md`).

Owner: anbar-data-engineering. Retries: 2 with backoff (connection blips), then a mail to the
warehouse team; data errors fail again, so read the log before clearing.
"""


def dataset_assets(registry: Registry) -> list:
    """One Asset per registry dataset: what the ingest DAGs publish on acceptance."""
    from airflow.sdk import Asset

    return [
        Asset(name=ds.key, uri=ds.asset_uri, group=ASSET_GROUP) for ds in sorted(registry.datasets, key=lambda d: d.key)
    ]


@functools.cache
def _any_asset_class() -> type:
    """``AssetAny`` whose hash is computed once (one class, made when first needed: airflow is imported late)."""
    from airflow.sdk.definitions.asset import AssetAny

    class AnyDatasetAsset(AssetAny):
        _hash: int | None = None

        def __hash__(self) -> int:
            if self._hash is None:
                self._hash = super().__hash__()
            return self._hash

    return AnyDatasetAsset


def warehouse_schedule(registry: Registry):
    """Any of the datasets' Assets (``a | b | ...``), as one condition whose hash is computed once.

    Airflow hashes a DAG, its schedule included, each time a task dependency is set, and an Asset's hash is
    a JSON dump of its fields: with a registry of 100 datasets, Cosmos' dependencies cost a second of every
    parse of this DAG (bench/bench_parse.py). The condition never changes once the DAG is built.
    """
    assets = dataset_assets(registry)
    if not assets:
        raise ValueError("the registry has no datasets: nothing to schedule the warehouse on")
    return assets[0] if len(assets) == 1 else _any_asset_class()(*assets)


def build_warehouse_dag(
    registry: Registry,
    *,
    manifest_path: Path | str = MANIFEST_PATH,
    project_dir: Path | str = PROJECT_DIR,
    dag_id: str = DAG_ID,
    target_name: str = "prod",
):
    """The Cosmos ``DbtDag`` of the warehouse, rendered from the dbt manifest."""
    from cosmos import DbtDag, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior
    from cosmos.profiles import PostgresUserPasswordProfileMapping

    manifest_path = Path(manifest_path)
    if not manifest_path.exists():
        raise FileNotFoundError(
            f"{manifest_path} not found: the warehouse DAG renders from the dbt manifest. "
            "Produce it with `python -m anbar.dbt parse` (no database needed)."
        )

    return DbtDag(
        dag_id=dag_id,
        description="Builds the dbt warehouse (staging, intermediate, marts) on new deliveries.",
        doc_md=DOC_MD,
        schedule=warehouse_schedule(registry),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,  # rebuilds are full: one at a time, later triggers queue
        tags=["anbar", "warehouse", "dbt"],
        # owner anbar-data-engineering, retries with backoff, a mail to the team on failure
        default_args=default_args(),
        project_config=ProjectConfig(manifest_path=manifest_path, project_name=PROJECT_NAME),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            # Cosmos' own per-model Assets carry the warehouse host and port in their URI
            # (postgres://host:port/db/schema/table), so they change between environments;
            # they also cost an OpenLineage pass per task. Not emitted.
            emit_datasets=False,
            # One `dbt build` task per model (its tests inside) rather than a run and a test
            # task: half the tasks, and each task's fixed cost (a process, dbt's start-up,
            # the manifest) dominates a model's own time at a month's volume.
            test_behavior=TestBehavior.BUILD,
            enable_owner_inheritance=False,
            # Tests over several models (the reconciliation, the national-ID guard) run once, after
            # all their parents, not inside the first parent's test task.
            should_detach_multiple_parents_tests=True,
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.LOCAL,
            invocation_mode=InvocationMode.SUBPROCESS,
            dbt_executable_path=str(dbt_executable()),
            dbt_project_path=Path(project_dir),
        ),
        profile_config=ProfileConfig(
            profile_name=PROJECT_NAME,
            target_name=target_name,
            profile_mapping=PostgresUserPasswordProfileMapping(
                conn_id=WAREHOUSE_CONN_ID, profile_args={"schema": TARGET_SCHEMA}
            ),
        ),
        operator_args={"install_deps": False},
    )
