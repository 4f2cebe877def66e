"""DAG integrity: every DAG file imports, and every DAG has an owner, tags and triage docs."""

from __future__ import annotations

from anbar.registry import load_registry

# dagbag: tests/conftest.py (the DAG folder, parsed once per session)


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_one_ingest_dag_per_registry_organisation(dagbag):
    expected = {f"anbar_ingest__{code}" for code in load_registry().organisations}
    assert expected <= set(dagbag.dags)


def test_every_dag_has_owner_tags_and_doc(dagbag):
    assert dagbag.dags
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and "triage" in dag.doc_md.lower(), f"{dag_id} has no doc_md with triage notes"
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id} has no owner"


def test_ingest_dags_map_over_the_datasets_due_with_readable_labels(dagbag):
    registry = load_registry()
    for code in registry.organisations:
        dag = dagbag.dags[f"anbar_ingest__{code}"]
        group = dag.task_group_dict["dataset"]
        (source,) = {arg.operator.task_id for arg in group._expand_input.value.values()}
        assert source == "datasets_due"
        for task in dag.tasks:
            if task.task_id.startswith("dataset."):
                assert task.map_index_template == "{{ anbar_map_label }}"


def test_jalali_suppliers_run_on_jalali_months(dagbag):
    from anbar.timetables import JalaliMonthlyTimetable

    registry = load_registry()
    for code, org in registry.organisations.items():
        timetable = dagbag.dags[f"anbar_ingest__{code}"].timetable
        assert isinstance(timetable, JalaliMonthlyTimetable) == (org.calendar.value == "jalali")


def test_sensor_does_not_hold_a_worker_slot(dagbag):
    sensor = dagbag.dags["anbar_ingest__sso"].get_task("dataset.wait_for_delivery")
    assert type(sensor).__name__ == "WaitForDelivery"  # deferred between looks, never holding a worker slot


def test_monthly_report_runs_on_the_ministry_report_day_and_maps_over_organisations(dagbag):
    from anbar.monthly_report_dag import targets
    from anbar.timetables import JalaliMonthlyTimetable

    registry = load_registry()
    dag = dagbag.dags["anbar_monthly_report"]
    assert dag.timetable == JalaliMonthlyTimetable(run_day=registry.ministry.report_day)
    assert not dag.catchup and dag.max_active_runs == 1
    group = dag.task_group_dict["report"]
    assert (
        group._expand_input.value
        == {"target": [*sorted(registry.organisations), "ministry"]}
        == {"target": targets(registry)}
    )
    assert {t.task_id: t.map_index_template for t in dag.tasks if t.task_id.startswith("report.")} == {
        "report.render_and_archive": "{{ anbar_map_label }}",
        "report.send": "{{ anbar_map_label }}",
    }
    assert dag.get_task("collect_figures").upstream_task_ids == {"sync_calendar"}
