"""PostgreSQL restarted during a load, and the load's process killed in the middle of its COPY.

The pass runs as Airflow runs it, in a process of its own (``ingest.process``), on a PostgreSQL server of this
module's own (restarting it disturbs no other test), with a delivery of ~7.5 MB so that its COPY can be caught in
the act: the process is frozen (SIGSTOP) while ``pg_stat_progress_copy`` shows the COPY, then the fault strikes.
Each ends with nothing of the delivery visible, the ledger telling what happened, and the rerun — Airflow's
retry — loading it exactly once: rows in = rows loaded + rows rejected.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from integration.db import fetch

from anbar import ddl, ingest
from anbar.devenv.postgres import LocalPostgres
from anbar.registry import load_registry

from .conftest import write_big_delivery

pytestmark = pytest.mark.integration

COPIES = 80  # x 1521 rows of 1404-07: ~120,000 rows, ~7.5 MB
LOAD = (
    "import json, sys\n"
    "from anbar import ingest\n"
    "print(json.dumps(ingest.process(ingest.Step.from_xcom(json.loads(sys.argv[1]))).to_xcom()))\n"
)


@pytest.fixture(scope="module")
def own_pg():
    # Not under pytest's basetemp: any pytest run resets /tmp/pytest-of-<user> to 0700, and the server
    # (run as its own user when the tests run as root) must still reach its data directory on the restart.
    server = LocalPostgres(Path(tempfile.mkdtemp(prefix="anbar-fault-pg-")) / "pg")
    server.start()
    yield server
    server.destroy()
    shutil.rmtree(server.state_dir.parent, ignore_errors=True)


@pytest.fixture
def warehouse(own_pg, pg, monkeypatch) -> str:
    """A bootstrapped warehouse on the module's server; returns its DSN. The steps' lock waits are bounded:
    a stale lock fails the rerun instead of hanging it."""
    name = f"wh_{uuid.uuid4().hex[:10]}"
    own_pg.create_database(name)
    monkeypatch.setenv("ANBAR_WAREHOUSE_URL", own_pg.url(name))
    monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=20s")
    conn = psycopg2.connect(own_pg.dsn(name))
    try:
        ddl.bootstrap(conn, load_registry())
    finally:
        conn.close()
    return own_pg.dsn(name)


def _query(dsn: str, sql: str, *args) -> list[dict]:
    conn = psycopg2.connect(dsn)
    try:
        return fetch(conn, sql, *args)
    finally:
        conn.close()


def _landed(period: str) -> ingest.Step:
    step = ingest.probe("sso", "insured_persons", period, now=dt.datetime.now(dt.UTC))
    step = ingest.receive(step, run_id="fault-test")
    assert step.state == "landed", step
    return step


def _big_landed(simulators, period: str) -> tuple[ingest.Step, dict]:
    """A ~7.5 MB delivery for ``period``, landed; returns the step and the file the manifest declares."""
    [declared] = write_big_delivery(simulators.sftp_root, period, COPIES)["files"]
    return _landed(period), declared


@contextlib.contextmanager
def _loading(step: ingest.Step, tmp_path) -> Iterator[subprocess.Popen]:
    """The load step in a process of its own, as Airflow runs it (stderr in ``load.err``); killed on the way
    out if it is still there."""
    with open(tmp_path / "load.out", "wb") as out, open(tmp_path / "load.err", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", LOAD, json.dumps(step.to_xcom())], stdout=out, stderr=err, env=dict(os.environ)
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _freeze_in_copy(dsn: str, proc: subprocess.Popen) -> int:
    """Wait (bounded) until the load's COPY is under way, freeze the process there; returns the bytes copied."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    progress = "select bytes_processed from pg_stat_progress_copy where datname = current_database()"
    try:
        with conn.cursor() as cur:
            for _ in range(60_000):
                cur.execute(progress)
                row = cur.fetchone()
                if row is not None and row[0] > 0:
                    proc.send_signal(signal.SIGSTOP)
                    break
                assert proc.poll() is None, "the load ended before its COPY was seen"
                time.sleep(0.002)
            else:
                pytest.fail("the load's COPY never started")
            cur.execute(progress)
            frozen = cur.fetchone()
            assert frozen is not None, "the COPY ended before the load was frozen"  # it cannot end without it
            return frozen[0]
    finally:
        conn.close()


def _nothing_visible(dsn: str, submission_id: int) -> None:
    [seen] = _query(
        dsn,
        "select (select count(*) from raw.sso__insured_persons where _submission_id = %s) as raw, "
        "(select count(*) from clean.sso__insured_persons where _submission_id = %s) as clean, "
        "(select count(*) from raw.rejected_rows where submission_id = %s) as rejected, "
        "(select count(*) from pg_class where relname = any(%s)) as tables",
        submission_id,
        submission_id,
        submission_id,
        [f"sso__insured_persons_s{submission_id}", f"sso__insured_persons_s{submission_id}_rowno"],
    )
    assert seen == {"raw": 0, "clean": 0, "rejected": 0, "tables": 0}


