"""Resume: a cancelled or failed task continues as a new task, from its conversation, with new instructions."""

from __future__ import annotations

import pytest
from inline_snapshot import snapshot
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart

from subagents_cancel import Cancelled, Completed, SubAgentManager, TaskStatus
from subagents_cancel.testing import ManualClock

from .helpers import Gate, Script, call, researcher, text, user_prompts

pytestmark = pytest.mark.anyio

PARTIAL = 'Completed: sources\nIn progress: suppliers\nNot started: report'


def shape(messages: list[ModelMessage]) -> list[str]:
    """Each message as its kind and the kinds of its parts, e.g. `request: user-prompt, tool-return`."""
    return [f'{message.kind}: {", ".join(part.part_kind for part in message.parts)}' for message in messages]


def checkpoint_sources() -> ToolCallPart:
    return ToolCallPart('checkpoint', {'completed': ['sources'], 'in_progress': ['suppliers']}, tool_call_id='c1')


async def test_a_soft_cancelled_task_resumes_from_its_conversation(clock: ManualClock) -> None:
    """The new task's first request is the old conversation, the stop closed out, then the new instructions."""
    working = Gate()
    sub = Script(
        [
            ModelResponse(parts=[checkpoint_sources()]),
            working.hold(call('checkpoint', completed=['suppliers'])),
            text('EU suppliers: A, B'),
        ],
        on_cancel=text(PARTIAL),
    )
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        old = await manager.start('researcher', 'Research suppliers')
        await working.reached.wait()
        await manager.soft_cancel(old.task_id)
        working.release.set()
        await manager.wait([old.task_id])
        sub.on_cancel = None  # the resumed request still shows the old (closed) exchange; it is not a new cancel
        new = await manager.resume(old.task_id, 'Go on, but only European suppliers')
        (done,) = (await manager.wait([new.task_id])).tasks
        old_after = manager.get(old.task_id)

    assert done.status is TaskStatus.COMPLETED and done.outcome == Completed('EU suppliers: A, B')
    assert (done.resumed_from, old_after.resumed_by) == (old.task_id, new.task_id)
    assert old_after.status is TaskStatus.CANCELLED and isinstance(old_after.outcome, Cancelled)
    assert done.inherited_checkpoints == 2 and done.checkpoints == old_after.checkpoints
    resumed = sub.requests[-1]
    assert shape(resumed) == snapshot(
        [
            'request: user-prompt',
            'response: tool-call',
            'request: tool-return',
            'response: tool-call',
            'request: tool-return, user-prompt',
            'response: text',
            'request: user-prompt',
        ]
    )
    assert user_prompts(resumed)[1:] == snapshot(
        [
            '[Your parent stopped this task here and asked for partial results. It has since resumed the task: the request to stop no longer applies; follow its latest message.]',
            """\
Go on, but only European suppliers

(Your parent resumes this task, which it had stopped: the request to stop no longer applies. Go on from where you stopped, following the instructions above; do not repeat finished work.)\
""",
        ]
    )
