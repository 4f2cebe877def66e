"""Airflow DAG `anbar_audit` (airflow dags folder): the server's statement log into the audit schema, hourly."""

from anbar.audit_dag import build_audit_dag

dag = build_audit_dag()
