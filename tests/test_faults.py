"""Faults and awkward timing: each ends in a defined state, within a bound, with a clear record."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent, RunCancelled, RunContext
from pydantic_ai.capabilities import AbstractCapability, ValidatedToolArgs, WrapToolExecuteHandler
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
from pydantic_ai.tools import ToolDefinition

from subagents_cancel import (
    Cancelled,
    CancelReason,
    Completed,
    PartialResult,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    SubAgentPolicy,
    TaskInfo,
    TaskStatus,
)
from subagents_cancel.messages import RunError, ThreadsFinished
from subagents_cancel.wire import WireMessage

from .helpers import (
    TASK_ID,
    Gate,
    Script,
    Step,
    WatchedClock,
    after,
    call,
    cancel_requested,
    new_transport,
    replies_of,
    stable_ids,
    text,
    tool_returns,
)

pytestmark = pytest.mark.anyio


def researcher(script: Script) -> SubAgentConfig:
    return SubAgentConfig(name='researcher', description='Researches', model=script.model)


async def test_a_cancel_while_an_answer_is_delivered_loses_neither(clock: WatchedClock) -> None:
    """An answer and a soft cancel sent back to back: the sub-agent reads the answer, then the cancel request."""
    sub = Script([call('ask_parent', question='EU or US?')], on_cancel=text('Completed: EU'))
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        asked = await manager.run('researcher', 'Research X')
        assert asked.status is TaskStatus.WAITING_FOR_ANSWER
        await manager.answer(asked.task_id, 'EU')
        await manager.soft_cancel(asked.task_id)  # before the sub-agent has resumed to read its answer
        (info,) = (await manager.wait([asked.task_id])).tasks
    assert tool_returns(sub.requests[-1]) == ['Your parent answered: EU']
    assert cancel_requested(sub.requests[-1])
    assert isinstance(info.outcome, Cancelled) and info.outcome.partial.read_request


@dataclass
class _ToolDeadline(AbstractCapability[object]):
    """A sub-agent's own per-call tool timeout: a slow call is cut off and the run goes on."""

    clock: WatchedClock
    seconds: float

    async def wrap_tool_execute(
        self,
        ctx: RunContext[object],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: ValidatedToolArgs,
        handler: WrapToolExecuteHandler,
    ) -> Any:
        with self.clock.deadline_scope(self.clock.now() + self.seconds):
            return await handler(args)
        return f'{call.tool_name} timed out'


async def test_a_question_cut_off_by_the_subagent_is_withdrawn(clock: WatchedClock) -> None:
    """When ask_parent is cancelled inside a run that goes on, the task is RUNNING again and can complete."""
    going_on = Gate()
    sub = Script([call('ask_parent', question='EU or US?'), going_on.hold(text('went on without an answer'))])
    agent = Agent(sub.model, capabilities=[_ToolDeadline(clock, seconds=60)])
    async with SubAgentManager([SubAgentConfig(name='r', description='R', agent=agent)], clock=clock) as manager:
        asked = await manager.run('r', 'Research X')
        assert asked.status is TaskStatus.WAITING_FOR_ANSWER
        clock.advance(60)
        await going_on.reached.wait()
        assert (manager.get(asked.task_id).status, manager.get(asked.task_id).question) == (TaskStatus.RUNNING, None)
        going_on.release.set()
        (info,) = (await manager.wait([asked.task_id])).tasks
    assert tool_returns(sub.requests[-1]) == ['ask_parent timed out']
    assert info.outcome == Completed('went on without an answer')


def checkpoint_phase_1() -> Step:
    return call('checkpoint', completed=['phase 1'], in_progress=['phase 2'], findings=['A'])


