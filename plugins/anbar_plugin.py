"""The anbar Airflow plugin: registers the Jalali monthly timetable.

Airflow serializes a DAG's timetable by the class's import path and, for anything
outside ``airflow.timetables``, only accepts classes that a plugin lists in
``timetables``; the dag-processor, the scheduler and the API server all load this
file from the plugins folder. DAG files import the class as
``from anbar.timetables import JalaliMonthlyTimetable`` (the path registered here).

It also offers the period helpers as template macros, e.g.
``{{ macros.anbar.period_label_for(data_interval_start) }}`` -> ``1404-08``.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from anbar.timetables import JalaliMonthlyTimetable, period_for, period_label_for


class AnbarPlugin(AirflowPlugin):
    name = "anbar"
    timetables = [JalaliMonthlyTimetable]  # noqa: RUF012 (AirflowPlugin declares these as lists)
    macros = [period_label_for, period_for]  # noqa: RUF012
