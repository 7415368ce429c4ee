"""Hard cancel: the run stops now, wherever it is blocked, and the reply comes only once it has stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent, RunContext, Tool
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import AgentStreamEvent, ModelMessage, ModelResponse, PartDeltaEvent
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

from subagents_cancel import (
    Cancelled,
    CancelReason,
    CancelTimeout,
    PartialResult,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    SubAgentPolicy,
    TaskStatus,
)
from subagents_cancel.testing import ManualClock

from .helpers import TASK_ID, Gate, Script, Step, after, call, replies_of, resolve, text
from .temporal_support import Backend, durable

pytestmark = pytest.mark.anyio


def checking(gate: Gate, seen: list[bool], step: Step) -> Step:
    """The parent's next step, noting whether the sub-agent's blocked work had already been cancelled."""

    async def respond(messages: list[ModelMessage]) -> ModelResponse:
        seen.append(gate.stopped.is_set())
        return await resolve(step, messages)

    return respond


def parent_that_hard_cancels(gate: Gate, seen: list[bool]) -> Script:
    return Script(
        [
            call('task', description='Research X', subagent_type='researcher', mode='async'),
            after(gate.reached, call('hard_cancel_task', task_id=TASK_ID)),
            checking(gate, seen, call('check_task', task_id=TASK_ID)),
            text('done'),
        ]
    )


async def test_hard_cancel_during_a_slow_model_request(backend: Backend, clock: ManualClock) -> None:
    """The request in flight is cancelled before the tool replies; checkpoints made before are kept."""
    in_request = Gate()
    sub = Script([call('checkpoint', completed=['phase 1'], findings=['A']), in_request.block_forever()])
    seen: list[bool] = []
    config = SubAgentConfig(name='researcher', description='Researches', model=sub.model)
    async with backend.manager([config], clock=clock) as manager:
        agent = Agent(
            parent_that_hard_cancels(in_request, seen).model, capabilities=[SubAgentCapability(manager=manager)]
        )
        result = await agent.run('go')

    assert seen == [True]  # the reply came after the request had been cancelled
    assert replies_of(result.all_messages()) == snapshot(
        [
            'Task started with ID: researcher-0001 (researcher); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.',
            """\
Task cancelled: researcher-0001 stopped 0.0 ms after the hard cancel. Partial results:
Completed: phase 1
In progress: nothing
Not started: nothing
Findings: A
(from 1 checkpoint)\
""",
            """\