async def test_the_model_raises_during_the_wrap_up(clock: WatchedClock) -> None:
    """The wrap-up request fails: CANCELLED with the error noted and the checkpoints as the partial result."""
    in_phase_2 = Gate()

    async def broken(messages: list[ModelMessage]) -> ModelResponse:
        raise RuntimeError('502 from provider: upstream overloaded')

    sub = Script([checkpoint_phase_1(), in_phase_2.hold(checkpoint_phase_1())], on_cancel=broken)

    parent = Script(
        [
            call('task', description='Research X', subagent_type='researcher', mode='async'),
            after(in_phase_2.reached, call('soft_cancel_task', task_id=TASK_ID)),
            _releasing(in_phase_2, call('wait_tasks', task_ids=[TASK_ID])),
            text('the parent goes on'),
        ]
    )
    agent = Agent(parent.model, capabilities=[SubAgentCapability(subagents=[researcher(sub)], clock=clock)])

    result = await agent.run('go')

    assert result.output == 'the parent goes on'
    assert replies_of(result.all_messages())[-1] == snapshot("""\
The task has ended.

Task cancelled: researcher-0001 (soft, on request; it read the request after 0.0 ms; it ended 0.0 ms after the request; its wrap-up failed with RuntimeError). Partial results:
Completed: phase 1
In progress: phase 2
Not started: nothing
Findings: A
(from 2 checkpoints)\
""")
    assert 'upstream overloaded' not in str(result.all_messages())


def _releasing(gate: Gate, step: Step) -> Step:
    """The parent's step, after it has let the sub-agent's step in flight end."""

    def respond(messages: list[ModelMessage]) -> ModelResponse | Awaitable[ModelResponse]:
        gate.release.set()
        return step(messages) if callable(step) else step

    return respond


async def test_a_tool_raises_after_the_cancel_request(clock: WatchedClock) -> None:
    """A tool in flight when the request lands raises: CANCELLED, the error noted, the request never read."""
    in_tool = Gate()
    sub = Script([checkpoint_phase_1(), call('crawl', url='https://example.com')], on_cancel=text('unreachable'))
    agent = Agent(sub.model)

    @agent.tool_plain
    async def crawl(url: str) -> str:
        """Fetch a page."""
        await in_tool.wait()
        raise ConnectionError('connection reset by peer')

    config = SubAgentConfig(name='researcher', description='Researches', agent=agent)
    async with SubAgentManager([config], clock=clock) as manager:
        task = await manager.start('researcher', 'Research X')
        await in_tool.reached.wait()
        await manager.soft_cancel(task.task_id)
        in_tool.release.set()
        (info,) = (await manager.wait([task.task_id])).tasks

    assert info.outcome == Cancelled(
        mode='soft',
        reason=CancelReason(kind='user'),
        error=RunError('ConnectionError', 'the sub-agent run raised this error; details are in the logs'),
        partial=PartialResult(completed=('phase 1',), in_progress=('phase 2',), findings=('A',), checkpoints=1),
    )
    assert not sub.saw_cancel_request()


@dataclass
class _Stubborn:
    """A model request that swallows its cancellation and shields itself from any other until let go.

    Swallowing once is not enough to survive: anyio delivers the cancellation again at the next await.
    """

    reached: anyio.Event = field(default_factory=anyio.Event)
    swallowed: anyio.Event = field(default_factory=anyio.Event)
    let_go: anyio.Event = field(default_factory=anyio.Event)

    async def respond(self, messages: list[ModelMessage]) -> ModelResponse:
        self.reached.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            self.swallowed.set()  # a badly behaved model client: it does not re-raise
        with anyio.CancelScope(shield=True):
            await self.let_go.wait()
        return text('finished anyway')


