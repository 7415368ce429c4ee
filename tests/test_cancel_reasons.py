"""A cancel reason travels: the sub-agent's CANCEL_REQUEST states it, the record keeps it, `check_task` shows it."""

from __future__ import annotations

import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent

from subagents_cancel import CancelReason, SubAgentCapability, SubAgentConfig, SubAgentManager
from subagents_cancel.messages import CancelReasonKind
from subagents_cancel.testing import ManualClock

from .helpers import Gate, Script, call, text, tool_returns, user_prompts

pytestmark = pytest.mark.anyio

KINDS: tuple[CancelReasonKind, ...] = (
    'user',
    'parent_cancelled',
    'parent_ended',
    'deadline',
    'region',
    'sibling',
    'budget',
)


async def told_and_reported(clock: ManualClock, reason: CancelReason) -> tuple[str, str]:
    """Soft-cancel a running task for `reason`; return the first line of what its model was told and of check_task."""
    working = Gate()
    sub = Script([working.hold(call('checkpoint', completed=['step 1']))], on_cancel=text('Stopping.'))
    config = SubAgentConfig(name='researcher', description='Researches', model=sub.model)
    async with SubAgentManager([config], clock=clock) as manager:
        task = await manager.start('researcher', 'Research X')
        await working.reached.wait()
        await manager.soft_cancel(task.task_id, reason=reason)
        working.release.set()
        await manager.wait([task.task_id])
        parent = Script([call('check_task', task_id=task.task_id), text('ok')])
        await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('How did it go?')
    told = user_prompts(sub.requests[-1])[-1]
    return told.split(': ', 1)[1].split('. ')[0], tool_returns(parent.requests[-1])[0].splitlines()[0].replace(
        task.task_id, '<id>'
    )


async def test_every_reason_kind_is_stated_to_the_subagent_and_the_parent(clock: ManualClock) -> None:
    seen = {kind: await told_and_reported(clock, CancelReason(kind=kind)) for kind in KINDS}
    assert seen == snapshot(
        {
            'user': (
                'your parent asked you to stop (the work is no longer needed)',
                'Task cancelled: <id> (soft, on request; it read the request after 0.0 ms; it ended 0.0 ms after the request). Partial results:',
            ),
            'parent_cancelled': (
                'your parent asked you to stop (the task that owns yours was cancelled)',
                'Task cancelled: <id> (soft, its owner was cancelled; it read the request after 0.0 ms; it ended 0.0 ms after the request). Partial results:',
            ),
            'parent_ended': (
                'your parent asked you to stop (the run that started you has ended)',
                'Task cancelled: <id> (soft, its owner ended; it read the request after 0.0 ms; it ended 0.0 ms after the request). Partial results:',
            ),
            'deadline': (
                'your parent asked you to stop (your time budget ran out)',
                'Task cancelled: <id> (soft, deadline; it read the request after 0.0 ms; it ended 0.0 ms after the request). Partial results:',
            ),
            'region': (
                'your parent asked you to stop (the group of tasks you belong to was cancelled)',
                'Task cancelled: <id> (soft, its region was cancelled; it read the request after 0.0 ms; it ended 0.0 ms after the request). Partial results:',
            ),
            'sibling': (
                'your parent asked you to stop (another task already did the work)',
                'Task cancelled: <id> (soft, a sibling made it unnecessary; it read the request after 0.0 ms; it ended 0.0 ms after the request). Partial results:',
            ),
            'budget': (
                'your parent asked you to stop (the budget for this work ran out)',
                'Task cancelled: <id> (soft, budget exhausted; it read the request after 0.0 ms; it ended 0.0 ms after the request). Partial results:',
            ),
        }
    )


async def test_free_text_from_the_caller_travels_with_the_kind(clock: ManualClock) -> None:
    seen = await told_and_reported(clock, CancelReason(kind='budget', detail='the $5 budget for this report is spent'))
    assert seen == snapshot(
        (
            'your parent asked you to stop (the budget for this work ran out: the $5 budget for this report is spent)',
            'Task cancelled: <id> (soft, budget exhausted: the $5 budget for this report is spent; it read the request after 0.0 ms; it ended 0.0 ms after the request). Partial results:',
        )
    )
