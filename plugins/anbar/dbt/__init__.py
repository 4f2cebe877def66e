"""The dbt warehouse project: paths, environment and helpers around ``dbt_project/``.

* ``dbt_parse()`` writes ``dbt_project/target/manifest.json`` (what the Cosmos DAG
  renders from); no database is needed, so missing connection variables are filled
  with placeholders.
* ``ensure_manifest()`` parses only when the manifest is missing or older than the
  project files.
* ``dbt_env(...)`` builds the ``ANBAR_WH_*`` variables ``profiles.yml`` reads.

CLI: ``python -m anbar.dbt parse | sources [--check] | build``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
PROJECT_DIR = REPO_ROOT / "dbt_project"
TARGET_DIR = PROJECT_DIR / "target"
MANIFEST_PATH = TARGET_DIR / "manifest.json"
PROJECT_NAME = "anbar"

# What profiles.yml reads; placeholders are enough for `dbt parse` (it never connects).
PROFILE_ENV_PLACEHOLDERS = {
    "ANBAR_WH_HOST": "127.0.0.1",
    "ANBAR_WH_PORT": "5432",
    "ANBAR_WH_USER": "anbar_admin",
    "ANBAR_WH_PASSWORD": "parse-only-placeholder",
    "ANBAR_WH_DBNAME": "warehouse",
}


def dbt_executable() -> Path:
    """The dbt of the running interpreter's environment (the project venv), else PATH."""
    candidate = Path(sys.executable).parent / "dbt"
    if candidate.exists():
        return candidate
    found = shutil.which("dbt")
    if found:
        return Path(found)
    raise FileNotFoundError("dbt executable not found next to the Python interpreter nor on PATH")


def dbt_env(
    *,
    host: str | None = None,
    port: int | str | None = None,
    user: str | None = None,
    password: str | None = None,
    dbname: str | None = None,
    target: str | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for a dbt subprocess: ``base`` (default os.environ) plus the given values.

    The pseudonym key is not passed: dbt never sees it (the database function uses the key
    installed in the warehouse), so it is removed from the environment dbt inherits."""
    env = dict(os.environ if base is None else base)
    env.pop("ANBAR_PSEUDONYM_KEY", None)
    values = {
        "ANBAR_WH_HOST": host,
        "ANBAR_WH_PORT": port,
        "ANBAR_WH_USER": user,
        "ANBAR_WH_PASSWORD": password,
        "ANBAR_WH_DBNAME": dbname,
        "ANBAR_WH_TARGET": target,
    }
    env.update({k: str(v) for k, v in values.items() if v is not None})
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")
    return env


def run_dbt(
    args: list[str], env: Mapping[str, str] | None = None, check: bool = True, capture: bool = False
) -> subprocess.CompletedProcess:
    """Run dbt against ``dbt_project/`` (its own profiles.yml) and return the process."""
    cmd = [
        str(dbt_executable()),
        *args,
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(PROJECT_DIR),
    ]
    proc = subprocess.run(
        cmd,
        env=dict(env if env is not None else dbt_env()),
        cwd=PROJECT_DIR,
        capture_output=capture,
        text=True,
    )
    if check and proc.returncode != 0:
        detail = f"\n{proc.stdout}\n{proc.stderr}" if capture else ""
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}{detail}")
    return proc


def dbt_parse(env: Mapping[str, str] | None = None) -> Path:
    """Run ``dbt parse`` and return the path of the manifest it wrote.

    Unset connection variables get placeholders: parsing reads no database.

    dbt writes into a target directory of this call's own (beside ``target/``, with the last parse's
    ``partial_parse.msgpack`` copied in so that it parses only what changed), and each file then takes
    its place in ``target/`` in one step, the manifest last: whatever reads the manifest meanwhile (the
    warehouse DAG is rendered from it, by a scheduler or another test worker) reads the old one or the
    new one, never half a file, and two parses at once do not write into each other.
    """
    env = dict(env if env is not None else os.environ)
    # dbt never needs the pseudonym key; keep the secret out of every artifact.
    env.pop("ANBAR_PSEUDONYM_KEY", None)
    for key, value in PROFILE_ENV_PLACEHOLDERS.items():
        env.setdefault(key, value)
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")
    TARGET_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".parse-", dir=TARGET_DIR))
    try:
        partial = TARGET_DIR / "partial_parse.msgpack"
        if partial.exists():
            shutil.copy2(partial, work / partial.name)
        run_dbt(["parse", "--quiet", "--target-path", str(work)], env=env, capture=True)
        if not (work / MANIFEST_PATH.name).exists():
            raise RuntimeError(f"dbt parse succeeded but wrote no manifest in {work}")
        written = sorted((p for p in work.iterdir() if p.is_file()), key=lambda p: p.name == MANIFEST_PATH.name)
        for path in written:
            os.replace(path, TARGET_DIR / path.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return MANIFEST_PATH


def _project_files() -> list[Path]:
    skip = {"target", "logs", "dbt_packages"}
    return [
        p for p in PROJECT_DIR.rglob("*") if p.is_file() and not skip.intersection(p.relative_to(PROJECT_DIR).parts)
    ]


def manifest_is_stale() -> bool:
    if not MANIFEST_PATH.exists():
        return True
    built = MANIFEST_PATH.stat().st_mtime
    return any(p.stat().st_mtime > built for p in _project_files())


def ensure_manifest() -> Path:
    """The manifest, parsed first when missing or older than any project file."""
    if manifest_is_stale():
        return dbt_parse()
    return MANIFEST_PATH
