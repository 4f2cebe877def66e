"""DAG parse benchmark: Airflow parsing dags/ against a registry of 20 organisations x 5 datasets,
against the real registry, in the same run.

    .venv/bin/python bench/bench_parse.py [--orgs 20] [--datasets 5] [--repeat 3]

The big registry is derived from the real one (``registry/*.yml``): organisation k is a copy of
sso, swo, cspf or tvto in turn under a code of its own (``sso_04`` ...), with its own datasets
repeated under new names (``insured_persons_2`` ...) up to ``--datasets``; code lists and
``ministry.yml`` are the real ones. ``ANBAR_REGISTRY`` points the dags/ files at it.

Each DAG file is parsed as Airflow's DAG processor parses it: by ``DagBag`` in a child forked
from a process that has Airflow loaded, so the file pays for everything it imports and builds
itself (anbar, the providers, Cosmos, the registry). The median of ``--repeat`` parses per file
is printed, then the whole folder in one process. Never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from anbar.registry import MINISTRY_FILE, default_root, load_registry
from anbar.settings import REPO_ROOT

DAGS = REPO_ROOT / "dags"


def make_registry(dest: Path, orgs: int, datasets: int, source: Path | None = None) -> Path:
    """A registry of ``orgs`` organisations with ``datasets`` datasets each, copied from ``source``."""
    source = source or default_root()
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "code_lists").mkdir(exist_ok=True)
    for path in (source / "code_lists").glob("*.yml"):
        (dest / "code_lists" / path.name).write_bytes(path.read_bytes())
    if (source / MINISTRY_FILE).exists():
        (dest / MINISTRY_FILE).write_bytes((source / MINISTRY_FILE).read_bytes())
    templates = [yaml.safe_load(p.read_text("utf-8")) for p in sorted(source.glob("*.yml")) if p.name != MINISTRY_FILE]
    for k in range(orgs):
        org = json.loads(json.dumps(templates[k % len(templates)]))  # a deep copy
        if k >= len(templates):
            org["code"] = f"{org['code']}_{k:02d}"
            org["names"] = {lang: f"{name} {k}" for lang, name in org["names"].items()}
            org["transport"]["conn_id"] = f"anbar_{org['transport']['kind']}_{org['code']}"
        own = org["datasets"]
        org["datasets"] = [
            {
                **own[j % len(own)],
                "name": own[j % len(own)]["name"] + (f"_{j // len(own) + 1}" if j >= len(own) else ""),
            }
            for j in range(datasets)
        ]
        (dest / f"{org['code']}.yml").write_text(yaml.safe_dump(org, allow_unicode=True, sort_keys=False), "utf-8")
    registry = load_registry(dest)  # the registry's own checks
    assert len(registry.organisations) == orgs and len(registry.datasets) == orgs * datasets
    return dest


def _parse_in_fork(target: Path) -> dict:
    """DagBag of one file (or the folder) in a forked child, timed there."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: parse, report, leave without cleanup
        os.close(read)
        from airflow.dag_processing.dagbag import DagBag

        t0, c0 = time.perf_counter(), time.process_time()
        bag = DagBag(dag_folder=str(target))
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        report = {
            "seconds": seconds,
            "cpu": cpu,
            "dags": len(bag.dags),
            "tasks": sum(len(d.tasks) for d in bag.dags.values()),
            "import_errors": {str(k): str(v)[:500] for k, v in bag.import_errors.items()},
        }
        os.write(write, json.dumps(report).encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 1 << 16):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks))


