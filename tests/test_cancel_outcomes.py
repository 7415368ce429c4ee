"""The cancel commands' typed outcomes: what a request found and what it did, which the tools only put in words."""

from __future__ import annotations

import pytest
from inline_snapshot import snapshot

from subagents_cancel import SubAgentManager, SubAgentPolicy, TaskStatus
from subagents_cancel.testing import ManualClock

from .helpers import Gate, Script, call, researcher, text

pytestmark = pytest.mark.anyio


async def test_soft_cancel_outcomes_name_what_the_request_did(clock: ManualClock) -> None:
    """A pending task never starts, a running one is asked, a second request and one after the end change nothing."""
    working = Gate()
    sub = Script([working.hold(call('checkpoint', completed=['phase 1']))], on_cancel=text('partial'))
    async with SubAgentManager([researcher(sub)], clock=clock, policy=SubAgentPolicy(max_running=1)) as manager:
        running = await manager.start('researcher', 'Research X')
        pending = await manager.start('researcher', 'Research Y')
        await working.reached.wait()
        outcomes = [
            await manager.soft_cancel_outcome(pending.task_id),
            await manager.soft_cancel_outcome(running.task_id),
            await manager.soft_cancel_outcome(running.task_id),
        ]
        working.release.set()
        await manager.wait([running.task_id])
        outcomes.append(await manager.soft_cancel_outcome(running.task_id))

    assert [(outcome.result, outcome.answered_question, outcome.info.status) for outcome in outcomes] == snapshot(
        [
            ('never_started', False, TaskStatus.CANCELLED),
            ('requested', False, TaskStatus.RUNNING),
            ('already_requested', False, TaskStatus.RUNNING),
            ('already_ended', False, TaskStatus.CANCELLED),
        ]
    )
    assert manager.get(running.task_id).outcome == outcomes[-1].info.outcome


async def test_soft_cancel_outcome_says_it_answered_the_open_question(clock: ManualClock) -> None:
    """A task waiting for an answer gets the request as its answer, and the outcome says so."""
    sub = Script([call('ask_parent', question='EU or US?')], on_cancel=text('partial'))
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        asking = await manager.run('researcher', 'Research X')
        outcome = await manager.soft_cancel_outcome(asking.task_id)
        (ended,) = (await manager.wait([asking.task_id])).tasks

    assert (asking.status, outcome.result, outcome.answered_question) == snapshot(
        (TaskStatus.WAITING_FOR_ANSWER, 'requested', True)
    )
    assert ended.status is TaskStatus.CANCELLED


async def test_hard_cancel_outcomes_name_what_the_request_did(clock: ManualClock) -> None:
    """A running task is stopped; a second request finds it ended; the API's return is the outcome's snapshot."""
    working = Gate()
    sub = Script([working.block_forever()])
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        task = await manager.start('researcher', 'Research X')
        await working.reached.wait()
        first = await manager.hard_cancel_outcome(task.task_id)
        second = await manager.hard_cancel_outcome(task.task_id)
        again = await manager.hard_cancel(task.task_id)

    assert [(outcome.result, outcome.info.status) for outcome in (first, second)] == snapshot(
        [('stopped', TaskStatus.CANCELLED), ('already_ended', TaskStatus.CANCELLED)]
    )
    assert working.stopped.is_set()
    assert again == second.info
