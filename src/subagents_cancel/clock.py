"""Where time comes from: grace windows, bounded waits and elapsed times all read a `Clock`.

Production code uses [`MonotonicClock`][subagents_cancel.clock.MonotonicClock]. Tests pass a
[`ManualClock`][subagents_cancel.testing.ManualClock] and move time with `advance()`, so a 30 s grace
window expires at once and nothing sleeps.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

import anyio

__all__ = ('Clock', 'MonotonicClock', 'reads_loop_time', 'sleep_until')


@runtime_checkable
class Clock(Protocol):
    """A source of monotonic time in seconds, and deadlines measured on it."""

    def now(self) -> float:
        """The current time in seconds; only differences between two readings mean anything."""
        ...

    def deadline_scope(self, deadline: float) -> AbstractContextManager[anyio.CancelScope]:
        """A cancel scope that is cancelled when the clock reaches `deadline` (like `anyio.move_on_after`)."""
        ...


async def sleep_until(clock: Clock, deadline: float) -> None:
    """Sleep until `clock` reaches `deadline`."""
    with clock.deadline_scope(deadline):
        await anyio.sleep_forever()


class MonotonicClock:
    """The real clock: `time.monotonic()`, the same time base as asyncio's event loop."""

    def now(self) -> float:
        """The current monotonic time in seconds."""
        return time.monotonic()

    def deadline_scope(self, deadline: float) -> anyio.CancelScope:
        """A cancel scope with an anyio deadline at `deadline` (the scope itself: no wrapper to allocate)."""
        return anyio.CancelScope(deadline=deadline)


def reads_loop_time(clock: Clock) -> bool:
    """Whether `clock` reads the event loop's own time, so a loop timer (`loop.call_at`) can stand for its deadline.

    Only the real clock does: a test's `ManualClock`, a workflow's clock and a subclass may not, and keep their
    deadline scopes, which fire as they advance.
    """
    return type(clock) is MonotonicClock
