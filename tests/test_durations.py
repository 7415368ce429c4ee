"""Durations passed to one call of the Python API are checked there, as the config classes check theirs."""

from __future__ import annotations

import math
import re

import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent

from subagents_cancel import CancelReason, SubAgentCapability, SubAgentConfig, SubAgentManager, TaskStatus
from subagents_cancel.shutdown import shutdown

from .helpers import Gate, Script, WatchedClock, call, replies_of, text

pytestmark = pytest.mark.anyio

_NOT_A_GRACE_WINDOW = [math.nan, math.inf, -math.inf, -1.0]
_NOT_A_TIMEOUT = [math.nan, math.inf, -1.0, 0.0]


def _rejected(name: str, value: float, allowed: str) -> str:
    return rf'^{name} must be a finite number of seconds, {allowed}; got {re.escape(repr(value))}\.$'


def _manager(clock: WatchedClock) -> SubAgentManager:
    config = SubAgentConfig(name='researcher', description='Researches', model=Script([Gate().block_forever()]).model)
    return SubAgentManager([config], clock=clock)


@pytest.mark.parametrize('grace', _NOT_A_GRACE_WINDOW)
async def test_a_grace_window_must_be_a_finite_duration(clock: WatchedClock, grace: float) -> None:
    """NaN, infinite or negative `grace_seconds` raise ValueError naming the value; no task is touched."""
    async with _manager(clock) as manager:
        task = await manager.start('researcher', 'Research X', region='r')
        with pytest.raises(ValueError, match=_rejected('grace_seconds', grace, '0 or more')):
            await manager.soft_cancel(task.task_id, grace_seconds=grace)
        with pytest.raises(ValueError, match=_rejected('grace_seconds', grace, '0 or more')):
            await manager.soft_cancel_region('r', grace_seconds=grace)
        with pytest.raises(ValueError, match=_rejected('grace_seconds', grace, '0 or more')):
            manager.cancel_all('soft', reason=CancelReason(), grace_seconds=grace)
        with pytest.raises(ValueError, match=_rejected('grace_seconds', grace, '0 or more')):
            await shutdown([manager], grace_seconds=grace)
        info = manager.get(task.task_id)
        assert (info.status, info.cancel) == (TaskStatus.RUNNING, None)
        await manager.start('researcher', 'The region is still open', region='r')


@pytest.mark.parametrize('seconds', _NOT_A_TIMEOUT)
async def test_a_timeout_must_be_a_finite_duration(clock: WatchedClock, seconds: float) -> None:
    """NaN, infinite, negative or zero `timeout_seconds` raise ValueError naming the value; nothing starts."""
    async with _manager(clock) as manager:
        with pytest.raises(ValueError, match=_rejected('timeout_seconds', seconds, 'greater than 0')):
            await manager.start('researcher', 'Research X', timeout_seconds=seconds)
        with pytest.raises(ValueError, match=_rejected('timeout_seconds', seconds, 'greater than 0')):
            await manager.run('researcher', 'Research X', timeout_seconds=seconds)
        with pytest.raises(ValueError, match=_rejected('timeout_seconds', seconds, 'greater than 0')):
            manager.open_region('r', timeout_seconds=seconds)
        assert manager.tasks() == ()
        task = await manager.start('researcher', 'Research X', region='r')
        with pytest.raises(ValueError, match=_rejected('timeout_seconds', seconds, 'greater than 0')):
            await manager.wait([task.task_id], timeout_seconds=seconds)


@pytest.mark.parametrize('seconds', [math.inf, 'inf', 'Infinity'])
async def test_the_task_tool_answers_an_infinite_time_budget_in_band(clock: WatchedClock, seconds: object) -> None:
    """A model's infinite `timeout_seconds` for `task` gets a reply naming the problem; its run goes on."""
    parent = Script([call('task', description='Research X', subagent_type='researcher', timeout_seconds=seconds)])
    async with _manager(clock) as manager:
        agent = Agent(Script([*parent.steps, text('done')]).model, capabilities=[SubAgentCapability(manager=manager)])
        result = await agent.run('go')
        assert manager.tasks() == ()
    assert result.output == 'done'
    assert replies_of(result.all_messages()) == snapshot(
        [
            'Invalid arguments for task: timeout_seconds: Input should be a finite number. Call it again with arguments that fit its schema.'
        ]
    )
