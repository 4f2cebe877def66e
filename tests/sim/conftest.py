"""Fixtures for the simulated supplier systems (anbar.sim)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from anbar.registry import Registry, load_registry
from anbar.sim._loop import LoopThread
from anbar.sim.defects import SimConfig
from anbar.sim.population import Population

from .helpers import PERSONS, SEED, WORKPLACES


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry()


@pytest.fixture(scope="session")
def config() -> SimConfig:
    """A small population with no random defects (tests force defects via overrides)."""
    return SimConfig(seed=SEED, persons=PERSONS, workplaces=WORKPLACES, defect_share=0.0)


@pytest.fixture(scope="session")
def population(config: SimConfig) -> Population:
    return config.population()


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    """An event loop in a background thread for in-process servers."""
    lt = LoopThread("anbar-sim-test-loop")
    yield lt
    lt.close()
