"""Airflow DAG `anbar_access_expiry` (airflow dags folder): revoke access decisions whose last day has passed."""

from anbar.access_dag import build_access_expiry_dag

dag = build_access_expiry_dag()
