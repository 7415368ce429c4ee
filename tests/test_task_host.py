"""The task host: tasks started, told and settled by messages alone, on both transports.

These tests play the owner by hand: they open an owner's mailbox on the transport, send the host what an owner
sends, and read what comes back, so they pin the host's side of the seam and nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

import anyio
import pytest
from inline_snapshot import snapshot
from pydantic_ai import RunUsage

from subagents_cancel import InProcessTransport, LoopbackTransport, SubAgentConfig, TaskId, TaskInfo, TaskStatus
from subagents_cancel.messages import CancelReason, CancelRequest, Question, RunFinished, RunOutput, RunStopped
from subagents_cancel.output_codec import decode_output
from subagents_cancel.task_host import TaskHost
from subagents_cancel.transport import Mailbox, Transport
from subagents_cancel.wire import HooksFinished, SettleTask, StartTask, WireMessage

from .helpers import Gate, Script, WatchedClock, call, researcher, text

pytestmark = pytest.mark.anyio

T = TaskId('researcher-0000a1b2')
M = TypeVar('M', bound=WireMessage)


@pytest.fixture(params=['logfire configured', 'logfire not configured'], autouse=True)
def tracing(request: pytest.FixtureRequest) -> None:
    """Each test runs as the suite configures logfire (a span per task), and as in an application that never did."""
    if request.param == 'logfire not configured':
        request.getfixturevalue('logfire_not_configured')


@pytest.fixture(params=['inprocess', 'loopback'])
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    """An entered transport of each kind."""
    async with InProcessTransport() if request.param == 'inprocess' else LoopbackTransport() as transport:
        yield transport


@pytest.fixture
async def owner(transport: Transport) -> Mailbox:
    """The mailbox of an owner, played by the test, at the address `owner`."""
    mailbox = await transport.open('owner')
    assert mailbox is not None
    return mailbox


def start(prompt: str = 'Find sources') -> StartTask:
    return StartTask(
        task_id=T,
        sent_at=0.0,
        subagent='researcher',
        prompt=prompt,
        owner_address='owner',
        root_id='owner',
        refuse_tools_after_cancel=False,
        preempt_on_soft_cancel=False,
        cascade_grace_factor=0.5,
        final_answer_wait_seconds=1.0,
        hook_seconds=1.0,
    )


def settle(status: TaskStatus) -> SettleTask:
    """What the owner sends once it has recorded the task's end as `status`."""
    return SettleTask(task_id=T, sent_at=0.0, info=ended(status), owner_address='owner')


def ended(status: TaskStatus) -> TaskInfo:
    return TaskInfo(
        task_id=T,
        subagent='researcher',
        description='Find sources',
        status=status,
        created_at=0.0,
        started_at=0.0,
        ended_at=0.0,
        elapsed_seconds=0.0,
        checkpoints=(),
        question=None,
        cancel=None,
        outcome=None,
        usage=RunUsage(),
    )


class SeenByCleanup:
    """A cleanup hook that notes the status of each task it is run for."""

    def __init__(self) -> None:
        self.statuses: list[TaskStatus] = []

    async def __call__(self, info: TaskInfo) -> None:
        self.statuses.append(info.status)


async def next_of(mailbox: Mailbox, kind: type[M]) -> M:
    """The next message of `kind` in `mailbox`, skipping the others."""
    async for message in mailbox:
        if isinstance(message, kind):
            return message
    raise AssertionError(f'the mailbox ended before a {kind.__name__}')


async def test_a_started_task_reports_its_end_and_its_hook_to_the_owner(
    transport: Transport, owner: Mailbox, clock: WatchedClock
) -> None:
    """StartTask runs the task; its RunFinished reaches the owner; SettleTask runs its hook, then HooksFinished."""
    cleanup = SeenByCleanup()
    config = researcher(Script([text('three sources')]), cleanup=cleanup)
    async with TaskHost([config], transport=transport, clock=clock) as host:
        await transport.send(host.address, start())
        finished = await next_of(owner, RunFinished)
        assert isinstance(finished.ending, RunOutput)
        assert decode_output(finished.ending.output, str) == 'three sources'  # over JSON: an EncodedOutput
        await transport.send(host.address, settle(TaskStatus.CANCELLED))
        hooks = await next_of(owner, HooksFinished)
    assert (hooks.task_id, hooks.cleanup_error, cleanup.statuses) == snapshot(
        ('researcher-0000a1b2', None, [TaskStatus.CANCELLED])
    )


