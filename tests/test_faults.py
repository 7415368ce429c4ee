"""Faults and awkward timing: each ends in a defined state, within a bound, with a clear record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import AbstractCapability, ValidatedToolArgs, WrapToolExecuteHandler
from pydantic_ai.messages import ToolCallPart
from pydantic_ai.tools import ToolDefinition

from subagents_cancel import Cancelled, Completed, ManualClock, SubAgentConfig, SubAgentManager, TaskStatus

from .helpers import Gate, Script, call, cancel_requested, text, tool_returns

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


@dataclass
class _ToolDeadline(AbstractCapability[object]):
    """A sub-agent's own per-call tool timeout: a slow call is cut off and the run goes on."""

    clock: ManualClock
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


async def test_a_question_cut_off_by_the_subagent_is_withdrawn(clock: ManualClock) -> None:
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
