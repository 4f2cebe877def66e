"""``make bench`` cannot rot: bench/run_all.py runs end to end on a few rows and prints every ratio line.

Nothing about speed is asserted here (the bench prints its ratios; bench/RESULTS.md has them at full
size): only that every path ran and every target got its verdict. The dbt part builds the whole project
three times (about three minutes whatever the size), so it runs only with ``ANBAR_BENCH_SMOKE_DBT=1``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
VERDICT = re.compile(r"\| (PASS|MISS by [0-9.]+ ?[a-zA-Z]* \([0-9]+%\)) \|$")


def _run(*args: str) -> str:
    # A short work directory: PostgreSQL's socket path must stay under 108 bytes.
    with tempfile.TemporaryDirectory(prefix="anbar-smoke-") as workdir:
        proc = subprocess.run(
            [sys.executable, str(REPO / "bench" / "run_all.py"), "--workdir", workdir, *args],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        left = list(Path(workdir).iterdir())
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert not left, f"the bench left {left} behind"
    return proc.stdout


def _verdict_line(out: str, needle: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith("| ") and needle in line]
    assert len(lines) == 1, f"no target line with {needle!r} in:\n{out[-3000:]}"
    return lines[0]


def test_ingest_and_parse_benches_run_and_print_their_ratios():
    out = _run(
        *("--only", "ingest,parse", "--rows", "400", "--naive-rows", "400"),
        *("--orgs", "3", "--datasets", "2", "--repeat", "1"),
    )
    for needle in (
        "landed file to recorded decision / bare COPY",
        "suites try on the landed month / bare COPY",
        "peak RSS of the anbar processes",
        "naive path / anbar",
        "DAG parse, 3x2 registry, slowest file",
        "DAG parse, 3x2 registry, dags/ in one process",
    ):
        assert VERDICT.search(_verdict_line(out, needle)), _verdict_line(out, needle)
    assert "all the ingest steps / bare COPY" in out
    assert "read and convert" in out and "load, decide and record" in out  # the pass's sub-steps
    # Every path ran on the same extract, and the delivery balanced.
    assert re.search(r"outcome: accepted; rows in manifest 400 = loaded \d+ \+ rejected \d+", out), out
    assert "naive, all (400 rows)" in out


@pytest.mark.skipif(not os.environ.get("ANBAR_BENCH_SMOKE_DBT"), reason="set ANBAR_BENCH_SMOKE_DBT=1 (3 dbt builds)")
def test_dbt_bench_runs_and_prints_its_ratio():
    out = _run("--only", "dbt", "--months", "3", "--scale", "0.05")
    assert VERDICT.search(_verdict_line(out, "dbt build, month 3 / month 2"))
