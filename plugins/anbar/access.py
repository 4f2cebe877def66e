"""Access tiers enforced by PostgreSQL: roles, grants and the committee's access decisions.

Every dataset and column of the registry, and every model of the dbt project
(``meta.access_tier``, model-level with column-level overrides), has an access tier
(:class:`~anbar.registry.AccessTier`: open < internal < licensed < enclave < confidential).
This module turns them into PostgreSQL roles and grants (docs/access.md):

``anbar_loader``       the ingest. Owns ``raw``, ``clean``, ``ref``, ``anbar_secret`` and the ledger in
                       ``anbar``: the only role that writes raw (and the only one that can read it).
``anbar_transformer``  dbt. Reads ``clean``, ``ref`` and the ledger, calls ``anbar.pseudonymise``,
                       owns the model schemas (staging, intermediate, core, marts, ...), which it
                       creates and rebuilds.
``anbar_ledger_reader`` the web pages of the Airflow api-server (the Submissions page): SELECT on the ledger
                       views they show (:data:`LEDGER_READER_VIEWS`) and nothing else, so the api-server holds
                       no credential that reads microdata or writes anything.
``anbar_validator``    statisticians' SQL rules, run by the ingest (:mod:`anbar.engine.validator`): CONNECT and
                       USAGE on ``clean`` and ``raw``, read-only by default, nothing else; for the time of a
                       validation the loader grants it SELECT on exactly the tables the rules read (the
                       submission's, its ``{raw}`` copy, the partitions it is compared with) and revokes it after.
``anbar_analyst``      group: reads the published layers (marts, catalog): open and internal models.
``anbar_researcher``   group: nothing by itself.
``anbar_access_<id>``  one per approved decision of the data-exchange committee: SELECT on exactly
                       the columns of the decision's intermediate/core models whose tier the decision
                       covers (licensed; enclave columns only if the decision is enclave; never a
                       confidential one), granted to the researcher's login role until it expires.
``anbar_auditor``      group: reads the ``audit`` schema.

:func:`build_plan` reads the registry, the dbt manifest and the live catalog and renders
idempotent SQL (create missing roles, hand objects to their owners, revoke everything the
managed roles hold, grant the plan), applied in one transaction by :func:`apply_plan`.

dbt recreates table models at every run (create, rename, drop), which drops grants made on
the old table. Two mechanisms keep them:

* schema-wide grants are **default privileges**: ``ALTER DEFAULT PRIVILEGES FOR ROLE
  anbar_transformer IN SCHEMA marts GRANT SELECT ON TABLES TO anbar_analyst`` (and the
  loader's new tables and partitions to the transformer), so every object dbt or the loader
  creates later carries them at birth;
* per-table, per-column grants of decisions are rows of ``anbar.access_grants``; a dbt
  post-hook (``macros/access_grants.sql``) calls ``anbar.reapply_access_grants(schema, table)``
  inside the model's own transaction, so the rebuilt table is never visible without them.

Access decisions are kept forever in ``anbar.access_decisions`` (no delete; revocation and
expiry are states), every change copied to ``anbar.access_decision_history`` by a trigger; the history
is append-only (no update, delete or truncate, refused by triggers of its own).
Dates of decisions are Tehran days: a decision expiring on 2026-03-20 is valid through that
day in Tehran and revoked by the first :func:`expire` run after it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from anbar.registry import AccessTier, Registry

TEHRAN = ZoneInfo("Asia/Tehran")

LOADER = "anbar_loader"
TRANSFORMER = "anbar_transformer"
ANALYST = "anbar_analyst"
RESEARCHER = "anbar_researcher"
AUDITOR = "anbar_auditor"
LEDGER_READER = "anbar_ledger_reader"
# The ledger views the web pages read (anbar.status_web): the ledger reader's only privilege.
LEDGER_READER_VIEWS = ("submission_status",)
VALIDATOR = "anbar_validator"
# Held while a validation's grants to the validator are in place (anbar.engine.validator); the plan waits for it.
VALIDATOR_LOCK = "anbar.validator"
# The schemas of the tables a validation grants the validator (the submission's, its {raw} copy, the compared ones).
VALIDATOR_SCHEMAS = ("clean", "raw")
DECISION_ROLE_PREFIX = "anbar_access_"
# login roles (services) and group roles (people log in as roles of their own, members of these)
SERVICE_ROLES = (LOADER, TRANSFORMER, LEDGER_READER, VALIDATOR)
GROUP_ROLES = (ANALYST, RESEARCHER, AUDITOR)
MANAGED_ROLES = SERVICE_ROLES + GROUP_ROLES
USER_KINDS = {"analyst": ANALYST, "researcher": RESEARCHER, "auditor": AUDITOR}
PASSWORD_ENV = {
    LOADER: "ANBAR_LOADER_PASSWORD",
    TRANSFORMER: "ANBAR_TRANSFORMER_PASSWORD",
    LEDGER_READER: "ANBAR_LEDGER_READER_PASSWORD",
    VALIDATOR: "ANBAR_VALIDATOR_PASSWORD",
}

LOADER_SCHEMAS = ("raw", "clean", "ref", "anbar_secret")  # owned by the loader
LEDGER_SCHEMA = "anbar"  # owned by the access administrator; the loader owns the ledger in it
AUDIT_SCHEMA = "audit"
DBT_TARGET_SCHEMA = "analytics"  # dbt's own tables (dbt_build_state)
# dbt model folders (fqn[1]) and who may read them
PUBLISHED_LAYERS = ("marts", "catalog")  # anbar_analyst, open and internal only
MICRODATA_LAYERS = ("intermediate", "core")  # anbar_access_<id>, by decision
DECISION_TIERS = (AccessTier.licensed, AccessTier.enclave)
# objects of schema anbar that are not the loader's
ACCESS_TABLES = ("access_decisions", "access_decision_history", "access_grants")
ACCESS_FUNCTIONS = (
    "reapply_access_grants",
    "access_decisions_guard",
    "access_decisions_history",
    "access_decision_history_kept",
)
TRANSFORMER_FUNCTIONS = ("apply_disclosure_control",)  # created by dbt's on-run-start

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class AccessError(ValueError):
    """A plan, decision or user the registry, the manifest or the database does not allow."""


def rank(tier: AccessTier | str) -> int:
    return list(AccessTier).index(AccessTier(tier))


def tehran_today(now: dt.datetime | None = None) -> dt.date:
    return (now or dt.datetime.now(dt.UTC)).astimezone(TEHRAN).date()


def decision_role(decision_id: int) -> str:
    return f"{DECISION_ROLE_PREFIX}{int(decision_id)}"


def ident(name: str) -> str:
    """A PostgreSQL identifier, quoted when needed (names here come from the catalog, the manifest or checked input)."""
    if NAME_RE.match(name):
        return name
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# --- the models and their tiers ------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """A dbt model of the project, its layer (folder), relation and access tiers."""

    name: str
    layer: str
    schema: str
    table: str
    tier: AccessTier | None  # None: the model declares none (granted to nobody)
    column_tiers: dict[str, AccessTier] = field(default_factory=dict)  # explicit column meta
    datasets: frozenset[str] = frozenset()  # registry datasets (org__dataset) it derives from

    @property
    def relation(self) -> str:
        return f"{ident(self.schema)}.{ident(self.table)}"

    def column_tier(self, column: str, registry_tiers: dict[str, AccessTier]) -> AccessTier:
        """The tier of one column: its own meta, else the model's; never below what the registry says
        of a same-named enclave or confidential column of a dataset the model derives from."""
        tier = self.column_tiers.get(column) or self.tier or AccessTier.confidential
        inherited = registry_tiers.get(column)
        if inherited is not None and rank(inherited) > rank(tier):
            tier = inherited
        return tier


def _meta(node: dict) -> dict:
    return {**(node.get("meta") or {}), **((node.get("config") or {}).get("meta") or {})}


def _tier(value, where: str) -> AccessTier | None:
    if value is None:
        return None
    try:
        return AccessTier(value)
    except ValueError:
        raise AccessError(f"{where}: access_tier {value!r} is not one of {[t.value for t in AccessTier]}") from None


def load_models(manifest: dict | Path | str, project: str = "anbar") -> dict[str, Model]:
    """The project's models from a dbt manifest (parsed JSON or its path)."""
    if not isinstance(manifest, dict):
        manifest = json.loads(Path(manifest).read_text(encoding="utf-8"))
    nodes = manifest["nodes"]
    sources = manifest.get("sources", {})
    parents = manifest.get("parent_map") or {uid: n.get("depends_on", {}).get("nodes", []) for uid, n in nodes.items()}
    memo: dict[str, frozenset[str]] = {}

    def upstream(uid: str) -> frozenset[str]:
        if uid in memo:
            return memo[uid]
        if uid in sources:
            src = sources[uid]
            found = frozenset([src["name"]]) if src.get("source_name") == "clean" else frozenset()
        else:
            memo[uid] = frozenset()  # cycles cannot happen in dbt; guard anyway
            found = frozenset().union(*(upstream(p) for p in parents.get(uid, [])))
        memo[uid] = found
        return found

    models: dict[str, Model] = {}
    for uid, node in nodes.items():
        if node.get("resource_type") != "model" or node.get("package_name") != project:
            continue
        name = node["name"]
        columns = {}
        for col_name, col in (node.get("columns") or {}).items():
            tier = _tier(_meta(col).get("access_tier"), f"model {name}, column {col_name}")
            if tier is not None:
                columns[col_name] = tier
        fqn = node.get("fqn") or [project, name]
        models[name] = Model(
            name=name,
            layer=fqn[1] if len(fqn) > 2 else "",
            schema=node["schema"],
            table=node.get("alias") or name,
            tier=_tier(_meta(node).get("access_tier"), f"model {name}"),
            column_tiers=columns,
            datasets=upstream(uid),
        )
    return models


