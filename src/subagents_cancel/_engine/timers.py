"""One owner's timers: grace windows, deadlines and region budgets, all kept on the owner's side of the transport.

A task never keeps a timer of its owner's: a task on another machine may not hear a request at all, and a
grace window must still end on time. The owner sets each timer here, and one asyncio task sleeps until the
earliest, on the owner's [`Clock`][subagents_cancel.clock.Clock] (so a `ManualClock` in a test fires them
without waiting). Thousands of running tasks with deadlines cost one sleeping task, not thousands.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from subagents_cancel.clock import Clock, reads_loop_time

__all__ = ('Timer', 'Timers')

_log = logging.getLogger('subagents_cancel')
_COMPACT_AFTER = 64
"""Cancelled entries the heap keeps before it may be made anew without them."""


@dataclass(eq=False, slots=True)
class Timer:
    """A callback due at a clock time; `cancel()` before then and it never runs."""

    when: float
    callback: Callable[[], None] = field(repr=False)
    cancelled: bool = False
    on_cancel: Callable[[Timer], None] | None = field(default=None, repr=False)
    """Told when the timer is cancelled before it fired (its `Timers` stops sleeping until it)."""

    def cancel(self) -> None:
        """Make sure the callback does not run (a no-op once it has); the timer keeps nothing of it from then on."""
        if not self.cancelled:
            self.cancelled = True
            self.callback = _nothing
            if self.on_cancel is not None:
                self.on_cancel(self)


def _nothing() -> None:
    """The callback of a timer cancelled before its time."""


def _resolve(changed: asyncio.Future[None]) -> None:
    """The sleeper's time came: wake it (unless something woke it first)."""
    if not changed.done():
        changed.set_result(None)


class Timers:
    """The timers of one owner, fired in order of their time (then of their setting) by one sleeping task.

    Callbacks run in that task, synchronously, one at a time; one that raises is logged and the others still run.
    """

    def __init__(self, clock: Clock, *, name: str = 'timers') -> None:
        self._clock = clock
        self._name = name
        self._heap: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()
        self._changed: asyncio.Future[None] | None = None
        """What the sleeper waits on: done to wake it (a bare future: one step of the loop, nothing to make)."""
        self._task: asyncio.Task[None] | None = None
        self._live = 0
        """How many timers are set and neither fired nor cancelled."""
        self._cancelled_entries = 0
        """How many entries of the heap are timers cancelled before their time (see `_cancelled`)."""
        self._closed = False
        self._on_loop_time = reads_loop_time(clock)
        """Whether the clock reads the event loop's time: then a loop timer of its own (`_alarm`) wakes the sleeper."""
        self._alarm_context = contextvars.Context()
        """What the sleeper's alarm runs in: it only wakes the sleeper, and keeps no context of whoever set a timer.
        One per owner, whose loop alone runs it: a context can be entered by one thread at a time, and two owners
        may run on two loops in two threads (a sync tool running a parent agent of its own with `run_sync`)."""
        self._alarm: asyncio.TimerHandle | None = None
        """On the loop's time, while the sleeper sleeps until the earliest timer: the loop timer that wakes it then.
        An earlier timer moves it, and cancelling the last one cancels it, without waking the sleeper."""

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run `callback` once the clock reaches `when` (at once, if it has); return a handle to cancel it.

        Raises:
            RuntimeError: the timers were closed.
        """
        if self._closed:
            raise RuntimeError('These timers are closed.')
        timer = Timer(when, callback, on_cancel=self._cancelled)
        self._live += 1
        earliest = self._heap[0][0] if self._heap else None
        heapq.heappush(self._heap, (when, next(self._order), timer))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._fire_due(), name=self._name)
        elif earliest is None or when < earliest:
            self._earlier(when)
        return timer

    def _earlier(self, when: float) -> None:
        """The earliest timer is now due at `when`: the sleeper's alarm is moved there, or the sleeper woken."""
        changed = self._changed
        if self._on_loop_time and changed is not None and not changed.done():  # the sleeper sleeps on `changed`
            self._drop_alarm()
            self._alarm = asyncio.get_running_loop().call_at(when, _resolve, changed, context=self._alarm_context)
        else:
            self._wake()  # the sleeper wakes and sleeps again until the new earliest time

    def _cancelled(self, timer: Timer) -> None:
        """`timer` was cancelled: if it was the last one set, the sleeper sleeps without a deadline from now on.

        A sleeper left sleeping until a cancelled time keeps a live timer on the event loop, and asyncio then keeps
        every cancelled timer behind it (with the context of the task that set it: a stopped run's whole state)
        until that time; with nothing live left, the loop drops them at once. So the sleeper's alarm is cancelled
        (and the heap, only cancelled entries now, emptied), or on another clock the sleeper woken. While other
        timers are set, the sleeper is left alone (a region's thousand cancels wake it once, not a thousand times).
        """
        self._live -= 1
        self._cancelled_entries += 1
        if self._live == 0:
            if self._on_loop_time:
                self._heap = []  # made anew, not emptied: `aclose` may be going through the old one
                self._cancelled_entries = 0
                self._drop_alarm()
            else:
                self._wake()
        elif (
            not self._closed
            and self._cancelled_entries > _COMPACT_AFTER
            and 2 * self._cancelled_entries > len(self._heap)
        ):
            # The sleeper drops a cancelled entry once it is the earliest; behind a live timer, the deadlines of a
            # long-lived owner's ended tasks would pile up. Once they are most of the heap, it is made anew without
            # them (as asyncio's loop does with its cancelled timer handles): each entry is copied at most once per
            # cancel, on average.
            self._heap = [entry for entry in self._heap if not entry[2].cancelled]
            heapq.heapify(self._heap)
            self._cancelled_entries = 0

    def pending_entries(self) -> int:
        """How many entries the sleeper's heap holds, cancelled timers included: about twice `len()` at most."""
        return len(self._heap)

    def _drop_alarm(self) -> None:
        """Cancel the sleeper's alarm, if one is set."""
        if self._alarm is not None:
            self._alarm.cancel()
            self._alarm = None

    def _wake(self) -> None:
        changed = self._changed
        if changed is not None and not changed.done():
            changed.set_result(None)

    def __len__(self) -> int:
        """How many timers are set and not yet fired or cancelled."""
        return self._live

    async def aclose(self) -> None:
        """Cancel every timer that has not fired, and stop the sleeping task; idempotent."""
        self._closed = True
        for _, _, timer in self._heap:
            timer.cancel()
        self._heap.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait((task,))

    async def _fire_due(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while self._heap and self._heap[0][2].cancelled:
                heapq.heappop(self._heap)
                self._cancelled_entries -= 1
            when = self._heap[0][0] if self._heap else None
            if when is None or self._clock.now() < when:
                changed = self._changed = loop.create_future()
                if when is not None and self._on_loop_time:  # a loop timer wakes it: no cancel scope to enter
                    self._alarm = loop.call_at(when, _resolve, changed, context=self._alarm_context)
                try:
                    if when is None or self._on_loop_time:
                        await changed
                    else:
                        with self._clock.deadline_scope(when):
                            await changed
                finally:
                    self._drop_alarm()  # set here, or by a timer set earlier while it slept
                continue
            _, _, timer = heapq.heappop(self._heap)
            timer.cancelled = True  # fired: a later `cancel()` is a no-op, and it is not counted as set
            self._live -= 1
            try:
                timer.callback()
            except Exception:  # noqa: BLE001 - one owner callback's bug must not stop every other timer
                _log.exception('a timer callback of %s raised', self._name)
