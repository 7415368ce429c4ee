"""What does not fit in a Temporal payload (2 MB) still reaches the owner, or fails with a clear reason: never a hang."""

from __future__ import annotations

import pytest
from inline_snapshot import snapshot

from subagents_cancel import Completed, Failed, TaskStatus
from subagents_cancel.temporal import connect
from subagents_cancel.temporal.task_workflow import OutboxPage
from subagents_cancel.testing import ManualClock

from .helpers import Gate, Script, researcher, text
from .temporal_support import Backend

pytestmark = pytest.mark.anyio

BIG = 'x' * 1_200_000
"""An answer that fits in one payload, but not twice: the run's end carries the answer and its conversation."""


async def test_a_big_answer_reaches_the_owner_whole(backend: Backend, clock: ManualClock) -> None:
    """A 1.2 MB answer arrives as it was given; on a worker, the conversation it ended is not sent along."""
    sub = Script([text(BIG)])
    async with backend.manager([researcher(sub)], clock=clock) as manager:
        info = await manager.run('researcher', 'Write it all')
    assert info.status is TaskStatus.COMPLETED and info.outcome == Completed(BIG)


async def test_an_answer_larger_than_a_payload_fails_with_its_reason(backend: Backend, clock: ManualClock) -> None:
    """A 3 MB answer: in process it arrives; on a worker it cannot leave the model request, and the task fails, named."""
    huge = 'y' * 3_000_000
    sub = Script([text(huge)] * 3)  # a worker tries a failed model request three times
    async with backend.manager([researcher(sub)], clock=clock) as manager:
        info = await manager.run('researcher', 'Write even more')
    if backend.kind == 'temporal':
        assert info.status is TaskStatus.FAILED
        assert isinstance(info.outcome, Failed) and info.outcome.error_type == snapshot('UserError')
    else:
        assert info.outcome == Completed(huge)


async def test_garbage_sent_to_a_task_workflow_is_dropped(backend: Backend, clock: ManualClock) -> None:
    """Signals and a query with nonsense in them do not break the task's workflow: the task goes on and completes."""
    gate = Gate()
    sub = Script([gate.hold(text('done'))])
    async with backend.manager([researcher(sub)], clock=clock) as manager:
        task = await manager.start('researcher', 'Research X')
        await gate.reached.wait()
        if backend.kind == 'temporal':
            handle = (await connect(backend.server_address)).get_workflow_handle(task.task_id)
            await handle.signal('deliver', 'not json')
            await handle.signal('deliver', '{"kind": "start_task"}')
            page = await handle.query('reports_after', -5, result_type=OutboxPage)
            assert page == OutboxPage([], closed=False)  # read from the start, where nothing is yet
        gate.release.set()
        (info,) = (await manager.wait([task.task_id])).tasks
    assert info.outcome == Completed('done')