def registry_column_tiers(registry: Registry, datasets: Iterable[str]) -> dict[str, AccessTier]:
    """Column name -> the strictest enclave or confidential tier the registry gives it in these datasets."""
    keys = set(datasets)
    found: dict[str, AccessTier] = {}
    for ds in registry.datasets:
        if ds.key not in keys:
            continue
        for col in ds.columns:
            if rank(col.access_tier) >= rank(AccessTier.enclave) and rank(col.access_tier) > rank(
                found.get(col.name, AccessTier.open)
            ):
                found[col.name] = col.access_tier
    return found


def check_models(models: dict[str, Model]) -> list[str]:
    """What is wrong with the models' tiers: published models above internal; models without a tier."""
    problems = []
    for m in sorted(models.values(), key=lambda m: m.name):
        if m.tier is None:
            who = (
                "analysts read it, as every published model" if m.layer in PUBLISHED_LAYERS else "no decision grants it"
            )
            problems.append(f"model {m.name} ({m.layer}) declares no meta.access_tier: {who}")
            continue
        if m.layer in PUBLISHED_LAYERS:
            too_high = [c for c, t in {"(model)": m.tier, **m.column_tiers}.items() if rank(t) > rank("internal")]
            if too_high:
                problems.append(
                    f"model {m.name} is published ({m.layer}) but {', '.join(too_high)} is above internal: "
                    "analysts would read it"
                )
    return problems


# --- the database objects of access control ------------------------------------------------------

