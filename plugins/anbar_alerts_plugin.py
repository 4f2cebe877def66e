"""The anbar plugin for delivery alerts: registers the custom deadline reference of the ingest DAGs.

Airflow rebuilds a DAG's ``DeadlineAlert`` references by class path, and only accepts a custom one
that a plugin lists in ``deadline_references``. The scheduler evaluates it when it creates a run (the
API server for a triggered run), so this file must be in the plugins folder of both. See
:mod:`anbar.alerts` for what the reference computes and who is mailed.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from anbar.alerts import DatasetDueDate, patch_dag_test_deadline_pruning

patch_dag_test_deadline_pruning()  # apache/airflow#73428: DAG.test() of a DAG with deadlines


class AnbarAlertsPlugin(AirflowPlugin):
    name = "anbar_alerts"
    deadline_references = [DatasetDueDate]  # noqa: RUF012 (AirflowPlugin declares these as lists)
