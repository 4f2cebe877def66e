"""The anbar Airflow plugin: the Jalali monthly timetable, period macros, and the Data Docs web app.

Airflow serializes a DAG's timetable by the class's import path and, for anything
outside ``airflow.timetables``, only accepts classes that a plugin lists in
``timetables``; the dag-processor, the scheduler and the API server all load this
file from the plugins folder. DAG files import the class as
``from anbar.timetables import JalaliMonthlyTimetable`` (the path registered here).

It also offers the period helpers as template macros, e.g.
``{{ macros.anbar.period_label_for(data_interval_start) }}`` -> ``1404-08``.

The API server mounts the Data Docs app (:mod:`anbar.web`) under ``/anbar-docs``: the Great
Expectations Data Docs of every validated delivery, for users allowed to read the organisation's
ingest DAG (the app authenticates every request itself: Airflow does not authenticate plugin apps).
A DAG run's page gets a "Data Docs" tab listing the sites that run built.

A second plugin mounts the Submissions page (:mod:`anbar.status_web`) under ``/anbar-submissions``: the
status of every expected submission, linked from the navigation and from each DAG's page.

A third registers the custom deadline reference of the ingest DAGs' reminders, late notices and
escalations (:class:`anbar.alerts.DatasetDueDate`): Airflow rebuilds a ``DeadlineAlert``'s reference by
class path and only accepts a custom one that a plugin lists in ``deadline_references``; the scheduler
evaluates it when it creates a run (the API server for a triggered one).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from anbar import status_web
from anbar.alerts import DatasetDueDate, patch_dag_test_deadline_pruning
from anbar.data_docs import URL_PREFIX
from anbar.timetables import JalaliMonthlyTimetable, period_for, period_label_for
from anbar.web import app as data_docs_app


class AnbarPlugin(AirflowPlugin):
    name = "anbar"
    timetables = [JalaliMonthlyTimetable]  # noqa: RUF012 (AirflowPlugin declares these as lists)
    macros = [period_label_for, period_for]  # noqa: RUF012
    fastapi_apps = [{"app": data_docs_app, "url_prefix": URL_PREFIX, "name": "anbar data docs"}]  # noqa: RUF012
    # A tab on every DAG run's page (the UI fills in the ids; a relative href follows [api] base_url).
    external_views = [  # noqa: RUF012
        {
            "name": "Data Docs",
            "href": f"{URL_PREFIX.lstrip('/')}/runs/{{DAG_ID}}/{{RUN_ID}}/",
            "destination": "dag_run",
            "url_route": "anbar-data-docs",
        }
    ]


class AnbarSubmissionsPlugin(AirflowPlugin):
    name = "anbar_submissions"
    fastapi_apps = [  # noqa: RUF012
        {"app": status_web.app, "url_prefix": status_web.URL_PREFIX, "name": "anbar submissions"}
    ]
    # Relative hrefs follow [api] base_url; url_route shows the page inside the Airflow UI.
    external_views = [  # noqa: RUF012
        {
            "name": "Submissions",
            "href": f"{status_web.URL_PREFIX.lstrip('/')}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "anbar-submissions",
        },
        {
            "name": "Submissions",
            "href": f"{status_web.URL_PREFIX.lstrip('/')}/dags/{{DAG_ID}}",
            "destination": "dag",
            "url_route": "anbar-dag-submissions",
        },
    ]


class AnbarAlertsPlugin(AirflowPlugin):
    name = "anbar_alerts"
    deadline_references = [DatasetDueDate]  # noqa: RUF012


patch_dag_test_deadline_pruning()  # apache/airflow#73428: DAG.test() of a DAG with deadlines (see anbar.alerts)