async def test_a_subagent_that_swallows_the_escalation(clock: WatchedClock) -> None:
    """An ignored soft cancel escalates; the run swallows it; a hard cancel then reports it unresponsive, bounded."""
    stubborn = _Stubborn()
    sub = Script([checkpoint_phase_1(), stubborn.respond])
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        task = await manager.start('researcher', 'Research X')
        await stubborn.reached.wait()
        await manager.soft_cancel(task.task_id, grace_seconds=10)
        clock.advance(10)
        await stubborn.swallowed.wait()
        escalated = manager.get(task.task_id)
        assert escalated.status is TaskStatus.RUNNING and escalated.cancel is not None
        assert (escalated.cancel.mode, escalated.cancel.escalated_at) == ('hard', 10.0)

        async def give_up_waiting() -> None:
            await clock.wait_for_deadline(15)  # the hard cancel tool waits, bounded
            clock.advance(5)

        reply = ''
        async with anyio.create_task_group() as group:
            group.start_soon(give_up_waiting)
            reply = await _hard_cancel_reply(manager, task.task_id)
        assert stable_ids([reply]) == snapshot(
            [
                'researcher-0001 did not stop within 5s of the hard cancel; it is marked unresponsive and may still be running. check_task shows whether it stops later.'
            ]
        )
        assert manager.get(task.task_id).unresponsive_since == 15.0
        stubborn.let_go.set()
        (info,) = (await manager.wait([task.task_id])).tasks

    assert info.status is TaskStatus.CANCELLED and not info.unresponsive
    assert isinstance(info.outcome, Cancelled) and info.outcome.escalated
    assert info.outcome.partial.completed == ('phase 1',)


async def _hard_cancel_reply(manager: SubAgentManager, task_id: str) -> str:
    """What the parent's hard_cancel_task tool replies, through a one-call parent run."""
    parent = Script([call('hard_cancel_task', task_id=task_id), text('ok')])
    result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')
    (reply,) = tool_returns(result.all_messages())
    return reply


@dataclass
class _BlockingSyncTool:
    """A sync tool: pydantic-ai runs it in a worker thread, which no cancellation can stop."""

    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    side_effects: list[str] = field(default_factory=list[str])

    def crunch(self) -> str:
        """Crunch numbers (blocks its thread)."""
        self.entered.set()
        self.release.wait(timeout=10)
        self.side_effects.append('written after the run had stopped')
        self.done.set()
        return 'crunched'


def _wait_in_thread(event: threading.Event) -> Callable[[], Awaitable[bool]]:
    return lambda: anyio.to_thread.run_sync(event.wait, 10)


async def test_hard_cancel_of_a_sync_tool_stops_the_run_not_the_thread(clock: WatchedClock) -> None:
    """The task is CANCELLED at once; the thread cannot be stopped and finishes later, after the record ended."""
    tool = _BlockingSyncTool()
    sub = Script([call('crunch'), text('unreachable')])
    agent = Agent(sub.model)
    agent.tool_plain(tool.crunch)
    config = SubAgentConfig(name='researcher', description='Researches', agent=agent)
    transport, threads_finished = new_transport(), anyio.Event()

    def note(address: str, message: WireMessage) -> None:
        if isinstance(message, ThreadsFinished):
            threads_finished.set()

    transport.subscribe(note)
    async with transport, SubAgentManager([config], clock=clock, transport=transport) as manager:
        task = await manager.start('researcher', 'Research X')
        await _wait_in_thread(tool.entered)()
        info = await manager.hard_cancel(task.task_id)
        assert info.status is TaskStatus.CANCELLED and tool.side_effects == []
        tool.release.set()
        assert await _wait_in_thread(tool.done)()
        await threads_finished.wait()  # the thread's return is reported
        await anyio.wait_all_tasks_blocked()  # and its owner has read the report
    assert tool.side_effects == ['written after the run had stopped']
    assert manager.orphans() == ()


async def test_soft_cancel_of_a_sync_tool_escalates_at_the_grace(clock: WatchedClock) -> None:
    """A request cannot reach a run blocked in a thread; the grace window still ends it, on the clock."""
    tool = _BlockingSyncTool()
    sub = Script([call('crunch'), text('unreachable')], on_cancel=text('unreachable'))
    agent = Agent(sub.model)
    agent.tool_plain(tool.crunch)
    config = SubAgentConfig(name='researcher', description='Researches', agent=agent, grace_seconds=3)
    async with SubAgentManager([config], clock=clock) as manager:
        task = await manager.start('researcher', 'Research X')
        await _wait_in_thread(tool.entered)()
        await manager.soft_cancel(task.task_id)
        clock.advance(3)
        (info,) = (await manager.wait([task.task_id])).tasks
        tool.release.set()
        assert await _wait_in_thread(tool.done)()
    assert isinstance(info.outcome, Cancelled) and info.outcome.escalated
    assert info.cancel is not None and info.cancel.acknowledged_at is None
    assert len(sub.requests) == 1


