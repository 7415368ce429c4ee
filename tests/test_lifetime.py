"""A task never outlives its owner: the parent run (however it ends) or an explicit manager scope."""

from __future__ import annotations

import asyncio

import anyio
import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent, RunCancelled
from pydantic_ai.messages import ModelMessage, ModelResponse

from subagents_cancel import (
    Cancelled,
    CancelReason,
    PartialResult,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    SubAgentPolicy,
    TaskStatus,
)
from subagents_cancel.messages import CancelRequest
from subagents_cancel.testing import ManualClock

from .helpers import Gate, Script, Step, after, call, new_transport, replies_of, text, user_prompts

pytestmark = pytest.mark.anyio


def researcher(script: Script) -> SubAgentConfig:
    return SubAgentConfig(name='researcher', description='Researches', model=script.model)


def starts_background_task_then(*rest: Step) -> Script:
    return Script([call('task', description='Research X', subagent_type='researcher', mode='async'), *rest])


async def test_tasks_are_cancelled_when_the_parent_run_completes(clock: ManualClock) -> None:
    """The parent answers while its task is still working: the task's request is cancelled before run() returns."""
    working = Gate()
    sub = Script([working.block_forever()])
    parent = starts_background_task_then(after(working.reached, text('done early')))
    agent = Agent(parent.model, capabilities=[SubAgentCapability(subagents=[researcher(sub)], clock=clock)])

    result = await agent.run('go')

    assert result.output == 'done early'
    assert working.stopped.is_set()


async def test_tasks_are_cancelled_when_the_parent_run_fails(clock: ManualClock) -> None:
    """A parent whose model raises still takes its tasks down with it."""
    working = Gate()
    sub = Script([working.block_forever()])

    async def explode(messages: list[ModelMessage]) -> ModelResponse:
        await working.reached.wait()
        raise RuntimeError('the parent model broke')

    parent = starts_background_task_then(explode)
    agent = Agent(parent.model, capabilities=[SubAgentCapability(subagents=[researcher(sub)], clock=clock)])

    with pytest.raises(RuntimeError, match=r'^the parent model broke$'):
        await agent.run('go')
    assert working.stopped.is_set()


async def test_tasks_are_cancelled_when_the_parent_run_is_cancelled(clock: ManualClock) -> None:
    """pydantic-ai's own cancellation of the parent run reaches its tasks, and the parent still sees RunCancelled."""
    working = Gate()
    sub = Script([working.block_forever()])
    parent_waits = Gate()
    parent = starts_background_task_then(parent_waits.block_forever())
    agent = Agent(parent.model, capabilities=[SubAgentCapability(subagents=[researcher(sub)], clock=clock)])

    with pytest.raises(RunCancelled):
        async with agent.iter('go') as run:
            async with anyio.create_task_group() as group:

                async def cancel_when_both_block() -> None:
                    await working.reached.wait()
                    await parent_waits.reached.wait()
                    run.cancel()

                group.start_soon(cancel_when_both_block)
                async for _ in run:
                    pass
    assert working.stopped.is_set()


async def test_tasks_are_cancelled_when_the_parent_task_is_cancelled_from_outside(clock: ManualClock) -> None:
    """An external `Task.cancel()` of the code running the parent takes the tasks down too."""
    working = Gate()
    sub = Script([working.block_forever()])
    parent = starts_background_task_then(Gate().block_forever())
    agent = Agent(parent.model, capabilities=[SubAgentCapability(subagents=[researcher(sub)], clock=clock)])

    parent_task = asyncio.get_running_loop().create_task(agent.run('go'))
    await working.reached.wait()
    parent_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await parent_task
    assert working.stopped.is_set()


