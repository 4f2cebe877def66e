"""Warehouse tables generated from the registry, and the submission ledger.

Layout (PostgreSQL schemas):

``raw``    what the supplier delivered, every value as text, partitioned by
           ``_submission_id`` (one partition per delivery, attached only once fully
           loaded, so a half-loaded delivery is never visible). Only the loader writes
           here. ``raw.rejected_rows`` keeps rows that could not be converted.
``clean``  the same rows converted (digits, letters, Jalali dates) and typed, also one
           partition per submission. dbt's staging models are the only readers.
``anbar``  the submission ledger, its step log, sent notifications, SQL functions and
           the Jalali calendar table.
``ref``    code lists from the registry.

Every statement is idempotent: ``bootstrap`` runs at the start of each load.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from psycopg2 import sql

from anbar.registry import Column, ColumnType, Dataset, Registry

LEDGER_DDL = """
create schema if not exists anbar;
create schema if not exists raw;
create schema if not exists clean;
create schema if not exists ref;

-- What the last bootstrap followed from (anbar.ddl.bootstrap_fingerprint): unchanged, tasks skip it.
create table if not exists anbar.bootstrap_state (
    singleton       boolean primary key default true check (singleton),
    fingerprint     text not null,
    bootstrapped_at timestamptz not null
);

create table if not exists anbar.submissions (
    submission_id     bigserial primary key,
    org               text not null,
    dataset           text not null,
    period            text not null,
    version           integer not null,
    transport         text not null,
    received_at       timestamptz not null default now(),
    delivery_sha256   text not null,
    landing_path      text,
    manifest          jsonb,
    rows_manifest     bigint,  -- what the manifest claims
    rows_loaded       bigint,
    rows_rejected     bigint,
    status            text not null,
    reason            text,
    message           text,
    validation_summary jsonb,
    airflow_run_id    text,
    updated_at        timestamptz not null default now(),
    unique (org, dataset, period, version),
    unique (org, dataset, period, delivery_sha256),
    constraint submissions_status_known check (status in (
        'missing', 'received', 'landed', 'loaded', 'validated', 'accepted', 'rejected', 'failed')),
    rows_counted      bigint,  -- records counted in the delivered bytes; null until (unless) they were
    constraint submissions_rows_balance check (
        status not in ('loaded', 'validated', 'accepted')
        or rows_manifest = rows_loaded + rows_rejected),
    constraint submissions_rows_counted check (
        rows_counted is null or rows_loaded is null or rows_rejected is null
        or rows_counted = rows_loaded + rows_rejected)
);
comment on table anbar.submissions is
    'Submission ledger: one row per delivery (org, dataset, period, version).';

create table if not exists anbar.submission_events (
    event_id       bigserial primary key,
    submission_id  bigint references anbar.submissions (submission_id),
    org            text not null,
    dataset        text not null,
    period         text not null,
    at             timestamptz not null default now(),
    step           text not null,
    status         text not null,
    detail         jsonb
);
create index if not exists submission_events_by_submission
    on anbar.submission_events (submission_id);
create index if not exists submission_events_by_period
    on anbar.submission_events (org, dataset, period);

create table if not exists anbar.notifications (
    notification_id bigserial primary key,
    dedup_key       text not null unique,
    kind            text not null,
    submission_id   bigint references anbar.submissions (submission_id),
    recipients      text[] not null,
    subject         text not null,
    sent_at         timestamptz,
    -- the outbox (anbar.notify): a mail the server refused stays unsent, with what to send and why it failed
    mail            jsonb,
    attempts        integer not null default 0,
    last_attempt_at timestamptz,
    last_error      text
);
do $$
begin
    -- a warehouse bootstrapped before the outbox (checked first: no table lock on every bootstrap)
    if not exists (select from information_schema.columns
                   where table_schema = 'anbar' and table_name = 'notifications' and column_name = 'mail') then
        alter table anbar.notifications add column mail jsonb, add column attempts integer not null default 0,
            add column last_attempt_at timestamptz, add column last_error text;
    end if;
end
$$;

