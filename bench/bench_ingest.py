"""Ingest benchmark: one SSO insured-persons delivery through anbar's ingest against a bare COPY of the
same file and against the naive path, all in the same run on the same PostgreSQL.

    .venv/bin/python bench/bench_ingest.py [--rows 1000000] [--naive-rows 1000000] [--encoding utf-8]

The supplier's delivery is written as exchange standard v1 has it (one CSV, then ``manifest.json``) into
the outbox of the simulated SSO SFTP server (``anbar.sim``, 127.0.0.1), for the month before (so the
cross-period rules have an accepted month to compare with) and the month measured. Each path then runs in
a fresh process of its own, which reads its own peak RSS (the PostgreSQL server's memory is not in it):

- **bare COPY**: the file into a table of text columns (``COPY ... FROM STDIN``), the baseline;
- **SFTP transfer**: the file from the supplier to nowhere, the transport alone (anbar's SFTP hook), from the
  simulated supplier and from a real OpenSSH sshd on loopback serving the same directory;
- **OpenSSH sftp**: OpenSSH's own ``sftp`` client getting the same file from the same sshd, to disk (the
  yardstick of the receive step). Without ``openssh-server`` installed the bench says so, and anbar's steps
  run against the simulator;
- **anbar**: the ingest DAG's own steps (``anbar.ingest``: probe, receive = SFTP transfer from the OpenSSH
  sshd + sha256 + landing archive, process = the pass from the landed file to the recorded decision — read, structure
  check, conversion and the suite in DuckDB, one COPY and the decision in PostgreSQL — then the typed
  snapshot and the rendering of the delivered values, conclude = Data Docs, report, feedback files, mail),
  with the pass's own sub-steps;
- **suites try**: ``anbar suites try`` on the landed month (the statisticians' loop: the rendering read
  back, converted, the suite evaluated, nothing written);
- **naive**: ``pandas.read_csv`` + the same suite file validated by GX on the pandas frame +
  ``DataFrame.to_sql``, on the first ``--naive-rows`` rows (pandas holds the whole frame in memory).

The previous month goes through the same anbar steps first, untimed. Prints seconds, rows/s and
ratios; never asserts. ``measure()`` is what ``bench/run_all.py`` calls.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _openssh

ORG, DATASET = "sso", "insured_persons"
PREVIOUS, CURRENT = "1404-06", "1404-07"


# -- the measured paths, each in a worker process ---------------------------------------------------------


def _worker_bare(args: dict) -> dict:
    import psycopg2
    from _common import bare_copy

    from anbar.registry import load_registry

    ds = load_registry().dataset(ORG, DATASET)
    conn = psycopg2.connect(args["dsn"])
    seconds = bare_copy(conn, ds, Path(args["file"]), args["table"])
    with conn.cursor() as cur:
        cur.execute(f"select count(*) from {args['table']}")
        (rows,) = cur.fetchone()
        cur.execute(f"drop table {args['table']}")
    conn.commit()
    conn.close()
    return {"seconds": seconds, "rows": rows}


class _Discard:
    bytes = 0

    def write(self, data: bytes) -> int:
        self.bytes += len(data)
        return len(data)


def _worker_transfer(args: dict) -> dict:
    from anbar.ingest import source_for
    from anbar.registry import load_registry

    source = source_for(load_registry().org(ORG))
    sink = _Discard()
    t0 = time.perf_counter()
    try:
        source.stream_file(DATASET, args["period"], args["name"], sink, max_bytes=args["bytes"])
    finally:
        source.close()
    return {"seconds": time.perf_counter() - t0, "bytes": sink.bytes}


def _worker_anbar(args: dict) -> dict:
    """The ingest DAG's steps for one delivery, in order, each timed (as ``anbar.ingest.run_steps`` runs them)."""
    from anbar import ingest, ledger, warehouse
    from anbar.registry import load_registry

    registry = load_registry()
    seconds: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], ingest.Step]) -> ingest.Step:
        t0 = time.perf_counter()
        step = fn()
        seconds[name] = time.perf_counter() - t0
        return step

    period = args["period"]
    step = timed("probe", lambda: ingest.probe(ORG, DATASET, period, now=dt.datetime.now(dt.UTC), registry=registry))
    if step.state != "received":
        raise RuntimeError(f"the delivery of {period} is not there: {step}")
    step = timed("receive", lambda: ingest.receive(step, run_id="bench", registry=registry))
    step = timed("process", lambda: ingest.process(step, registry=registry))
    passed = step.detail.get("seconds") or {}
    passed_rss = step.detail.get("peak_rss_mib") or {}
    step = timed("conclude", lambda: ingest.conclude(step, registry=registry))
    conn = warehouse.connect()
    sub = ledger.get(conn, step.submission_id)
    with conn.cursor() as cur:
        cur.execute("select count(*) from anbar.row_findings where submission_id = %s", (step.submission_id,))
        (findings,) = cur.fetchone()
    conn.close()
    return {
        "seconds": seconds,
        "pass": passed,
        "pass_peak_rss_mib": passed_rss,
        "state": step.state,
        "message": step.message,
        "rows_manifest": sub.rows_manifest,
        "rows_loaded": sub.rows_loaded,
        "rows_rejected": sub.rows_rejected,
        "row_findings": findings,
    }


