"""The dbt project's conventions, checked on the manifest (``dbt parse``: no database)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from anbar_dbt_testdata import MODELS

from anbar.dbt import PROJECT_DIR, REPO_ROOT


@pytest.fixture(scope="module")
def manifest(dbt_manifest) -> dict:
    return json.loads(dbt_manifest.read_text(encoding="utf-8"))


def _models(manifest) -> dict[str, dict]:
    return {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}


def test_parse_needs_no_database_nor_key(dbt_manifest):
    assert dbt_manifest.exists()


def test_models_and_layers(manifest):
    models = _models(manifest)
    assert set(models) == set(MODELS)
    prefix = {
        "staging": "stg_",
        "intermediate": "int_",
        "core": ("fct_", "dim_"),
        "marts": "mart_",
        "catalog": "catalog_",
    }
    for name, node in models.items():
        folder = node["fqn"][1]
        assert node["schema"] == folder, f"{name} builds into {node['schema']}, not {folder}"
        assert name.startswith(prefix[folder]), f"{name} is in {folder}"


def test_only_staging_reads_sources(manifest):
    for name, node in _models(manifest).items():
        reads_sources = any(d.startswith("source.") for d in node["depends_on"]["nodes"])
        assert reads_sources == name.startswith("stg_"), name


def test_one_yaml_per_folder():
    for folder in ("staging", "intermediate", "marts"):
        yamls = sorted(p.name for p in (PROJECT_DIR / "models" / folder).glob("*.yml"))
        expected = [f"_{folder}__models.yml"] + (["_sources.yml"] if folder == "staging" else [])
        assert yamls == sorted(expected), folder


def test_every_model_has_a_unique_not_null_key(manifest):
    tested: dict[tuple[str, str], set[str]] = {}
    for node in manifest["nodes"].values():
        meta = node.get("test_metadata")
        if node["resource_type"] == "test" and meta and node.get("column_name"):
            model = node["attached_node"].split(".")[-1]
            tested.setdefault((model, node["column_name"]), set()).add(meta["name"])
    for name in _models(manifest):
        keys = [col for (model, col), kinds in tested.items() if model == name and {"unique", "not_null"} <= kinds]
        assert keys, f"{name} has no column tested unique and not_null"


def test_every_model_column_is_documented_through_a_doc_block(manifest):
    for name, node in _models(manifest).items():
        assert node["description"].strip(), name
        assert node["columns"], f"{name} documents no column"
        for col in node["columns"].values():
            assert col["doc_blocks"], f"{name}.{col['name']} is not documented with doc()"


def test_sqlfluff_lint_passes():
    sqlfluff = Path(sys.executable).parent / "sqlfluff"
    proc = subprocess.run(
        [str(sqlfluff), "lint", "dbt_project/models", "dbt_project/tests", "--nocolor"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
