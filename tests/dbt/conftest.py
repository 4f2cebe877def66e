"""Fixtures of the dbt warehouse tests (data in anbar_dbt_testdata.py)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

# Before anything imports airflow (the DAG tests do): no telemetry, no examples, and an
# Airflow home of our own unless the caller chose one.
os.environ.setdefault("AIRFLOW__COSMOS__ENABLE_TELEMETRY", "False")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="anbar-airflow-home-"))
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")

from anbar_dbt_testdata import make_warehouse, warehouse_env


# --------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def local_pg(pg):
    """The session's PostgreSQL 18 (``pg`` of tests/conftest.py); these tests use databases
    of their own in it: dbt_wh, dbt_wh_dag and dbt_airflow."""
    return pg


@pytest.fixture(scope="session")
def registry():
    from anbar.registry import load_registry

    return load_registry()


@pytest.fixture(scope="session")
def warehouse(local_pg, registry):
    """The ``wh`` database bootstrapped and loaded with the synthetic deliveries."""
    return make_warehouse(local_pg, registry, "dbt_wh")


@pytest.fixture(scope="session")
def wh_env(local_pg):
    """Environment for dbt against the test warehouse (dev target, test pseudonym key)."""
    return warehouse_env(local_pg, "dbt_wh")


@pytest.fixture(scope="session")
def dbt_artifacts(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dbt-target")


@pytest.fixture(scope="session")
def dbt_manifest() -> Path:
    """``dbt_project/target/manifest.json``, freshly parsed (no database, no key)."""
    from anbar.dbt import dbt_parse

    started = time.monotonic()
    path = dbt_parse()
    print(f"\n[timing] dbt parse in {time.monotonic() - started:.1f}s")
    return path
