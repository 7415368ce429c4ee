"""Tasks of an owner that is itself a Temporal workflow: each task a child workflow, which ends when its parent does.

An application's own workflow (one that runs a parent agent, say) opens a
[`SubAgentManager`][subagents_cancel.SubAgentManager] on a
[`ChildWorkflowTransport`][subagents_cancel.temporal.ChildWorkflowTransport], which its workflow class gets from
[`TaskOwnerWorkflow`][subagents_cancel.temporal.TaskOwnerWorkflow]. The owner then runs no task host of its own:

* its `StartTask` starts the task's workflow as a child of this one (workflow id = task id) on the task queue, with
  the parent-close policy `REQUEST_CANCEL`: when the parent closes (it completes, fails, is cancelled or terminated)
  Temporal asks each task still running to cancel, and the task's workflow ends its task as an owner that ends
  would (a soft cancel with its grace window, then a hard one);
* every later message for a task becomes the child's signal `deliver`, in the order it was sent;
* the child sends what it reports back as the signal `subagents_cancel_reports` of this workflow (see
  [`parent_reports`][subagents_cancel.temporal.parent_reports]), which `TaskOwnerWorkflow` hands to the owner's
  mailbox here.

All of it is workflow code: no client call, commands in an order that replays the same, and ids drawn from the
workflow's random source. Time comes from [`WorkflowClock`][subagents_cancel.temporal.WorkflowClock].
"""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from typing import Self

from pydantic import ValidationError
from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError, WorkflowAlreadyStartedError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

from subagents_cancel.config import check_duration
from subagents_cancel.ids import random_ids_from
from subagents_cancel.messages import TaskId
from subagents_cancel.wire import SettleTask, StartTask, WireMessage, decode_wire, encode_wire

from .local_mailboxes import LocalMailboxes
from .parent_reports import REPORTS_SIGNAL
from .taken_ids import TakenIds
from .task_workflow import TASK_WORKFLOW, replayed_hex

__all__ = ('ChildWorkflowTransport', 'TaskOwnerWorkflow')


class ChildWorkflowTransport(LocalMailboxes):
    """An owner in this workflow, its tasks child workflows on the workers of `task_queue`; see the module docstring.

    Get it from [`TaskOwnerWorkflow.tasks_on`][subagents_cancel.temporal.TaskOwnerWorkflow.tasks_on], which also
    receives the tasks' reports; it works only in workflow code.
    """

    def __init__(self, *, task_queue: str, close_seconds: float = 5.0) -> None:
        """Configure the transport for `task_queue`; it works once entered with `async with`.

        `close_seconds` bounds how long closing waits for the tasks' workflows to end (their owner has settled them).

        Raises:
            ValueError: `close_seconds` is not a finite number of seconds greater than 0.
        """
        super().__init__()
        self.close_seconds = check_duration('close_seconds', close_seconds)
        self._ids = ExitStack()
        self.task_queue = task_queue
        self.host_address = f'temporal-child:{task_queue}'
        """Where an owner sends `StartTask`: the task queue, whose workers run the task as a child workflow."""
        self._last_sent: dict[TaskId, asyncio.Task[None]] = {}
        """Per task, the sender of its latest message: the next one waits for it, which keeps their order."""
        self._children: dict[TaskId, ChildWorkflowHandle[object, object]] = {}
        self._taken = TakenIds(self._local)
        """The tasks whose child workflow could not start (its id is taken): answered here until settled."""
        self._senders: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        """Start the transport; mailboxes can be opened from now on.

        Ids made in its block (the owner's, its tasks') come from the workflow's random: a replay makes the same.
        """
        self._ids.enter_context(random_ids_from(replayed_hex))
        await self._local.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the transport: what was sent goes out, the tasks' workflows end (in `close_seconds`), then mailboxes.

        A task's workflow still open after that is asked to cancel when this workflow closes.
        """
        with self._ids:
            await workflow.wait_condition(lambda: not self._senders)
            try:
                await workflow.wait_condition(
                    lambda: all(child.done() for child in self._children.values()), timeout=self.close_seconds
                )
            except TimeoutError:
                workflow.logger.warning('task workflows still open as their owner closes: %s', self._open_children())
            await self._local.__aexit__(*exc_info)

    def _open_children(self) -> list[str]:
        return [task_id for task_id, child in self._children.items() if not child.done()]

    def send_nowait(self, address: str, message: WireMessage) -> bool:
        """Send `message`: to a mailbox here, or to its task's child workflow if `address` is the task queue's.

        A message for a task is handed to Temporal once the one sent before it to that task has been.
        """
        delivered_here = self._local.send_nowait(address, message)
        if address != self.host_address:
            return delivered_here
        after = self._last_sent.get(message.task_id)
        sending = asyncio.get_running_loop().create_task(self._to_child(message, after), name=f'to {message.task_id}')
        self._last_sent[message.task_id] = sending
        self._senders.add(sending)
        sending.add_done_callback(self._senders.discard)
        return True

    def receive(self, address: str, data: str) -> bool:
        """A child task's report (the signal `subagents_cancel_reports`) to the mailbox at `address`, if it is here."""
        try:
            message = decode_wire(data.encode())
        except ValidationError:
            workflow.logger.warning('a report to %s that is not a message was dropped: %.80r', address, data)
            return True
        return self._local.send_nowait(address, message)

    async def _to_child(self, message: WireMessage, after: asyncio.Task[None] | None) -> None:
        if after is not None:
            await asyncio.wait((after,))  # its outcome is that sender's: this one goes on either way
        data = encode_wire(message).decode()
        child = self._children.get(message.task_id)
        if message.task_id in self._taken:
            self._taken.answer(message)
        elif child is None and isinstance(message, StartTask | SettleTask):
            try:
                self._children[message.task_id] = await workflow.start_child_workflow(
                    TASK_WORKFLOW,
                    args=(data, None),
                    id=message.task_id,
                    task_queue=self.task_queue,
                    parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                )
            except WorkflowAlreadyStartedError:
                self._taken.take(message)
        elif child is not None:
            try:
                await child.signal('deliver', data)
            except ChildWorkflowError as error:  # it has closed: nothing there reads it any more
                workflow.logger.info('task %s: its workflow could not take %s (%s)', message.task_id, message, error)


class TaskOwnerWorkflow:
    """Inherit it in a workflow class that opens sub-agent managers: it receives its tasks' reports.

    The guide "Across machines", section "An owner that is a workflow", shows one.
    """

    _subagents_cancel_transports: dict[str, ChildWorkflowTransport]

    def tasks_on(self, task_queue: str) -> ChildWorkflowTransport:
        """The transport of this workflow's owners whose tasks run on `task_queue`'s workers (one per queue)."""
        transports = self.__dict__.setdefault('_subagents_cancel_transports', {})
        if task_queue not in transports:
            transports[task_queue] = ChildWorkflowTransport(task_queue=task_queue)
        return transports[task_queue]

    @workflow.signal(name=REPORTS_SIGNAL)
    def subagents_cancel_reports(self, address: str, data: str) -> None:
        """A child task's report, to the owner's mailbox at `address` (on the transport that has it open)."""
        transports: dict[str, ChildWorkflowTransport] = self.__dict__.get('_subagents_cancel_transports', {})
        if not any(transport.receive(address, data) for transport in transports.values()):
            workflow.logger.info('a report to %s found no owner open here; dropped', address)
