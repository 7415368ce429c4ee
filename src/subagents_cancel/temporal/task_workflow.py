"""One sub-agent task as a Temporal workflow: a task host inside the workflow, its messages through Temporal.

The workflow's id is the task's id. Its input is the owner's [`StartTask`][subagents_cancel.wire.StartTask], as
the wire's JSON (or, for a task cancelled before it started, the owner's `SettleTask`: its workflow only runs the
task's cleanup hook). Inside, a [`TaskHost`][subagents_cancel.task_host.TaskHost] runs the task exactly as it runs in
process, on a [`WorkflowTransport`][subagents_cancel.temporal.task_workflow.WorkflowTransport]:

* the owner's later messages (cancel requests, escalations, answers, the settle) arrive as the signal
  `deliver`, which Temporal persists as it accepts it, so a cancel sent while no worker is up is applied when one
  returns;
* what the host sends its owner goes into the workflow's outbox, which the owner reads with the update `reports`
  (a long poll from an offset: it returns as soon as there is something past it) or, once the workflow is closed,
  with the query `reports_after`.

The run itself is durable through pydantic-ai's `TemporalDurability`: model requests and the agent's tools are
activities; the task's own tools (`ask_parent`, `checkpoint`) and the cancel protocol run in the workflow, so a
worker that dies is replaced by another that replays the workflow without running finished activities again.
Time in the workflow is Temporal's: the host's clock is the workflow's event loop, whose timers are durable.

The workflow ends once the task's hooks have run (the owner settled it) and the owner has read the outbox to its end,
or when the owner stops reading: [`WorkerSettings.outbox_read_seconds`][subagents_cancel.temporal.WorkerSettings]
after the last report. A task whose owner's lease lapses (its process is gone, see
[`lease`][subagents_cancel.temporal.lease]) is cancelled as its owner would, and its workflow ends once the run has,
without waiting for a settle or a reader.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Self

import anyio
from pydantic import ValidationError
from pydantic_ai import RunUsage
from temporalio import workflow
from temporalio.exceptions import ApplicationError

from subagents_cancel.ids import random_ids_from
from subagents_cancel.messages import CancelReason, RunError, RunFinished
from subagents_cancel.task_host import TaskHost
from subagents_cancel.wire import HooksFinished, SettleTask, StartTask, WireMessage, decode_wire, encode_wire

from .hooks import hook_in_activity
from .lease import LAPSED, PARENT_CLOSED, RENEW_LEASE, Lease, LeaseState, end_orphaned
from .local_mailboxes import LocalMailboxes
from .parent_reports import ParentReports
from .registry import HostedSubagents, hosted_subagents

__all__ = ('OutboxPage', 'TaskWorkflow', 'WorkflowClock', 'WorkflowTransport', 'replayed_hex')

TASK_WORKFLOW = 'subagents_cancel.task'
"""The workflow type's name on the Temporal server."""

_HOST_ADDRESS = 'workflow-task-host'
"""Where the task host inside a workflow serves; only the workflow itself sends there."""


@dataclass
class OutboxPage:
    """What the owner reads from a task's outbox: the entries from its offset on, and whether the outbox is closed."""

    entries: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])
    """`(address, JSON of the message)`, in the order the host sent them."""
    closed: bool = False
    """Nothing comes after this page: the workflow is ending, and the page reaches the end of its outbox."""


