"""Deadlines: a task or region that runs out of time is cancelled with reason `deadline`, softly unless configured hard."""

from __future__ import annotations

import anyio
import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent

from subagents_cancel import (
    Cancelled,
    CancelReason,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    SubAgentPolicy,
    TaskStatus,
)
from subagents_cancel.testing import ManualClock

from .helpers import TASK_ID, Gate, Script, after, call, replies_of, text

pytestmark = pytest.mark.anyio


def crawler(script: Script, slow_fetch: Gate, **settings: object) -> SubAgentConfig:
    """A sub-agent whose `fetch` tool is slow: it returns only when the gate is released (or it is cancelled)."""

    async def fetch(url: str) -> str:
        """Fetch a page."""
        await slow_fetch.wait()
        return f'<html>{url}</html>'

    agent = Agent(script.model, tools=[fetch])
    return SubAgentConfig.model_validate({'name': 'crawler', 'description': 'Crawls', 'agent': agent, **settings})


async def test_deadline_during_a_slow_tool_asks_the_task_to_wrap_up(clock: ManualClock) -> None:
    """Soft by default: the tool call in flight finishes, then the model reads why it must stop."""
    slow_fetch = Gate()
    script = Script([call('fetch', url='a.example')], on_cancel=text('Fetched nothing yet.'))
    async with SubAgentManager([crawler(script, slow_fetch)], clock=clock) as manager:
        task = await manager.start('crawler', 'Crawl a.example', timeout_seconds=10)
        await slow_fetch.reached.wait()
        await anyio.wait_all_tasks_blocked()
        clock.advance(10)
        await anyio.wait_all_tasks_blocked()
        cancelling = manager.get(task.task_id)
        slow_fetch.release.set()
        (info,) = (await manager.wait([task.task_id])).tasks

    assert task.deadline_at == 10
    assert cancelling.status is TaskStatus.RUNNING and cancelling.cancel is not None
    assert (cancelling.cancel.mode, cancelling.cancel.reason) == ('soft', CancelReason(kind='deadline'))
    assert not slow_fetch.stopped.is_set()
    assert isinstance(info.outcome, Cancelled)
    assert info.outcome.reason == CancelReason(kind='deadline')
    assert info.outcome.partial.final_message == 'Fetched nothing yet.'
    assert 'time budget' in script.requests[-1][-1].parts[-1].content  # type: ignore[union-attr]


async def test_hard_deadline_stops_the_slow_tool_at_once(clock: ManualClock) -> None:
    slow_fetch = Gate()
    script = Script([call('fetch', url='a.example')], on_cancel=text('never asked'))
    policy = SubAgentPolicy(deadline_cancel='hard')
    async with SubAgentManager(
        [crawler(script, slow_fetch, timeout_seconds=10)], clock=clock, policy=policy
    ) as manager:
        task = await manager.start('crawler', 'Crawl a.example')
        await slow_fetch.reached.wait()
        await anyio.wait_all_tasks_blocked()
        clock.advance(10)
        (info,) = (await manager.wait([task.task_id])).tasks

    assert slow_fetch.stopped.is_set()
    assert not script.saw_cancel_request()
    assert isinstance(info.outcome, Cancelled)
    assert (info.outcome.mode, info.outcome.reason) == ('hard', CancelReason(kind='deadline'))


async def test_unused_budget_changes_nothing(clock: ManualClock) -> None:
    """A task that completes within its budget completes; its timer goes with it."""
    slow_fetch = Gate()
    slow_fetch.release.set()
    script = Script([call('fetch', url='a.example'), text('done')])
    policy = SubAgentPolicy(task_timeout_seconds=10)
    async with SubAgentManager([crawler(script, slow_fetch)], clock=clock, policy=policy) as manager:
        info = await manager.run('crawler', 'Crawl a.example')
        clock.advance(60)
        await anyio.wait_all_tasks_blocked()
    assert (info.status, info.deadline_at, info.cancel) == (TaskStatus.COMPLETED, 10, None)


async def test_the_parent_sets_a_budget_and_check_task_shows_why_the_task_stopped(clock: ManualClock) -> None:
    slow_fetch = Gate()
    sub = Script([call('fetch', url='a.example')], on_cancel=text('Fetched nothing yet.'))
    checked = anyio.Event()
    parent = Script(
        [
            call('task', subagent_type='crawler', description='Crawl a.example', mode='async', timeout_seconds=10),
            call('wait_tasks'),
            after(checked, call('check_task', task_id=TASK_ID)),
            text('The crawl ran out of time.'),
        ]
    )
    agent = Agent(parent.model, capabilities=[SubAgentCapability(subagents=[crawler(sub, slow_fetch)], clock=clock)])
    async with anyio.create_task_group() as group:
        group.start_soon(agent.run, 'Crawl')
        await slow_fetch.reached.wait()
        await anyio.wait_all_tasks_blocked()
        clock.advance(12)
        slow_fetch.release.set()
        while len(parent.requests) < 3:
            await anyio.wait_all_tasks_blocked()
        checked.set()

    assert replies_of(parent.requests[-1]) == snapshot(
        [
            'Task started with ID: crawler-0001 (crawler); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.',
            """\
The task has ended.

Task cancelled: crawler-0001 (soft, deadline; it read the request after 0.0 ms; it ended 0.0 ms after the request). Partial results:
Its final message:
Fetched nothing yet.\
""",
            """\
Task cancelled: crawler-0001 (soft, deadline; it read the request after 0.0 ms; it ended 0.0 ms after the request). Partial results:
Its final message:
Fetched nothing yet.\
""",
        ]
    )


def test_a_manual_clock_refuses_to_go_back() -> None:
    """Moving a manual clock backwards is a `ValueError` that says why, not an assertion."""
    clock = ManualClock(10.0)
    with pytest.raises(ValueError, match='^A clock only moves forward; cannot advance by -1 seconds.$'):
        clock.advance(-1)
    assert clock.now() == 10.0
