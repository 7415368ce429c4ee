"""The receipts an owner waits for: each cancel request it sends is answered by the task, or by the task's end.

A task answers each [`CancelRequest`][subagents_cancel.messages.CancelRequest] with a receipt that names it in
`correlation_id` ([`CancelReceived`][subagents_cancel.messages.CancelReceived],
[`CancelHeld`][subagents_cancel.messages.CancelHeld] or [`CancelLost`][subagents_cancel.messages.CancelLost]);
[`RunFinished`][subagents_cancel.messages.RunFinished] answers every request of the task still without one. A
cancel command waits for them to return what the task did with its request.
"""

from __future__ import annotations

import anyio

from subagents_cancel.messages import CancelHeld, CancelLost, CancelReceived, RunFinished, TaskId

__all__ = ('Receipts',)


class Receipts:
    """The cancel requests of one owner's tasks whose receipt has not come yet, by task and request id.

    A receipt's event is made only once a command waits for it: a hard cancel waits for the task's end instead, so
    most receipts are never awaited.
    """

    def __init__(self) -> None:
        self._awaited: dict[TaskId, dict[str, anyio.Event | None]] = {}

    def expect(self, task_id: TaskId, request_id: str) -> None:
        """The request `request_id` was sent to the task: its receipt is awaited from now on."""
        self._awaited.setdefault(task_id, {})[request_id] = None

    def pending(self, task_id: TaskId, request_id: str) -> bool:
        """Whether the request `request_id` was sent to the task and its receipt has not come yet."""
        return request_id in self._awaited.get(task_id, {})

    async def wait(self, task_id: TaskId) -> None:
        """Wait until the task has given the receipts of the requests sent to it so far (unbounded)."""
        awaited = self._awaited.get(task_id, {})
        for request_id in tuple(awaited):
            if request_id in awaited:  # not received while an earlier one was awaited
                receipt = awaited[request_id]
                if receipt is None:
                    receipt = awaited[request_id] = anyio.Event()
                await receipt.wait()

    def received(self, message: CancelReceived | CancelHeld | CancelLost | RunFinished) -> None:
        """A receipt came (the run's end is the receipt of every request still without one)."""
        awaited = self._awaited.get(message.task_id, {})
        answered = tuple(awaited) if isinstance(message, RunFinished) else (message.correlation_id,)
        for request_id in answered:
            if (receipt := awaited.pop(request_id, None)) is not None:
                receipt.set()
        if not awaited:
            self._awaited.pop(message.task_id, None)
