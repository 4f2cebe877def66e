"""One ingest DAG per organisation, generated from the registry.

The DAG maps one task group over the organisation's datasets; each mapped
instance waits for, lands, loads, validates and concludes one dataset for the
run's period. The period comes from the run's data interval in the
organisation's calendar (Jalali months for Jalali suppliers), or from the
``period`` param of a manual run.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Asset, AssetAlias, Param, get_current_context, task, task_group
from airflow.sdk.bases.sensor import PokeReturnValue

from anbar import ingest
from anbar.dag_defaults import START_DATE, default_args
from anbar.registry import Organisation, Registry
from anbar.timetables import resolve_run_period, timetable_for

MAP_LABEL = "{{ anbar_map_label }}"


def accepted_alias(org: Organisation) -> AssetAlias:
    return AssetAlias(name=f"anbar_accepted__{org.code}")


def dataset_asset(org: Organisation, dataset: str) -> Asset:
    ds = org.dataset(dataset)
    return Asset(name=ds.key, uri=ds.asset_uri, group="anbar-clean")


def period_for_run(org: Organisation, context) -> str:
    """The period a run ingests: the ``period`` param if given, else the run's data interval's month,
    else (a manual run without a logical date) the last month complete when the run was triggered."""
    dag_run = context.get("dag_run")
    return resolve_run_period(
        org.calendar,
        data_interval_start=context.get("data_interval_start"),
        run_after=getattr(dag_run, "run_after", None),
        conf={"period": (context.get("params") or {}).get("period")},
        timezone=org.timezone,
    ).label


def _label(context, step_or_dataset) -> None:
    if isinstance(step_or_dataset, dict):
        context["anbar_map_label"] = f"{step_or_dataset['dataset']} {step_or_dataset['period']}"
    else:
        context["anbar_map_label"] = str(step_or_dataset)


def doc_md(org: Organisation) -> str:
    datasets = "\n".join(
        f"| `{d.name}` | {d.description.en} | {d.period} | {d.due_day} (+{d.grace_days} grace) | {d.access_tier} |"
        for d in org.datasets
    )
    transport = (
        f"SFTP, connection `{org.transport.conn_id}`, outbox `{org.transport.outbox}/<dataset>/<period>/`"
        if org.transport.kind == "sftp"
        else f"HTTP API, connection `{org.transport.conn_id}`"
    )
    return f"""
# Ingest: {org.names.en} ({org.names.fa})

Generated from `registry/{org.code}.yml`. One run per **{org.calendar.value}** month; each dataset is a
mapped task group (map index = dataset and period). Transport: {transport}.
Focal points: {", ".join(org.focal_points)}.

| dataset | description | period | due days after period end | access tier |
|---|---|---|---|---|
{datasets}

## Steps
1. `wait_for_delivery` — reschedule-mode sensor; ends `missing` after the due date + grace.
2. `receive` — lands manifest and files in the landing archive (sha256-addressed); checks names, sizes, hashes.
3. `load` — decodes while streaming, COPY into `raw`, converts into `clean` (rows in = loaded + rejected).
4. `validate` — runs `expectations/{org.code}__<dataset>.json` inside PostgreSQL with Great Expectations.
5. `conclude` — writes `report.json` beside the delivery; mails the supplier on rejection; publishes the
   dataset's Asset when accepted (which triggers `anbar_warehouse`).

## Triage
- **A supplier's delivery is rejected** (task green, ledger `rejected`): that is the supplier's to fix. Look at
  `select * from anbar.submissions where org = '{org.code}' order by submission_id desc;` — `reason`, `message`
  and `validation_summary` say why; the mail went to the focal points.
- **`receive` fails with a connection error**: the supplier's server is down or its host key changed. Never
  disable host-key checking; confirm a new key with the supplier and update the connection's `host_key`.
- **`load` fails with a database error**: check the warehouse (disk, `max_wal_size`); the load is one
  transaction, so clearing the task reruns it from scratch with nothing half-loaded.