DDL = """
create table if not exists anbar.access_decisions (
    decision_id    bigint generated always as identity primary key,
    researcher     text not null,
    datasets       text[] not null default '{}',
    models         text[] not null,
    tier           text not null check (tier in ('licensed', 'enclave')),
    purpose        text not null check (purpose <> ''),
    decision_ref   text not null check (decision_ref <> ''),
    decided_at     timestamptz not null default now(),
    expires_on     date not null,
    expires_at     timestamptz not null,
    status         text not null default 'approved' check (status in ('approved', 'expired', 'revoked')),
    recorded_by    text not null default session_user,
    revoked_at     timestamptz,
    revoked_by     text,
    revoke_reason  text,
    constraint access_decisions_models check (cardinality(models) > 0),
    constraint access_decisions_revocation check ((status = 'approved') = (revoked_at is null)),
    constraint access_decisions_expiry check (
        expires_at = ((expires_on + 1)::timestamp at time zone 'Asia/Tehran'))
);
comment on table anbar.access_decisions is
    'Access decisions of the data-exchange committee (anbar.access): who, which datasets and models, purpose, '
    'decision reference, expiry (expires_on, a Tehran day, inclusive; expires_at the instant it ends). Kept forever: '
    'expiry and revocation are states, every change is in anbar.access_decision_history.';

create table if not exists anbar.access_decision_history (
    history_id   bigint generated always as identity primary key,
    decision_id  bigint not null,
    at           timestamptz not null default clock_timestamp(),
    by_role      text not null default session_user,
    operation    text not null,
    status       text not null,
    decision     jsonb not null
);
comment on table anbar.access_decision_history is
    'Every state an access decision had (trigger on anbar.access_decisions), with who changed it.';

create table if not exists anbar.access_grants (
    grantee      text not null,
    schema_name  text not null,
    table_name   text not null,
    columns      text[] not null,
    decision_id  bigint not null references anbar.access_decisions (decision_id),
    primary key (grantee, schema_name, table_name)
);
comment on table anbar.access_grants is
    'The column grants of the approved decisions, re-applied by the dbt post-hook after a model is rebuilt.';

create or replace function anbar.access_decisions_guard() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    if tg_op in ('DELETE', 'TRUNCATE') then
        raise exception 'access decisions are kept forever: revoke a decision (anbar access revoke), never delete it';
    end if;
    if old.status <> 'approved' then
        raise exception 'access decision % is % already: it cannot change', old.decision_id, old.status;
    end if;
    if new.status = 'approved'
       or (to_jsonb(new) - array['status', 'revoked_at', 'revoked_by', 'revoke_reason'])
          <> (to_jsonb(old) - array['status', 'revoked_at', 'revoked_by', 'revoke_reason']) then
        raise exception 'an access decision only changes by being revoked or expiring (decision %)', old.decision_id;
    end if;
    return new;
end
$$;

create or replace function anbar.access_decisions_history() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    insert into anbar.access_decision_history (decision_id, operation, status, decision)
    values (new.decision_id, lower(tg_op), new.status, to_jsonb(new));
    return null;
end
$$;

drop trigger if exists access_decisions_guard on anbar.access_decisions;
create trigger access_decisions_guard before update or delete on anbar.access_decisions
    for each row execute function anbar.access_decisions_guard();
drop trigger if exists access_decisions_no_truncate on anbar.access_decisions;
create trigger access_decisions_no_truncate before truncate on anbar.access_decisions
    for each statement execute function anbar.access_decisions_guard();
drop trigger if exists access_decisions_history on anbar.access_decisions;
create trigger access_decisions_history after insert or update on anbar.access_decisions
    for each row execute function anbar.access_decisions_history();
-- The history is append-only: no row of it changes or goes, one by one or all at once (TRUNCATE).
create or replace function anbar.access_decision_history_kept() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    raise exception 'the access decision history is append-only: % is refused', lower(tg_op);
end
$$;

drop trigger if exists access_decision_history_kept on anbar.access_decision_history;
create trigger access_decision_history_kept before update or delete on anbar.access_decision_history
    for each row execute function anbar.access_decision_history_kept();
drop trigger if exists access_decision_history_no_truncate on anbar.access_decision_history;
create trigger access_decision_history_no_truncate before truncate on anbar.access_decision_history
    for each statement execute function anbar.access_decision_history_kept();

-- Called by dbt's post-hook as the transformer (the owner of the table it just built), inside the
-- model's transaction. Columns the table no longer has and roles that no longer exist are skipped.
create or replace function anbar.reapply_access_grants(p_schema text, p_table text) returns integer
language plpgsql security invoker set search_path = pg_catalog, pg_temp as $$
declare
    g record;
    cols text;
    applied integer := 0;
    rel regclass := to_regclass(format('%I.%I', p_schema, p_table));
begin
    if rel is null then
        return 0;
    end if;
    for g in
        select a.grantee, a.columns from anbar.access_grants a
        where a.schema_name = p_schema and a.table_name = p_table
          and exists (select from pg_roles r where r.rolname = a.grantee)
    loop
        select string_agg(quote_ident(att.attname), ', ' order by att.attnum) into cols
        from pg_attribute att
        where att.attrelid = rel and att.attnum > 0 and not att.attisdropped and att.attname = any (g.columns);
        if cols is not null then
            execute format('grant select (%s) on %s to %I', cols, rel, g.grantee);
            applied := applied + 1;
        end if;
    end loop;
    return applied;
end
$$;
comment on function anbar.reapply_access_grants(text, text) is
    'Re-grants the decisions'' columns of one rebuilt model (dbt post-hook); see anbar.access.';
"""


def install(conn) -> None:
    """Create the access tables, triggers and the post-hook function (as the access administrator)."""
    with conn.cursor() as cur:
        cur.execute("create schema if not exists anbar")
        cur.execute(DDL)


# --- the plan ------------------------------------------------------------------------------------


@dataclass
class Step:
    title: str
    statements: list[str]


