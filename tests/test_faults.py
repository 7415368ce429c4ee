"""Faults and awkward timing: each ends in a defined state, within a bound, with a clear record."""

from __future__ import annotations

import pytest

from subagents_cancel import Cancelled, ManualClock, SubAgentConfig, SubAgentManager, TaskStatus

from .helpers import Script, call, cancel_requested, text, tool_returns

pytestmark = pytest.mark.anyio


def researcher(script: Script) -> SubAgentConfig:
    return SubAgentConfig(name='researcher', description='Researches', model=script.model)


async def test_a_cancel_while_an_answer_is_delivered_loses_neither(clock: ManualClock) -> None:
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
