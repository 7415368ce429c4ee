"""Cancel against completion: whichever reaches the task's record first decides, and no finished output is lost."""

from __future__ import annotations

import pytest
from pydantic_ai import Agent

from subagents_cancel import (
    Cancelled,
    CancelReason,
    Completed,
    ManualClock,
    PartialResult,
    SubAgentConfig,
    SubAgentManager,
    TaskAlreadyFinished,
    TaskStatus,
)

from .helpers import LingersAfterTheEnd, Script, text

pytestmark = pytest.mark.anyio


async def test_hard_cancel_after_the_output_keeps_the_output(clock: ManualClock) -> None:
    """A hard cancel that lands after the run produced its answer wins (it was requested first), and keeps it."""
    lingers = LingersAfterTheEnd()
    agent = Agent(Script([text('FULL answer')]).model, capabilities=[lingers])
    async with SubAgentManager([SubAgentConfig(name='r', description='R', agent=agent)], clock=clock) as manager:
        task = await manager.start('r', 'Research X')
        await lingers.reached.wait()
        info = await manager.hard_cancel(task.task_id)
    assert info.outcome == Cancelled(
        mode='hard', reason=CancelReason(kind='user'), partial=PartialResult(final_message='FULL answer')
    )


async def test_completion_first_refuses_the_cancel(clock: ManualClock) -> None:
    """When the task has already reported its output, the cancel is refused and the result is untouched."""
    async with SubAgentManager(
        [SubAgentConfig(name='r', description='R', model=Script([text('done')]).model)], clock=clock
    ) as manager:
        info = await manager.run('r', 'Research X')
        with pytest.raises(TaskAlreadyFinished):
            await manager.hard_cancel(info.task_id)
    assert manager.get(info.task_id).status is TaskStatus.COMPLETED
    assert manager.get(info.task_id).outcome == Completed('done')
