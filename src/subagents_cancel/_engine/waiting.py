"""Waiting for tasks without polling: a waiter is woken only by a change to a task it watches."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import anyio

from subagents_cancel.clock import Clock
from subagents_cancel.messages import TaskId
from subagents_cancel.outcomes import WaitFor
from subagents_cancel.states import TaskStatus

from .registry import TaskRecord

__all__ = ('Waiters',)


@dataclass(eq=False, slots=True)
class _Waiter:
    """One caller's wait, woken through a bare future made only once it waits.

    Not an `anyio.Event`: its wrappers cost a wait more than the rest of its bookkeeping, and a wait that is over at
    once needs no future at all.
    """

    watched: frozenset[TaskId]
    unsettled: set[TaskId]
    wait_for: WaitFor
    stop_on_question: bool
    woken: bool = False
    wakeup: asyncio.Future[None] | None = None

    def update(self, record: TaskRecord) -> None:
        if record.settled:
            self.unsettled.discard(record.task_id)
        done = not self.unsettled or (self.wait_for == 'any' and len(self.unsettled) < len(self.watched))
        if done or (self.stop_on_question and _asks_parent(record)):
            self.woken = True
            if self.wakeup is not None and not self.wakeup.done():  # a wait cancelled meanwhile cancelled it
                self.wakeup.set_result(None)


def _asks_parent(record: TaskRecord) -> bool:
    """Whether the task waits for an answer only its parent can give (a cancel answers the question itself)."""
    return record.status is TaskStatus.WAITING_FOR_ANSWER and not record.state.cancel_requested


class Waiters:
    """The callers waiting on one owner's tasks."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._waiting: set[_Waiter] = set()

    def notify(self, record: TaskRecord) -> None:
        """`record` changed: wake whoever waits on it, if that completes their wait."""
        for waiter in tuple(self._waiting):
            if record.task_id in waiter.watched:
                waiter.update(record)

    async def wait_until(
        self, records: Sequence[TaskRecord], wait_for: WaitFor, *, deadline: float | None, stop_on_question: bool
    ) -> bool:
        """Wait until `records` are settled by `wait_for` (or one asks, if `stop_on_question`); `False` on timeout.

        A record is settled when it has ended and any fallback it started has ended too. A wait that is over
        at once still yields to the event loop, so a caller that waits in a loop never starves other tasks.
        """
        waiter = _Waiter(
            watched=frozenset(record.task_id for record in records),
            unsettled={record.task_id for record in records if not record.settled},
            wait_for=wait_for,
            stop_on_question=stop_on_question,
        )
        for record in records:
            waiter.update(record)
        if waiter.woken or not records:
            await anyio.lowlevel.checkpoint()
            return True
        waiter.wakeup = asyncio.get_running_loop().create_future()
        self._waiting.add(waiter)
        try:
            with self._clock.deadline_scope(deadline) if deadline is not None else nullcontext():
                await waiter.wakeup
        finally:
            self._waiting.discard(waiter)
        return waiter.woken
