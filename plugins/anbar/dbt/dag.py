"""The warehouse DAG: the dbt project built by one ``dbt build`` (astronomer-cosmos, ``ExecutionMode.WATCHER``),
with one task group per model showing what that build did to the model and its tests.

It is scheduled on the registry datasets' Assets: the ingest DAG publishes a dataset's
Asset when a delivery is accepted, and any of them triggers a rebuild; deliveries accepted
close together are built once (``anbar.dbt.coalesce``). Parsing reads only the registry and
``dbt_project/target/manifest.json`` (``LoadMode.DBT_MANIFEST``): no dbt command, no database
connection at parse time.

    coalesce_deliveries ─► dbt_producer_watcher ─► <model>.run ─► <model>.test ─► <downstream model>.run ...
    (skip, or wait for      (dbt build: every model   (each reads its model's outcome, and its tests',
     a quiet moment)         and test, dbt threads)     from what the build published; no dbt of its own)

The per-model tasks run once the build has ended: each then only reads what the build recorded (one
XCom read), in a task that holds its slot for about a second, instead of waiting beside the build
(Cosmos' default) — on a small machine the waiting tasks took CPU from dbt, and deferring them to the
triggerer hits Airflow 3.3's scheduler/triggerer race (a trigger that fires right after the deferral
gets the task failed, apache/airflow#67287, #72716). A model task that is retried (or cleared) runs dbt
for its model alone, as Cosmos' local mode would.
"""

from __future__ import annotations

import functools
from pathlib import Path

from anbar import settings
from anbar.dag_defaults import START_DATE, default_args
from anbar.dbt import MANIFEST_PATH, PROJECT_DIR, PROJECT_NAME, dbt_executable
from anbar.registry import Registry

DAG_ID = "anbar_warehouse"
DBT_THREADS = 4  # the build's dbt threads: PostgreSQL works while dbt waits, so more than the 2 cores help
WAREHOUSE_CONN_ID = settings.TRANSFORMER_CONN_ID  # anbar_transformer's connection; default "anbar_warehouse"
TARGET_SCHEMA = "analytics"
ASSET_GROUP = "anbar-clean"  # the group the ingest DAGs give the same Assets

