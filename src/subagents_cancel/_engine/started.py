"""Which tasks a parent run started, read from its messages: each `task` (or `resume_task`) result carries its id.

The id travels in the tool result's `metadata`, which pydantic-ai keeps in the message history but never sends
to the model, so nobody has to parse it out of the reply's text, and it survives storing the messages as JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from pydantic_ai.messages import ModelMessage, ModelRequest, ToolReturn, ToolReturnPart

from subagents_cancel.messages import TaskId

__all__ = ('TASK_ID_KEY', 'started_task_ids', 'with_task_id')

TASK_ID_KEY = 'subagents_cancel_task_id'
"""The key of the task id in the metadata of a `task` or `resume_task` tool result."""
_STARTING_TOOLS = frozenset({'task', 'resume_task'})
"""The parent's tools whose results carry the id of the task they started."""


def with_task_id(reply: str, task_id: TaskId) -> ToolReturn:
    """A `task` or `resume_task` result: `reply` for the model, and the id of the task it started as metadata."""
    return ToolReturn(return_value=reply, metadata={TASK_ID_KEY: task_id})


def started_task_ids(messages: Sequence[ModelMessage]) -> tuple[TaskId, ...]:
    """The ids of the tasks that `task` and `resume_task` started in `messages`, in the order of their results."""
    found: list[TaskId] = []
    for message in messages:
        if not isinstance(message, ModelRequest):
            continue
        for part in message.parts:
            if not isinstance(part, ToolReturnPart) or part.tool_name not in _STARTING_TOOLS:
                continue
            metadata: object = part.metadata
            if isinstance(metadata, dict):
                task_id = cast('dict[str, object]', metadata).get(TASK_ID_KEY)
                if isinstance(task_id, str):
                    found.append(TaskId(task_id))
    return tuple(found)
