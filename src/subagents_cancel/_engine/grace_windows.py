"""The grace windows of one owner's soft cancels, timed on the owner's side of the transport.

A soft cancel gives its task `grace_seconds` to wrap up. The window is the owner's: it ends on the owner's
[`Clock`][subagents_cancel.clock.Clock] whether or not the task heard the request (a task on another machine may
never hear it), and then the owner escalates the cancel to a hard one. One
[`Timers`][subagents_cancel._engine.timers.Timers] serves every window of the owner; a window ends early when its task
does.
"""

from __future__ import annotations

from collections.abc import Callable

from subagents_cancel.clock import Clock
from subagents_cancel.messages import TaskId

from .timers import Timer, Timers

__all__ = ('GraceWindows',)


class GraceWindows:
    """The open grace windows of one owner's tasks, at most one per task, each calling back when it runs out."""

    def __init__(self, clock: Clock) -> None:
        self._timers = Timers(clock, name='grace windows')
        self._open: dict[TaskId, Timer] = {}
        self._closed = False

    def open(self, task_id: TaskId, ends_at: float, expired: Callable[[], None]) -> None:
        """Call `expired` once the clock reaches `ends_at`, unless the window is ended first; no-op once closed."""
        if not self._closed:
            self._open[task_id] = self._timers.call_at(ends_at, lambda: self._expire(task_id, expired))

    def end(self, task_id: TaskId) -> None:
        """The task has ended: its window, if it has one open, never runs out."""
        if (timer := self._open.pop(task_id, None)) is not None:
            timer.cancel()

    async def aclose(self) -> None:
        """End every window and stop the timers; later windows are not opened. Idempotent."""
        self._closed = True
        self._open.clear()
        await self._timers.aclose()

    def _expire(self, task_id: TaskId, expired: Callable[[], None]) -> None:
        self._open.pop(task_id, None)
        expired()
