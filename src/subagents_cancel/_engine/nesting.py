"""A nested owner's side of its link to the task it was opened in, which is reached only through messages.

An owner opened inside a sub-agent task registers with that task as a
[`NestedOwner`][subagents_cancel.task_context.NestedOwner]: its transport and its address. From then on:

* a [`CancelAll`][subagents_cancel.messages.CancelAll] at its address cancels every task it has that is still
  running, and once all of those have ended it answers the task with
  [`SubtasksEnded`][subagents_cancel.messages.SubtasksEnded] (at once if none was running; at the latest when it
  closes);
* whenever one of its tasks changes (status, checkpoint, question, cancel, its own subtasks), it sends the task's
  owner [`SubtasksChanged`][subagents_cancel.messages.SubtasksChanged] with its tasks that have not ended, which
  that owner shows as the task's `subtasks`.

An owner that was not opened inside a task has no such link, and sends none of these.
"""

from __future__ import annotations

import asyncio

from subagents_cancel.messages import CancelAll, CancelAllReceived, SubtasksChanged, SubtasksEnded
from subagents_cancel.task_context import NestedOwner, TaskContext
from subagents_cancel.transport import Transport

from .cancels import Cancels
from .registry import TaskRecord
from .task_book import TaskBook

__all__ = ('EnclosingTask',)


class EnclosingTask:
    """The task a nested owner was opened in, as it reaches it: by its transport, its host's address, its owner's."""

    def __init__(self, task: TaskContext, *, transport: Transport, book: TaskBook, cancels: Cancels) -> None:
        self._task = task
        self._book = book
        self._cancels = cancels
        self._transport = transport
        self._handle: NestedOwner | None = None
        self._pending: list[tuple[CancelAll, tuple[TaskRecord, ...]]] = []
        """The `CancelAll`s not answered yet, each with the tasks that must end first."""
        self._receipts: set[asyncio.Task[None]] = set()
        """The soft `CancelAll`s whose receipt waits for the receipts of this owner's own tasks."""

    def open(self) -> None:
        """Register with the task, at the owner's address (claimed by now), and follow the owner's tasks."""
        self._handle = NestedOwner(transport=self._transport, address=self._book.address)
        self._task.adopt(self._handle)
        self._book.report_to(cancel_all=self._cancel_all, changed=self._changed)

    async def aclose(self) -> None:
        """The owner has closed: answer what is still pending, report no tasks left, and leave the task."""
        for receipt in self._receipts:
            receipt.cancel()
        if self._receipts:
            await asyncio.wait(self._receipts)
        for request, _ in self._pending:
            self._answer(request)
        self._pending.clear()
        self._report()
        if self._handle is not None:
            self._task.disown(self._handle)

    def _cancel_all(self, request: CancelAll) -> None:
        records = self._book.records.active()
        self._cancels.request_each(records, request.mode, request.reason, request.grace_seconds)
        if request.mode == 'soft':
            receipt = asyncio.get_running_loop().create_task(self._receive(request, records), name='cancel-all receipt')
            self._receipts.add(receipt)
            receipt.add_done_callback(self._receipts.discard)
        if all(record.settled for record in records):
            self._answer(request)
        else:
            self._pending.append((request, records))

    async def _receive(self, request: CancelAll, records: tuple[TaskRecord, ...]) -> None:
        """Give the receipt of a soft `CancelAll` once this owner's tasks have given theirs, the tree reported first."""
        await self._cancels.await_receipts(records)
        self._report()
        received = CancelAllReceived(
            task_id=request.task_id, sent_at=self._task.clock.now(), correlation_id=request.message_id
        )
        self._task.transport.send_nowait(self._task.host_address, received)

    def _changed(self, record: TaskRecord) -> None:
        if self._pending and record.settled:
            done = [entry for entry in self._pending if all(each.settled for each in entry[1])]
            for entry in done:
                self._pending.remove(entry)
                self._answer(entry[0])
        self._report()

    def _answer(self, request: CancelAll) -> None:
        now = self._task.clock.now()
        self._task.transport.send_nowait(
            self._task.host_address,
            SubtasksEnded(task_id=request.task_id, sent_at=now, correlation_id=request.message_id),
        )

    def _report(self) -> None:
        subtasks = tuple(map(self._book.info, self._book.records.active()))
        message = SubtasksChanged(
            task_id=self._task.task_id,
            sent_at=self._task.clock.now(),
            owner_address=self._book.address,
            subtasks=subtasks,
        )
        self._task.transport.send_nowait(self._task.owner_address, message)