class WorkflowTransport(LocalMailboxes):
    """The transport inside a task's workflow: local mailboxes in process, every other address through the outbox.

    The task host and any owner opened inside the task (a sub-agent with sub-agents, whose tasks the same host runs:
    `host_address`) have their mailboxes here, and messages between them are handed over in process; a message to an
    address nobody opened here is for the task's owner, in another process: it is encoded and appended to `outbox`.
    """

    def __init__(self, outbox: list[tuple[str, str]], on_outbox: Callable[[WireMessage], None]) -> None:
        super().__init__()
        self._outbox = outbox
        self._on_outbox = on_outbox

    @property
    def host_address(self) -> str:
        """Where the workflow's task host serves: owners opened inside the task run their tasks there."""
        return _HOST_ADDRESS

    async def __aenter__(self) -> Self:
        """Open the local mailboxes."""
        await self._local.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the local mailboxes; the outbox stays, for the owner to read."""
        await self._local.__aexit__(*exc_info)

    def send_nowait(self, address: str, message: WireMessage) -> bool:
        """Hand `message` to the local mailbox at `address`, or put it in the outbox for the owner."""
        if self._local.send_nowait(address, message):
            return True
        if (data := fitted(message)) is not None:
            self._outbox.append((address, data))
        self._on_outbox(message)
        return True


def _decoded(data: str) -> WireMessage | None:
    try:
        return decode_wire(data.encode())
    except ValidationError:
        workflow.logger.warning('a task workflow dropped what is not a message: %.80r', data)
        return None


def _not_hosted(start: StartTask) -> RunFinished:
    """The end of a task whose sub-agent the worker does not have: its owner and its workers disagree."""
    failure = RunError(
        'UnknownSubAgent',
        f'the workers of task queue {workflow.info().task_queue!r} have no sub-agent {start.subagent!r}: deploy them '
        'with the same sub-agents as the owner',
    )
    return RunFinished(task_id=start.task_id, sent_at=WorkflowClock().now(), ending=failure, usage=RunUsage())


def replayed_hex(size: int) -> str:
    """`size` random bytes as hex, from the workflow's random source: the same again when it is replayed."""
    return f'{workflow.random().getrandbits(8 * size):0{2 * size}x}'


ENTRY_BYTES = 1_500_000
"""The largest report the outbox keeps: Temporal refuses a payload over 2 MB (an update's result, a query's)."""
PAGE_BYTES = 1_500_000
"""What one read of the outbox returns at most (always at least one report)."""


def fitted(message: WireMessage) -> str | None:
    """`message` as the wire's JSON, made to fit in `ENTRY_BYTES`, or `None` if it cannot be.

    Only the end of a run is expected to be that large (its conversation, its output): the conversation is left out
    first (the task cannot be resumed then), then the output, which becomes the run's failure, named. Any other
    message that large is the sub-agent's own doing (a checkpoint of megabytes): it is left out, and logged.
    """
    data = encode_wire(message)
    if len(data) <= ENTRY_BYTES:
        return data.decode()
    if not isinstance(message, RunFinished):
        workflow.logger.error('task %s: a %s of %d bytes was left out', message.task_id, message.kind, len(data))
        return None
    data = encode_wire(dataclasses.replace(message, messages=()))
    if len(data) <= ENTRY_BYTES:
        return data.decode()
    too_large = RunError(
        'PayloadTooLarge',
        f'the task ended, but what it handed back ({len(data):,} bytes) is larger than a Temporal payload may be',
    )
    return encode_wire(dataclasses.replace(message, messages=(), ending=too_large)).decode()


def first_page(outbox: list[tuple[str, str]], offset: int) -> list[tuple[str, str]]:
    """The outbox from `offset` on, as much as fits in `PAGE_BYTES` (at least one report)."""
    page: list[tuple[str, str]] = []
    size = 0
    for entry in outbox[offset:]:
        size += len(entry[1])
        if page and size > PAGE_BYTES:
            break
        page.append(entry)
    return page


class WorkflowClock:
    """The workflow's time: its event loop's, which Temporal makes deterministic and whose timers are durable."""

    def now(self) -> float:
        """The workflow's time now, in seconds."""
        return asyncio.get_running_loop().time()

    def deadline_scope(self, deadline: float) -> anyio.CancelScope:
        """A scope cancelled at `deadline`, on a durable timer."""
        return anyio.CancelScope(deadline=deadline)


