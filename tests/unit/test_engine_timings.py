"""The pass's own account of a delivery: seconds and peak memory per sub-step (the ledger's ``timed`` event)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# In a process of its own: a test worker's high-water mark is already whatever earlier tests reached.
SCENARIO = """
import json
from anbar.engine.delivery import Timings
timings = Timings()
timings.lap("small")
grown = b"x" * (64 << 20)  # written: resident
timings.lap("large")
del grown
timings.lap("after")
print(json.dumps({"steps": timings.steps, "peak": timings.peak_rss_mib}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the high-water mark is Linux's /proc")
def test_each_sub_step_records_its_seconds_and_the_peak_memory_so_far():
    out = subprocess.run([sys.executable, "-c", SCENARIO], capture_output=True, text=True, check=True, timeout=120)
    timings = json.loads(out.stdout.splitlines()[-1])
    assert set(timings["steps"]) == {"small", "large", "after"}
    assert all(s >= 0 for s in timings["steps"].values())
    peak = timings["peak"]
    assert peak["large"] >= peak["small"] + 60  # the step that needed the memory is where the mark grows
    assert peak["after"] >= peak["small"] + 60  # a high-water mark: freeing does not lower it