def _worker_trial(args: dict) -> dict:
    """``anbar suites try`` on the landed month, with the committed suite."""
    from anbar.registry import load_registry
    from anbar.suite_trial import try_suite

    registry = load_registry()
    t0 = time.perf_counter()
    trial = try_suite(registry, registry.dataset(ORG, DATASET), args["period"])
    return {"seconds": time.perf_counter() - t0, "would_be": trial.would_be, "rows_in": trial.rows_in}


def _worker_naive(args: dict) -> dict:
    """pandas.read_csv + the same suite by GX on the pandas frame + DataFrame.to_sql, as a notebook would."""
    import great_expectations as gx
    import pandas as pd
    import sqlalchemy
    from _common import PY_ENCODING
    from great_expectations.data_context.types.base import ProgressBarsConfig

    import anbar.gx_custom  # noqa: F401  (anbar's expectation types, or GX cannot read the suite file)
    from anbar.registry import load_registry
    from anbar.settings import expectations_dir
    from anbar.suites import load_suite, suite_path

    ds = load_registry().dataset(ORG, DATASET)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    frame = pd.read_csv(args["file"], nrows=args["rows"], encoding=PY_ENCODING[args["encoding"]], sep=",")
    seconds["read_csv"] = time.perf_counter() - t0
    frame_bytes = int(frame.memory_usage(deep=True).sum())

    t0 = time.perf_counter()
    suite = load_suite(suite_path(expectations_dir(), ds), ds)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch = (
        context.data_sources.add_pandas("naive")
        .add_dataframe_asset("extract")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    configs = [e.configuration.to_json_dict() for e in suite.expectations]
    result = batch.validate(gx.ExpectationSuite(name="naive", expectations=configs), result_format="SUMMARY")
    seconds["validate"] = time.perf_counter() - t0
    ran = [r for r in result.results if not (r.exception_info or {}).get("raised_exception")]
    could_not = sorted({r.expectation_config.type for r in result.results if r not in ran})

    t0 = time.perf_counter()
    engine = sqlalchemy.create_engine(args["url"])
    frame.to_sql("naive_extract", engine, if_exists="replace", index=False)
    engine.dispose()
    seconds["to_sql"] = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "rows": len(frame),
        "frame_bytes": frame_bytes,
        "rules": len(configs),
        "rules_ran": len(ran),
        "rules_failed": sum(1 for r in ran if not r.success),
        "could_not_run": could_not,
    }


WORKERS = {
    "bare": _worker_bare,
    "transfer": _worker_transfer,
    "anbar": _worker_anbar,
    "trial": _worker_trial,
    "naive": _worker_naive,
}


# -- the run ------------------------------------------------------------------------------------------------


