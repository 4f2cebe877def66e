"""Fixtures of the fault tests: a landing archive of the test's own, the simulators' faults armed only
inside the test, quick bounded API retries, and deliveries large enough to be caught mid-COPY."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import pytest

from anbar.landing import LandingArchive


@pytest.fixture
def landing(tmp_path, monkeypatch) -> LandingArchive:
    """The steps land into the test's own archive (``ANBAR_LANDING_DIR``): what a fault left there is the test's."""
    monkeypatch.setenv("ANBAR_LANDING_DIR", str(tmp_path / "landing"))
    return LandingArchive(tmp_path / "landing")


@pytest.fixture
def faults(simulators):
    """The simulators' faults, disarmed after the test whatever happened."""
    with simulators.faults.armed() as armed:
        yield armed


API_PAGE_SIZE = 40


@pytest.fixture(scope="session")
def paged_api(pg, tmp_path_factory):
    """Simulators of their own whose API serves TVTO's 2025-09 trainees in pages of 40 (four pages)."""
    from anbar.sim import SimConfig, run_simulators_in_thread

    handle = run_simulators_in_thread(
        tmp_path_factory.mktemp("paged-api"), SimConfig(seed=7), {"tvto": ["2025-09"]}, api_page_size=API_PAGE_SIZE
    )
    yield handle
    handle.stop()


@pytest.fixture
def api_faults(paged_api, monkeypatch):
    """The paged API's connections in the environment, its faults disarmed after the test."""
    for key, value in paged_api.airflow_env().items():
        monkeypatch.setenv(key, value)
    with paged_api.faults.armed() as armed:
        yield armed


@pytest.fixture
def quick_api_retries(monkeypatch):
    """Three attempts per API request, 50 ms apart (doubling), no wait longer than 5 s."""
    monkeypatch.setenv("ANBAR_API_ATTEMPTS", "3")
    monkeypatch.setenv("ANBAR_API_BACKOFF_SECONDS", "0.05")
    monkeypatch.setenv("ANBAR_API_MAX_WAIT_SECONDS", "5")


def write_big_delivery(sftp_root: Path, period: str, copies: int) -> dict:
    """An SSO insured_persons delivery for ``period``: the simulated 1404-07 rows ``copies`` times over, each
    copy at workshops of its own (so the primary key stays unique and the delivery is accepted), a file of
    ~7.5 MB for 80 copies: its COPY takes long enough to be caught in the act. Returns its manifest."""
    outbox = Path(sftp_root) / "sso" / "outbox" / "insured_persons"
    template = (outbox / "1404-07" / "insured_persons_1404-07_part-001.csv").read_text(encoding="utf-8")
    header, _, body = template.partition("\n")
    records = list(csv.reader(io.StringIO(body)))
    workshop = header.split(",").index("workshop_code")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for copy in range(copies):
        writer.writerows([*r[:workshop], f"{r[workshop]}{copy:03d}", *r[workshop + 1 :]] for r in records)
    rows = len(records)
    data = (header + "\n" + out.getvalue()).encode("utf-8")
    name = f"insured_persons_{period}_part-001.csv"
    manifest = {
        "org": "sso",
        "dataset": "insured_persons",
        "period": period,
        "schema_version": 1,
        "encoding": "utf-8",
        "delimiter": ",",
        "files": [
            {"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "rows": rows * copies}
        ],
    }
    target = outbox / period
    target.mkdir(parents=True, exist_ok=True)
    (target / name).write_bytes(data)
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2))  # last, as the standard says
    return manifest
