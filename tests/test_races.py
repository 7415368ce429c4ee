"""Cancel against completion: whichever reaches the task's record first decides, and no finished output is lost."""

from __future__ import annotations

import anyio
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


async def test_a_soft_cancel_while_the_final_answer_is_processed_keeps_the_answer(clock: ManualClock) -> None:
    """The request lands after the model's final answer arrived but before the run ended: no extra request, answer kept.

    Found by the fuzzer (seed 109761): the request was queued into a run that was already ending, so pydantic-ai
    sent the model one more request to deliver it and dropped the finished answer.
    """
    validating, release = anyio.Event(), anyio.Event()
    sub = Script([text('FULL answer')], on_cancel=text('wrap-up instead of the answer'))
    agent = Agent(sub.model)

    @agent.output_validator
    async def check(output: str) -> str:
        validating.set()  # the run has the final answer and is processing it
        await release.wait()
        return output

    async with SubAgentManager([SubAgentConfig(name='r', description='R', agent=agent)], clock=clock) as manager:
        task = await manager.start('r', 'Research X')
        await validating.wait()
        await manager.soft_cancel(task.task_id)
        release.set()
        (info,) = (await manager.wait([task.task_id])).tasks
    assert len(sub.requests) == 1
    assert info.outcome == Cancelled(
        mode='soft', reason=CancelReason(kind='user'), partial=PartialResult(final_message='FULL answer')
    )
