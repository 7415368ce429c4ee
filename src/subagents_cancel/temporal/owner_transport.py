"""The owner's side of tasks on Temporal workers: a transport whose task host is a task queue.

An owner given a [`TemporalTransport`][subagents_cancel.temporal.TemporalTransport] runs no task host of its own:
it sends [`StartTask`][subagents_cancel.wire.StartTask] to the transport's `host_address`, which starts the task's
workflow on the task queue (workflow id = task id), and every later message for a task becomes the signal
`deliver` of that workflow, which Temporal persists before it acknowledges it. Messages to one task leave in the
order they were sent (one sender per task). What a task reports comes back through one reader per task, a long
poll on the workflow's outbox, and is delivered to the owner's mailbox here.

Senders and readers are asyncio tasks of the transport, started in no caller's context (so nothing that cancels a
caller's scope stops them), and cancelled when the transport closes. A task whose workflow cannot be reached any more
(deleted, or a server that stays down) is reported as lost in the log: its owner's own bounds (deadlines, the
teardown bound) still end it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, Self

from pydantic import ValidationError
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from subagents_cancel.config import check_duration
from subagents_cancel.messages import TaskId
from subagents_cancel.transport import InProcessTransport, Mailbox, Observer
from subagents_cancel.wire import StartTask, WireMessage, decode_wire, encode_wire

from .task_workflow import TASK_WORKFLOW, OutboxPage

__all__ = ('TemporalTransport',)

_log = logging.getLogger('subagents_cancel')

_NOBODY = contextvars.Context()


class TemporalTransport:
    """Owners here, their tasks on the Temporal workers of `task_queue`; see the module docstring.

    Give it to an owner: `SubAgentManager(configs, transport=TemporalTransport(client, task_queue='research'))`
    (or `SubAgentCapability(..., transport=...)`). The client must use pydantic-ai's data converter
    ([`connect`][subagents_cancel.temporal.connect] makes one).
    """

    def __init__(self, client: Client, *, task_queue: str, workflow_task_seconds: float = 10.0) -> None:
        """Configure the transport; it works once entered with `async with`.

        Args:
            client: A client with pydantic-ai's data converter.
            task_queue: Where the tasks' workflows run: the task queue of their workers.
            workflow_task_seconds: How long a worker may take over one step of a task's workflow before Temporal
                gives the step to another worker (its workflow task timeout, 10 s by default, as Temporal's): a
                worker killed during a step holds its task this long.

        Raises:
            ValueError: `workflow_task_seconds` is not a finite number of seconds greater than 0.
        """
        self._client = client
        self.task_queue = task_queue
        self._workflow_task_timeout = timedelta(seconds=check_duration('workflow_task_seconds', workflow_task_seconds))
        self.host_address = f'temporal:{task_queue}'
        """Where an owner sends `StartTask`: the task queue, whose workers run the task."""
        self._local = InProcessTransport()
        self._outgoing: dict[TaskId, deque[WireMessage]] = {}
        """Per task, the messages not yet handed to Temporal (while its sender runs)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._open = False

    async def __aenter__(self) -> Self:
        """Start the transport; mailboxes can be opened from now on."""
        await self._local.__aenter__()
        self._open = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the transport: local mailboxes end, messages not yet sent are dropped, readers stop."""
        self._open = False
        await self._local.__aexit__(*exc_info)
        tasks = tuple(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._outgoing.clear()

    async def open(self, address: str) -> Mailbox | None:
        """Open a mailbox in this process at `address` (an owner's), or return `None` if it is taken."""
        return await self._local.open(address)

    async def release(self, address: str) -> None:
        """Close the mailbox at `address`."""
        await self._local.release(address)

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Show every message sent to or received by this process's mailboxes to `observer`."""
        return self._local.subscribe(observer)

    async def send(self, address: str, message: WireMessage) -> bool:
        """Send `message`: to a mailbox here, or to its task's workflow if `address` is the task queue's."""
        return self.send_nowait(address, message)

    def send_nowait(self, address: str, message: WireMessage) -> bool:
        """Send `message`: to a mailbox here, or to its task's workflow if `address` is the task queue's.

        A message for a workflow is on its way in order with the others to that task; `True` means it was queued.
        """
        if not self._open:
            return False
        delivered_here = self._local.send_nowait(address, message)  # the observers see every message
        if address != self.host_address:
            return delivered_here
        queue = self._outgoing.get(message.task_id)
        if queue is not None:
            queue.append(message)
            return True
        self._outgoing[message.task_id] = deque((message,))
        self._spawn(self._send_all(message.task_id), f'send to {message.task_id}')
        return True

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name, context=_NOBODY)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_all(self, task_id: TaskId) -> None:
        queue = self._outgoing[task_id]
        try:
            while queue:
                await self._hand_over(queue[0])
                queue.popleft()
        finally:
            del self._outgoing[task_id]

    async def _hand_over(self, message: WireMessage) -> None:
        data = encode_wire(message).decode()
        try:
            if isinstance(message, StartTask):
                await self._client.start_workflow(
                    TASK_WORKFLOW,
                    data,
                    id=message.task_id,
                    task_queue=self.task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    task_timeout=self._workflow_task_timeout,
                )
                self._spawn(self._read_reports(message.task_id), f'reports of {message.task_id}')
            else:
                await self._client.get_workflow_handle(message.task_id).signal('deliver', data)
        except RPCError as error:
            _log.error('the workflow of task %s could not be reached: %s dropped (%s)', message.task_id, message, error)

    async def _read_reports(self, task_id: TaskId) -> None:
        handle = self._client.get_workflow_handle(task_id)
        offset = 0
        while True:
            try:
                page: OutboxPage = await handle.execute_update(  # pyright: ignore[reportUnknownMemberType]
                    'reports', offset, result_type=OutboxPage
                )
            except WorkflowUpdateRPCTimeoutOrCancelledError:
                continue  # a long poll that outlived its call: ask again
            except (WorkflowUpdateFailedError, RPCError):
                page = await self._read_after_close(task_id, offset)
                self._deliver(page)
                return
            self._deliver(page)
            offset += len(page.entries)
            if page.closed and not page.entries:
                return

    async def _read_after_close(self, task_id: TaskId, offset: int) -> OutboxPage:
        try:
            return await self._client.get_workflow_handle(task_id).query(
                'reports_after', offset, result_type=OutboxPage
            )
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                _log.error('the reports of task %s after %d could not be read: %s', task_id, offset, error)
            return OutboxPage(closed=True)

    def _deliver(self, page: OutboxPage) -> None:
        for address, data in page.entries:
            try:
                message = decode_wire(data.encode())
            except ValidationError:
                _log.exception('a report to %s could not be decoded; dropped', address)
                continue
            self._local.send_nowait(address, message)