async def _run_and_cancel(agent: Agent[None, str], when: Callable[[], Awaitable[object]]) -> None:
    """Run the parent and cancel it (pydantic-ai's own cancellation) once `when` returns."""
    with pytest.raises(RunCancelled):
        async with agent.iter('go') as run:
            async with anyio.create_task_group() as group:

                async def cancel_when_ready() -> None:
                    await when()
                    run.cancel()

                group.start_soon(cancel_when_ready)
                async for _ in run:
                    pass


async def test_parent_cancelled_inside_hard_cancel_task(clock: WatchedClock) -> None:
    """The parent stops at once; the task it was stopping still ends CANCELLED once it lets go."""
    stubborn = _Stubborn()
    sub = Script([stubborn.respond])
    parent = Script(
        [
            call('task', description='Research X', subagent_type='researcher', mode='async'),
            after(stubborn.reached, call('hard_cancel_task', task_id=TASK_ID)),
            text('unreachable'),
        ]
    )
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        agent = Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)])

        async def inside_hard_cancel() -> None:
            await stubborn.swallowed.wait()
            await clock.wait_for_deadline(5)  # the tool waits for the task to stop, bounded

        await _run_and_cancel(agent, inside_hard_cancel)
        (task,) = manager.tasks()
        assert task.status is TaskStatus.RUNNING and task.cancel is not None and task.cancel.mode == 'hard'
        stubborn.let_go.set()
        (info,) = (await manager.wait([task.task_id])).tasks
    assert info.status is TaskStatus.CANCELLED and info.unresponsive_since is None
    assert isinstance(info.outcome, Cancelled) and info.outcome.reason == CancelReason(kind='user')


async def test_parent_cancelled_inside_wait_tasks_takes_its_tasks_down(clock: WatchedClock) -> None:
    """A parent run that owns its tasks is cancelled while it waits on them: they are stopped with it."""
    working = Gate()
    sub = Script([working.block_forever()])
    parent = Script(
        [
            call('task', description='Research X', subagent_type='researcher', mode='async'),
            call('wait_tasks', task_ids=[TASK_ID]),
            text('unreachable'),
        ]
    )
    agent = Agent(parent.model, capabilities=[SubAgentCapability(subagents=[researcher(sub)], clock=clock)])

    async def inside_wait() -> None:
        await working.reached.wait()
        await clock.wait_for_deadline(300)  # wait_tasks waits, bounded by the policy's wait timeout

    await _run_and_cancel(agent, inside_wait)
    assert working.stopped.is_set()


async def test_parent_cancelled_inside_wait_tasks_leaves_an_application_task_running(clock: WatchedClock) -> None:
    """With an application-owned manager, waiting never cancels: the task goes on and completes."""
    working = Gate()
    sub = Script([working.hold(text('findings'))])
    parent = Script(
        [
            call('task', description='Research X', subagent_type='researcher', mode='async'),
            call('wait_tasks', task_ids=[TASK_ID]),
            text('unreachable'),
        ]
    )
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        agent = Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)])

        async def inside_wait() -> None:
            await working.reached.wait()
            await clock.wait_for_deadline(300)

        await _run_and_cancel(agent, inside_wait)
        (task,) = manager.tasks()
        assert task.status is TaskStatus.RUNNING
        working.release.set()
        (info,) = (await manager.wait([task.task_id])).tasks
    assert info.outcome == Completed('findings')


async def test_a_cleanup_hook_that_raises_is_recorded(clock: WatchedClock) -> None:
    """The hook of a cancelled task raises: the task stays CANCELLED and the error class is on its record."""
    hook_ran = anyio.Event()

    async def cleanup(info: TaskInfo) -> None:
        hook_ran.set()
        raise OSError('disk full: /var/secret/path')

    working = Gate()
    config = SubAgentConfig(
        name='researcher', description='R', model=Script([working.block_forever()]).model, cleanup=cleanup
    )
    async with SubAgentManager([config], clock=clock) as manager:
        task = await manager.start('researcher', 'Research X')
        await working.reached.wait()
        stopped = await manager.hard_cancel(task.task_id)
        await hook_ran.wait()
    info = manager.get(task.task_id)
    assert stopped.status is info.status is TaskStatus.CANCELLED
    assert info.cleanup_error == 'its hook raised OSError'