- **Re-run a period**: trigger the DAG with the param `period` (e.g. `{
        "1404-08" if org.calendar.value == "jalali" else "2025-10"
    }`). A byte-identical re-delivery is a no-op; a corrected one becomes a new version.
"""


def build_ingest_dag(org: Organisation, registry: Registry) -> DAG:
    dataset_names = [d.name for d in org.datasets]
    tags = ["anbar", "ingest", org.code, org.transport.kind, org.calendar.value]
    longest_wait = max(d.due_day + d.grace_days for d in org.datasets) + 3

    with DAG(
        dag_id=f"anbar_ingest__{org.code}",
        description=f"Monthly microdata ingest from {org.names.en}",
        schedule=timetable_for(org.calendar),
        start_date=START_DATE,
        catchup=False,
        # Periods of one organisation are decided in order: the cross-period rules compare a
        # delivery with the previous accepted period, which must be decided first.
        max_active_runs=1,
        default_args=default_args(org.owner),
        tags=tags,
        doc_md=doc_md(org),
        params={
            "period": Param(
                None,
                type=["null", "string"],
                pattern=r"^\d{4}-\d{2}$",
                description="Ingest this period (YYYY-MM in the organisation's calendar) "
                "instead of the run's data interval",
            )
        },
        render_template_as_native_obj=False,
    ) as dag:

        @task.sensor(
            mode="reschedule",
            poke_interval=dt.timedelta(minutes=10),
            timeout=dt.timedelta(days=longest_wait),
            map_index_template=MAP_LABEL,
        )
        def wait_for_delivery(dataset: str) -> PokeReturnValue:
            context = get_current_context()
            period = period_for_run(org, context)
            _label(context, {"dataset": dataset, "period": period})
            step = ingest.probe(org.code, dataset, period, now=dt.datetime.now(dt.UTC), registry=registry)
            return PokeReturnValue(is_done=step.state != "waiting", xcom_value=step.to_xcom())

        @task(map_index_template=MAP_LABEL)
        def receive(step: dict) -> dict:
            context = get_current_context()
            _label(context, step)
            s = ingest.Step.from_xcom(step)
            if s.state == "missing":
                return ingest.record_missing(s, registry=registry).to_xcom()
            return ingest.receive(s, run_id=context["run_id"], registry=registry).to_xcom()

        @task(map_index_template=MAP_LABEL)
        def load(step: dict) -> dict:
            _label(get_current_context(), step)
            return ingest.load(ingest.Step.from_xcom(step), registry=registry).to_xcom()

        @task(map_index_template=MAP_LABEL)
        def validate(step: dict) -> dict:
            _label(get_current_context(), step)
            return ingest.validate(ingest.Step.from_xcom(step), registry=registry).to_xcom()

        @task(map_index_template=MAP_LABEL, outlets=[accepted_alias(org)])
        def conclude(step: dict) -> dict:
            context = get_current_context()
            _label(context, step)
            s = ingest.conclude(ingest.Step.from_xcom(step), registry=registry)
            # The outcome goes into the map index label, so the grid shows a quarantined delivery.
            outcome = f"{s.state} ({s.reason})" if s.reason else s.state
            context["anbar_map_label"] = f"{s.dataset} {s.period}: {outcome}"
            if s.state == "accepted":
                context["outlet_events"][accepted_alias(org)].add(
                    dataset_asset(org, s.dataset),
                    extra={
                        "org": s.org,
                        "dataset": s.dataset,
                        "period": s.period,
                        "submission_id": s.submission_id,
                        "version": s.version,
                    },
                )
            return s.to_xcom()

        @task_group(group_id="dataset")
        def ingest_dataset(dataset: str):
            conclude(validate(load(receive(wait_for_delivery(dataset)))))

        ingest_dataset.expand(dataset=dataset_names)

    return dag
