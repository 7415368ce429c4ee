"""The Python API an application uses without a model: start, read, wait for, answer and close."""

from __future__ import annotations

import anyio
import pytest

from subagents_cancel import SubAgentConfig, SubAgentManager, TaskStatus, UnknownTask
from subagents_cancel.errors import ManagerClosed, UnknownSubAgent
from subagents_cancel.outcomes import WaitResult
from subagents_cancel.states import NotWaitingForAnswer
from subagents_cancel.testing import ManualClock

from .helpers import Gate, Script, text

pytestmark = pytest.mark.anyio


def manager_for(*scripts: Script, clock: ManualClock) -> SubAgentManager:
    configs = [
        SubAgentConfig(name=f'agent{index}', description=f'Agent {index}', model=script.model)
        for index, script in enumerate(scripts)
    ]
    return SubAgentManager(configs, clock=clock)


async def test_a_manager_works_only_inside_its_block(clock: ManualClock) -> None:
    """Starting before `async with` or after it raises ManagerClosed; a manager is entered once."""
    manager = manager_for(Script([text('ok')]), clock=clock)
    with pytest.raises(ManagerClosed, match=r'^The sub-agent manager is not open; use `async with manager:`'):
        await manager.start('agent0', 'x')
    async with manager:
        info = await manager.run('agent0', 'x')
    assert info.status is TaskStatus.COMPLETED
    with pytest.raises(ManagerClosed):
        await manager.start('agent0', 'x')
    with pytest.raises(ManagerClosed):
        async with manager:
            pass
    assert manager.get(info.task_id) == info  # records stay readable after the block


async def test_lookups_name_what_is_missing(clock: ManualClock) -> None:
    """Unknown sub-agents and tasks raise errors that carry the offending value."""
    async with manager_for(Script([text('ok')]), clock=clock) as manager:
        with pytest.raises(UnknownSubAgent, match=r"^No sub-agent named 'historian'; available: agent0\.$") as caught:
            await manager.start('historian', 'x')
        assert caught.value.available == ('agent0',)
        with pytest.raises(UnknownTask, match=r"^No task 'agent0-zzzz' belongs to this owner\.$"):
            manager.get('agent0-zzzz')
        with pytest.raises(UnknownTask):
            await manager.wait(['agent0-zzzz'])
        info = await manager.run('agent0', 'x')
        with pytest.raises(NotWaitingForAnswer, match=rf"^Task '{info.task_id}' is not waiting for an answer"):
            await manager.answer(info.task_id, 'yes')


async def test_waiting_never_cancels_what_it_waits_on(clock: ManualClock) -> None:
    """A wait that times out returns the tasks as they are, still running."""
    working = Gate()
    async with manager_for(Script([working.hold(text('late result'))]), clock=clock) as manager:
        task = await manager.start('agent0', 'x')
        await working.reached.wait()
        results: list[WaitResult] = []

        async def wait() -> None:
            results.append(await manager.wait([task.task_id], timeout_seconds=10))

        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            clock.advance(10)
        (result,) = results
        assert result.timed_out and result.tasks[0].status is TaskStatus.RUNNING
        working.release.set()
        result = await manager.wait([task.task_id])
    assert not result.timed_out and result.tasks[0].status is TaskStatus.COMPLETED


async def test_wait_for_any_returns_at_the_first_end(clock: ManualClock) -> None:
    """`wait_for='any'` returns once one task has ended, with the others as they are."""
    slow = Gate()
    async with manager_for(Script([slow.hold(text('slow'))]), Script([text('fast')]), clock=clock) as manager:
        first = await manager.start('agent0', 'x')
        second = await manager.start('agent1', 'y')
        result = await manager.wait([first.task_id, second.task_id], wait_for='any')
        assert [info.status for info in result.tasks] == [TaskStatus.RUNNING, TaskStatus.COMPLETED]
        assert [info.task_id for info in manager.active_tasks()] == [first.task_id]
        slow.release.set()
        assert not (await manager.wait()).timed_out
    assert manager.active_tasks() == () and len(manager.tasks()) == 2


async def test_usage_and_instructions(clock: ManualClock) -> None:
    """A finished task reports its run's usage; the manager describes its sub-agents for hand-wired parents."""
    manager = manager_for(Script([text('ok')]), clock=clock)
    async with manager:
        info = await manager.run('agent0', 'x')
    assert info.usage is not None and info.usage.requests == 1
    assert '- agent0: Agent 0' in manager.instructions
