"""Airflow DAG `anbar_monthly_report` (airflow dags folder): the monthly performance report to the minister's office."""

from anbar.monthly_report_dag import build_monthly_report_dag
from anbar.registry import load_registry

dag = build_monthly_report_dag(load_registry())
