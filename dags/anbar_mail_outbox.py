"""Airflow DAG `anbar_mail_outbox` (airflow dags folder): mails the server refused, sent when it is back."""

from anbar.outbox_dag import build_outbox_dag

dag = build_outbox_dag()