DOC_MD = """
# Warehouse build (dbt via Cosmos)

Builds the `anbar` dbt project (`dbt_project/`) into PostgreSQL schemas `staging`,
`intermediate`, `core`, `marts` and `catalog` with **one `dbt build`** (`dbt_producer_watcher`,
4 dbt threads): every model, then its tests; a failing test stops everything downstream of it.
Each model then has a task group, `<model>.run` and `<model>.test`, that shows what the build did
to the model and to its tests (their log has dbt's message for the model); a group fails when its
model or one of its tests failed, and the groups after it are `upstream_failed`.

**Trigger**: any accepted delivery. The ingest DAG publishes the dataset's Asset
(`anbar://warehouse/clean/<org>__<dataset>`) when a submission is accepted; this DAG is
scheduled on all of them combined with `|`. A manual trigger rebuilds everything too.
`coalesce_deliveries` first waits until no delivery has been accepted for
`ANBAR_WAREHOUSE_QUIET_SECONDS` (60; at most `ANBAR_WAREHOUSE_MAX_WAIT_SECONDS`, 900), so deliveries
accepted close together are built once, and skips a run (all its tasks `skipped`) whose deliveries
the previous, successful build already read.

**Data read**: `clean.<org>__<dataset>`, restricted by the `latest_accepted` macro to the
latest *accepted* version of each period in `anbar.submissions`; `anbar.jalali_calendar`;
`ref.code_list_values`. National IDs are replaced by `person_key` (HMAC-SHA256 by the database function
`anbar.pseudonymise`, whose key dbt never sees) in staging.

## Triage: what to check when a task fails
1. **Open the log of `dbt_producer_watcher`**: the `dbt build` command and dbt's own output, every
   model and test with its result; a failed `<model>.run` or `<model>.test` names the model and dbt's
   message. Clearing a failed `<model>.run` / `.test` runs `dbt run` / `dbt test` for that model alone.
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

11. **A run is `skipped`** (every task): `coalesce_deliveries` found that the previous build, which
   succeeded, had already read its deliveries (its log says which run). Nothing to do.

Owner: anbar-data-engineering. Retries: the build is not retried (a retried `dbt_producer_watcher` only
skips); a failed model or test task is retried twice with backoff, running dbt for its model alone
(connection blips), then a mail goes to the warehouse team; data errors fail again, so read the log
before clearing.
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
    """The Cosmos ``DbtDag`` of the warehouse, rendered from the dbt manifest: one ``dbt build``."""
    from cosmos import DbtDag, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior
    from cosmos.profiles import PostgresUserPasswordProfileMapping

    manifest_path = Path(manifest_path)
    if not manifest_path.exists():
        raise FileNotFoundError(
            f"{manifest_path} not found: the warehouse DAG renders from the dbt manifest. "
            "Produce it with `python -m anbar.dbt parse` (no database needed)."
        )

    dag = DbtDag(
        dag_id=dag_id,
        description="Builds the dbt warehouse (staging, intermediate, marts) on new deliveries.",
        doc_md=DOC_MD,
        schedule=warehouse_schedule(registry),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,  # one build at a time; the events of deliveries accepted meanwhile queue one more run
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
            # A `.run` and a `.test` task per model (the watcher mode has no per-model build task). The
            # build itself is one `dbt build`: dbt runs each test after its models and skips what follows
            # a failure, tests over several models (the reconciliation, the national-ID guard) included.
            test_behavior=TestBehavior.AFTER_EACH,
            enable_owner_inheritance=False,
            # Not detached: in the watcher mode a detached test's task finds no result of its own and,
            # not deferred, waits forever. A test over several models counts in each of their `.test`.
            should_detach_multiple_parents_tests=False,
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.WATCHER,
            invocation_mode=InvocationMode.SUBPROCESS,
            dbt_executable_path=str(dbt_executable()),
            dbt_project_path=Path(project_dir),
            # A retried producer does not build again (it only skips): fail at once, so the model tasks
            # report without waiting out a retry delay; their own retries run dbt model by model.
            setup_operator_args={"retries": 0},
        ),
        profile_config=ProfileConfig(
            profile_name=PROJECT_NAME,
            target_name=target_name,
            profile_mapping=PostgresUserPasswordProfileMapping(
                conn_id=WAREHOUSE_CONN_ID, profile_args={"schema": TARGET_SCHEMA, "threads": DBT_THREADS}
            ),
        ),
        # The model tasks poke (no deferral: see the module's docstring), once the build has ended.
        operator_args={"install_deps": False, "deferrable": False, "poke_interval": 5},
    )
    _report_after_the_build(dag)
    _coalesce_first(dag, registry)
    return dag


def _report_after_the_build(dag) -> None:
    """Start the model tasks when the build has ended (in whatever state), not beside it."""
    from airflow.sdk import TriggerRule
    from cosmos.constants import PRODUCER_WATCHER_TASK_ID

    producer = dag.task_dict[PRODUCER_WATCHER_TASK_ID]
    for task in dag.tasks:
        if task is producer:
            continue
        if not task.upstream_task_ids or producer.task_id in task.upstream_task_ids:
            producer >> task
            task.trigger_rule = TriggerRule.ALL_DONE


def _coalesce_first(dag, registry: Registry) -> None:
    """``coalesce_deliveries`` before the build (anbar.dbt.coalesce): a run it skips skips every task."""
    from airflow.providers.standard.operators.python import ShortCircuitOperator
    from cosmos.constants import PRODUCER_WATCHER_TASK_ID

    from anbar.dbt import coalesce

    gate = ShortCircuitOperator(
        task_id=coalesce.TASK_ID,
        python_callable=coalesce.coalesce_deliveries,
        ignore_downstream_trigger_rules=True,  # the model tasks run after a failed build too, not a skipped one
        inlets=dataset_assets(registry),  # it reads when each dataset was last updated
        doc_md=coalesce.__doc__,
        dag=dag,
    )
    gate >> dag.task_dict[PRODUCER_WATCHER_TASK_ID]
