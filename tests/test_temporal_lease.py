"""A task on a Temporal worker never outlives its owner's process: the owner holds a lease on it and renews it.

In the first test the owner is another process, killed with SIGKILL, so nothing it does ends the task: its lease
lapses on the workflow's durable timer, and the workflow soft-cancels the task, then stops it after its grace. Then a
live owner holds a short lease for several periods and its task is left alone, and an owner whose renewals are lost
on their way (a client interceptor drops them) finds its task ended. Every wait is on an event: the sub-agent's model
reaching a point, a line the owner prints, renewals the server accepted, the workflow's result.
"""

from __future__ import annotations

import re
import sys
import uuid
from pathlib import Path

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from inline_snapshot import snapshot
from pydantic_ai import Agent
from pydantic_ai.durable_exec.temporal import PydanticAIPlugin
from pydantic_ai.messages import ModelMessage, ModelResponse
from temporalio.client import Client, Interceptor, OutboundInterceptor, SignalWorkflowInput

from subagents_cancel import (
    Cancelled,
    CancelReason,
    Completed,
    PartialResult,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
)
from subagents_cancel.temporal import TemporalTransport, connect, task_worker
from subagents_cancel.temporal.lease import LeaseState

from .helpers import TASK_ID, Gate, Script, Step, call, cancel_requested, resolve, text, user_prompts
from .temporal_support import DevServer, durable

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parent.parent
GRACE_SECONDS = 0.5
"""The sub-agent's grace window on the worker: how long it may wrap up once its owner's lease has lapsed."""
_PROCESS_SECONDS = 25.0
"""A bound for a hang of another process (its start, or its task's end), not a timing claim."""


def _queue() -> str:
    return f'tests-lease-{uuid.uuid4().hex[:8]}'


class _SignalsSent(Interceptor):
    """Counts the signals a client sends by name, and lets a test wait for a number of them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent = 0
        self._waiters: list[tuple[int, anyio.Event]] = []

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Counting(next, self)

    def count(self, signal: str) -> None:
        if signal == self.name:
            self.sent += 1
            for at_least, reached in self._waiters:
                if self.sent >= at_least:
                    reached.set()

    async def wait_for(self, at_least: int) -> None:
        """Return once `at_least` signals were accepted by the server."""
        if self.sent < at_least:
            reached = anyio.Event()
            self._waiters.append((at_least, reached))
            await reached.wait()


class _Counting(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, counter: _SignalsSent) -> None:
        super().__init__(next)
        self._counter = counter

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        await super().signal_workflow(input)
        self._counter.count(input.signal)


class _RenewalsLost(Interceptor):
    """A client whose lease renewals never reach the server: its owner is alive, but cut off from its tasks."""

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Dropping(next)


class _Dropping(OutboundInterceptor):
    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        if input.signal != 'renew_lease':
            await super().signal_workflow(input)


@pytest.mark.timeout(60)  # a Python process starts, on a machine that may be busy
async def test_a_task_whose_owner_was_killed_is_told_then_stopped(temporal_server: DevServer) -> None:
    """Its owner SIGKILLed, the task's lease lapses: its model reads a CANCEL_REQUEST, then it is stopped after its grace."""
    working, wrapping_up = Gate(), Gate()
    sub = Script([working.block_forever()], on_cancel=wrapping_up.block_forever())
    researcher = SubAgentConfig(
        name='researcher',
        description='Researches a topic',
        agent=durable(sub.model, 'researcher'),
        grace_seconds=GRACE_SECONDS,
    )
    client = await connect(temporal_server.address)
    queue = _queue()
    async with task_worker(client, task_queue=queue, subagents=[researcher]):
        command = [sys.executable, '-m', 'tests.lease_owner', temporal_server.address, queue, '1.0']
        async with await anyio.open_process(command, cwd=ROOT, stderr=None) as owner:
            assert owner.stdout is not None
            with anyio.fail_after(_PROCESS_SECONDS):
                task_id = (await BufferedByteReceiveStream(owner.stdout).receive_until(b'\n', 200)).decode()
                await working.reached.wait()
            owner.kill()
            await owner.wait()
        handle = client.get_workflow_handle(task_id)
        with anyio.fail_after(_PROCESS_SECONDS):
            await wrapping_up.reached.wait()
            await handle.result()
        lease = await handle.query('lease', result_type=LeaseState)

    assert working.stopped.is_set() and wrapping_up.stopped.is_set()  # both model requests were cut, none is left
    assert [cancel_requested(messages) for messages in sub.requests] == [False, True]
    (told,) = user_prompts(sub.requests[-1])[-1:]
    assert re.sub(r'CANCEL_REQUEST \[[0-9a-f]{12}\]', 'CANCEL_REQUEST [<id>]', told) == snapshot(
        "CANCEL_REQUEST [<id>]: your parent asked you to stop (the run that started you has ended: its owner's process stopped renewing its lease). Do not start new work or call tools. Reply now with your partial results (Completed, In progress, Not started, Findings). You have 0.5 seconds."
    )
    assert (lease.lease_seconds, lease.lapsed) == (1.0, True)