@workflow.defn(name=TASK_WORKFLOW, sandboxed=False)
class TaskWorkflow:
    """One sub-agent task; see the module docstring."""

    @workflow.init
    def __init__(self, start: str, lease_seconds: float | None = None) -> None:
        self._outbox: list[tuple[str, str]] = []
        self._read = 0
        """How far the owner has read the outbox."""
        self._closed = False
        self._hooks_finished = False
        self._run_over = False
        self._early: list[WireMessage] = []
        """Messages delivered before the host was serving."""
        self._transport = WorkflowTransport(self._outbox, self._sent_to_owner)
        self._host: TaskHost | None = None
        self._lease = Lease(lease_seconds)
        self._to_parent: ParentReports | None = None
        self._forwarding: asyncio.Task[None] | None = None

    @workflow.run
    async def run(self, start: str, lease_seconds: float | None = None) -> None:
        """Run the task to its end, its hooks included, then give the owner time to read the outbox.

        `start` is a `StartTask`, or the `SettleTask` of a task its owner cancelled before it started: that task's
        workflow only runs its cleanup hook, where the task would have run.
        """
        message = _decoded(start)
        if not isinstance(message, StartTask | SettleTask):
            raise ApplicationError('A task workflow starts with a StartTask or a SettleTask.', non_retryable=True)
        hosted = hosted_subagents(workflow.info().task_queue)
        with random_ids_from(replayed_hex):  # ids made in here come out the same when the workflow is replayed
            if (parent := workflow.info().parent) is not None:  # its owner is a workflow: reports go to it as signals
                self._to_parent = ParentReports(parent, self._outbox)
                self._forwarding = asyncio.get_running_loop().create_task(self._to_parent.forward(lambda: self._closed))
            async with self._transport:
                self._host = host = TaskHost(
                    hosted.subagents,
                    transport=self._transport,
                    address=_HOST_ADDRESS,
                    clock=WorkflowClock(),
                    policy=hosted.policy,
                    agents=hosted.agents,
                    durable=True,
                    hooks=hook_in_activity(hosted),
                )
                async with host:
                    if isinstance(message, StartTask) and message.subagent not in hosted.names:
                        self._transport.send_nowait(message.owner_address, _not_hosted(message))  # it settles as usual
                    else:
                        self._transport.send_nowait(_HOST_ADDRESS, message)
                    for early in self._early:
                        self._transport.send_nowait(_HOST_ADDRESS, early)
                    self._early.clear()
                    try:
                        lapsed = await self._lease.held_until(lambda: self._hooks_finished)
                    except (
                        asyncio.CancelledError
                    ):  # its parent workflow closed (REQUEST_CANCEL): end it as its owner would
                        await self._end_orphaned(message, hosted, PARENT_CLOSED)
                        raise
                    if lapsed:  # its owner is gone: end the task as it would
                        await self._end_orphaned(message, hosted, LAPSED)
        if not lapsed:  # an owner that lost the lease reads what is left, if it ever can, with `reports_after`
            await workflow.wait_condition(
                lambda: self._all_read() >= len(self._outbox),
                timeout=timedelta(seconds=hosted.settings.outbox_read_seconds),
            )
        self._closed = True
        await workflow.wait_condition(workflow.all_handlers_finished)

    @workflow.signal
    def deliver(self, data: str) -> None:
        """A message from the task's owner, as the wire's JSON (anything else is dropped, and logged)."""
        if (message := _decoded(data)) is None:
            return
        if self._host is None:
            self._early.append(message)
        else:
            self._transport.send_nowait(_HOST_ADDRESS, message)

    @workflow.update(unfinished_policy=workflow.HandlerUnfinishedPolicy.ABANDON)
    async def reports(self, offset: int) -> OutboxPage:
        """The outbox from `offset` on, once there is something there (or the outbox is closed)."""
        offset = max(offset, 0)
        self._read = max(self._read, offset)
        await workflow.wait_condition(lambda: len(self._outbox) > offset or self._closed)
        page = first_page(self._outbox, offset)
        return OutboxPage(page, closed=self._closed and offset + len(page) >= len(self._outbox))

    @workflow.query
    def reports_after(self, offset: int) -> OutboxPage:
        """The outbox from `offset` on, now: how an owner reads what is left once the workflow has closed."""
        offset = max(offset, 0)
        page = first_page(self._outbox, offset)
        return OutboxPage(page, closed=self._closed and offset + len(page) >= len(self._outbox))

    @workflow.signal(name=RENEW_LEASE)
    def renew_lease(self) -> None:
        """The owner renews the task's lease."""
        self._lease.renew()

    @workflow.query
    def lease(self) -> LeaseState:
        """The task's lease: how long it is, how many renewals came, whether it lapsed."""
        return self._lease.state

    def _all_read(self) -> int:
        return self._read if self._to_parent is None else self._to_parent.read

    async def _end_orphaned(
        self, message: StartTask | SettleTask, hosted: HostedSubagents, reason: CancelReason
    ) -> None:
        if isinstance(message, StartTask):
            to_host = partial(self._transport.send_nowait, _HOST_ADDRESS)
            await end_orphaned(message, hosted, to_host, lambda: self._run_over, reason=reason)

    def _sent_to_owner(self, message: WireMessage) -> None:
        if isinstance(message, HooksFinished):
            self._hooks_finished = True
        elif isinstance(message, RunFinished):
            self._run_over = True