def _worker_parse(args: dict) -> dict:
    import airflow.sdk  # noqa: F401  (loaded in the DAG processor before it forks)
    from airflow.dag_processing.dagbag import DagBag  # noqa: F401

    files = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
    per_file = {}
    for path in files:
        runs = [_parse_in_fork(path) for _ in range(args["repeat"])]
        errors = {k: v for r in runs for k, v in r["import_errors"].items()}
        if errors:
            raise RuntimeError(f"{path.name} does not parse: {errors}")
        per_file[path.name] = {
            "seconds": statistics.median(r["seconds"] for r in runs),
            "cpu": statistics.median(r["cpu"] for r in runs),
            "dags": runs[0]["dags"],
            "tasks": runs[0]["tasks"],
        }
    folder = [_parse_in_fork(DAGS) for _ in range(args["repeat"])]
    return {
        "files": per_file,
        "folder_seconds": statistics.median(r["seconds"] for r in folder),
        "folder_cpu": statistics.median(r["cpu"] for r in folder),
        "folder_dags": folder[0]["dags"],
    }


WORKERS = {"parse": _worker_parse}


def parse_env(workdir: Path, registry: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "ANBAR_REGISTRY": str(registry),
            "AIRFLOW_HOME": str(workdir / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
            "GX_ANALYTICS_ENABLED": "False",
        }
    )
    return env


def measure(orgs: int, datasets: int, repeat: int, workdir: Path, out: Callable[[str], None] = print) -> dict:
    from _common import run_measured

    workdir.mkdir(parents=True, exist_ok=True)
    big = make_registry(workdir / "registry", orgs, datasets)
    real = load_registry()
    result = {}
    for label, root in (("real", default_root()), ("big", big)):
        result[label] = run_measured(
            "bench_parse", "parse", {"repeat": repeat}, parse_env(workdir, root), workdir / f"parse-{label}.log"
        )
    result["real_shape"] = f"{len(real.organisations)} organisations, {len(real.datasets)} datasets"
    result["big_shape"] = f"{orgs} organisations x {datasets} datasets"
    return result


def summarise(r: dict, out: Callable[[str], None] = print) -> dict[str, float]:
    out("DAG parse: DagBag per file, forked from a process with Airflow loaded; median of the repeats;")
    out("wall seconds (CPU seconds of the parsing process):")
    out(f"  {'file':28} {'real registry':>22}   {r['big_shape']}")
    for name, big in r["big"]["files"].items():
        real = r["real"]["files"][name]
        out(
            f"  {name:28} {real['seconds']:6.2f} ({real['cpu']:4.2f}) {real['dags']:2d} dags   "
            f"{big['seconds']:6.2f} ({big['cpu']:4.2f}) {big['dags']:3d} dags, {big['tasks']:4d} tasks"
        )
    for label, key in (("every file, one by one", "files"),):
        real = r["real"][key].values()
        big = r["big"][key].values()
        out(
            f"  {label:28} {sum(f['seconds'] for f in real):6.2f} ({sum(f['cpu'] for f in real):4.2f})           "
            f"{sum(f['seconds'] for f in big):6.2f} ({sum(f['cpu'] for f in big):4.2f})"
        )
    out(
        f"  {'the folder in one process':28} {r['real']['folder_seconds']:6.2f} ({r['real']['folder_cpu']:4.2f})  "
        f"         {r['big']['folder_seconds']:6.2f} ({r['big']['folder_cpu']:4.2f})"
        f"   (real registry: {r['real_shape']})"
    )
    slowest = max(r["big"]["files"].items(), key=lambda kv: kv[1]["seconds"])
    return {
        "slowest_file": slowest[0],
        "slowest_file_seconds": slowest[1]["seconds"],
        "slowest_file_cpu": slowest[1]["cpu"],
        "folder_seconds": r["big"]["folder_seconds"],
        "folder_cpu": r["big"]["folder_cpu"],
        "real_folder_seconds": r["real"]["folder_seconds"],
    }


def main(argv: list[str] | None = None) -> None:
    from _common import worker_main

    argv = sys.argv[1:] if argv is None else argv
    if worker_main(argv, WORKERS):
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--orgs", type=int, default=20)
    parser.add_argument("--datasets", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="anbar-bench-parse-") as tmp:
        summarise(measure(args.orgs, args.datasets, args.repeat, Path(tmp)))


if __name__ == "__main__":
    main()
