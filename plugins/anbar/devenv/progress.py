"""The stages of ``make demo``, timed: one progress line as each stage ends, and a summary at the end.

``make demo`` passes the instant it started (``ANBAR_DEMO_STARTED_AT``, seconds since the epoch) so that the
install of the virtual environment before ``anbar demo up`` is the first stage; the elapsed time on every
line is counted from then.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

STARTED_AT_ENV = "ANBAR_DEMO_STARTED_AT"


def _clock(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour on)."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class Stages:
    """Stage timer. ``with stages.stage("name"):`` times one stage; ``summary()`` is the table at the end."""

    say: Callable[[str], None]
    started_at: float = field(default_factory=time.time)
    clock: Callable[[], float] = time.time
    times: list[tuple[str, float]] = field(default_factory=list)

    @classmethod
    def from_environment(cls, say: Callable[[str], None], first_stage: str = "install") -> Stages:
        """Timed from ``ANBAR_DEMO_STARTED_AT`` when ``make demo`` set it, the time until now being the first
        stage (the virtual environment and its dependencies); else from now."""
        now = time.time()
        value = os.environ.get(STARTED_AT_ENV, "").strip()
        try:
            started = float(value) if value else now
        except ValueError:
            started = now
        started = min(started, now)
        stages = cls(say=say, started_at=started)
        if started < now:
            stages.record(first_stage, now - started)
        return stages

    def elapsed(self) -> float:
        return self.clock() - self.started_at

    def record(self, name: str, seconds: float) -> None:
        self.times.append((name, seconds))
        self.say(f"[{_clock(self.elapsed())}] {name}: done in {seconds:.1f} s")

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        begun = self.clock()
        yield
        self.record(name, self.clock() - begun)

    def summary(self) -> str:
        width = max([len(name) for name, _ in self.times] + [len("total")])
        lines = ["Time per stage:"]
        lines += [f"  {name:<{width}}  {seconds:7.1f} s" for name, seconds in self.times]
        lines.append(f"  {'total':<{width}}  {self.elapsed():7.1f} s  ({_clock(self.elapsed())})")
        return "\n".join(lines)