def publish(sftp_root: Path, period: str, rows: int, encoding: str, persian_share: float, bad_share: float):
    """The supplier delivers: the CSV under a temporary name, renamed, then the manifest (exchange standard v1)."""
    from _common import write_extract

    from anbar.sim.delivery import MANIFEST, atomic_write, delivery_dir

    out = delivery_dir(sftp_root, ORG, DATASET, period)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{DATASET}_{period}_part-001.csv"
    tmp = out / f".{name}.tmp"
    extract = write_extract(tmp, rows, encoding, persian_share, period=period, bad_share=bad_share)
    os.replace(tmp, out / name)
    manifest = {
        "org": ORG,
        "dataset": DATASET,
        "period": period,
        "schema_version": 1,
        "encoding": encoding,
        "delimiter": ",",
        "files": [{"name": name, "bytes": extract.bytes, "sha256": extract.sha256, "rows": rows}],
    }
    atomic_write(out / MANIFEST, (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
    return extract, out / name


def worker_env(workdir: Path, pg, database: str, sims) -> dict[str, str]:
    """The settings an ingest task has (as tests/conftest.py gives them), for the worker processes."""
    from anbar.settings import REPO_ROOT, WAREHOUSE_CONN_ID
    from anbar.sim.serve import airflow_env

    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(workdir / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "GX_ANALYTICS_ENABLED": "False",
            "ANBAR_REGISTRY": str(REPO_ROOT / "registry"),
            "ANBAR_LANDING_DIR": str(workdir / "landing"),
            "ANBAR_DATA_DOCS_DIR": str(workdir / "data_docs"),
            "ANBAR_WAREHOUSE_URL": pg.url(database),
            **sims.airflow_env(),
        }
    )
    warehouse = {"conn_type": "postgres", "host": "127.0.0.1", "port": pg.port, "login": "anbar_admin"}
    env.update(airflow_env({WAREHOUSE_CONN_ID: {**warehouse, "password": pg.password, "schema": database}}))
    return env


def _checkpoint(conn) -> None:
    """Each measured path starts without the previous one's WAL to flush."""
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("checkpoint")
    conn.autocommit = False


def measure(
    rows: int,
    naive_rows: int,
    workdir: Path,
    *,
    encoding: str = "utf-8",
    persian_share: float = 0.1,
    bad_share: float = 0.001,
    out: Callable[[str], None] = print,
) -> dict:
    """Run every path once; return what each measured (seconds, rows, peak RSS) and the machine."""
    import psycopg2
    from _common import machine, run_measured

    from anbar import ddl
    from anbar.devenv.postgres import LocalPostgres
    from anbar.registry import load_registry
    from anbar.sim.serve import airflow_env, start_simulators

    registry = load_registry()
    workdir.mkdir(parents=True, exist_ok=True)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    pg = LocalPostgres(workdir / "pg").start()
    sims = None
    try:
        pg.create_database("bench")
        conn = psycopg2.connect(pg.dsn("bench"))
        ddl.bootstrap(conn, registry)
        # Nothing published by the simulator itself: the outbox holds only the deliveries written below.
        sims = start_simulators(workdir / "suppliers", periods={ORG: []}, defect_share=0.0)
        env = worker_env(workdir, pg, "bench", sims)
        result: dict = {"rows": rows, "encoding": encoding, "machine_before": machine(conn, workdir)}

        t0 = time.perf_counter()
        publish(sims.sftp_root, PREVIOUS, rows, encoding, persian_share, bad_share)
        extract, csv_path = publish(sims.sftp_root, CURRENT, rows, encoding, persian_share, bad_share)
        out(
            f"extract: {rows:,} rows a month, {extract.bytes / 1e6:,.0f} MB ({extract.bytes / rows:.0f} bytes/row), "
            f"{encoding}, {extract.persian_rows / rows:.0%} of rows with Persian digits, "
            f"{extract.bad_ids:,} wrong check digits; {PREVIOUS} and {CURRENT} written in "
            f"{time.perf_counter() - t0:.0f} s"
        )
        result["extract"] = {"bytes": extract.bytes, "persian_rows": extract.persian_rows, "bad_ids": extract.bad_ids}

        def run(kind: str, label: str, run_env: dict[str, str] = env, **args) -> dict:
            _checkpoint(conn)
            r = run_measured("bench_ingest", kind, args, run_env, logs / f"{label}.log")
            out(f"  {label}: done ({r['peak_rss_mib']:.0f} MiB peak RSS)")
            return r

        out(f"previous month {PREVIOUS} through anbar (untimed, so the cross-period rules apply) ...")
        result["previous"] = run("anbar", "anbar-previous", period=PREVIOUS)
        if result["previous"]["state"] != "accepted":
            raise RuntimeError(f"the previous month was not accepted: {result['previous']}")
        out(f"measuring {CURRENT}:")
        result["bare"] = run("bare", "bare-copy-1", dsn=pg.dsn("bench"), file=str(csv_path), table="bare_copy")
        transfer = {"period": CURRENT, "name": csv_path.name, "bytes": extract.bytes}
        result["transfer"] = run("transfer", "sftp-transfer-simulator", **transfer)
        openssh_env = env
        result["openssh_missing"] = _openssh.missing()
        if result["openssh_missing"]:
            out(
                f"  OpenSSH is not installed ({', '.join(result['openssh_missing'])}): SFTP measured against the "
                "Python simulator only, and the receive step has no OpenSSH yardstick"
            )
        else:
            sshd = _openssh.OpenSshServer(workdir / "openssh", sims.sftp_root / ORG).start()
            try:
                # The SSO connection now points at the real sshd, which serves the same outbox.
                openssh_env = {**env, **airflow_env({registry.org(ORG).transport.conn_id: sshd.connection()})}
                result["transfer_openssh"] = run("transfer", "sftp-transfer-openssh", openssh_env, **transfer)
                remote = f"{registry.org(ORG).transport.outbox.strip('/')}/{DATASET}/{CURRENT}/{csv_path.name}"
                got = workdir / "openssh-get.csv"
                seconds = sshd.fetch_with_sftp_client(remote, got)
                result["sftp_client"] = {"seconds": seconds, "bytes": got.stat().st_size}
                got.unlink()
                out(f"  openssh-sftp-client: done ({result['sftp_client']['bytes']:,} bytes)")
                result["anbar"] = run("anbar", "anbar", openssh_env, period=CURRENT)
            finally:
                sshd.stop()
        if "anbar" not in result:
            result["anbar"] = run("anbar", "anbar", period=CURRENT)
        result["trial"] = run("trial", "suites-try", period=CURRENT)
        result["bare2"] = run("bare", "bare-copy-2", dsn=pg.dsn("bench"), file=str(csv_path), table="bare_copy")
        result["naive"] = run(
            "naive", "naive", file=str(csv_path), rows=min(naive_rows, rows), encoding=encoding, url=pg.url("bench")
        )
        result["machine_after"] = machine(conn, workdir)
        conn.close()
        return result
    finally:
        if sims is not None:
            sims.stop()
        pg.stop()


# The pass's sub-steps after its decision is recorded (anbar.engine.delivery.process): still in the task.
AFTER_DECISION = ("snapshot, results and rendering",)


def summarise(r: dict, out: Callable[[str], None] = print) -> dict[str, float]:
    """Print the per-path table; return the figures the targets are judged on."""
    rows = r["rows"]
    bare = min(r["bare"]["seconds"], r["bare2"]["seconds"])
    steps = r["anbar"]["seconds"]
    passed = r["anbar"]["pass"]
    anbar = sum(steps.values())
    to_decision = sum(v for k, v in passed.items() if k not in AFTER_DECISION)
    transfer = r["transfer"]["seconds"]
    naive_rows = r["naive"]["rows"]
    naive = sum(r["naive"]["seconds"].values())
    anbar_rate, naive_rate = rows / anbar, naive_rows / naive
    mb = r["extract"]["bytes"] / 1e6

    def line(label: str, seconds: float, n: int, rss: float | None, note: str = "") -> None:
        rss_text = f"{rss:7.0f} MiB" if rss is not None else " " * 11
        out(f"  {label:48} {seconds:8.1f} s {n / seconds if seconds else 0:10,.0f} rows/s {rss_text}  {note}")

    out(f"ingest of {rows:,} rows ({mb:,.0f} MB), wall time and peak RSS of the process doing the work:")
    line("bare COPY into a text table (run 1)", r["bare"]["seconds"], rows, r["bare"]["peak_rss_mib"])
    line("bare COPY into a text table (run 2)", r["bare2"]["seconds"], rows, r["bare2"]["peak_rss_mib"])
    line(
        "SFTP transfer alone (simulated supplier)",
        transfer,
        rows,
        r["transfer"]["peak_rss_mib"],
        f"{mb / transfer:.0f} MB/s",
    )
    client = (r.get("sftp_client") or {}).get("seconds")
    if client:
        t = r["transfer_openssh"]
        speed = f"{mb / t['seconds']:.0f} MB/s"
        line("SFTP transfer alone (OpenSSH sshd)", t["seconds"], rows, t["peak_rss_mib"], speed)
        line("OpenSSH sftp client, same file, same sshd", client, rows, None, f"{mb / client:.0f} MB/s")
    else:
        out(f"  OpenSSH absent ({', '.join(r['openssh_missing'])}): no OpenSSH yardstick for the receive step")
    for name, secs in steps.items():
        note = f"{secs / bare:5.2f}x bare COPY"
        if name == "receive" and client:
            note += f", {secs / client:4.2f}x OpenSSH sftp (from the sshd)"
        line(f"anbar {name}", secs, rows, None, note)
        if name == "process":
            rss_after = r["anbar"].get("pass_peak_rss_mib") or {}
            for sub, sub_secs in passed.items():
                note = "after the decision" if sub in AFTER_DECISION else f"{sub_secs / bare:5.2f}x bare COPY"
                # The process's peak so far at the end of the sub-step: where it grows, that sub-step needed it.
                line(f"    {sub}", sub_secs, rows, rss_after.get(sub), note)
    line("anbar, all steps", anbar, rows, r["anbar"]["peak_rss_mib"], f"{anbar / bare:5.2f}x bare COPY")
    line("anbar, landed file to recorded decision", to_decision, rows, None, f"{to_decision / bare:5.2f}x bare COPY")
    a = r["anbar"]
    out(
        f"    outcome: {a['state']}; rows in manifest {a['rows_manifest']:,} = loaded {a['rows_loaded']:,} "
        f"+ rejected {a['rows_rejected']:,}; {a['row_findings']:,} row findings"
    )
    trial = r["trial"]
    line(
        "anbar suites try on the landed month",
        trial["seconds"],
        rows,
        trial["peak_rss_mib"],
        f"{trial['seconds'] / bare:5.2f}x bare COPY; would be {trial['would_be']}",
    )
    for name, secs in r["naive"]["seconds"].items():
        line(f"naive {name}", secs, naive_rows, None)
    line(f"naive, all ({naive_rows:,} rows)", naive, naive_rows, r["naive"]["peak_rss_mib"])
    n = r["naive"]
    out(
        f"    GX on pandas ran {n['rules_ran']} of the suite's {n['rules']} rules ({n['rules_failed']} failed); "
        f"could not run anbar's SQL-only types: {', '.join(n['could_not_run']) or 'none'}"
    )
    if naive_rows < rows:
        out(
            f"    naive run on the first {naive_rows:,} rows only: its frame took {n['frame_bytes'] / 2**30:.2f} GiB, "
            f"{n['frame_bytes'] / 2**30 * rows / naive_rows:.1f} GiB at {rows:,} rows; compared per row"
        )
    return {
        "anbar_over_copy": anbar / bare,
        "decision_over_copy": to_decision / bare,
        "decision_seconds": to_decision,
        "pass": passed,
        "trial_over_copy": trial["seconds"] / bare,
        "trial_seconds": trial["seconds"],
        "anbar_rss_gib": max(r["anbar"]["peak_rss_mib"], trial["peak_rss_mib"]) / 1024,
        "naive_over_anbar": anbar_rate / naive_rate,
        "bare_seconds": bare,
        "anbar_seconds": anbar,
        "transfer_seconds": transfer,
        "receive_seconds": steps["receive"],
        "receive_over_openssh": steps["receive"] / client if client else None,
        "openssh_client_seconds": client,
        "naive_seconds": naive,
        "naive_rows": naive_rows,
    }


def main(argv: list[str] | None = None) -> None:
    from _common import worker_main

    argv = sys.argv[1:] if argv is None else argv
    if worker_main(argv, WORKERS):
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--naive-rows", type=int, default=1_000_000)
    parser.add_argument("--encoding", default="utf-8", choices=["utf-8", "windows-1256"])
    parser.add_argument("--persian-share", type=float, default=0.1)
    parser.add_argument("--workdir", type=Path, help="keep the server, deliveries and logs here (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="anbar-bench-ingest-") as tmp:
        workdir = args.workdir or Path(tmp)
        r = measure(args.rows, args.naive_rows, workdir, encoding=args.encoding, persian_share=args.persian_share)
        summarise(r)


if __name__ == "__main__":
    main()
