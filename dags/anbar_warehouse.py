"""Airflow DAG `anbar_warehouse` (airflow dags folder): the dbt warehouse build via Cosmos."""

from anbar.dbt.dag import build_warehouse_dag
from anbar.registry import load_registry

dag = build_warehouse_dag(load_registry())