do $$
begin
    -- Ledgers from before rows_counted: the rows a load counted were the manifest's, the balance held on them.
    if not exists (select from information_schema.columns
                   where table_schema = 'anbar' and table_name = 'submissions' and column_name = 'rows_counted') then
        alter table anbar.submissions add column rows_counted bigint;
        update anbar.submissions set rows_counted = rows_loaded + rows_rejected
        where status in ('loaded', 'validated', 'accepted') or (status = 'rejected' and reason = 'validation');
        alter table anbar.submissions add constraint submissions_rows_counted check (
            rows_counted is null or rows_loaded is null or rows_rejected is null
            or rows_counted = rows_loaded + rows_rejected);
    end if;
end
$$;

create or replace view anbar.quarantine as
    select submission_id, org, dataset, period, version, received_at, reason, message, rows_manifest,
           landing_path, rows_counted
    from anbar.submissions
    where status = 'rejected';
comment on view anbar.quarantine is
    'Rejected deliveries: kept (landing archive, raw and clean partitions) but never used by the warehouse.';

create table if not exists raw.rejected_rows (
    submission_id  bigint not null references anbar.submissions (submission_id),
    file           text not null,
    row_no         bigint not null,
    reasons        text[] not null,
    record         jsonb not null,
    primary key (submission_id, file, row_no)
);

create table if not exists anbar.row_findings (
    submission_id  bigint not null references anbar.submissions (submission_id),
    file           text not null,
    row_no         bigint not null,
    rule           text not null,
    principle      text not null,
    severity       text not null,
    primary key (submission_id, file, row_no, rule)
);
comment on table anbar.row_findings is
    'Every row a failed rule found (file and row number of the delivery): blocking ones are rejected '
    'or reject the delivery, warnings are flags on the loaded row (clean._flags).';

create table if not exists anbar.suite_versions (
    dataset                     text not null,
    sha256                      text not null,
    source                      text not null,
    great_expectations_version  text not null,
    checked_at                  timestamptz not null default now(),
    primary key (dataset, sha256)
);
comment on table anbar.suite_versions is
    'Every version of a suite (sha256 of its file) Great Expectations has checked in this warehouse: the '
    'ingest reads a known version as JSON, without GX; validation summaries name the version they ran.';

create table if not exists anbar.quality_scorecard (
    submission_id    bigint not null references anbar.submissions (submission_id),
    org              text not null,
    dataset          text not null,
    period           text not null,
    version          integer not null,
    principle        text not null check (principle in ('conversion', 'system', 'consistency', 'quality')),
    rules_evaluated  integer not null,
    rules_failed     integer not null,
    blocking_failed  integer not null,
    rows_failing     bigint,
    outcome          text not null,
    scored_at        timestamptz not null default now(),
    primary key (submission_id, principle)
);
comment on table anbar.quality_scorecard is
    'Per delivery (org, dataset, period, version) and principle: rules evaluated, rules failed, rows failing.';

create or replace view anbar.quality_scorecard_latest as
    select distinct on (org, dataset, period, principle) *
    from anbar.quality_scorecard
    order by org, dataset, period, principle, version desc;
comment on view anbar.quality_scorecard_latest is
    'The scorecard of the latest version delivered for each period (what the monthly report shows).';

create or replace view anbar.submission_versions as
    select s.org, s.dataset, s.period, s.version, s.submission_id, s.status, s.reason, s.received_at,
           s.rows_manifest, s.rows_loaded, s.rows_rejected,
           s.version = max(s.version) over w as is_latest,
           s.submission_id = (array_agg(s.submission_id) filter (where s.status = 'accepted') over w)[1]
               as is_in_use,
           lead(s.version) over (partition by s.org, s.dataset, s.period order by s.version) as superseded_by,
           s.rows_counted
    from anbar.submissions s
    window w as (partition by s.org, s.dataset, s.period order by s.version desc
                 rows between unbounded preceding and unbounded following);
comment on view anbar.submission_versions is
    'Every version of every period with its outcome; is_in_use marks the accepted version the warehouse uses.';