async def test_a_hard_cancel_routed_by_task_id_stops_the_run(
    transport: Transport, owner: Mailbox, clock: WatchedClock
) -> None:
    """A hard CancelRequest to the host reaches the task's runner, which stops the model request in flight."""
    gate = Gate()
    async with TaskHost([researcher(Script([gate.block_forever()]))], transport=transport, clock=clock) as host:
        await transport.send(host.address, start())
        await gate.reached.wait()
        request = CancelRequest(task_id=T, sent_at=0.0, mode='hard', reason=CancelReason())
        await transport.send(host.address, request)
        finished = await next_of(owner, RunFinished)
        await transport.send(host.address, settle(TaskStatus.CANCELLED))
        await next_of(owner, HooksFinished)
    assert (finished.ending, gate.stopped.is_set()) == snapshot((RunStopped(), True))


async def test_a_question_goes_to_the_owner_named_in_the_start(
    transport: Transport, owner: Mailbox, clock: WatchedClock
) -> None:
    """The sub-agent's ask_parent reaches the owner's mailbox as a Question."""
    config = researcher(Script([call('ask_parent', question='Which market?'), text('done')]))
    async with TaskHost([config], transport=transport, clock=clock) as host:
        await transport.send(host.address, start())
        question = await next_of(owner, Question)
    assert (question.task_id, question.text) == snapshot(('researcher-0000a1b2', 'Which market?'))


async def test_leaving_the_host_stops_a_run_that_never_settles(
    transport: Transport, owner: Mailbox, clock: WatchedClock
) -> None:
    """A host left while its task runs (and no settle ever comes) stops the run and waits for it: nothing lingers."""
    gate = Gate()
    async with TaskHost([researcher(Script([gate.block_forever()]))], transport=transport, clock=clock) as host:
        await transport.send(host.address, start())
        await gate.reached.wait()
    assert (gate.stopped.is_set(), host.unfinished) == snapshot((True, ()))


@pytest.mark.parametrize('run', ['still going', 'over'])
async def test_a_host_left_before_the_owner_settled_its_task_says_once_that_the_hook_was_not_run(
    transport: Transport, owner: Mailbox, clock: WatchedClock, run: str
) -> None:
    """Left with a task not settled (its run going, or over), the host tells the owner its hook was not run, once."""
    gate = Gate()
    seen: list[WireMessage] = []
    unsubscribe = transport.subscribe(lambda address, message: seen.append(message))
    script = Script([gate.block_forever()] if run == 'still going' else [text('three sources')])
    async with TaskHost([researcher(script)], transport=transport, clock=clock) as host:
        await transport.send(host.address, start())
        if run == 'still going':
            await gate.reached.wait()
        else:
            await next_of(owner, RunFinished)
    await anyio.wait_all_tasks_blocked()
    unsubscribe()
    assert [(m.task_id, m.cleanup_error) for m in seen if isinstance(m, HooksFinished)] == snapshot(
        [('researcher-0000a1b2', 'its hook was not run: its task host had closed before the task ended')]
    )


async def test_settling_a_task_never_started_runs_its_cleanup(
    transport: Transport, owner: Mailbox, clock: WatchedClock
) -> None:
    """A task cancelled while PENDING on the owner's side gets its cleanup hook on the host, with no run."""
    cleanup = SeenByCleanup()
    config: SubAgentConfig = researcher(Script([]), cleanup=cleanup)
    async with TaskHost([config], transport=transport, clock=clock) as host:
        await transport.send(host.address, settle(TaskStatus.CANCELLED))
        hooks = await next_of(owner, HooksFinished)
    assert (hooks.cleanup_error, cleanup.statuses) == snapshot((None, [TaskStatus.CANCELLED]))