async def test_soft_owner_end_lets_tasks_hand_back_partial_results(clock: ManualClock) -> None:
    """With `owner_end='soft'`, a task still running when the scope ends is told why, and wraps up."""
    working = Gate()
    sub = Script([working.hold(call('checkpoint', completed=['half']))], on_cancel=text('Completed: half of it'))
    bus = new_transport()
    # The step in flight ends only once the owner's cancel request has gone out, so the next request reads it.
    bus.subscribe(lambda address, message: working.release.set() if isinstance(message, CancelRequest) else None)
    policy = SubAgentPolicy(owner_end='soft')

    async with bus, SubAgentManager([researcher(sub)], clock=clock, policy=policy, transport=bus) as manager:
        await manager.start('researcher', 'Research X')
        await working.reached.wait()

    (info,) = manager.tasks()
    assert info.outcome == Cancelled(
        mode='soft',
        reason=CancelReason(kind='parent_ended'),
        partial=PartialResult(
            completed=('half',), final_message='Completed: half of it', checkpoints=1, read_request=True
        ),
    )
    assert 'the run that started you has ended' in user_prompts(sub.requests[-1])[-1]


async def test_teardown_does_not_hang_on_a_task_that_ignores_cancellation(clock: ManualClock) -> None:
    """A sub-agent that swallows its cancellation is reported as an orphan; the owner's exit returns anyway."""
    entered, swallowed, let_go = anyio.Event(), anyio.Event(), anyio.Event()
    sub = Script([call('stubborn_tool'), text('done')])
    sub_agent = Agent(sub.model)

    @sub_agent.tool_plain
    async def stubborn_tool() -> str:
        """Work, ignoring the first cancellation."""
        entered.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            swallowed.set()
        await let_go.wait()
        return 'finished anyway'

    config = SubAgentConfig(name='researcher', description='Researches', agent=sub_agent)
    manager = SubAgentManager([config], clock=clock)

    async def advance_once_swallowed() -> None:
        await swallowed.wait()
        clock.advance(5.0)  # the teardown bound

    async with anyio.create_task_group() as group:
        group.start_soon(advance_once_swallowed)
        async with manager:
            await manager.start('researcher', 'Research X')
            await entered.wait()

    (orphan,) = manager.orphans()
    assert orphan.unresponsive and orphan.unresponsive_since == 5.0
    let_go.set()
    (info,) = (await manager.wait([orphan.task_id])).tasks
    assert info.status is TaskStatus.CANCELLED  # it is reported again once it finally stops


async def test_a_manager_scope_owns_tasks_across_parent_runs(clock: ManualClock) -> None:
    """Tasks started by one parent run are visible to the next when both use the application's manager."""
    working = Gate()
    sub = Script([working.hold(text('findings'))])
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        capability = SubAgentCapability(manager=manager)
        first = await Agent(starts_background_task_then(text('started')).model, capabilities=[capability]).run('go')
        task_id = manager.tasks()[0].task_id
        assert manager.get(task_id).status is TaskStatus.RUNNING  # the first run ended; the task did not
        working.release.set()
        second_parent = Script([call('wait_tasks', task_ids=[task_id]), text('done')])
        second = await Agent(second_parent.model, capabilities=[capability]).run('go on')

    assert first.output == 'started'
    assert replies_of(second.all_messages()) == snapshot(
        [
            """\
The task has ended.

researcher-0001: COMPLETED in 0.0 ms. Output:
findings\
"""
        ]
    )


async def test_sync_task_is_cancelled_with_the_parent(clock: ManualClock) -> None:
    """A sync task runs inside the tool call: cancelling the parent run cancels the task."""
    working = Gate()
    sub = Script([working.block_forever()])
    parent = Script([call('task', description='Research X', subagent_type='researcher', mode='sync')])
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        agent = Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)])
        with pytest.raises(RunCancelled):
            async with agent.iter('go') as run:
                async with anyio.create_task_group() as group:

                    async def cancel_when_blocked() -> None:
                        await working.reached.wait()
                        run.cancel()

                    group.start_soon(cancel_when_blocked)
                    async for _ in run:
                        pass
        (info,) = manager.tasks()
        assert info.status is TaskStatus.CANCELLED  # the manager scope is still open; the caller's end stopped it
    assert working.stopped.is_set()
    assert isinstance(info.outcome, Cancelled)
    assert (info.outcome.mode, info.outcome.reason) == ('hard', CancelReason(kind='parent_cancelled'))
