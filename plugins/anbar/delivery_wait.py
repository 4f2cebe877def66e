"""Waiting for a supplier's delivery without holding a worker slot: the ingest DAG's ``wait_for_delivery``.

The task looks once, in the worker (``anbar.ingest.probe``: is the manifest there, has the deadline
passed?). A delivery already there goes straight on; otherwise the task defers to :class:`DeliveryTrigger`,
which looks again every ``poke_interval`` from the triggerer until the manifest is there or the due date
plus grace has passed (``missing``). Between looks no worker slot is held and no task process starts: a
reschedule-mode sensor would start one per look, with the task's imports, for every dataset of every
organisation that is late.

A look that fails (the supplier's server down, its host key changed) ends the wait with the error, so the
task fails and Airflow's retries look again, as a failing poke of a sensor would.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from airflow.sdk import BaseOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

from anbar.dag_defaults import label_map_index


def look(org_code: str, dataset: str, period: str) -> dict[str, Any]:
    """One look for the delivery: the step as ``anbar.ingest.probe`` returns it (waiting, received, missing)."""
    from anbar import ingest

    return ingest.probe(org_code, dataset, period, now=dt.datetime.now(dt.UTC)).to_xcom()


class DeliveryTrigger(BaseTrigger):
    """Looks for a delivery every ``poke_seconds`` until it is there or missing (runs in the triggerer; each
    look in a thread, as the transports' hooks are blocking)."""

    def __init__(self, org_code: str, dataset: str, period: str, poke_seconds: float):
        super().__init__()
        self.org_code = org_code
        self.dataset = dataset
        self.period = period
        self.poke_seconds = float(poke_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "org_code": self.org_code,
                "dataset": self.dataset,
                "period": self.period,
                "poke_seconds": self.poke_seconds,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                step = await asyncio.to_thread(look, self.org_code, self.dataset, self.period)
            except Exception as exc:  # the task fails with it, and its retries look again
                yield TriggerEvent({"error": f"{type(exc).__name__}: {exc}"})
                return
            if step["state"] != "waiting":
                yield TriggerEvent({"step": step})
                return
            self.log.info(
                "%s/%s/%s: no manifest yet; next look in %.0f s",
                self.org_code,
                self.dataset,
                self.period,
                self.poke_seconds,
            )
            await asyncio.sleep(self.poke_seconds)


class DeliveryWaitFailed(RuntimeError):
    """A look for the delivery failed in the triggerer (the task's retries look again)."""


class WaitForDelivery(BaseOperator):
    """Returns the delivery's step (``received`` or ``missing``) as its XCom; deferred while it waits.

    ``due`` is the mapped ``{"dataset", "period"}`` of the run (``datasets_due``)."""

    template_fields = ("due",)
    ui_color = "#e8f0f8"

    def __init__(
        self,
        *,
        org_code: str,
        due: dict | Any,
        poke_interval: dt.timedelta,
        wait_timeout: dt.timedelta | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.org_code = org_code
        self.due = due
        self.poke_interval = poke_interval
        self.wait_timeout = wait_timeout  # a bound beside the deadline the looks themselves keep

    def execute(self, context) -> dict[str, Any] | None:
        label_map_index(context, self.due)
        step = look(self.org_code, self.due["dataset"], self.due["period"])
        if step["state"] != "waiting":
            return step
        self.log.info("no manifest yet: waiting in the triggerer, a look every %s", self.poke_interval)
        self.defer(
            trigger=DeliveryTrigger(
                self.org_code, self.due["dataset"], self.due["period"], self.poke_interval.total_seconds()
            ),
            method_name="execute_complete",
            timeout=self.wait_timeout,
        )
        return None

    def execute_complete(self, context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        label_map_index(context, self.due)
        if not event or "error" in event:
            raise DeliveryWaitFailed(
                f"looking for {self.org_code}/{self.due['dataset']}/{self.due['period']} failed: "
                f"{(event or {}).get('error', 'the trigger ended without an event')}"
            )
        return event["step"]