@dataclass
class Plan:
    database: str
    steps: list[Step]
    warnings: list[str]
    grants: list[tuple[str, str, str, list[str], int]]  # rows of anbar.access_grants

    def sql(self) -> str:
        out = [f"-- anbar access plan for database {self.database}", "begin;"]
        for w in self.warnings:
            out.append(f"-- WARNING: {w}")
        for step in self.steps:
            out.append(f"\n-- {step.title}")
            out += [s.rstrip().rstrip(";") + ";" for s in step.statements]
        out.append("commit;")
        return "\n".join(out) + "\n"


def _create_role(name: str, login: bool) -> list[str]:
    attrs = "login" if login else "nologin"
    return [
        f"do $$ begin if not exists (select from pg_roles where rolname = {literal(name)}) then "
        f"create role {ident(name)} {attrs}; end if; end $$",
        f"alter role {ident(name)} {attrs} nosuperuser nocreatedb nocreaterole noreplication nobypassrls inherit",
    ]


def _own_all(schema: str, owner: str, *, only: Sequence[str] | None = None, skip: Sequence[str] = ()) -> str:
    """One DO block handing every relation and function of ``schema`` to ``owner`` (sequences owned by a
    table follow it; ``only``/``skip``: names to include or leave alone)."""
    name_filter = ""
    if only is not None:
        name_filter += " and {col} = any (array[" + ", ".join(literal(n) for n in only) + "]::text[])"
    if skip:
        name_filter += " and {col} <> all (array[" + ", ".join(literal(n) for n in skip) + "]::text[])"
    return f"""do $$
declare
    r record;
begin
    for r in
        select format('%I.%I', n.nspname, c.relname) as obj,
               case c.relkind when 'v' then 'view' when 'm' then 'materialized view' when 'S' then 'sequence'
                              when 'f' then 'foreign table' else 'table' end as kind
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = {literal(schema)} and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
          and c.relowner <> {literal(owner)}::regrole{name_filter.format(col="c.relname")}
          and not (c.relkind = 'S' and exists (  -- a serial or identity sequence follows its table
                   select from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid
                   and d.deptype in ('a', 'i') and d.refclassid = 'pg_class'::regclass))
    loop
        execute format('alter %s %s owner to %I', r.kind, r.obj, {literal(owner)});
    end loop;
    for r in
        select p.oid::regprocedure as obj from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = {literal(schema)} and p.proowner <> {literal(owner)}::regrole
          and p.prokind in ('f', 'p'){name_filter.format(col="p.proname")}
          and not exists (select from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid
                          and d.deptype = 'e')
    loop
        execute format('alter routine %s owner to %I', r.obj, {literal(owner)});
    end loop;
end
$$"""


def _live(conn, column_schemas: Iterable[str] = MICRODATA_LAYERS) -> dict:
    with conn.cursor() as cur:
        cur.execute(
            "select current_database(), current_user, (select rolsuper from pg_roles where rolname = current_user)"
        )
        database, admin, superuser = cur.fetchone()
        cur.execute("select nspname from pg_namespace")
        schemas = {r[0] for r in cur.fetchall()}
        cur.execute(
            "select rolname from pg_roles where rolname like %s",
            (DECISION_ROLE_PREFIX.replace("_", r"\_") + "%",),
        )
        decision_roles = {r[0] for r in cur.fetchall()}
        cur.execute(
            "select n.nspname, c.relname, a.attname from pg_attribute a join pg_class c on c.oid = a.attrelid "
            "join pg_namespace n on n.oid = c.relnamespace where a.attnum > 0 and not a.attisdropped "
            "and c.relkind in ('r', 'p', 'v', 'm') and n.nspname = any(%s) order by a.attnum",
            (list(column_schemas),),
        )
        columns: dict[tuple[str, str], list[str]] = {}
        for schema, table, col in cur.fetchall():
            columns.setdefault((schema, table), []).append(col)
        decisions = []
        if "anbar" in schemas:
            cur.execute("select to_regclass('anbar.access_decisions') is not null")
            if cur.fetchone()[0]:
                cur.execute(
                    "select decision_id, researcher, models, tier from anbar.access_decisions "
                    "where status = 'approved' order by decision_id"
                )
                decisions = cur.fetchall()
    return {
        "database": database,
        "admin": admin,
        "superuser": superuser,
        "schemas": schemas,
        "decision_roles": decision_roles,
        "columns": columns,
        "decisions": decisions,
    }


def decision_columns(
    model: Model, tier: AccessTier, registry: Registry, live_columns: Sequence[str] | None, documented: Iterable[str]
) -> list[str]:
    """The columns of ``model`` a decision of ``tier`` may read: the table's (or, before its first build,
    the documented ones) whose tier is at most the decision's, never a confidential one."""
    reg = registry_column_tiers(registry, model.datasets)
    names = list(live_columns) if live_columns else list(documented)
    return [
        c
        for c in names
        if rank(model.column_tier(c, reg)) <= rank(tier) and model.column_tier(c, reg) is not AccessTier.confidential
    ]


def resolve_models(
    models: dict[str, Model], tier: AccessTier, *, model_names: Sequence[str] = (), datasets: Sequence[str] = ()
) -> list[str]:
    """The models a decision covers: those named, and those of the microdata layers deriving only from the
    datasets named (``org/dataset`` or ``org__dataset``) whose tier the decision covers."""
    tier = AccessTier(tier)
    if tier not in DECISION_TIERS:
        raise AccessError(f"a decision is for licensed or enclave access, not {tier.value}")
    chosen: list[str] = []
    for name in model_names:
        m = models.get(name)
        if m is None:
            raise AccessError(f"no model {name!r} in the dbt project")
        if m.layer not in MICRODATA_LAYERS:
            raise AccessError(
                f"model {name} is in {m.layer or 'no layer'}: decisions grant microdata models "
                f"({', '.join(MICRODATA_LAYERS)}) only"
            )
        if m.tier is None or rank(m.tier) > rank(tier):
            raise AccessError(
                f"model {name} is {m.tier.value if m.tier else 'untiered'}: a {tier.value} decision cannot grant it"
            )
        chosen.append(name)
    keys = {d.replace("/", "__") for d in datasets}
    if keys:
        known = set().union(*(m.datasets for m in models.values()))
        unknown = sorted(keys - known)
        if unknown:
            raise AccessError(f"no model derives from dataset(s) {', '.join(unknown)}")
        for m in sorted(models.values(), key=lambda m: m.name):
            if (
                m.layer in MICRODATA_LAYERS
                and m.datasets
                and m.datasets <= keys
                and m.tier is not None
                and rank(m.tier) <= rank(tier)
                and m.name not in chosen
            ):
                chosen.append(m.name)
    if not chosen:
        raise AccessError("the decision covers no model: name models, or datasets whose models it may read")
    return chosen


