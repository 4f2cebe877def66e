"""Airflow DAG `anbar_data_docs` (airflow dags folder): GX Data Docs of the deliveries decided since it last ran."""

from anbar.data_docs_dag import build_data_docs_dag

dag = build_data_docs_dag()
