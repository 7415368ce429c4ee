"""The receipts an owner waits for: each cancel request it sends is answered by the task, or by the task's end.

A task answers each [`CancelRequest`][subagents_cancel.messages.CancelRequest] with a receipt that names it in
`correlation_id` ([`CancelReceived`][subagents_cancel.messages.CancelReceived],
[`CancelHeld`][subagents_cancel.messages.CancelHeld] or [`CancelLost`][subagents_cancel.messages.CancelLost]);
[`RunFinished`][subagents_cancel.messages.RunFinished] answers every request of the task still without one. A
cancel command waits for them to return what the task did with its request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from subagents_cancel.messages import CancelHeld, CancelLost, CancelReceived, RunFinished, TaskId

__all__ = ('Receipts',)


@dataclass(eq=False, slots=True)
class _AllReceived:
    """One command's wait: its future is done once `remaining` more receipts have come."""

    future: asyncio.Future[None]
    remaining: int

    def one_came(self) -> None:
        self.remaining -= 1
        if self.remaining == 0 and not self.future.done():  # a waiter cancelled while waiting has cancelled it
            self.future.set_result(None)


class Receipts:
    """The cancel requests of one owner's tasks whose receipt has not come yet, by task and request id.

    A request's waiters are made only once a command waits for it: a hard cancel waits for the task's end instead,
    so most receipts are never awaited. A command waits on one bare future for all of its receipts, rather than on
    an `anyio.Event` per receipt inside a cancel scope: the wait is one step of the event loop, and its bound one
    loop timer.
    """

    def __init__(self) -> None:
        self._awaited: dict[TaskId, dict[str, tuple[_AllReceived, ...]]] = {}

    def expect(self, task_id: TaskId, request_id: str) -> None:
        """The request `request_id` was sent to the task: its receipt is awaited from now on."""
        self._awaited.setdefault(task_id, {})[request_id] = ()

    def pending(self, task_id: TaskId, request_id: str) -> bool:
        """Whether the request `request_id` was sent to the task and its receipt has not come yet."""
        return request_id in self._awaited.get(task_id, {})

    def all_received(self, task_ids: Iterable[TaskId]) -> asyncio.Future[None] | None:
        """A future done once the tasks have given the receipts of the requests sent to them so far.

        `None` if none is pending. Cancelling the future (as cancelling the task that awaits it does) changes nothing
        here.
        """
        pending = [awaited for task_id in task_ids if (awaited := self._awaited.get(task_id))]
        count = sum(len(awaited) for awaited in pending)
        if not count:
            return None
        wait = _AllReceived(asyncio.get_running_loop().create_future(), count)
        for awaited in pending:
            for request_id, waits in awaited.items():
                awaited[request_id] = (*waits, wait)
        return wait.future

    def received(self, message: CancelReceived | CancelHeld | CancelLost | RunFinished) -> None:
        """A receipt came (the run's end is the receipt of every request still without one)."""
        awaited = self._awaited.get(message.task_id, {})
        answered = tuple(awaited) if isinstance(message, RunFinished) else (message.correlation_id,)
        for request_id in answered:
            for wait in awaited.pop(request_id, ()):
                wait.one_came()
        if not awaited:
            self._awaited.pop(message.task_id, None)
