"""Helpers for testing code that starts and cancels sub-agents: time that moves only when the test says so.

Grace windows, deadlines and bounded waits all read the [`Clock`][subagents_cancel.clock.Clock] a manager or a
capability is given. Give it a [`ManualClock`][subagents_cancel.testing.ManualClock] and a 30 s grace window
runs out when the test calls `advance(30)`, at once, with nothing sleeping. The
[testing guide](../guides/testing.md) shows it with scripted `FunctionModel` sub-agents.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Generator
from contextlib import contextmanager

import anyio

__all__ = ('ManualClock',)


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
