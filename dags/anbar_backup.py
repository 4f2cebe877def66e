"""Airflow DAG `anbar_backup` (airflow dags folder): nightly pg_dump, verified by a restore, with retention."""

from anbar.backup_dag import build_backup_dag

dag = build_backup_dag()
