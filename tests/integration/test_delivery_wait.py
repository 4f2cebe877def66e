"""``wait_for_delivery`` against the real SFTP simulator: a delivery already there (or past its deadline) goes
on without deferring; one not there yet defers, and its trigger, rebuilt as the triggerer rebuilds it, looks
again until the manifest arrives; a look that fails ends the wait with the error, for the task's retries."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import json
import shutil

import pytest
from airflow.sdk.exceptions import TaskDeferred

from anbar.delivery_wait import DeliveryTrigger, DeliveryWaitFailed, WaitForDelivery
from anbar.devenv.postgres import free_port

pytestmark = pytest.mark.integration

ORG, DATASET = "sso", "insured_persons"
DELIVERED = "1404-07"  # published by the simulators
NOT_YET = "1405-11"  # due months from now, never published: waiting


def _wait(period: str) -> WaitForDelivery:
    due = {"dataset": DATASET, "period": period}
    return WaitForDelivery(task_id="wait_for_delivery", org_code=ORG, due=due, poke_interval=dt.timedelta(seconds=0.2))


def test_a_delivery_already_there_goes_on_without_deferring(fresh_warehouse, simulators):
    context: dict = {}
    step = _wait(DELIVERED).execute(context)
    assert step["state"] == "received"
    assert context["anbar_map_label"] == f"{DATASET} {DELIVERED}"


def test_a_delivery_not_there_yet_defers_and_its_trigger_sees_the_manifest_arrive(fresh_warehouse, simulators):
    waiting = _wait(NOT_YET)
    with pytest.raises(TaskDeferred) as deferred:
        waiting.execute({})
    assert deferred.value.method_name == "execute_complete"
    classpath, kwargs = deferred.value.trigger.serialize()
    module, _, name = classpath.rpartition(".")
    trigger = getattr(importlib.import_module(module), name)(**kwargs)  # rebuilt as the triggerer does
    outbox = simulators.sftp_root / ORG / "outbox" / DATASET
    period_dir = outbox / NOT_YET

    async def arrives_later() -> None:
        await asyncio.sleep(1.0)  # a few looks find nothing first
        period_dir.mkdir()
        shutil.copy(outbox / DELIVERED / "manifest.json", period_dir / "manifest.json")

    async def wait():
        arrival = asyncio.create_task(arrives_later())
        event = await asyncio.wait_for(anext(trigger.run()), timeout=60)
        await arrival
        return event

    try:
        event = asyncio.run(wait())
    finally:
        shutil.rmtree(period_dir, ignore_errors=True)
    assert event.payload["step"]["state"] == "received"
    context: dict = {}
    assert waiting.execute_complete(context, event.payload)["state"] == "received"
    assert context["anbar_map_label"] == f"{DATASET} {NOT_YET}"


def test_a_look_that_fails_ends_the_wait_with_its_error(fresh_warehouse, simulators, monkeypatch):
    variable = "AIRFLOW_CONN_ANBAR_SFTP_SSO"
    connection = json.loads(simulators.airflow_env()[variable])
    monkeypatch.setenv(variable, json.dumps({**connection, "port": free_port()}))  # the supplier's server is gone
    event = asyncio.run(asyncio.wait_for(anext(DeliveryTrigger(ORG, DATASET, NOT_YET, 0.1).run()), timeout=60))
    assert "SupplierUnavailable" in event.payload["error"]
    with pytest.raises(DeliveryWaitFailed, match=f"{ORG}/{DATASET}/{NOT_YET} failed: SupplierUnavailable"):
        _wait(NOT_YET).execute_complete({}, event.payload)
