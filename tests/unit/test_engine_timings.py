"""The pass's own account of a delivery: seconds and peak memory per sub-step (the ledger's ``timed`` event)."""

from __future__ import annotations

import sys

import pytest

from anbar.engine.delivery import Timings


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the high-water mark is Linux's /proc")
def test_each_sub_step_records_its_seconds_and_the_peak_memory_so_far():
    timings = Timings()
    timings.lap("small")
    grown = b"x" * (64 << 20)  # written: resident
    timings.lap("large")
    del grown
    timings.lap("after")
    assert set(timings.steps) == {"small", "large", "after"}
    assert all(s >= 0 for s in timings.steps.values())
    peak = timings.peak_rss_mib
    assert peak["large"] >= peak["small"] + 60  # the step that needed the memory is where the mark grows
    assert peak["after"] >= peak["small"] + 60  # a high-water mark: freeing does not lower it
