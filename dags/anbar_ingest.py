"""Airflow ingest DAGs: one per organisation in registry/ (see anbar.ingest_dag)."""

from anbar.ingest_dag import build_ingest_dag
from anbar.registry import load_registry

_registry = load_registry()

for _org in _registry.organisations.values():
    globals()[f"anbar_ingest__{_org.code}"] = build_ingest_dag(_org, _registry)
