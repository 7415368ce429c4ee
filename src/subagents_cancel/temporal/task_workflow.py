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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Self

import anyio
from temporalio import workflow

from subagents_cancel.ids import random_ids_from
from subagents_cancel.messages import RunFinished
from subagents_cancel.task_host import TaskHost
from subagents_cancel.transport import InProcessTransport, Mailbox, Observer
from subagents_cancel.wire import HooksFinished, SettleTask, StartTask, WireMessage, decode_wire, encode_wire

from .lease import RENEW_LEASE, Lease, LeaseState, end_orphaned
from .registry import hosted_subagents

__all__ = ('OutboxPage', 'TaskWorkflow', 'WorkflowTransport')

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
    """Nothing will be added any more: the workflow is ending."""


class WorkflowTransport:
    """The transport inside a task's workflow: local mailboxes in process, every other address through the outbox.

    The task host and any owner opened inside the task (a sub-agent with sub-agents, whose tasks the same host runs:
    `host_address`) have their mailboxes here, and messages between them are handed over in process; a message to an
    address nobody opened here is for the task's owner, in another process: it is encoded and appended to `outbox`.
    """

    def __init__(self, outbox: list[tuple[str, str]], on_outbox: Callable[[WireMessage], None]) -> None:
        self._local = InProcessTransport()
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

    async def open(self, address: str) -> Mailbox | None:
        """Open a local mailbox at `address`, or return `None` if it is taken."""
        return await self._local.open(address)

    async def send(self, address: str, message: WireMessage) -> bool:
        """Hand `message` to the local mailbox at `address`, or put it in the outbox for the owner."""
        return self.send_nowait(address, message)

    def send_nowait(self, address: str, message: WireMessage) -> bool:
        """Hand `message` to the local mailbox at `address`, or put it in the outbox for the owner."""
        if self._local.send_nowait(address, message):
            return True
        self._outbox.append((address, encode_wire(message).decode()))
        self._on_outbox(message)
        return True

    async def release(self, address: str) -> None:
        """Close the local mailbox at `address`."""
        await self._local.release(address)

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Show every message sent inside the workflow to `observer`."""
        return self._local.subscribe(observer)


def _replayed_hex(size: int) -> str:
    return f'{workflow.random().getrandbits(8 * size):0{2 * size}x}'


class _LoopClock:
    """The workflow's time: its event loop's, which Temporal makes deterministic and whose timers are durable."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def deadline_scope(self, deadline: float) -> anyio.CancelScope:
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

    @workflow.run
    async def run(self, start: str, lease_seconds: float | None = None) -> None:
        """Run the task to its end, its hooks included, then give the owner time to read the outbox.

        `start` is a `StartTask`, or the `SettleTask` of a task its owner cancelled before it started: that task's
        workflow only runs its cleanup hook, where the task would have run.
        """
        message = decode_wire(start.encode())
        if not isinstance(message, StartTask | SettleTask):
            raise TypeError(f'A task workflow starts with a StartTask or a SettleTask, not {type(message).__name__}.')
        hosted = hosted_subagents(workflow.info().task_queue)
        random_ids_from(_replayed_hex)  # ids made in here come out the same when the workflow is replayed
        async with self._transport:
            self._host = host = TaskHost(
                hosted.subagents,
                transport=self._transport,
                address=_HOST_ADDRESS,
                clock=_LoopClock(),
                policy=hosted.policy,
                agents=hosted.agents,
                durable=True,
            )
            async with host:
                self._transport.send_nowait(_HOST_ADDRESS, message)
                for early in self._early:
                    self._transport.send_nowait(_HOST_ADDRESS, early)
                self._early.clear()
                lapsed = await self._lease.held_until(lambda: self._hooks_finished)
                if lapsed and isinstance(message, StartTask):  # its owner is gone: end the task as it would
                    to_host = partial(self._transport.send_nowait, _HOST_ADDRESS)
                    await end_orphaned(message, hosted, to_host, lambda: self._run_over)
        if not lapsed:  # an owner that lost the lease reads what is left, if it ever can, with `reports_after`
            await workflow.wait_condition(
                lambda: self._read >= len(self._outbox),
                timeout=timedelta(seconds=hosted.settings.outbox_read_seconds),
            )
        self._closed = True
        await workflow.wait_condition(workflow.all_handlers_finished)

    @workflow.signal
    def deliver(self, data: str) -> None:
        """A message from the task's owner, as the wire's JSON."""
        message = decode_wire(data.encode())
        if self._host is None:
            self._early.append(message)
        else:
            self._transport.send_nowait(_HOST_ADDRESS, message)

    @workflow.update(unfinished_policy=workflow.HandlerUnfinishedPolicy.ABANDON)
    async def reports(self, offset: int) -> OutboxPage:
        """The outbox from `offset` on, once there is something there (or the outbox is closed)."""
        self._read = max(self._read, offset)
        await workflow.wait_condition(lambda: len(self._outbox) > offset or self._closed)
        return OutboxPage(self._outbox[offset:], closed=self._closed)

    @workflow.query
    def reports_after(self, offset: int) -> OutboxPage:
        """The outbox from `offset` on, now: how an owner reads what is left once the workflow has closed."""
        return OutboxPage(self._outbox[offset:], closed=self._closed)

    @workflow.signal(name=RENEW_LEASE)
    def renew_lease(self) -> None:
        """The owner renews the task's lease."""
        self._lease.renew()

    @workflow.query
    def lease(self) -> LeaseState:
        """The task's lease: how long it is, how many renewals came, whether it lapsed."""
        return self._lease.state

    def _sent_to_owner(self, message: WireMessage) -> None:
        if isinstance(message, HooksFinished):
            self._hooks_finished = True
        elif isinstance(message, RunFinished):
            self._run_over = True