def _loaded_exactly_once(dsn: str, step: ingest.Step, rows: int) -> None:
    """Decided once: accepted, its rows in the clean table once (the typed rows only: nothing of the values as
    delivered is written to PostgreSQL but the rejected rows), one partition, no lock left."""
    [sub] = _query(
        dsn,
        "select status, message, rows_manifest, rows_loaded, rows_rejected from anbar.submissions "
        "where submission_id = %s",
        step.submission_id,
    )
    assert sub["status"] == "accepted", sub["message"]
    assert sub["rows_manifest"] == rows == sub["rows_loaded"] + sub["rows_rejected"]
    events = _query(
        dsn,
        "select step from anbar.submission_events where submission_id = %s and status = 'accepted'",
        step.submission_id,
    )
    assert [e["step"] for e in events] == ["publish"]
    [held] = _query(
        dsn,
        "select (select count(*) from clean.sso__insured_persons) as clean, "
        "(select count(*) from raw.sso__insured_persons) as raw, "
        "(select count(*) from raw.rejected_rows) as rejected, "
        "(select count(*) from pg_inherits where inhparent = 'clean.sso__insured_persons'::regclass) as partitions, "
        "(select count(*) from pg_locks where locktype = 'advisory') as advisory_locks",
    )
    assert held == {
        "clean": sub["rows_loaded"],
        "raw": 0,
        "rejected": sub["rows_rejected"],
        "partitions": 1,
        "advisory_locks": 0,
    }


def test_postgres_restarted_during_a_load(own_pg, warehouse, simulators, landing, tmp_path):
    step, declared = _big_landed(simulators, "1404-10")
    with _loading(step, tmp_path) as proc:
        assert _freeze_in_copy(warehouse, proc) < declared["bytes"]
        own_pg.stop("fast")
        own_pg.start()
        proc.send_signal(signal.SIGCONT)
        returncode = proc.wait(timeout=120)
    error = (tmp_path / "load.err").read_text()
    assert returncode != 0, error[-3000:]
    assert "terminating connection due to administrator command" in error, error[-3000:]

    # The load failed cleanly: nothing of the delivery is visible, the ledger still says landed, and its step
    # log says why the load failed (recorded by the failing process once the server was back).
    _nothing_visible(warehouse, step.submission_id)
    [sub] = _query(
        warehouse, "select status, rows_loaded from anbar.submissions where submission_id = %s", step.submission_id
    )
    assert sub == {"status": "landed", "rows_loaded": None}
    [failed] = _query(
        warehouse,
        "select detail->>'error' as error from anbar.submission_events where submission_id = %s and step = 'process' "
        "and status = 'failed'",
        step.submission_id,
    )
    assert failed["error"].startswith(
        f"WarehouseConnectionLost: the connection to the warehouse was lost during the load of submission "
        f"{step.submission_id}"
    )

    # Airflow's retry: the pass runs again from the landed delivery, once; a second rerun changes nothing.
    done = ingest.process(step)
    assert done.state == "accepted", done.message
    _loaded_exactly_once(warehouse, step, declared["rows"])
    done = ingest.process(step)
    assert done.state == "accepted", done.message
    _loaded_exactly_once(warehouse, step, declared["rows"])


def test_a_load_killed_during_its_copy_is_loaded_once_by_the_rerun(own_pg, warehouse, simulators, landing, tmp_path):
    step, declared = _big_landed(simulators, "1404-11")
    with _loading(step, tmp_path) as proc:
        _freeze_in_copy(warehouse, proc)
        proc.send_signal(signal.SIGKILL)  # what a worker's OOM killer or a lost node does: no cleanup at all
        assert proc.wait(timeout=60) == -signal.SIGKILL
    _nothing_visible(warehouse, step.submission_id)
    [sub] = _query(warehouse, "select status from anbar.submissions where submission_id = %s", step.submission_id)
    assert sub == {"status": "landed"}

    # The rerun takes the submission's lock (the killed session's went with it), loads it once.
    done = ingest.process(step)
    assert done.state == "accepted", done.message
    _loaded_exactly_once(warehouse, step, declared["rows"])


def test_a_load_killed_before_the_ledger_knows_leaves_nothing_visible(own_pg, warehouse, simulators, landing, tmp_path):
    """Killed after its rows are in but before the ledger says so: the rows and the ledger's word are one
    transaction, so nothing is visible of a load the ledger does not know of."""
    step = _landed("1404-07")
    [declared] = json.loads((simulators.sftp_root / "sso/outbox/insured_persons/1404-07/manifest.json").read_text())[
        "files"
    ]
    holder = psycopg2.connect(warehouse)
    try:
        with holder.cursor() as cur:  # the ledger's row is held: the load waits to record itself as loaded
            cur.execute(
                "select from anbar.submissions where submission_id = %s for no key update", (step.submission_id,)
            )
        with _loading(step, tmp_path) as proc:
            waiting = (
                "select count(*) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' "
                "and query like 'update anbar.submissions%%'"
            )
            watcher = psycopg2.connect(warehouse)
            watcher.autocommit = True
            try:
                with watcher.cursor() as cur:
                    for _ in range(30_000):
                        cur.execute(waiting)
                        if cur.fetchone()[0]:
                            break
                        assert proc.poll() is None, (tmp_path / "load.err").read_text()[-3000:]
                        time.sleep(0.005)
                    else:
                        pytest.fail("the load never reached its ledger update")
            finally:
                watcher.close()
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=60) == -signal.SIGKILL
        _nothing_visible(warehouse, step.submission_id)
    finally:
        holder.close()

    done = ingest.process(step)
    assert done.state == "accepted", done.message
    _loaded_exactly_once(warehouse, step, declared["rows"])
