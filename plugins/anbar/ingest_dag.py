"""One ingest DAG per organisation, generated from the registry.

The DAG maps one task group over the organisation's datasets due in the run;
each mapped instance waits for, lands, loads, validates and concludes one
dataset for its period. The run's month comes from its data interval in the
organisation's calendar (Jalali months for Jalali suppliers), or from the
``period`` param of a manual run; a quarterly or yearly dataset is due in the
run of the month its period ends with (``anbar.expected.due_in_run``).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Asset, AssetAlias, Param, get_current_context, task, task_group

from anbar import alerts, expected
from anbar.dag_defaults import MAP_LABEL, MAP_LABEL_KEY, START_DATE, default_args, label_map_index
from anbar.data_docs_dag import DOCS_PENDING
from anbar.delivery_wait import WaitForDelivery
from anbar.registry import Organisation, Registry
from anbar.timetables import resolve_run_period, timetable_for


def _ingest():
    """``anbar.ingest``, imported when a task runs rather than when the file is parsed: it brings in the SFTP
    and HTTP providers (asyncssh, paramiko, aiohttp), about a second of every parse (bench/bench_parse.py)."""
    from anbar import ingest

    return ingest


def accepted_alias(org: Organisation) -> AssetAlias:
    return AssetAlias(name=f"anbar_accepted__{org.code}")


def dataset_asset(org: Organisation, dataset: str) -> Asset:
    ds = org.dataset(dataset)
    return Asset(name=ds.key, uri=ds.asset_uri, group="anbar-clean")


def period_for_run(org: Organisation, context) -> str:
    """The month a run ingests: the ``period`` param if given, else the run's data interval's month,
    else (a manual run without a logical date) the last month complete when the run was triggered."""
    dag_run = context.get("dag_run")
    return resolve_run_period(
        org.calendar,
        data_interval_start=context.get("data_interval_start"),
        run_after=getattr(dag_run, "run_after", None),
        conf={"period": (context.get("params") or {}).get("period")},
        timezone=org.timezone,
    ).label


def _when_due(frequency: str) -> str:
    return {
        "quarterly": " (in the runs of months 3, 6, 9 and 12)",
        "yearly": " (in the run of month 12)",
    }.get(frequency, "")


def doc_md(org: Organisation, registry: Registry | None = None) -> str:
    ministry = registry.ministry if registry is not None else None
    reminder_days = ministry.reminder_days_before if ministry else "N"
    escalation_days = ministry.escalation_days_after if ministry else "M"
    datasets = "\n".join(
        f"| `{d.name}` | {d.description.en} | {d.period}{_when_due(d.period)} | {d.due_day} (+{d.grace_days} grace) "
        f"| {d.access_tier} |"
        for d in org.datasets
    )
    transport = (
        f"SFTP, connection `{org.transport.conn_id}`, outbox `{org.transport.outbox}/<dataset>/<period>/`"
        if org.transport.kind == "sftp"
        else f"HTTP API, connection `{org.transport.conn_id}`"
    )
    return f"""
# Ingest: {org.names.en} ({org.names.fa})

Generated from `registry/{org.code}.yml`. One run per **{org.calendar.value}** month; each dataset due in the
run is a mapped task group (map index = dataset and period; `datasets_due` lists them). Transport: {transport}.
Focal points: {", ".join(org.focal_points)}.

| dataset | description | period | due days after period end | access tier |
|---|---|---|---|---|
{datasets}

## Steps
0. `datasets_due` — the datasets whose period ends with the run's month (all the monthly ones; a quarter or a
   year in its last month), each with its period label (`1405-07`, `1405-Q2`, `1405`).
1. `wait_for_delivery` — looks for the manifest at once; if it is not there yet, waits deferred in the
   triggerer (no worker slot), looking every 10 minutes; ends `missing` after the due date + grace.
2. `receive` — lands manifest and files in the landing archive (sha256-addressed); checks names, sizes, hashes.
3. `process` — one vectorised pass (DuckDB, in the task): decodes, checks the CSV structure, converts,
   runs `expectations/{org.code}__<dataset>.json` with Great Expectations' semantics (SQL rules in
   PostgreSQL), COPYs the typed rows into the submission's own table and decides: accepted, the table is
   attached to `clean`; rejected, it is dropped (rows in = loaded + rejected, always).
4. `conclude` — `report.json`, `feedback.html` and `findings.csv` beside the delivery; mails the supplier
   its feedback (accepted or rejected, per principle); publishes the dataset's Asset when accepted (which
   triggers `anbar_warehouse`); records the delivery's Data Docs, which `anbar_data_docs` then builds.
5. `escalation_due` → `escalation_window` — a scheduled run stays open (deferred in the triggerer, no worker
   slot) until the escalation time of a dataset without an accepted delivery, so Airflow keeps its deadline.

## Deadline alerts (reminder, late notice, escalation)
Per dataset, three Airflow Deadline Alerts on each **scheduled** run (`anbar.alerts`): a reminder
{reminder_days} days before the end of the due date and a late notice at it, to the focal points; an escalation
{escalation_days} days after, to the ministry (`registry/ministry.yml`), focal points in copy. The notifier runs in
the triggerer, reads the ledger first (no reminder or late notice once a delivery was received, no escalation
once one was accepted) and sends each `<kind>:<org>/<dataset>/<period>` at most once (`anbar.notifications`).
Manual runs and catch-up runs of periods past their escalation carry no alerts.

## Triage
- **A supplier's delivery is rejected** (task green, ledger `rejected`): that is the supplier's to fix. Look at
  `select * from anbar.submissions where org = '{org.code}' order by submission_id desc;` — `reason`, `message`
  and `validation_summary` say why; the mail went to the focal points.