def _decision_grants(
    decision_id: int,
    models_named: Sequence[str],
    tier: str,
    models: dict[str, Model],
    registry: Registry,
    live: dict,
    documented: dict,
) -> tuple[list[str], list[tuple[str, str, str, list[str], int]]]:
    role = decision_role(decision_id)
    statements = _create_role(role, login=False)
    rows = []
    schemas = []
    for name in models_named:
        m = models.get(name)
        if m is None or m.layer not in MICRODATA_LAYERS:
            continue  # a model dropped from the project since: nothing to grant
        cols = decision_columns(
            m, AccessTier(tier), registry, live["columns"].get((m.schema, m.table)), documented.get(name, ())
        )
        if not cols:
            continue
        rows.append((role, m.schema, m.table, cols, decision_id))
        if m.schema not in schemas:
            schemas.append(m.schema)
        if (m.schema, m.table) in live["columns"]:
            statements.append(f"grant select ({', '.join(ident(c) for c in cols)}) on {m.relation} to {ident(role)}")
    for schema in schemas:
        if schema in live["schemas"]:
            statements.append(f"grant usage on schema {ident(schema)} to {ident(role)}")
    return statements, rows


def build_plan(conn, registry: Registry, manifest: dict | Path | str) -> Plan:
    """The grants the registry and the dbt manifest imply for this database, as SQL."""
    if not isinstance(manifest, dict):
        manifest = json.loads(Path(manifest).read_text(encoding="utf-8"))
    models = load_models(manifest)
    documented = {
        n["name"]: list((n.get("columns") or {}).keys())
        for n in manifest["nodes"].values()
        if n.get("resource_type") == "model"
    }
    live = _live(conn, {m.schema for m in models.values() if m.layer in MICRODATA_LAYERS})
    if not live["superuser"]:
        raise AccessError(f"{live['admin']} is not a superuser: apply the access plan as the warehouse's administrator")
    warnings = check_models(models)
    published_bad = [w for w in warnings if "is published" in w]
    if published_bad:
        raise AccessError("; ".join(published_bad))
    admin = live["admin"]
    db = ident(live["database"])
    model_schemas = sorted({m.schema for m in models.values()} | {DBT_TARGET_SCHEMA})
    published = sorted({m.schema for m in models.values() if m.layer in PUBLISHED_LAYERS})
    microdata = sorted({m.schema for m in models.values() if m.layer in MICRODATA_LAYERS})
    if set(published) & set(microdata) or set(published) & {
        m.schema for m in models.values() if m.layer not in PUBLISHED_LAYERS
    }:
        raise AccessError(f"published schemas {published} also hold unpublished models: analysts would read them")
    audit = AUDIT_SCHEMA in live["schemas"]
    steps: list[Step] = []

    roles = []
    for role in SERVICE_ROLES:
        roles += _create_role(role, login=True)
    for role in GROUP_ROLES:
        roles += _create_role(role, login=False)
    steps.append(Step("roles (created if missing; none of them may create roles or bypass row security)", roles))

    own = [f"create schema if not exists {ident(s)}" for s in (*LOADER_SCHEMAS, LEDGER_SCHEMA, *model_schemas)]
    own += [f"alter schema {ident(s)} owner to {ident(LOADER)}" for s in LOADER_SCHEMAS]
    own += [f"alter schema {ident(LEDGER_SCHEMA)} owner to {ident(admin)}"]
    own += [f"alter schema {ident(s)} owner to {ident(TRANSFORMER)}" for s in model_schemas]
    own.append(DDL)
    own += [_own_all(s, LOADER) for s in LOADER_SCHEMAS]
    own.append(_own_all(LEDGER_SCHEMA, LOADER, skip=(*ACCESS_TABLES, *ACCESS_FUNCTIONS, *TRANSFORMER_FUNCTIONS)))
    own.append(_own_all(LEDGER_SCHEMA, admin, only=(*ACCESS_TABLES, *ACCESS_FUNCTIONS)))
    own.append(_own_all(LEDGER_SCHEMA, TRANSFORMER, only=TRANSFORMER_FUNCTIONS))
    own += [_own_all(s, TRANSFORMER) for s in model_schemas]
    steps.append(
        Step(
            "schemas and owners: the loader owns raw, clean, ref, anbar_secret and the ledger; the transformer the "
            "model schemas; the administrator schema anbar and the access decisions",
            own,
        )
    )

    revoke = [
        # a validation running now keeps the tables it was granted until it ends (this revokes them)
        f"select pg_advisory_xact_lock(hashtext({literal(VALIDATOR_LOCK)}))",
        f"revoke all on database {db} from {', '.join(ident(r) for r in MANAGED_ROLES)}",
    ]
    managed_schemas = [*LOADER_SCHEMAS, LEDGER_SCHEMA, *model_schemas] + ([AUDIT_SCHEMA] if audit else [])
    for schema in managed_schemas:
        # never from the owner: that would take away the owner's own privileges on its tables
        owner = LOADER if schema in LOADER_SCHEMAS else TRANSFORMER if schema in model_schemas else None
        for kind in ("tables", "sequences", "functions", "schema"):
            kind_owner = LOADER if (schema == LEDGER_SCHEMA and kind in ("tables", "sequences")) else owner
            who = ", ".join(["public"] + [ident(r) for r in MANAGED_ROLES if r != kind_owner])
            what = f"schema {ident(schema)}" if kind == "schema" else f"all {kind} in schema {ident(schema)}"
            revoke.append(f"revoke all on {what} from {who}")
    for owner, schema, grantee in _default_privilege_pairs(model_schemas, published, audit):
        revoke.append(
            f"alter default privileges for role {ident(owner)} in schema {ident(schema)} "
            f"revoke all on tables from {ident(grantee)}"
        )
        revoke.append(
            f"alter default privileges for role {ident(owner)} in schema {ident(schema)} "
            f"revoke all on functions from {ident(grantee)}"
        )
    for role in sorted(live["decision_roles"]):
        revoke.append(f"drop owned by {ident(role)}")  # a decision role owns nothing: this revokes its grants
    steps.append(Step("revoke everything the managed roles hold in this database (re-granted below)", revoke))

    grant = [
        f"grant connect, create, temporary on database {db} to {ident(LOADER)}, {ident(TRANSFORMER)}",
        f"grant connect on database {db} to {', '.join(ident(r) for r in (*GROUP_ROLES, LEDGER_READER, VALIDATOR))}",
        # the ledger: schema of the administrator, tables of the loader, read by the transformer
        f"grant usage, create on schema {ident(LEDGER_SCHEMA)} to {ident(LOADER)}, {ident(TRANSFORMER)}",
        f"grant usage on schema clean, ref to {ident(TRANSFORMER)}",
        f"grant select on all tables in schema clean, ref, {ident(LEDGER_SCHEMA)} to {ident(TRANSFORMER)}",
        "revoke all on "
        + ", ".join(f"anbar.{t}" for t in ACCESS_TABLES)
        + f" from {ident(TRANSFORMER)}, {ident(LOADER)}",
        f"grant select on anbar.access_grants to {ident(TRANSFORMER)}",
        f"grant execute on all functions in schema {ident(LEDGER_SCHEMA)} to {ident(TRANSFORMER)}, {ident(LOADER)}",
        "revoke all on function anbar.access_decisions_guard(), anbar.access_decisions_history(), "
        "anbar.access_decision_history_kept() "
        f"from {ident(TRANSFORMER)}, {ident(LOADER)}",
    ]
    # the web pages: the ledger views they show, nothing else (a view reads its tables with its owner's rights)
    grant.append(f"grant usage on schema {ident(LEDGER_SCHEMA)} to {ident(LEDGER_READER)}")
    grant += [
        f"grant select on {ident(LEDGER_SCHEMA)}.{ident(v)} to {ident(LEDGER_READER)}" for v in LEDGER_READER_VIEWS
    ]
    # statisticians' SQL rules: the schemas of the tables a validation grants it for its time, read-only sessions
    grant.append(f"grant usage on schema {', '.join(VALIDATOR_SCHEMAS)} to {ident(VALIDATOR)}")
    grant.append(f"alter role {ident(VALIDATOR)} set default_transaction_read_only = on")
    for owner, schema, grantee in _default_privilege_pairs(model_schemas, published, audit):
        grant.append(
            f"alter default privileges for role {ident(owner)} in schema {ident(schema)} "
            f"grant select on tables to {ident(grantee)}"
        )
        if grantee == TRANSFORMER and schema == LEDGER_SCHEMA:
            grant.append(
                f"alter default privileges for role {ident(owner)} in schema {ident(schema)} "
                f"grant execute on functions to {ident(grantee)}"
            )
    for schema in published:
        grant.append(f"grant usage on schema {ident(schema)} to {ident(ANALYST)}")
        grant.append(f"grant select on all tables in schema {ident(schema)} to {ident(ANALYST)}")
    if audit:
        grant.append(f"grant usage on schema {AUDIT_SCHEMA} to {ident(AUDITOR)}")
        grant.append(f"grant select on all tables in schema {AUDIT_SCHEMA} to {ident(AUDITOR)}")
    else:
        warnings.append(
            f"no schema {AUDIT_SCHEMA} yet: {AUDITOR} reads nothing until it exists and the plan is applied"
        )
    steps.append(
        Step("grants of the functional roles; default privileges for what the loader and dbt create later", grant)
    )

    rows: list[tuple[str, str, str, list[str], int]] = []
    decisions: list[str] = []
    active = set()
    for decision_id, researcher, model_names, tier in live["decisions"]:
        statements, granted = _decision_grants(decision_id, model_names, tier, models, registry, live, documented)
        decisions += statements
        decisions.append(f"grant {ident(decision_role(decision_id))} to {ident(researcher)}")
        rows += granted
        active.add(decision_role(decision_id))
    for role in sorted(live["decision_roles"] - active):
        decisions.append(f"drop role if exists {ident(role)}")  # a decision no longer approved
    decisions.append("delete from anbar.access_grants")
    for role, schema, table, cols, decision_id in rows:
        decisions.append(
            "insert into anbar.access_grants (grantee, schema_name, table_name, columns, decision_id) values "
            f"({literal(role)}, {literal(schema)}, {literal(table)}, "
            f"array[{', '.join(literal(c) for c in cols)}]::text[], {int(decision_id)})"
        )
    steps.append(Step("approved access decisions: one role each, its columns, granted to the researcher", decisions))
    return Plan(database=live["database"], steps=steps, warnings=warnings, grants=rows)