create table if not exists anbar.expected_submissions (
    org                 text not null,
    dataset             text not null,
    period              text not null,
    period_start        date not null,
    period_end          date not null,
    due_date            date not null,
    grace_until         date not null,
    extension_decision  text,
    timezone            text not null,
    synced_at           timestamptz not null default now(),
    primary key (org, dataset, period),
    constraint expected_submissions_dates check (
        period_start < period_end and period_end <= due_date and due_date <= grace_until)
);
comment on table anbar.expected_submissions is
    'The expected-submission calendar (anbar.expected): one row per organisation, dataset and period the '
    'registry makes due, with its due date in the organisation''s calendar, grace and committee extension. '
    'period_end is the first day after the period; filled by anbar.expected.sync and record_expected.';

-- The status of every expected submission, as of now in the organisation's time zone ("today").
-- Deliveries are the ledger rows of version >= 1; the latest is the one with the highest version.
--   expected     nothing delivered, and today <= due_date
--   late         nothing delivered yet, due_date < today <= grace_until (not yet recorded missing)
--   missing      nothing delivered, and the ingest recorded the period missing or today > grace_until
--   received     the latest delivery is being processed (ledger received, landed, loaded or failed)
--   validated    the latest delivery passed validation and is being published (ledger validated)
--   resubmitted  as received or validated, but an earlier version was rejected
--   loaded       the latest delivery was accepted: it is in the warehouse (however many versions it took)
--   rejected     the latest delivery was rejected (an earlier accepted version, in_use_submission_id,
--                is still what the warehouse uses)
-- A delivery after a recorded 'missing' counts as received, late (on_time false).
-- on_time: the first delivery arrived on or before the due date (its local date in the organisation's
-- time zone); false when nothing has arrived and the due date has passed; null before then.
create or replace view anbar.submission_status as
    with
    deliveries as (
        select org, dataset, period,
               count(*)::integer as versions,
               min(received_at) as first_received_at,
               max(received_at) as latest_received_at,
               (array_agg(status order by version))[1] as first_status,
               (array_agg(submission_id order by version desc))[1] as latest_submission_id,
               (array_agg(submission_id order by version desc) filter (where status = 'accepted'))[1]
                   as in_use_submission_id
        from anbar.submissions
        where version > 0
        group by org, dataset, period
    ),
    missing as (
        select org, dataset, period, received_at as missing_recorded_at
        from anbar.submissions
        where version = 0 and status = 'missing'
    ),
    decisions as (
        select submission_id,
               min(at) filter (where status = 'validated') as validated_at,
               min(at) filter (where status = 'accepted') as accepted_at,
               min(at) filter (where status = 'rejected') as rejected_at
        from anbar.submission_events
        where status in ('validated', 'accepted', 'rejected')
        group by submission_id
    ),
    joined as (
        select e.*,
               (now() at time zone e.timezone)::date as today,
               d.versions, d.first_received_at, d.latest_received_at, d.first_status, d.in_use_submission_id,
               (d.first_received_at at time zone e.timezone)::date as first_received_on,
               m.missing_recorded_at,
               latest.submission_id as latest_submission_id, latest.version as latest_version,
               latest.status as latest_ledger_status, latest.reason, latest.rows_manifest, latest.rows_loaded,
               latest.rows_rejected, latest.rows_counted,
               exists (
                   select from anbar.submissions earlier
                   where earlier.org = e.org and earlier.dataset = e.dataset and earlier.period = e.period
                     and earlier.version between 1 and latest.version - 1 and earlier.status = 'rejected'
               ) as rejected_before_latest,
               latest_decision.validated_at, latest_decision.rejected_at, in_use_decision.accepted_at
        from anbar.expected_submissions e
        left join deliveries d using (org, dataset, period)
        left join missing m using (org, dataset, period)
        left join anbar.submissions latest on latest.submission_id = d.latest_submission_id
        left join decisions latest_decision on latest_decision.submission_id = d.latest_submission_id
        left join decisions in_use_decision on in_use_decision.submission_id = d.in_use_submission_id
    )
    select org, dataset, period, period_start, period_end, due_date, grace_until, extension_decision,
           case
               when latest_submission_id is null then
                   case
                       when missing_recorded_at is not null or today > grace_until then 'missing'
                       when today > due_date then 'late'
                       else 'expected'
                   end
               when latest_ledger_status = 'accepted' then 'loaded'
               when latest_ledger_status = 'rejected' then 'rejected'
               when rejected_before_latest then 'resubmitted'
               when latest_ledger_status = 'validated' then 'validated'
               else 'received'
           end as status,
           first_received_at,
           latest_received_at,
           validated_at,
           accepted_at,
           rejected_at,
           missing_recorded_at,
           case
               when first_received_on is not null then first_received_on <= due_date
               when today > due_date then false
           end as on_time,
           -- greatest() skips nulls: spelled out so that nothing received stays null, not 0
           case when first_received_on is not null then greatest(first_received_on - due_date, 0) end as days_late,
           coalesce(versions, 0) as versions,
           greatest(coalesce(versions, 0) - 1, 0) as resubmissions,
           case
               when first_status = 'accepted' then true
               when first_status = 'rejected' or versions > 1 then false
           end as accepted_first_time,
           latest_submission_id,
           latest_version,
           latest_ledger_status,
           reason,
           rows_manifest,
           rows_loaded,
           rows_rejected,
           in_use_submission_id,
           timezone,
           today as status_on,
           rows_counted
    from joined;