- **`receive` fails with a connection error**: the supplier's server is down or its host key changed. Never
  disable host-key checking; confirm a new key with the supplier and update the connection's `host_key`.
  `SupplierUnavailable` (a dropped transfer, API 5xx/429/timeouts after the hook's own bounded retries,
  `ANBAR_API_ATTEMPTS`) lands nothing and rejects nothing: the task's retries fetch the delivery again, and
  each failed attempt is in `anbar.submission_events` (step `receive`, status `failed`).
- **`process` fails** (the database, the disk, memory): check the warehouse (disk, `max_wal_size`) and the
  landing archive's `tmp/` (DuckDB spills there); the submission's table is unattached until the decision,
  so clearing the task reruns the pass from the landed bytes with nothing half-visible. Its log ends with
  the seconds of each sub-step.
- **No reminder / late notice / escalation went out**: the UI shows the run's deadlines; in the Airflow
  database, `select d.deadline_time, a.name, d.missed, c.state, c.output from deadline d join deadline_alert a
  on a.id = d.deadline_alert_id join callback c on c.id = d.callback_id` — a fired one's output says `sent`,
  `already sent`, `queued` (the mail server was down: `anbar_mail_outbox` sends it when it is back) or
  `not sent: <why>` (e.g. a delivery was received); the sent ones are in `anbar.notifications`.
  Deadlines are made when the scheduler creates the run: a run created by hand has none, and clearing a
  run never re-creates or re-sends them.
- **A run waits in `escalation_window`**: by design, until the escalation time of a dataset with no
  accepted delivery. To ingest a late or corrected delivery meanwhile, clear that dataset's
  `wait_for_delivery` (with downstream) in the open run; a new triggered run would queue behind it.
- **Re-run a period**: trigger the DAG with the param `period` (e.g. `{
        "1404-08" if org.calendar.value == "jalali" else "2025-10"
    }`; a quarter `1404-Q3` or a year `1404` re-runs the quarterly or yearly datasets only). A byte-identical
  re-delivery is a no-op; a corrected one becomes a new version.
"""


def build_ingest_dag(org: Organisation, registry: Registry) -> DAG:
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
        doc_md=doc_md(org, registry),
        params={
            "period": Param(
                None,
                type=["null", "string"],
                pattern=r"^\d{4}(-\d{2}|-Q[1-4])?$",
                description="Ingest this period (YYYY-MM in the organisation's calendar, or YYYY-Qn / YYYY "
                "for the quarterly / yearly datasets) instead of the run's data interval",
            )
        },
        render_template_as_native_obj=False,
        # Per dataset: a reminder N days before the end of its due date, a late notice at it, an escalation
        # M days after (registry/ministry.yml), mailed by anbar.alerts.DeliveryAlertNotifier in the triggerer.
        deadline=alerts.deadline_alerts(org, registry),
    ) as dag:

        @task
        def datasets_due() -> list[dict]:
            """The datasets this run ingests, each with its period (see the module doc)."""
            month = period_for_run(org, get_current_context())
            return [{"dataset": ds.name, "period": p.label} for ds, p in expected.due_in_run(org, month)]

        @task(map_index_template=MAP_LABEL)
        def receive(step: dict) -> dict:
            context = get_current_context()
            label_map_index(context, step)
            ingest = _ingest()
            s = ingest.Step.from_xcom(step)
            if s.state == "missing":
                return ingest.record_missing(s, registry=registry).to_xcom()
            return ingest.receive(s, run_id=context["run_id"], registry=registry).to_xcom()

        @task(map_index_template=MAP_LABEL)
        def process(step: dict) -> dict:
            label_map_index(get_current_context(), step)
            ingest = _ingest()
            return ingest.process(ingest.Step.from_xcom(step), registry=registry).to_xcom()

        # DOCS_PENDING: its update starts anbar_data_docs, which builds the Data Docs conclude recorded.
        @task(map_index_template=MAP_LABEL, outlets=[accepted_alias(org), DOCS_PENDING])
        def conclude(step: dict) -> dict:
            context = get_current_context()
            label_map_index(context, step)
            ingest = _ingest()
            s = ingest.conclude(ingest.Step.from_xcom(step), registry=registry)
            # The outcome goes into the map index label, so the grid shows a quarantined delivery.
            outcome = f"{s.state} ({s.reason})" if s.reason else s.state
            context[MAP_LABEL_KEY] = f"{s.dataset} {s.period}: {outcome}"
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

        @task(map_index_template=MAP_LABEL)
        def escalation_due(step: dict) -> str:
            """Until when the run stays open for this dataset's escalation ("" = not at all)."""
            context = get_current_context()
            label_map_index(context, step)
            run_type = getattr(context.get("dag_run"), "run_type", None)
            return alerts.escalation_hold(registry, step["org"], step["dataset"], step["period"], run_type=run_type)

        @task_group(group_id="dataset")
        def ingest_dataset(due: dict):
            waited = WaitForDelivery(
                task_id="wait_for_delivery",
                org_code=org.code,
                due=due,
                poke_interval=dt.timedelta(minutes=10),
                wait_timeout=dt.timedelta(days=longest_wait),
                map_index_template=MAP_LABEL,
            )
            concluded = conclude(process(receive(waited.output)))
            alerts.EscalationWindow(
                task_id="escalation_window", until=escalation_due(concluded), map_index_template=MAP_LABEL
            )

        ingest_dataset.expand(due=datasets_due())

    return dag