def _default_privilege_pairs(model_schemas, published, audit) -> list[tuple[str, str, str]]:
    """(owner, schema, grantee) of every default privilege the plan manages."""
    pairs = [(LOADER, s, TRANSFORMER) for s in ("clean", "ref", LEDGER_SCHEMA)]
    pairs += [(TRANSFORMER, s, ANALYST) for s in published]
    if audit:
        pairs += [(r, AUDIT_SCHEMA, AUDITOR) for r in (LOADER, TRANSFORMER)]
    return pairs


def apply_plan(conn, plan: Plan) -> None:
    """Run the plan in one transaction (nothing changes if a statement fails)."""
    with conn.cursor() as cur:
        for step in plan.steps:
            for statement in step.statements:
                cur.execute(statement)
    conn.commit()


def set_service_passwords(conn, environ=None) -> list[str]:
    """Set the service roles' passwords from :data:`PASSWORD_ENV` (ANBAR_LOADER_PASSWORD, ...), those set."""
    environ = os.environ if environ is None else environ
    done = []
    for role, var in PASSWORD_ENV.items():
        if environ.get(var):
            set_password(conn, role, environ[var])
            done.append(role)
    conn.commit()
    return done


# --- passwords and users -------------------------------------------------------------------------


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores (RFC 5802/7677): the password itself never reaches the
    server, so no statement log can show it. (PostgreSQL SASLprep-normalises non-ASCII passwords; the
    verifier is computed on the password as given.)"""
    salt = salt or secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def set_password(conn, role: str, password: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f"alter role {ident(role)} password {literal(scram_verifier(password))}")


def add_user(conn, name: str, kind: str, password: str | None) -> None:
    """A person's own login role, member of the group of ``kind`` (analyst, researcher or auditor)."""
    if kind not in USER_KINDS:
        raise AccessError(f"a user is one of {', '.join(USER_KINDS)}, not {kind!r}")
    if not NAME_RE.match(name) or name.startswith("anbar_") or name.startswith("pg_"):
        raise AccessError(f"{name!r} is not a user name (lower case letters, digits and _, not anbar_* or pg_*)")
    group = USER_KINDS[kind]
    with conn.cursor() as cur:
        cur.execute("select 1 from pg_roles where rolname = %s", (group,))
        if cur.fetchone() is None:
            raise AccessError(f"role {group} does not exist yet: run `anbar access apply` first")
        cur.execute("select rolsuper from pg_roles where rolname = %s", (name,))
        row = cur.fetchone()
        if row and row[0]:
            raise AccessError(f"{name} is a superuser: not a warehouse user")
        if row is None:
            cur.execute(f"create role {ident(name)} login nosuperuser nocreatedb nocreaterole")
        cur.execute(f"grant {ident(group)} to {ident(name)}")
    if password:
        set_password(conn, name, password)
    conn.commit()


