"""The timers of one task's runner: none exists until one is needed, and all end with the run.

Most runs never start a timer: only a soft cancel that waits for the task's own sub-agents, or a hard stop that
waits for the verdict on a final answer, does. So the runner opens no task group and no cancel scope for them; each
timer is an asyncio task of its own, which the runner cancels and waits for as its run ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import anyio

__all__ = ('TaskTimers',)


class TaskTimers:
    """The timers a runner started, until the run is over; cheap while there are none."""

    __slots__ = ('_tasks',)

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] | None = None

    def start_soon(self, timer: Coroutine[Any, Any, None], *, name: str) -> None:
        """Run `timer` in an asyncio task of its own until it returns or `close` cancels it."""
        if self._tasks is None:
            self._tasks = []
        self._tasks.append(asyncio.get_running_loop().create_task(timer, name=name))

    async def close(self, *, raise_failure: bool = True) -> None:
        """Cancel the timers still going and wait for them (shielded: it is the run's end); then raise a failure.

        With `raise_failure`, the first timer that raised (our own code: a bug) raises here, as it would have out of
        a task group; without it (the run is already leaving with an exception), nothing is raised.
        """
        tasks, self._tasks = self._tasks, None
        if not tasks:
            return
        for task in tasks:
            task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.wait(tasks)
        failures = [error for task in tasks if not task.cancelled() and (error := task.exception()) is not None]
        if failures and raise_failure:
            raise failures[0]
