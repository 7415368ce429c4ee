"""The cyclic garbage collector is paused while many runs unwind at once, and restored afterwards."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import anyio
import pytest
from pydantic_ai import Agent

from subagents_cancel import SubAgentConfig, SubAgentManager
from subagents_cancel._engine.gc_pause import BULK, collector_paused

from .helpers import Script, call

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _collector_on() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.enable()
    yield
    if not was_enabled:  # pragma: no cover - pytest runs with the collector on
        gc.disable()


def test_pauses_only_for_a_bulk_stop_and_restores_the_collector() -> None:
    with collector_paused(BULK - 1):
        assert gc.isenabled()
    with collector_paused(BULK):
        assert not gc.isenabled()
        with collector_paused(BULK):  # a teardown inside a region cancel, or two at once
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_turned_off_by_the_application_stays_off() -> None:
    gc.disable()
    with collector_paused(BULK):
        assert not gc.isenabled()
    assert not gc.isenabled()


async def test_a_region_of_many_tasks_unwinds_with_the_collector_paused() -> None:
    """Each sub-agent's tool sees, as it is cancelled, that the collector is paused; after the cancel it is back."""
    blocked = 0
    all_blocked = anyio.Event()
    seen_while_unwinding: list[bool] = []

    async def research(topic: str) -> str:
        """Research a topic."""
        nonlocal blocked
        blocked += 1
        if blocked == BULK:
            all_blocked.set()
        try:
            await anyio.sleep_forever()
        finally:
            seen_while_unwinding.append(gc.isenabled())
        return 'unreachable'  # pragma: no cover

    sub = Script([call('research', topic='X') for _ in range(BULK)])
    config = SubAgentConfig(name='researcher', description='Researches', agent=Agent(sub.model, tools=[research]))
    async with SubAgentManager([config]) as manager:
        for _ in range(BULK):
            await manager.start('researcher', 'Research X', region='all')
        await all_blocked.wait()
        stopped = await manager.hard_cancel_region('all')
        assert gc.isenabled()

    assert len(stopped) == BULK and all(info.status.is_terminal for info in stopped)
    assert seen_while_unwinding == [False] * BULK
