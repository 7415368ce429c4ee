"""The floor of the seam: what any library that sends its cancels across a transport pays, with nothing else.

Issue 2 made the transport the one way between an owner and its tasks (a task may live in another process, or on
a Temporal worker), so every cancel is a message to the task's host, and every ending a message back. `SeamFloor`
is that and only that: an owner and a host on an `InProcessTransport`, each reading its mailbox; the host cancels
the run (or queues the notice into it, for a soft cancel, and sends a receipt), and a run that ends sends its
`RunFinished`. No state machine, no task record, no receipt for a hard cancel, no settle, no metrics, no
telemetry, no bounded waits: what the library adds beyond this floor is its own book-keeping.

`overhead.py` prints these figures beside pydantic-ai alone and the library, so a target can be read against what
the seam itself costs on the same machine in the same run.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import TaskGroup
from pydantic_ai import Agent, RunCancelled
from pydantic_ai.run import AgentRun

from subagents_cancel import InProcessTransport
from subagents_cancel.clock import MonotonicClock
from subagents_cancel.message_parts import CancelReason
from subagents_cancel.messages import CancelReceived, CancelRequest, RunFinished, RunStopped, TaskId
from subagents_cancel.transport import read_mailbox
from subagents_cancel.wire import WireMessage

from .seam_trials import WARMUP, Clocks
from .subagent import Blocking, function_model

__all__ = ('SeamFloor', 'hard_cancels', 'region_cancel', 'seam_floor')

_OWNER, _HOST = 'owner', 'owner/tasks'
_NOTICE = 'CANCEL_REQUEST: wrap up now and hand back what you have.'


class SeamFloor:
    """An owner and a task host that only pass cancel requests, receipts and run endings across the transport."""

    def __init__(self, transport: InProcessTransport, group: TaskGroup) -> None:
        self._transport, self._group = transport, group
        self._clock = MonotonicClock()
        self._runs: dict[TaskId, AgentRun[None, str]] = {}
        self._waiters: dict[TaskId, asyncio.Future[None]] = {}
        self._ids: Iterator[int] = itertools.count()

    def start(self, agent: Agent[None, str]) -> TaskId:
        """Run `agent` on the host, as a task; its ending is sent to the owner."""
        task_id = TaskId(f'floor-{next(self._ids)}')
        self._group.start_soon(self._drive, agent, task_id)
        return task_id

    async def hard_cancel(self, task_id: TaskId) -> None:
        """Ask the host to cancel the task's run; return once the owner has its `RunFinished`."""
        await self._round_trip(task_id, 'hard')

    async def soft_cancel(self, task_id: TaskId) -> None:
        """Ask the host to tell the task's run; return once the owner has the host's receipt."""
        await self._round_trip(task_id, 'soft')

    def send_hard_cancel(self, task_id: TaskId) -> None:
        """Ask the host to cancel the task's run, without waiting (a region sends many, then waits)."""
        self._send_request(task_id, 'hard')

    def ended(self, task_id: TaskId) -> asyncio.Future[None]:
        """Resolved when the owner has the task's next message (its receipt or its `RunFinished`)."""
        waiter = self._waiters[task_id] = asyncio.get_running_loop().create_future()
        return waiter

    async def _round_trip(self, task_id: TaskId, mode: str) -> None:
        waiter = self.ended(task_id)
        self._send_request(task_id, mode)
        await waiter

    def _send_request(self, task_id: TaskId, mode: str) -> None:
        request = CancelRequest(
            task_id=task_id,
            sent_at=self._clock.now(),
            mode='hard' if mode == 'hard' else 'soft',
            reason=CancelReason(kind='user'),
        )
        self._transport.send_nowait(_HOST, request)

    async def _drive(self, agent: Agent[None, str], task_id: TaskId) -> None:
        try:
            async with agent.iter('Wait.') as run:
                self._runs[task_id] = run
                async for _ in run:
                    pass
        except RunCancelled:
            pass
        finished = self._runs.pop(task_id)
        ending = RunFinished(task_id=task_id, sent_at=self._clock.now(), ending=RunStopped(), usage=finished.usage)
        self._transport.send_nowait(_OWNER, ending)

    def host_receives(self, message: WireMessage) -> None:
        """The host's handling of a cancel request: cancel the run, or queue the notice into it and send a receipt."""
        assert isinstance(message, CancelRequest)
        run = self._runs[message.task_id]
        if message.mode == 'hard':
            run.cancel()
            return
        run.enqueue(_NOTICE, priority='asap')
        receipt = CancelReceived(task_id=message.task_id, sent_at=self._clock.now(), correlation_id=message.message_id)
        self._transport.send_nowait(_OWNER, receipt)

    def owner_receives(self, message: WireMessage) -> None:
        """The owner's handling of a receipt or a run's ending: wake whoever waits for the task."""
        assert isinstance(message, RunFinished | CancelReceived)
        if (waiter := self._waiters.pop(message.task_id, None)) is not None:
            waiter.set_result(None)


@asynccontextmanager
async def seam_floor() -> AsyncGenerator[SeamFloor]:
    """A `SeamFloor` with its mailboxes read; leaving it stops the readers and every run still going."""
    async with InProcessTransport() as transport, anyio.create_task_group() as group:
        host, owner = await transport.open(_HOST), await transport.open(_OWNER)
        assert host is not None and owner is not None
        floor = SeamFloor(transport, group)
        group.start_soon(read_mailbox, host, floor.host_receives)
        group.start_soon(read_mailbox, owner, floor.owner_receives)
        yield floor
        group.cancel_scope.cancel()


async def hard_cancels(trials: int) -> tuple[list[float], list[float]]:
    """(wall, CPU) ms of `trials` hard cancels across the bare seam, each of a run blocked in its model request."""
    blocking = Blocking()
    agent = Agent(function_model(blocking.respond))
    wall: list[float] = []
    cpu: list[float] = []
    async with seam_floor() as floor:
        for _ in range(WARMUP + trials):
            blocking.reset()
            task_id = floor.start(agent)
            await blocking.reached.wait()
            started = Clocks.now()
            await floor.hard_cancel(task_id)
            elapsed = started.ms_until(Clocks.now())
            wall.append(elapsed[0])
            cpu.append(elapsed[1])
    assert blocking.still_running == 0
    return wall[WARMUP:], cpu[WARMUP:]


async def region_cancel(size: int) -> tuple[float, float, int]:
    """(wall, CPU) ms of hard cancels of `size` blocked runs across the bare seam until all ended; left running."""
    blocking = Blocking(expected=size)
    agent = Agent(function_model(blocking.respond))
    async with seam_floor() as floor:
        task_ids = [floor.start(agent) for _ in range(size)]
        await blocking.reached.wait()
        started = Clocks.now()
        endings = [floor.ended(task_id) for task_id in task_ids]
        for task_id in task_ids:
            floor.send_hard_cancel(task_id)
        await asyncio.gather(*endings)
        wall, cpu = started.ms_until(Clocks.now())
    return wall, cpu, blocking.still_running