comment on view anbar.submission_status is
    'One row per expected submission (anbar.expected_submissions) with its status as of today in the '
    'organisation''s time zone: expected, late, missing, received, validated, resubmitted, loaded or rejected '
    '(definitions in anbar.ddl), its timestamps, punctuality and versions.';

create table if not exists anbar.backups (
    backup_id       bigserial primary key,
    database        text not null,
    file            text not null unique,
    started_at      timestamptz not null,
    finished_at     timestamptz not null,
    size_bytes      bigint not null,
    sha256          text not null,
    server_version  text not null,
    tables          integer not null,
    total_rows      bigint not null,
    verification    text not null default 'pending' check (verification in ('pending', 'passed', 'failed')),
    verified_at     timestamptz,
    report          jsonb,
    deleted_at      timestamptz
);
comment on table anbar.backups is
    'Every pg_dump anbar.backup took (file, sha256, size), its verification by a restore into a scratch '
    'database (passed or failed, with the per-table report) and when retention deleted it.';

create table if not exists ref.code_list_values (
    code_list  text not null,
    code       text not null,
    label_fa   text not null,
    label_en   text not null,
    primary key (code_list, code)
);
"""

META_COLUMNS_RAW = [
    ("_submission_id", "bigint not null"),
    ("_file", "text not null"),
    ("_row_no", "bigint not null"),
]
META_COLUMNS_CLEAN = [
    ("_submission_id", "bigint not null"),
    ("_file", "text not null"),
    ("_row_no", "bigint not null"),
    ("_period", "text not null"),
    ("_flags", "text[]"),  # rules with severity warning the row failed (it is loaded all the same)
]


def raw_table(ds: Dataset) -> sql.Identifier:
    return sql.Identifier("raw", ds.key)


def clean_table(ds: Dataset) -> sql.Identifier:
    return sql.Identifier("clean", ds.key)


def clean_type(col: Column) -> str:
    return col.type.sql if col.type is not ColumnType.text else "text"


def _create_partitioned(schema: str, ds: Dataset, meta: list[tuple[str, str]], typed: bool) -> sql.Composed:
    cols = [sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in meta]
    for c in ds.columns:
        cols.append(sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(clean_type(c) if typed else "text")))
    return sql.SQL("create table if not exists {} ({}) partition by list (_submission_id)").format(
        sql.Identifier(schema, ds.key), sql.SQL(", ").join(cols)
    )


def _comments(schema: str, ds: Dataset) -> list[sql.Composed]:
    out = [
        sql.SQL("comment on table {} is {}").format(
            sql.Identifier(schema, ds.key), sql.Literal(f"{ds.description.en} / {ds.description.fa}")
        )
    ]
    for c in ds.columns:
        out.append(
            sql.SQL("comment on column {}.{} is {}").format(
                sql.Identifier(schema, ds.key),
                sql.Identifier(c.name),
                sql.Literal(f"{c.description.en} / {c.description.fa}"),
            )
        )
    return out


def _add_missing_columns(cur, schema: str, ds: Dataset, typed: bool) -> None:
    """A new optional column in the registry is added; nothing is ever dropped."""
    cur.execute(
        "select column_name from information_schema.columns where table_schema = %s and table_name = %s",
        (schema, ds.key),
    )
    have = {r[0] for r in cur.fetchall()}
    if typed and "_flags" not in have:
        cur.execute(sql.SQL("alter table {} add column _flags text[]").format(sql.Identifier(schema, ds.key)))
    for c in ds.columns:
        if c.name not in have:
            cur.execute(
                sql.SQL("alter table {} add column {} {}").format(
                    sql.Identifier(schema, ds.key), sql.Identifier(c.name), sql.SQL(clean_type(c) if typed else "text")
                )
            )


def bootstrap(conn, registry: Registry) -> None:
    """Create (or bring up to date) every schema and table the registry implies.

    Every ingest task calls it; it does the work only when something it depends on changed since the last
    bootstrap of this warehouse (:func:`bootstrap_fingerprint`): about half a second saved per task."""
    from anbar import pseudonym, sql_functions

    key = pseudonym.configured_key()
    fingerprint = bootstrap_fingerprint(registry, key)
    if _bootstrapped(conn) == fingerprint:
        return
    with conn.cursor() as cur:
        # One bootstrap at a time: mapped tasks start together.
        cur.execute("select pg_advisory_lock(hashtext('anbar.bootstrap'))")
    try:
        _bootstrap_locked(conn, registry)
        sql_functions.install(conn)
        pseudonym.install_functions(conn)
        if key:
            pseudonym.install_key(conn, key)  # refuses a key other than the warehouse's own
        with conn.cursor() as cur:
            cur.execute(
                "insert into anbar.bootstrap_state (singleton, fingerprint, bootstrapped_at) values (true, %s, now()) "
                "on conflict (singleton) do update set fingerprint = excluded.fingerprint, "
                "bootstrapped_at = excluded.bootstrapped_at",
                (fingerprint,),
            )
    finally:
        with conn.cursor() as cur:
            cur.execute("select pg_advisory_unlock(hashtext('anbar.bootstrap'))")
        conn.commit()


def bootstrap_fingerprint(registry: Registry, key: str | None) -> str:
    """What the warehouse's schema follows from: the code that writes it (this module, the SQL functions,
    the pseudonym functions), the registry, and which pseudonym key is configured (a changed key goes the
    whole way, where it is refused)."""
    from anbar import pseudonym, sql_functions

    digest = hashlib.sha256()
    for module in (sys.modules[__name__], sql_functions, pseudonym):
        digest.update(Path(module.__file__).read_bytes())
    digest.update(registry.model_dump_json().encode())
    digest.update(hashlib.sha256(key.encode()).digest() if key else b"no key")
    return digest.hexdigest()


def _bootstrapped(conn) -> str | None:
    """The fingerprint of the last bootstrap, or None (never bootstrapped, or before fingerprints)."""
    with conn.cursor() as cur:
        cur.execute("select to_regclass('anbar.bootstrap_state') is not null")
        (exists,) = cur.fetchone()
        fingerprint = None
        if exists:
            cur.execute("select fingerprint from anbar.bootstrap_state")
            row = cur.fetchone()
            fingerprint = row[0] if row else None
    conn.commit()
    return fingerprint


def _bootstrap_locked(conn, registry: Registry) -> None:
    with conn.cursor() as cur:
        cur.execute(LEDGER_DDL)
        for ds in registry.datasets:
            cur.execute(_create_partitioned("raw", ds, META_COLUMNS_RAW, typed=False))
            cur.execute(_create_partitioned("clean", ds, META_COLUMNS_CLEAN, typed=True))
            _add_missing_columns(cur, "raw", ds, typed=False)
            _add_missing_columns(cur, "clean", ds, typed=True)
            for stmt in _comments("raw", ds) + _comments("clean", ds):
                cur.execute(stmt)
        rows = [
            (cl.name, code, label.fa, label.en)
            for cl in registry.code_lists.values()
            for code, label in cl.codes.items()
        ]
        cur.execute("delete from ref.code_list_values")
        cur.executemany("insert into ref.code_list_values values (%s, %s, %s, %s)", rows)
    conn.commit()