LIVE_LEASE_SECONDS = 1.0
"""Temporal fires no timer sooner than after 1 s: a shorter lease would last 1 s all the same."""
RENEWALS = 7
"""Renewals to wait for: the owner renews three times a lease, so these span two lease periods."""


def renewed(renewals: _SignalsSent, working: Gate, step: Step) -> Step:
    """The step, once the sub-agent is at work and its owner has renewed its lease `RENEWALS` times."""

    async def respond(messages: list[ModelMessage]) -> ModelResponse:
        await working.reached.wait()
        await renewals.wait_for(RENEWALS)
        working.release.set()
        return await resolve(step, messages)

    return respond


async def test_a_live_owner_keeps_its_task_across_lease_periods(temporal_server: DevServer) -> None:
    """An owner that renews its lease keeps its task: it is never told to stop, and completes with its output."""
    working = Gate()
    sub = Script([working.hold(text('The market is worth $4B.'))])
    researcher = SubAgentConfig(
        name='researcher', description='Researches a topic', agent=durable(sub.model, 'researcher')
    )
    renewals = _SignalsSent('renew_lease')
    client = await Client.connect(temporal_server.address, plugins=[PydanticAIPlugin()], interceptors=[renewals])
    queue = _queue()
    parent = Script(
        steps=[
            call('task', description='Research the market', subagent_type='researcher', mode='async'),
            renewed(renewals, working, call('wait_tasks', task_ids=[TASK_ID])),
            text('done'),
        ]
    )
    async with (
        task_worker(client, task_queue=queue, subagents=[researcher]),
        TemporalTransport(client, task_queue=queue, lease_seconds=LIVE_LEASE_SECONDS) as transport,
        SubAgentManager([researcher], transport=transport) as manager,
    ):
        result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('Research.')
        (task,) = manager.tasks()
        lease = await client.get_workflow_handle(task.task_id).query('lease', result_type=LeaseState)

    assert result.output == 'done'
    assert task.outcome == Completed('The market is worth $4B.')
    assert not sub.saw_cancel_request()
    assert (lease.lease_seconds, lease.lapsed, lease.renewals >= RENEWALS) == (LIVE_LEASE_SECONDS, False, True)


async def test_an_owner_whose_renewals_are_lost_finds_its_task_cancelled(temporal_server: DevServer) -> None:
    """An owner alive but cut off from its task for longer than its lease finds it cancelled, with what it handed back."""
    working = Gate()
    sub = Script([working.block_forever()], on_cancel=text('Completed: the outline. Not started: the rest.'))
    researcher = SubAgentConfig(
        name='researcher',
        description='Researches a topic',
        agent=durable(sub.model, 'researcher'),
        preempt_on_soft_cancel=True,
    )
    client = await Client.connect(temporal_server.address, plugins=[PydanticAIPlugin()], interceptors=[_RenewalsLost()])
    queue = _queue()
    async with (
        task_worker(client, task_queue=queue, subagents=[researcher]),
        TemporalTransport(client, task_queue=queue, lease_seconds=1.0) as transport,
        SubAgentManager([researcher], transport=transport) as manager,
    ):
        task = await manager.start('researcher', 'Research the market')
        with anyio.fail_after(_PROCESS_SECONDS):
            waited = await manager.wait([task.task_id])

    assert working.stopped.is_set()
    assert [cancel_requested(messages) for messages in sub.requests] == [False, True]
    # Its owner never asked it to stop, so it records the end as a stop from outside (hard, parent_cancelled).
    assert waited.tasks[0].outcome == snapshot(
        Cancelled(
            mode='hard',
            reason=CancelReason(kind='parent_cancelled'),
            partial=PartialResult(final_message='Completed: the outline. Not started: the rest.'),
        )
    )


async def test_a_lease_is_a_positive_duration(temporal_server: DevServer) -> None:
    """A lease of 0 seconds is refused as the transport is built, with the value named."""
    client = await connect(temporal_server.address)
    with pytest.raises(
        ValueError, match=r'^lease_seconds must be a finite number of seconds, greater than 0; got 0\.$'
    ):
        TemporalTransport(client, task_queue=_queue(), lease_seconds=0)
