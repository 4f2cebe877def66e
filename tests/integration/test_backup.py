"""Backups against a real PostgreSQL: pg_dump of a loaded warehouse, restored into a scratch database and
verified; a corrupted dump, a tampered fingerprint and writes during the backup."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import uuid

import psycopg2
import pytest

from anbar import backup, ddl, ingest
from anbar.cli import main
from anbar.registry import load_registry

pytestmark = pytest.mark.integration

REG = load_registry()
SSO = REG.org("sso")
PERSONS = SSO.dataset("insured_persons")
CSV = (
    "national_id,workshop_code,sex,birth_date,insurance_type,days_worked,insured_wage,employment_start\n"
    "۰۰۷۶۲۲۹۶۴۵,W1,1,۱۳۶۲/۰۵/۰۷,1,٣٠,١٢٣٤٥٦٧٨٩,1400/02/05\n"
    "1583250689,W2,2,1370/12/29,2,15,500000000,\n"
    "0011537027,W2,1,1365/01/01,1,31,420000000,1399/07/01\n"
)


@pytest.fixture(scope="module")
def warehouse(pg, tmp_path_factory):
    """A bootstrapped warehouse with one real load, and one backup of it taken before any test ran."""
    name = f"wh_backup_{uuid.uuid4().hex[:8]}"
    pg.create_database(name)
    conn = psycopg2.connect(pg.dsn(name))
    ddl.bootstrap(conn, REG)
    path = tmp_path_factory.mktemp("delivery") / "persons.csv"
    path.write_text(CSV, encoding="utf-8")
    landing = tmp_path_factory.mktemp("landing")
    with pytest.MonkeyPatch.context() as env:  # the steps connect to this warehouse and land in an archive of its own
        env.setenv("ANBAR_WAREHOUSE_URL", pg.url(name))
        env.setenv("ANBAR_LANDING_DIR", str(landing))
        step = ingest.process(ingest.land_files("sso", "insured_persons", "1404-08", [path]))
    assert step.state == "accepted" and step.detail["rows_loaded"] == 3, step
    sid = step.submission_id
    server = backup.Server.from_url(pg.dsn(name))
    manifest = backup.take(directory=tmp_path_factory.mktemp("backups"), server=server)
    yield {"name": name, "conn": conn, "server": server, "manifest": manifest, "sid": sid, "landing": landing}
    conn.close()


def _copy_backup(manifest, directory):
    """The backup's files copied into ``directory``; returns the copy's manifest."""
    stem = manifest.name.removesuffix(backup.MANIFEST_SUFFIX)
    for f in manifest.parent.glob(f"{stem}.*"):
        shutil.copy2(f, directory / f.name)
    return directory / manifest.name


def _cli_output(capsys, argv) -> str:
    capsys.readouterr()
    assert main(argv) == 0
    return capsys.readouterr().out


def _verify_server(pg):
    return backup.Server.from_url(pg.dsn("postgres"))


def _scratch_databases(pg) -> list[str]:
    conn = psycopg2.connect(pg.dsn())
    try:
        with conn.cursor() as cur:
            cur.execute("select datname from pg_database where datname like 'anbar\\_verify\\_%'")
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def test_a_backup_of_a_loaded_warehouse_restores_identical_and_is_recorded(warehouse, pg, monkeypatch, capsys):
    manifest = backup.read_manifest(warehouse["manifest"])
    tables = manifest["fingerprint"]["tables"]
    partition = f"clean.sso__insured_persons_s{warehouse['sid']}"
    assert {k: tables[k]["rows"] for k in ("anbar.submissions", "anbar.submission_events", partition)} == {
        "anbar.submissions": 1,
        "anbar.submission_events": 6,  # received, landed, loaded, validated, the pass's seconds, accepted
        partition: 3,
    }
    assert manifest["sha256"] == backup._sha256(warehouse["manifest"].with_name(manifest["file"]))
    assert manifest["server_version"].startswith("18")

    # the warehouse has not changed since: `anbar backup check` (the last step of a restore) finds it identical
    monkeypatch.setenv("ANBAR_WAREHOUSE_URL", pg.url(warehouse["name"]))
    monkeypatch.setenv("ANBAR_BACKUP_VERIFY_URL", pg.dsn("postgres"))
    dump = warehouse["manifest"].with_name(manifest["file"])
    assert main(["backup", "check", str(dump)]) == 0

    # `anbar backup verify FILE`, as the ops team runs it; the ledger is the backed-up warehouse itself
    assert main(["backup", "--dir", str(dump.parent.parent), "verify", str(dump)]) == 0
    outcome = json.loads(dump.with_name(dump.name.replace(".dump", backup.VERIFY_SUFFIX)).read_text())
    assert outcome["ok"] and outcome["tables"] == len(tables) and outcome["mismatches"] == []
    assert outcome["rows"] == sum(t["rows"] for t in tables.values())
    assert outcome["scratch_database"] not in _scratch_databases(pg)  # always dropped
    with warehouse["conn"].cursor() as cur:
        cur.execute(
            "select database, sha256, verification, total_rows from anbar.backups where file = %s", (str(dump),)
        )
        assert cur.fetchall() == [(warehouse["name"], manifest["sha256"], "passed", outcome["rows"])]
    warehouse["conn"].commit()
    # ... which the live check now sees as a difference with the backup
    assert [d["problem"] for d in backup.check_live(dump)] == ["anbar.backups: 0 rows expected, 1 now"]
    assert "passed" in _cli_output(capsys, ["backup", "--dir", str(dump.parent.parent), "list"])


def test_a_flipped_byte_in_the_dump_fails_on_its_sha256_before_any_restore(warehouse, pg, tmp_path):
    copy = _copy_backup(warehouse["manifest"], tmp_path)
    dump = copy.with_name(backup.read_manifest(copy)["file"])
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))

    result = backup.verify(copy, server=_verify_server(pg))
    assert not result.ok and result.scratch_database is None  # nothing restored
    assert result.problems == [
        f"{dump.name}: sha256 {backup._sha256(dump)} does not match the manifest's "
        f"{backup.read_manifest(copy)['sha256']}"
    ]
    assert "VERIFICATION FAILED" in result.summary()


def test_a_tampered_fingerprint_is_reported_table_by_table(warehouse, pg, tmp_path):
    copy = _copy_backup(warehouse["manifest"], tmp_path)
    manifest = backup.read_manifest(copy)
    tables = manifest["fingerprint"]["tables"]
    partition = f"clean.sso__insured_persons_s{warehouse['sid']}"
    tables["anbar.submissions"]["rows"] = 2
    real = tables[partition]["checksum"]
    tables[partition]["checksum"] = "0" * 32
    tables["anbar.lost_table"] = {"rows": 5, "checksum": "1" * 32}
    copy.write_text(json.dumps(manifest))

    result = backup.verify(copy, server=_verify_server(pg))
    assert not result.ok
    assert result.problems == [
        "anbar.lost_table: missing (5 rows expected)",
        "anbar.submissions: 2 rows expected, 1 restored",
        f"{partition}: checksum differs ({'0' * 32} expected, {real} restored)",
    ]
    assert [m["table"] for m in result.mismatches] == ["anbar.lost_table", "anbar.submissions", partition]
    assert json.loads(copy.with_name(copy.name.replace(".manifest", ".verify")).read_text())["ok"] is False
    assert result.scratch_database not in _scratch_databases(pg)

    # the checksum sees one changed value where the count does not
    conn = warehouse["conn"]
    with conn.cursor() as cur:
        cur.execute(f"update {partition} set days_worked = days_worked + 1 where _row_no = 2")
        table = next(t for t in backup.list_tables(cur) if t.key == partition)
        changed = backup.table_fingerprint(cur, table)
    conn.rollback()
    assert changed["rows"] == 3 and changed["checksum"] != real


SUBMISSION_IDS = "anbar.submissions_submission_id_seq"


def _setval(conn, sequence: str, value: int, is_called: bool) -> None:
    with conn.cursor() as cur:
        cur.execute("select setval(%s::regclass, %s, %s)", (sequence, value, is_called))
    conn.commit()


def test_sequences_are_in_the_fingerprint_and_a_restore_behind_them_fails(warehouse, pg, tmp_path):
    """A restore whose sequences are behind the backup's would hand out ids the restored rows already have
    (the next submission would collide with submission 1, or worse, a sequence without a unique column)."""
    manifest = backup.read_manifest(warehouse["manifest"])
    sequences = manifest["fingerprint"]["sequences"]
    assert sequences[SUBMISSION_IDS] == {"last_value": warehouse["sid"], "is_called": True, "increment_by": 1}
    assert "anbar.submission_events_event_id_seq" in sequences

    # The live database with a sequence set back, as after a restore that lost the sequences' values:
    # `anbar backup check` (the last step of a restore) refuses it.
    def live_sequence_problems() -> list[str]:  # (other tests of the module write anbar.backups)
        found = backup.check_live(warehouse["manifest"], server=warehouse["server"])
        return [d["problem"] for d in found if "sequence" in d]

    conn = warehouse["conn"]
    assert live_sequence_problems() == []
    _setval(conn, SUBMISSION_IDS, 1, False)
    try:
        assert live_sequence_problems() == [
            f"sequence {SUBMISSION_IDS}: next value 1 now, behind the backup's {warehouse['sid'] + 1} "
            "(new rows would reuse numbers)"
        ]
    finally:
        _setval(conn, SUBMISSION_IDS, warehouse["sid"], True)
    assert live_sequence_problems() == []

    # A restore whose sequence is behind what the manifest recorded fails the verification.
    copy = _copy_backup(warehouse["manifest"], tmp_path)
    tampered = backup.read_manifest(copy)
    tampered["fingerprint"]["sequences"][SUBMISSION_IDS]["last_value"] += 10
    del tampered["fingerprint"]["sequences"]["anbar.submission_events_event_id_seq"]
    tampered["fingerprint"]["sequences"]["anbar.lost_seq"] = {"last_value": 7, "is_called": True, "increment_by": 1}
    copy.write_text(json.dumps(tampered))
    result = backup.verify(copy, server=_verify_server(pg))
    assert not result.ok
    assert result.problems == [
        "sequence anbar.lost_seq: missing (next value 8 expected)",
        f"sequence {SUBMISSION_IDS}: next value {warehouse['sid'] + 1} restored, behind the backup's "
        f"{warehouse['sid'] + 11} (new rows would reuse numbers)",
    ]


def test_compare_sequences_knows_which_way_a_sequence_goes():
    up = {"last_value": 10, "is_called": True, "increment_by": 1}
    down = {"last_value": -10, "is_called": True, "increment_by": -1}
    fresh = {"last_value": 10, "is_called": False, "increment_by": 1}  # never drawn from: 10 comes next
    assert backup.compare_sequences({"s": up}, {"s": {**up, "last_value": 12}}) == []  # ahead: drawn since
    assert backup.compare_sequences({"s": up}, {"s": fresh}) != []  # 10 again: behind
    assert backup.compare_sequences({"s": fresh}, {"s": fresh}) == []
    assert backup.compare_sequences({"s": down}, {"s": {**down, "last_value": -12}}) == []
    assert backup.compare_sequences({"s": down}, {"s": {**down, "last_value": -9}}) != []
    assert backup.compare_sequences({}, {"s": up}) == []  # a backup from before sequences were fingerprinted


def test_rows_written_while_the_backup_runs_are_in_neither_the_dump_nor_the_fingerprint(warehouse, pg, tmp_path):
    """The dump and the fingerprint share the exported snapshot: rows committed after it, while pg_dump and
    the fingerprint run, are in neither, so the verification passes (a dump on a snapshot of its own would
    restore them and fail it)."""
    writer = psycopg2.connect(pg.dsn(warehouse["name"]))
    writer.autocommit = True
    sid = warehouse["sid"]
    written, stop, committed = [0], threading.Event(), threading.Event()

    def write() -> None:
        with writer.cursor() as cur:
            while not stop.is_set():
                cur.execute(
                    "insert into anbar.submission_events (submission_id, org, dataset, period, step, status)"
                    " values (%s, 'sso', 'insured_persons', '1404-08', 'validate', 'running')",
                    (sid,),
                )
                written[0] += 1
                if written[0] >= 25:
                    committed.set()

    def count() -> int:
        with writer.cursor() as cur:
            cur.execute("select count(*) from anbar.submission_events")
            return cur.fetchone()[0]

    before = []
    thread = threading.Thread(target=write)

    def start_writing() -> None:  # the snapshot is exported: write on, and make sure rows land now
        before.append(count())
        thread.start()
        assert committed.wait(timeout=60)

    try:
        manifest = backup.take(directory=tmp_path, server=warehouse["server"], on_snapshot=start_writing)
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()
    after = count()
    writer.close()

    events = backup.read_manifest(manifest)["fingerprint"]["tables"]["anbar.submission_events"]
    assert events["rows"] == before[0] and after >= before[0] + 25
    result = backup.verify(manifest, server=_verify_server(pg))
    assert result.ok, result.problems


def test_a_table_truncated_after_the_snapshot_fails_the_backup_and_leaves_nothing(warehouse, pg, tmp_path):
    """TRUNCATE is not MVCC-safe: a scan on the old snapshot sees the new, empty file. Dump and fingerprint
    would agree on an empty table the snapshot did not have, so the backup refuses to finish."""

    def truncate() -> None:
        conn = psycopg2.connect(pg.dsn(warehouse["name"]))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("truncate anbar.quality_scorecard")
        conn.close()

    with pytest.raises(backup.BackupError, match=r"while the backup ran: anbar\.quality_scorecard; "):
        backup.take(directory=tmp_path, server=warehouse["server"], on_snapshot=truncate)
    assert [p.name for p in (tmp_path / warehouse["name"]).iterdir()] == []


def test_the_archive_check_finds_a_missing_delivery_and_a_changed_file(warehouse, pg, tmp_path, monkeypatch, capsys):
    from anbar.landing import LandingArchive

    archive = LandingArchive(warehouse["landing"])  # beside the delivery the warehouse's load landed
    delivered = CSV.replace("W2", "W5")
    landed = archive.store_bytes("persons.csv", delivered.encode())
    archive.store_bytes("later.csv", b"landed after the database backup\n")
    manifest = b'{"files": ["persons.csv"]}'
    sha = hashlib.sha256(manifest).hexdigest()
    delivery = archive.record_delivery("sso", "insured_persons", "1404-09", sha, manifest, [landed])
    conn = warehouse["conn"]
    with conn.cursor() as cur:
        cur.execute(
            "insert into anbar.submissions (org, dataset, period, version, transport, delivery_sha256, landing_path,"
            " status) values ('sso', 'insured_persons', '1404-09', 1, 'sftp', %s, %s, 'landed'),"
            " ('sso', 'insured_persons', '1404-10', 1, 'sftp', %s, '/elsewhere', 'landed')"
            " returning submission_id",
            (sha, str(delivery), "f" * 64),
        )
        added = [r[0] for r in cur.fetchall()]
    conn.commit()
    monkeypatch.setenv("ANBAR_WAREHOUSE_URL", pg.url(warehouse["name"]))
    try:
        assert main(["backup", "check-archive", "--landing", str(archive.root)]) == 1
        err = capsys.readouterr().err
        # The load's file and the rendering of its values, and the new delivery's file: three re-hashed.
        assert err.startswith("3 deliveries of the ledger, 3 files (0.0 MiB) re-hashed: 1 problem(s); 1 object(s) ")
        assert f"submission {added[1]} (sso/insured_persons/1404-10 v1): deliveries/sso/insured_persons/1404-10/" in err

        landed.path.chmod(0o644)
        landed.path.write_bytes(delivered.replace("W1", "W9").encode())
        found = backup.check_archive(conn, archive.root)
        changed = hashlib.sha256(delivered.replace("W1", "W9").encode()).hexdigest()
        assert found.problems[0] == (
            f"submission {added[0]} (sso/insured_persons/1404-09 v1): persons.csv: "
            f"{landed.path.relative_to(archive.root)} has sha256 {changed}"
        )
    finally:
        with conn.cursor() as cur:
            cur.execute("delete from anbar.submissions where submission_id = any(%s)", (added,))
        conn.commit()
