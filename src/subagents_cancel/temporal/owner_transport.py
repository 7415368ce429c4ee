"""The owner's side of tasks on Temporal workers: a transport whose task host is a task queue.

An owner given a [`TemporalTransport`][subagents_cancel.temporal.TemporalTransport] runs no task host of its own:
it sends [`StartTask`][subagents_cancel.wire.StartTask] to the transport's `host_address`, which starts the task's
workflow on the task queue (workflow id = task id), and every later message for a task becomes the signal
`deliver` of that workflow, which Temporal persists before it acknowledges it. Messages to one task leave in the
order they were sent (one sender per task). What a task reports comes back through one reader per task, a long
poll on the workflow's outbox, and is delivered to the owner's mailbox here.

While it reads a task's reports, the transport also holds the task's lease (see
[`lease`][subagents_cancel.temporal.lease]): a task whose owner's process is gone is ended `lease_seconds` later.

Senders, readers and the lease's renewer are asyncio tasks of the transport, started in no caller's context (so
nothing that cancels a caller's scope stops them), and cancelled when the transport closes. While the server cannot
be reached, they try again (every 0.5 s, doubling up to 8 s) for as long as the transport is open; the owner's own
bounds (deadlines, grace windows, the teardown bound) run meanwhile. A message to a workflow that has closed is
dropped, and logged.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Coroutine
from datetime import timedelta
from functools import partial
from typing import Any, Self

import anyio
from pydantic import ValidationError
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from subagents_cancel.config import check_duration
from subagents_cancel.messages import TaskId
from subagents_cancel.wire import SettleTask, StartTask, WireMessage, decode_wire, encode_wire

from .lease import DEFAULT_LEASE_SECONDS, LeaseRenewals
from .local_mailboxes import LocalMailboxes
from .taken_ids import TakenIds
from .task_workflow import TASK_WORKFLOW, OutboxPage

__all__ = ('TemporalTransport',)

_log = logging.getLogger('subagents_cancel')

_SERVER_AWAY = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED})
"""Replies that mean the server cannot be reached now: the call is made again."""
_FIRST_PAUSE = 0.5
_LAST_PAUSE = 8.0
"""Seconds between two attempts while the server is away: doubling from the first to the last."""


class TemporalTransport(LocalMailboxes):
    """Owners here, their tasks on the Temporal workers of `task_queue`; see the module docstring.

    Give it to an owner: `SubAgentManager(configs, transport=TemporalTransport(client, task_queue='research'))`,
    entered around the manager's block (a parent agent reaches those tasks with `SubAgentCapability(manager=...)`).
    The client must use pydantic-ai's data converter ([`connect`][subagents_cancel.temporal.connect] makes one).
    """

    def __init__(
        self,
        client: Client,
        *,
        task_queue: str,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        workflow_task_seconds: float = 10.0,
        close_seconds: float = 5.0,
    ) -> None:
        """Configure the transport; it works once entered with `async with`.

        Args:
            client: A client of the Temporal server, with pydantic-ai's data converter.
            task_queue: Where the tasks go: the task queue their workers serve.
            lease_seconds: How long a task outlives this process once it can no longer renew the task's lease (it
                died, or cannot reach the server): the task is then soft-cancelled as if its owner had ended, and
                stopped after its grace. 30 s by default: well above a renewal or two lost or late (a lease is
                renewed three times in its time), and short enough that a crashed owner's tasks do not run on
                for long. Temporal fires no timer sooner than after 1 s, so a shorter lease lasts 1 s. A normal
                close ends the tasks first.
            workflow_task_seconds: How long a worker may take over one step of a task's workflow before Temporal
                gives the step to another worker (its workflow task timeout, 10 s by default, as Temporal's): a
                worker killed during a step holds its task this long.
            close_seconds: How long closing waits for messages still being sent, and for the last reports of tasks.

        Raises:
            ValueError: a duration is not a finite number of seconds greater than 0.
        """
        super().__init__()
        check_duration('lease_seconds', lease_seconds)
        self._client = client
        self.task_queue = task_queue
        self._workflow_task_timeout = timedelta(seconds=check_duration('workflow_task_seconds', workflow_task_seconds))
        self.close_seconds = check_duration('close_seconds', close_seconds)
        self.host_address = f'temporal:{task_queue}'
        """Where an owner sends `StartTask`: the task queue, whose workers run the task."""
        self._outgoing: dict[TaskId, deque[WireMessage]] = {}
        """Per task, the messages not yet handed to Temporal (while its sender runs)."""
        self._tasks: set[asyncio.Task[None]] = set()
        """Its senders and readers: closing waits for them, within `close_seconds`."""
        self._renewer: set[asyncio.Task[None]] = set()
        """The lease renewer, while it runs: closing stops it at once."""
        self._started: set[TaskId] = set()
        """The tasks whose workflow this transport started and still reads."""
        self._taken = TakenIds(self._local)
        """The tasks whose id another workflow holds: answered here until settled."""
        self._open = False
        self.lease_seconds = lease_seconds
        """How long a task outlives this process's last renewal of its lease."""
        self._leases = LeaseRenewals(client, lease_seconds, partial(self._spawn, into=self._renewer))

    async def __aenter__(self) -> Self:
        """Start the transport; mailboxes can be opened from now on."""
        await self._local.__aenter__()
        self._open = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the transport, within `close_seconds`: what was sent goes out, and readers of ended tasks finish.

        Then local mailboxes end, and what is still unsent or unread is dropped (a task its owner did not end reads
        as abandoned to its workflow).
        """
        self._open = False
        if self._tasks:
            await asyncio.wait(tuple(self._tasks), timeout=self.close_seconds)
        tasks = (*self._tasks, *self._renewer)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._outgoing.clear()
        await self._local.__aexit__(*exc_info)

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

    def _spawn(
        self, coroutine: Coroutine[Any, Any, None], name: str, into: set[asyncio.Task[None]] | None = None
    ) -> None:
        # An empty context of its own: no caller's, and none another thread's loop may be in (one thread at a time).
        task = asyncio.get_running_loop().create_task(coroutine, name=name, context=contextvars.Context())
        tasks = self._tasks if into is None else into
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _send_all(self, task_id: TaskId) -> None:
        queue = self._outgoing[task_id]
        try:
            while queue:
                await self._hand_over(queue[0])
                queue.popleft()
        finally:
            del self._outgoing[task_id]

    async def _hand_over(self, message: WireMessage) -> None:
        """Hand `message` to Temporal, trying again while the server is away; drop it if its workflow is gone."""
        data = encode_wire(message).decode()
        pause = _FIRST_PAUSE
        while True:
            try:
                await self._to_workflow(message, data)
                return
            except RPCError as error:
                if error.status in _SERVER_AWAY:
                    _log.warning(
                        'the Temporal server is away (%s): %s to %s is sent again', error, message.kind, message.task_id
                    )
                    await anyio.sleep(pause)  # a pace between attempts, while the transport is open
                    pause = min(pause * 2, _LAST_PAUSE)
                    continue
                level = logging.INFO if error.status == RPCStatusCode.NOT_FOUND else logging.ERROR
                _log.log(
                    level, 'task %s: its workflow could not take %s (%s); dropped', message.task_id, message, error
                )
                return

    async def _to_workflow(self, message: WireMessage, data: str) -> None:
        if message.task_id in self._taken:
            self._taken.answer(message)
        elif isinstance(message, SettleTask | StartTask) and (
            isinstance(message, StartTask) or message.task_id not in self._started
        ):  # a task cancelled before it started has its hook run on a worker all the same
            try:
                await self._client.start_workflow(
                    TASK_WORKFLOW,
                    args=(data, self.lease_seconds),
                    id=message.task_id,
                    task_queue=self.task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    task_timeout=self._workflow_task_timeout,
                )
            except WorkflowAlreadyStartedError:
                if not await self._started_with(message.task_id, data):  # not an earlier attempt of ours
                    self._taken.take(message)
                    return
            self._started.add(message.task_id)
            self._spawn(self._follow(message.task_id), f'reports of {message.task_id}')
        else:
            await self._client.get_workflow_handle(message.task_id).signal('deliver', data)

    async def _started_with(self, task_id: TaskId, data: str) -> bool:
        """Whether the workflow `task_id` was started with `data` (by an earlier attempt whose reply was lost)."""
        async for event in self._client.get_workflow_handle(task_id).fetch_history_events():
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            started_with = await self._client.data_converter.decode(payloads[:1], [str])
            return started_with == [data]
        return False

    async def _follow(self, task_id: TaskId) -> None:
        """Hold the task's lease while reading its reports, until its workflow has closed."""
        self._leases.follow(task_id)
        try:
            await self._read_reports(task_id)
        finally:
            self._leases.forget(task_id)

    async def _read_reports(self, task_id: TaskId) -> None:
        try:
            await self._read_until_closed(task_id)
        finally:
            self._started.discard(task_id)

    async def _read_until_closed(self, task_id: TaskId) -> None:
        handle = self._client.get_workflow_handle(task_id)
        offset = 0
        pause = _FIRST_PAUSE
        while True:
            try:
                page: OutboxPage = await handle.execute_update(  # pyright: ignore[reportUnknownMemberType]
                    'reports', offset, result_type=OutboxPage
                )
            except WorkflowUpdateRPCTimeoutOrCancelledError:
                continue  # a long poll that outlived its call: ask again
            except RPCError as error:
                if error.status not in _SERVER_AWAY:
                    self._deliver(await self._read_after_close(task_id, offset))
                    return
                _log.warning('the Temporal server is away (%s): the reports of %s are read again', error, task_id)
                await anyio.sleep(pause)  # a pace between attempts, while the transport is open
                pause = min(pause * 2, _LAST_PAUSE)
                continue
            except WorkflowUpdateFailedError:  # the workflow closed while the poll waited
                self._deliver(await self._read_after_close(task_id, offset))
                return
            pause = _FIRST_PAUSE
            self._deliver(page)
            offset += len(page.entries)
            if page.closed:  # nothing comes after this page
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