# --- decisions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    decision_id: int
    researcher: str
    datasets: list[str]
    models: list[str]
    tier: str
    purpose: str
    decision_ref: str
    decided_at: dt.datetime
    expires_on: dt.date
    status: str
    revoked_at: dt.datetime | None
    revoked_by: str | None
    revoke_reason: str | None


DECISION_COLUMNS = (
    "decision_id, researcher, datasets, models, tier, purpose, decision_ref, decided_at, expires_on, status, "
    "revoked_at, revoked_by, revoke_reason"
)


def list_decisions(conn, *, status: str | None = None) -> list[Decision]:
    with conn.cursor() as cur:
        cur.execute(
            f"select {DECISION_COLUMNS} from anbar.access_decisions where %(s)s::text is null or status = %(s)s "
            "order by decision_id",
            {"s": status},
        )
        rows = [Decision(*r) for r in cur.fetchall()]
    conn.commit()
    return rows


def decide(
    conn,
    registry: Registry,
    manifest: dict | Path | str,
    *,
    researcher: str,
    purpose: str,
    decision_ref: str,
    expires_on: dt.date,
    tier: str = "licensed",
    models: Sequence[str] = (),
    datasets: Sequence[str] = (),
    today: dt.date | None = None,
) -> tuple[int, list[tuple[str, str, str, list[str], int]]]:
    """Record an approved committee decision and grant it at once (one transaction). Returns its id and grants."""
    if not isinstance(manifest, dict):
        manifest = json.loads(Path(manifest).read_text(encoding="utf-8"))
    all_models = load_models(manifest)
    chosen = resolve_models(all_models, AccessTier(tier), model_names=models, datasets=datasets)
    today = today or tehran_today()
    if expires_on < today:
        raise AccessError(f"the decision would expire on {expires_on}, before today ({today}, Tehran)")
    if not purpose.strip() or not decision_ref.strip():
        raise AccessError("a decision needs its purpose and the committee's decision reference")
    with conn.cursor() as cur:
        cur.execute("select to_regclass('anbar.access_decisions') is not null")
        if not cur.fetchone()[0]:
            raise AccessError("no anbar.access_decisions in this warehouse: run `anbar access apply` first")
        cur.execute(
            "select r.rolcanlogin, pg_has_role(r.oid, %s, 'member') from pg_roles r where r.rolname = %s",
            (RESEARCHER, researcher),
        )
        row = cur.fetchone()
        if row is None or not row[0] or not row[1]:
            raise AccessError(
                f"{researcher} is not a researcher's login role: `anbar access user add {researcher} --role researcher`"
            )
        cur.execute(
            "insert into anbar.access_decisions (researcher, datasets, models, tier, purpose, decision_ref, "
            "expires_on, expires_at) values (%s, %s, %s, %s, %s, %s, %s, "
            "((%s::date + 1)::timestamp at time zone 'Asia/Tehran')) returning decision_id",
            (
                researcher,
                [d.replace("__", "/") for d in datasets],
                chosen,
                AccessTier(tier).value,
                purpose.strip(),
                decision_ref.strip(),
                expires_on,
                expires_on,
            ),
        )
        decision_id = cur.fetchone()[0]
    live = _live(conn, {all_models[n].schema for n in chosen})
    documented = {
        n["name"]: list((n.get("columns") or {}).keys())
        for n in manifest["nodes"].values()
        if n.get("resource_type") == "model"
    }
    statements, rows = _decision_grants(decision_id, chosen, tier, all_models, registry, live, documented)
    if not rows:
        conn.rollback()
        raise AccessError("the decision grants no column (every column of its models is above its tier)")
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
        cur.execute(f"grant {ident(decision_role(decision_id))} to {ident(researcher)}")
        cur.executemany(
            "insert into anbar.access_grants (grantee, schema_name, table_name, columns, decision_id) "
            "values (%s, %s, %s, %s, %s)",
            rows,
        )
    conn.commit()
    return decision_id, rows


