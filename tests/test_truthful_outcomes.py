"""Statuses and numbers tell the truth: a stray CancelledError is a failure, and stop times are never negative."""

from __future__ import annotations

import asyncio

import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent, Tool

from subagents_cancel import (
    Cancelled,
    CancelReason,
    Failed,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    TaskStatus,
)
from subagents_cancel.messages import RunFinished
from subagents_cancel.wire import WireMessage

from .helpers import Gate, Script, WatchedClock, call, new_transport, replies_of, text

pytestmark = pytest.mark.anyio


async def awaits_what_another_cancelled() -> str:
    """Wait for a result that some other code gave up on (its future was cancelled)."""
    given_up = asyncio.get_running_loop().create_future()
    given_up.cancel()
    return await given_up


async def test_a_tool_that_raises_cancelled_error_by_itself_fails_the_task(clock: WatchedClock) -> None:
    """Nothing cancelled the task: a CancelledError out of its own tool is that tool's failure, not a cancel."""
    sub_agent = Agent(
        Script([call('awaits_what_another_cancelled'), text('never')]).model,
        tools=[Tool(awaits_what_another_cancelled)],
    )
    config = SubAgentConfig(name='researcher', description='Researches', agent=sub_agent)
    parent = Script([call('task', description='Research X', subagent_type='researcher'), text('done')])
    async with SubAgentManager([config], clock=clock) as manager:
        result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')
        (info,) = manager.tasks()
    assert (info.status, info.cancel) == (TaskStatus.FAILED, None)
    assert isinstance(info.outcome, Failed) and info.outcome.error_type == 'CancelledError'
    assert replies_of(result.all_messages()) == snapshot(
        [
            'researcher-0001: FAILED after 0.0 ms: CancelledError: a tool or hook of the sub-agent raised CancelledError although nothing cancelled the task (for example, it awaited something that was cancelled elsewhere); details are in the logs'
        ]
    )
    assert manager.metrics().subagents[0].cancelled_runs == ()


async def test_a_run_stopped_from_outside_is_a_cancel_with_a_stop_time_of_zero_or_more(clock: WatchedClock) -> None:
    """The runner's own asyncio task cancelled from outside: CANCELLED `parent_cancelled`, never a negative time."""
    working = Gate()
    bus = new_transport()

    def report_arrives_later(address: str, message: WireMessage) -> None:
        if isinstance(message, RunFinished):
            clock.advance(0.5)  # the report of the stop is handled a little after it was sent

    bus.subscribe(report_arrives_later)
    config = SubAgentConfig(name='researcher', description='Researches', model=Script([working.block_forever()]).model)
    async with bus, SubAgentManager([config], clock=clock, transport=bus) as manager:
        task = await manager.start('researcher', 'Research X')
        await working.reached.wait()
        (runner,) = [each for each in asyncio.all_tasks() if each.get_name() == f'subagent {task.task_id}']
        runner.cancel()
        (info,) = (await manager.wait([task.task_id])).tasks
    assert info.status is TaskStatus.CANCELLED and isinstance(info.outcome, Cancelled)
    assert (info.outcome.mode, info.outcome.reason) == ('hard', CancelReason(kind='parent_cancelled'))
    (stopped,) = manager.metrics().subagents[0].cancelled_runs
    assert stopped.stopped_after_seconds == 0.0
