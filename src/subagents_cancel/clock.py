"""Where time comes from: grace windows, bounded waits and elapsed times all read a `Clock`.

Production code uses [`MonotonicClock`][subagents_cancel.MonotonicClock]. Tests pass a
[`ManualClock`][subagents_cancel.ManualClock] and move time with `advance()`, so a 30 s grace
window expires at once and nothing sleeps.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Generator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol, runtime_checkable

import anyio

__all__ = ('Clock', 'ManualClock', 'MonotonicClock', 'sleep_until')


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

    @contextmanager
    def deadline_scope(self, deadline: float) -> Generator[anyio.CancelScope]:
        """A cancel scope with an anyio deadline at `deadline`."""
        with anyio.CancelScope(deadline=deadline) as scope:
            yield scope


class ManualClock:
    """A clock that moves only when told to, for tests: `advance()` fires every deadline it passes.

    Example:
        ```python
        clock = ManualClock()
        with clock.deadline_scope(clock.now() + 30) as scope:
            clock.advance(30)  # the scope is cancelled now, without waiting 30 seconds
            await anyio.sleep_forever()
        assert scope.cancelled_caught
        ```
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._scopes: list[tuple[float, int, anyio.CancelScope]] = []
        self._order = itertools.count()

    def now(self) -> float:
        """The time this clock was last moved to."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds` and cancel every scope whose deadline has been reached.

        Raises:
            ValueError: `seconds` is negative.
        """
        if not seconds >= 0:
            raise ValueError(f'A clock only moves forward; cannot advance by {seconds:g} seconds.')
        self._now += seconds
        while self._scopes and self._scopes[0][0] <= self._now:
            _, _, scope = heapq.heappop(self._scopes)
            scope.cancel()

    @contextmanager
    def deadline_scope(self, deadline: float) -> Generator[anyio.CancelScope]:
        """A cancel scope that `advance()` cancels once the clock reaches `deadline`."""
        scope = anyio.CancelScope()
        entry = (deadline, next(self._order), scope)
        if deadline <= self._now:
            scope.cancel()
        else:
            heapq.heappush(self._scopes, entry)
        try:
            with scope:
                yield scope
        finally:
            if entry in self._scopes:
                self._scopes.remove(entry)
                heapq.heapify(self._scopes)