def _end(cur, decision_id: int, researcher: str, status: str, reason: str) -> None:
    role = decision_role(decision_id)
    cur.execute(
        "update anbar.access_decisions set status = %s, revoked_at = now(), revoked_by = session_user, "
        "revoke_reason = %s where decision_id = %s and status = 'approved'",
        (status, reason, decision_id),
    )
    if cur.rowcount != 1:
        raise AccessError(f"access decision {decision_id} is not approved (already expired or revoked, or unknown)")
    cur.execute("delete from anbar.access_grants where decision_id = %s", (decision_id,))
    cur.execute("select 1 from pg_roles where rolname = %s", (role,))
    if cur.fetchone() is None:
        return
    cur.execute("select 1 from pg_roles where rolname = %s", (researcher,))
    if cur.fetchone() is not None:
        cur.execute(f"revoke {ident(role)} from {ident(researcher)}")
    cur.execute(f"drop owned by {ident(role)}")  # revokes every privilege of the role in this database
    cur.execute("savepoint drop_decision_role")
    try:
        cur.execute(f"drop role {ident(role)}")
    except Exception:  # it still holds privileges in another database of the server: keep it, emptied here
        cur.execute("rollback to savepoint drop_decision_role")
    cur.execute("release savepoint drop_decision_role")


def revoke(conn, decision_id: int, reason: str) -> None:
    """Revoke an approved decision now (the committee withdrew it)."""
    if not reason.strip():
        raise AccessError("say why the decision is revoked")
    with conn.cursor() as cur:
        cur.execute("select researcher from anbar.access_decisions where decision_id = %s for update", (decision_id,))
        row = cur.fetchone()
        if row is None:
            raise AccessError(f"no access decision {decision_id}")
        _end(cur, decision_id, row[0], "revoked", reason.strip())
    conn.commit()


def expire(conn, as_of: dt.datetime | None = None) -> list[Decision]:
    """Revoke every approved decision whose last day (Tehran) is before ``as_of`` (default now). Returns them."""
    as_of = as_of or dt.datetime.now(dt.UTC)
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    with conn.cursor() as cur:
        cur.execute(
            f"select {DECISION_COLUMNS} from anbar.access_decisions where status = 'approved' and expires_at <= %s "
            "order by decision_id for update",
            (as_of,),
        )
        ended = [Decision(*r) for r in cur.fetchall()]
        for d in ended:
            _end(
                cur,
                d.decision_id,
                d.researcher,
                "expired",
                f"expired: valid through {d.expires_on} (Tehran), revoked as of "
                f"{as_of.astimezone(TEHRAN):%Y-%m-%d %H:%M} Tehran",
            )
    conn.commit()
    return ended


# --- connections ---------------------------------------------------------------------------------

ADMIN_CONN_ID = "anbar_access_admin"
# Where the administrator's password is when its connection carries none: in production the Compose secret
# postgres_superuser_password, never an environment variable (docs/operations.md, "Secrets").
ADMIN_PASSWORD_FILE_ENV = "ANBAR_ACCESS_ADMIN_PASSWORD_FILE"


def admin_password_from_file() -> str | None:
    """The password in the file ANBAR_ACCESS_ADMIN_PASSWORD_FILE names (None when it is not set), without its
    trailing newlines — as the postgres image reads the same file when it sets the superuser's password."""
    path = os.environ.get(ADMIN_PASSWORD_FILE_ENV, "").strip()
    if not path:
        return None
    try:
        password = Path(path).read_text(encoding="utf-8").rstrip("\n")
    except OSError as exc:  # named but unreadable: never fall back to another role
        raise AccessError(f"{ADMIN_PASSWORD_FILE_ENV}={path}: {exc.strerror}") from exc
    if not password:
        raise AccessError(f"{ADMIN_PASSWORD_FILE_ENV}={path} is empty")
    return password


def connect_admin():
    """The access administrator's connection: ANBAR_ACCESS_ADMIN_URL, else the Airflow connection
    ``anbar_access_admin``, else the warehouse connection (ANBAR_WAREHOUSE_URL / ``anbar_warehouse``).
    An administrator's URL or connection without a password logs in with :func:`admin_password_from_file`."""
    from urllib.parse import urlsplit

    import psycopg2

    from anbar import warehouse

    password_file = admin_password_from_file()
    url = os.environ.get("ANBAR_ACCESS_ADMIN_URL")
    if url:
        dsn = url.replace("postgresql+psycopg2://", "postgresql://", 1)
        extra = {"password": password_file} if password_file and urlsplit(dsn).password is None else {}
        return psycopg2.connect(dsn, application_name="anbar-access", **extra)
    if not os.environ.get("ANBAR_WAREHOUSE_URL"):
        try:
            from airflow.sdk import BaseHook

            c = BaseHook.get_connection(ADMIN_CONN_ID)
        except Exception:  # no such connection: the warehouse connection administers access
            c = None
        if c is not None:
            return psycopg2.connect(
                host=c.host,
                port=c.port or 5432,
                user=c.login,
                password=c.password or password_file,
                dbname=c.schema,
                application_name="anbar-access",
            )
    return warehouse.connect()


def manifest_path() -> Path:
    from anbar.dbt import MANIFEST_PATH

    return MANIFEST_PATH