async def test_a_cleanup_hook_that_hangs_is_stopped_at_its_bound(clock: WatchedClock) -> None:
    """A hook that never returns is cut at `hook_seconds`; the owner's teardown does not hang on it."""
    hook_waiting = anyio.Event()

    async def cleanup(info: TaskInfo) -> None:
        hook_waiting.set()
        await anyio.sleep_forever()

    working = Gate()
    config = SubAgentConfig(
        name='researcher', description='R', model=Script([working.block_forever()]).model, cleanup=cleanup
    )
    async with SubAgentManager([config], clock=clock, policy=SubAgentPolicy(hook_seconds=7)) as manager:
        task = await manager.start('researcher', 'Research X')
        await working.reached.wait()
        await manager.hard_cancel(task.task_id)
        await hook_waiting.wait()
        clock.advance(7)
    info = manager.get(task.task_id)
    assert info.status is TaskStatus.CANCELLED
    assert info.cleanup_error == 'its hook ran longer than 7s and was stopped'
    assert manager.orphans() == ()


_POINTS = ('first model request', 'async tool', 'waiting for an answer', 'last model request', 'pending')


@pytest.mark.parametrize('mode', ['soft', 'hard'])
@pytest.mark.parametrize('point', _POINTS)
async def test_a_cancel_at_every_await_point_ends_cancelled(clock: WatchedClock, point: str, mode: str) -> None:
    """Wherever the run is waiting when the cancel lands, the task ends CANCELLED, with what it had recorded."""
    gates = {name: Gate() for name in _POINTS}
    sub = Script(
        [
            gates['first model request'].hold(call('checkpoint', completed=['one'])),
            call('crawl'),
            call('ask_parent', question='Which one?'),
            gates['last model request'].hold(text('full answer')),
        ],
        on_cancel=text('partial answer'),
    )
    agent = Agent(sub.model)

    @agent.tool_plain
    async def crawl() -> str:
        """Crawl."""
        await gates['async tool'].wait()
        return 'crawled'

    config = SubAgentConfig(name='r', description='R', agent=agent)
    occupier = SubAgentConfig(name='occupier', description='O', model=Script([Gate().block_forever()]).model)
    policy = SubAgentPolicy(max_running=1)
    async with SubAgentManager([config, occupier], clock=clock, policy=policy) as manager:
        blocker = await manager.start('occupier', 'occupy the only slot') if point == 'pending' else None
        task = await manager.start('r', 'Research X')
        for name in () if point == 'pending' else _POINTS[: _POINTS.index(point)]:
            if name == 'waiting for an answer':
                await manager.wait([task.task_id])
                await manager.answer(task.task_id, 'this one')
            else:
                await gates[name].reached.wait()
                gates[name].release.set()
        if point == 'waiting for an answer':
            assert (await manager.wait([task.task_id])).tasks[0].status is TaskStatus.WAITING_FOR_ANSWER
        elif point != 'pending':
            await gates[point].reached.wait()
        if mode == 'hard':
            await manager.hard_cancel(task.task_id)
        else:
            await manager.soft_cancel(task.task_id)
            for gate in gates.values():
                gate.release.set()
        (info,) = (await manager.wait([task.task_id])).tasks
        if blocker is not None:
            await manager.hard_cancel(blocker.task_id)
    assert info.status is TaskStatus.CANCELLED and isinstance(info.outcome, Cancelled)
    assert info.outcome.mode == mode
    # A soft cancel lets the response in flight land, so a checkpoint it asked for is still recorded.
    reached_checkpoint = point != 'pending' and (mode == 'soft' or _POINTS.index(point) > 0)
    assert info.outcome.partial.completed == (('one',) if reached_checkpoint else ())
