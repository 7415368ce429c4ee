"""The owner's timers: one sleeping task fires every grace window, deadline and region budget on the owner's clock."""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Generator
from contextlib import contextmanager

import anyio
import pytest

from subagents_cancel._engine.timers import Timers
from subagents_cancel.clock import MonotonicClock
from subagents_cancel.testing import ManualClock

pytestmark = pytest.mark.anyio


async def settle() -> None:
    """Let the timers' task run until it sleeps again."""
    await anyio.wait_all_tasks_blocked()


async def test_timers_fire_in_order_of_time_as_the_clock_reaches_them() -> None:
    """Each callback runs once the clock reaches its time, earliest first, and not before."""
    clock = ManualClock()
    timers = Timers(clock)
    fired: list[str] = []
    timers.call_at(3, lambda: fired.append('three'))
    timers.call_at(1, lambda: fired.append('one'))
    timers.call_at(2, lambda: fired.append('two'))
    await settle()
    assert fired == []
    clock.advance(2)
    await settle()
    assert fired == ['one', 'two']
    clock.advance(5)
    await settle()
    assert fired == ['one', 'two', 'three']
    assert len(timers) == 0
    await timers.aclose()


async def test_an_earlier_timer_wakes_the_sleeper() -> None:
    """A timer set for before the one being slept for fires on its own time, not after the later one."""
    clock = ManualClock()
    timers = Timers(clock)
    fired: list[str] = []
    timers.call_at(10, lambda: fired.append('late'))
    await settle()
    timers.call_at(1, lambda: fired.append('early'))
    await settle()
    clock.advance(1)
    await settle()
    assert fired == ['early']
    await timers.aclose()


async def test_a_cancelled_timer_never_fires_and_a_due_one_fires_at_once() -> None:
    """`cancel()` before its time and the callback never runs; a timer set in the past runs without waiting."""
    clock = ManualClock(start=5)
    timers = Timers(clock)
    fired: list[str] = []
    timers.call_at(6, lambda: fired.append('cancelled')).cancel()
    timers.call_at(4, lambda: fired.append('due'))
    await settle()
    assert fired == ['due']
    clock.advance(10)
    await settle()
    assert fired == ['due']
    await timers.aclose()


async def test_a_callback_that_raises_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    """A callback's error is logged; the timers after it still fire."""
    clock = ManualClock()
    timers = Timers(clock, name='owner-1 timers')
    fired: list[str] = []

    def broken() -> None:
        raise RuntimeError('boom')

    timers.call_at(1, broken)
    timers.call_at(1, lambda: fired.append('after'))
    with caplog.at_level(logging.ERROR, logger='subagents_cancel'):
        clock.advance(1)
        await settle()
    assert fired == ['after']
    assert caplog.messages == ['a timer callback of owner-1 timers raised']
    await timers.aclose()


async def test_closing_cancels_what_is_left_and_stops_the_sleeper() -> None:
    """After `aclose()` nothing fires, no task is left running, and setting a timer is refused."""
    clock = ManualClock()
    timers = Timers(clock)
    fired: list[str] = []
    timers.call_at(1, lambda: fired.append('never'))
    await settle()
    await timers.aclose()
    await timers.aclose()  # idempotent
    clock.advance(2)
    await settle()
    assert fired == []
    with pytest.raises(RuntimeError, match='closed'):
        timers.call_at(3, lambda: None)


class _CountingClock(ManualClock):
    """A manual clock that counts the deadline scopes open on it: what the timers' task sleeps until."""

    def __init__(self) -> None:
        super().__init__()
        self.open_deadlines = 0

    @contextmanager
    def deadline_scope(self, deadline: float) -> Generator[anyio.CancelScope]:
        self.open_deadlines += 1
        try:
            with super().deadline_scope(deadline) as scope:
                yield scope
        finally:
            self.open_deadlines -= 1


async def test_the_sleeper_holds_no_deadline_once_every_timer_is_cancelled() -> None:
    """Cancelling the timers leaves the sleeper waiting without a deadline, until a new timer is set."""
    clock = _CountingClock()
    timers = Timers(clock)
    first = timers.call_at(1, lambda: None)
    second = timers.call_at(2, lambda: None)
    await settle()
    assert clock.open_deadlines == 1
    first.cancel()
    await settle()
    assert clock.open_deadlines == 1  # a timer is still set
    second.cancel()
    await settle()
    assert clock.open_deadlines == 0
    fired: list[str] = []
    timers.call_at(3, lambda: fired.append('third'))
    await settle()
    assert clock.open_deadlines == 1
    clock.advance(3)
    await settle()
    assert fired == ['third']
    await timers.aclose()


class _Payload:
    """What a timer's callback holds: a task's record, say."""

    def note(self) -> None:
        """The callback."""


async def test_a_cancelled_timer_keeps_nothing_of_its_callback_while_a_live_one_waits() -> None:
    """Cancelled timers due after a live one neither keep what their callbacks hold nor pile up behind it.

    A long-lived owner cancels a task's deadline when the task ends; its timers keep sleeping until later deadlines.
    """
    clock = ManualClock()
    timers = Timers(clock)
    live = timers.call_at(1, lambda: None)
    payloads = [_Payload() for _ in range(1000)]
    held = [weakref.ref(payload) for payload in payloads]
    for index in range(len(payloads)):
        timers.call_at(3600 + index, payloads[index].note).cancel()
    await settle()
    del payloads
    gc.collect()
    assert [ref for ref in held if ref() is not None] == []
    assert len(timers) == 1
    assert timers.pending_entries() < 100  # the heap of the sleeper is compacted, not 1,001 entries long
    live.cancel()
    await timers.aclose()


async def test_on_the_real_clock_an_earlier_timer_fires_while_a_later_one_waits() -> None:
    """On the event loop's own clock, a timer set before the one slept for fires on its time, the later one not."""
    clock = MonotonicClock()
    timers = Timers(clock)
    fired: list[str] = []
    early = anyio.Event()
    late = timers.call_at(clock.now() + 3600, lambda: fired.append('late'))
    await settle()

    def first() -> None:
        fired.append('early')
        early.set()

    timers.call_at(clock.now(), first)
    await early.wait()
    assert fired == ['early']
    assert len(timers) == 1
    late.cancel()
    await timers.aclose()


async def test_on_the_real_clock_cancelling_every_timer_keeps_no_entry() -> None:
    """On the event loop's own clock, once every timer is cancelled the sleeper keeps none, and a new one fires."""
    clock = MonotonicClock()
    timers = Timers(clock)
    first = timers.call_at(clock.now() + 3600, lambda: None)
    await settle()
    timers.call_at(clock.now() + 7200, lambda: None).cancel()
    first.cancel()
    assert (len(timers), timers.pending_entries()) == (0, 0)
    fired = anyio.Event()
    timers.call_at(clock.now(), fired.set)
    await fired.wait()
    assert len(timers) == 0
    await timers.aclose()
