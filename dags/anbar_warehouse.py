"""Airflow DAG `anbar_warehouse`: the dbt warehouse build (Cosmos), see anbar.dbt.dag."""
from anbar.dbt.dag import build_warehouse_dag
from anbar.registry import load_registry

dag = build_warehouse_dag(load_registry())