Task cancelled: researcher-0001 (hard, on request; it ended 0.0 ms after the request). Partial results:
Completed: phase 1
In progress: nothing
Not started: nothing
Findings: A
(from 1 checkpoint)\
""",
        ]
    )


class _Streams(AbstractCapability[object]):
    """Listening to run events makes pydantic-ai stream every model request."""

    async def on_event(self, ctx: RunContext[object], *, event: AgentStreamEvent) -> None:
        if isinstance(event, PartDeltaEvent):
            self.deltas += 1

    deltas: int = 0


async def test_hard_cancel_during_a_slow_streamed_response(clock: ManualClock) -> None:
    """A response that is still streaming is closed; the text streamed so far is not taken as the output."""
    streaming = Gate()

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        yield 'The market '
        yield 'is large '
        await streaming.wait(forever=True)
        yield 'unreachable'

    watcher = _Streams()
    sub_agent = Agent(FunctionModel(stream_function=stream), capabilities=[watcher])
    config = SubAgentConfig(name='researcher', description='Researches', agent=sub_agent)
    async with SubAgentManager([config], clock=clock) as manager:
        task = await manager.start('researcher', 'Research X')
        await streaming.reached.wait()
        info = await manager.hard_cancel(task.task_id)

    assert streaming.stopped.is_set()
    assert watcher.deltas >= 1
    assert info.outcome == Cancelled(mode='hard', reason=CancelReason(kind='user'), partial=PartialResult())
    assert info.usage is not None and info.usage.requests == 1


async def test_hard_cancel_during_a_slow_tool(backend: Backend, clock: ManualClock) -> None:
    """A running tool call is cancelled with the run (on a worker: the tool's activity has stopped)."""
    in_tool = Gate()
    sub = Script([call('crawl', url='https://example.com')])
    sub_agent = durable(sub.model, 'researcher')

    @sub_agent.tool_plain
    async def crawl(url: str) -> str:
        """Fetch a page (slowly)."""
        await in_tool.wait(forever=True)
        return 'unreachable'

    config = SubAgentConfig(name='researcher', description='Researches', agent=sub_agent)
    seen: list[bool] = []
    async with backend.manager([config], clock=clock) as manager:
        agent = Agent(parent_that_hard_cancels(in_tool, seen).model, capabilities=[SubAgentCapability(manager=manager)])
        result = await agent.run('go')

    assert seen == [True]
    assert replies_of(result.all_messages())[1:] == snapshot(
        [
            'Task cancelled: researcher-0001 stopped 0.0 ms after the hard cancel. It recorded no checkpoint and sent no final message.',
            'Task cancelled: researcher-0001 (hard, on request; it ended 0.0 ms after the request). It recorded no checkpoint and sent no final message.',
        ]
    )


async def test_hard_cancel_of_a_pending_task(backend: Backend, clock: ManualClock) -> None:
    """A task still waiting for a slot never starts."""
    busy = Gate()
    first = Script([busy.block_forever()])
    second = Script([text('never')])
    configs = [
        SubAgentConfig(name='researcher', description='Researches', model=first.model),
        SubAgentConfig(name='writer', description='Writes', model=second.model),
    ]
    async with backend.manager(configs, clock=clock, policy=SubAgentPolicy(max_running=1)) as manager:
        await manager.start('researcher', 'Research X')
        queued = await manager.start('writer', 'Write Y')
        assert queued.status is TaskStatus.PENDING
        info = await manager.hard_cancel(queued.task_id)
    assert info.status is TaskStatus.CANCELLED and info.started_at is None
    assert second.requests == []


@dataclass
class _Stubborn:
    """A tool body that swallows the first cancellation and keeps going until let go."""

    entered: anyio.Event = field(default_factory=anyio.Event)
    swallowed: anyio.Event = field(default_factory=anyio.Event)
    let_go: anyio.Event = field(default_factory=anyio.Event)

    async def work(self) -> str:
        """Do the work (and ignore a first cancellation)."""
        self.entered.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            self.swallowed.set()  # a badly behaved tool: it does not re-raise
        await self.let_go.wait()
        return 'finished anyway'


async def test_a_task_that_will_not_stop_is_reported_honestly(backend: Backend, clock: ManualClock) -> None:
    """If the run has not stopped within the bound, the reply says so and the task is marked unresponsive."""
    stubborn = _Stubborn()
    sub = Script([call('stubborn_tool'), text('done')])
    sub_agent = durable(sub.model, 'researcher', tools=[Tool(stubborn.work, name='stubborn_tool')])
    config = SubAgentConfig(name='researcher', description='Researches', agent=sub_agent)

    parent = Script(
        [
            call('task', description='Research X', subagent_type='researcher', mode='async'),
            after(stubborn.entered, call('hard_cancel_task', task_id=TASK_ID)),
            call('list_active_tasks'),
            call('check_task', task_id=TASK_ID),
            text('done'),
        ]
    )

    async def advance_once_swallowed() -> None:
        await stubborn.swallowed.wait()
        clock.advance(5.0)  # the hard cancel's wait bound

    replies: list[str] = []
    async with backend.manager([config], clock=clock) as manager:
        agent = Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)])
        async with anyio.create_task_group() as group:
            group.start_soon(advance_once_swallowed)
            replies = replies_of((await agent.run('go')).all_messages())
            group.cancel_scope.cancel()
        (task,) = manager.tasks()
        assert task.unresponsive and task.status is TaskStatus.RUNNING
        stubborn.let_go.set()
        (task,) = (await manager.wait([task.task_id])).tasks

    assert replies[1:] == snapshot(
        [
            'researcher-0001 did not stop within 5s of the hard cancel; it is marked unresponsive and may still be running. check_task shows whether it stops later.',
            """\
1 active task:
- researcher-0001 RUNNING 5.0s (researcher): 'Research X'; hard cancel requested; unresponsive\
""",
            """\
researcher-0001: RUNNING for 5.0s.
A hard cancel was requested 5.0s ago (on request); it is being stopped.
It did not stop after a hard cancel and is marked unresponsive; it may still be running.
No checkpoints yet.\
""",
        ]
    )
    assert task.status is TaskStatus.CANCELLED and task.unresponsive_since == 5.0 and not task.unresponsive


async def test_hard_cancel_api_raises_when_the_task_does_not_stop(clock: ManualClock) -> None:
    """The Python API raises CancelTimeout naming the task and the bound."""
    stubborn = _Stubborn()
    sub = Script([call('stubborn_tool'), text('done')])
    sub_agent = Agent(sub.model, tools=[Tool(stubborn.work, name='stubborn_tool')])
    config = SubAgentConfig(name='researcher', description='Researches', agent=sub_agent)
    async with SubAgentManager([config], clock=clock) as manager:
        task = await manager.start('researcher', 'Research X')
        await stubborn.entered.wait()

        async def advance_once_swallowed() -> None:
            await stubborn.swallowed.wait()
            clock.advance(5.0)

        async with anyio.create_task_group() as group:
            group.start_soon(advance_once_swallowed)
            with pytest.raises(
                CancelTimeout,
                match=rf"^Task '{task.task_id}' did not stop within 5s of a hard cancel; it is marked unresponsive\.$",
            ):
                await manager.hard_cancel(task.task_id)
        stubborn.let_go.set()
