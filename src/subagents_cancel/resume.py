"""Resume a cancelled or failed task: a new task of the same sub-agent that continues the old one's conversation.

The new task's run starts from the old run's messages, repaired by
[`resumable_history`][subagents_cancel.history_surgery.resumable_history], with the parent's instructions as the
next user message. The old task keeps its status and its partial result; it names its resumption in `resumed_by`,
and the new task names it in `resumed_from`. The new task inherits the old one's checkpoints. Its region, time
budget and fallback are those given to `resume` (or the sub-agent's defaults, as for any new task): the old task's
are not carried over.

A task is resumed at most once, and only once it has ended `CANCELLED` or `FAILED`; anything else is refused with
[`NotResumable`][subagents_cancel.resume.NotResumable] before anything changes.
"""

from __future__ import annotations

from typing import Literal

from .errors import SubAgentsError
from .history_surgery import resumable_history
from .instructions import resume_prompt
from .messages import TaskId
from .registry import TaskRecord
from .states import TaskStatus
from .supervisor import Supervisor
from .task_book import TaskBook

__all__ = ('NotResumable', 'NotResumableReason', 'Resumes')

NotResumableReason = Literal['completed', 'running', 'resumed']
"""Why a task cannot be resumed.

* `'completed'`: it completed; its answer stands (start a new task for more work).
* `'running'`: it has not ended (cancel it first, or wait for it).
* `'resumed'`: it was resumed already, by `resumed_by`.
"""


class NotResumable(SubAgentsError):
    """The task cannot be resumed: it completed, has not ended, or was resumed already."""

    def __init__(self, task_id: TaskId, status: TaskStatus, *, resumed_by: TaskId | None = None) -> None:
        self.task_id = task_id
        self.status = status
        self.resumed_by = resumed_by
        self.reason: NotResumableReason = (
            'resumed' if resumed_by is not None else 'completed' if status is TaskStatus.COMPLETED else 'running'
        )
        match self.reason:
            case 'resumed':
                message = f'Task {task_id!r} was resumed already, as {resumed_by!r}; resume that one instead.'
            case 'completed':
                message = f'Task {task_id!r} completed; its answer stands: start a new task for more work.'
            case 'running':
                message = f'Task {task_id!r} is {status.name}, not ended; cancel it or wait for it first.'
        super().__init__(message)


class Resumes:
    """Resumes one owner's stopped tasks as new tasks, through its supervisor and its book."""

    def __init__(self, book: TaskBook, supervisor: Supervisor) -> None:
        self._book = book
        self._supervisor = supervisor

    def resume(
        self,
        record: TaskRecord,
        instructions: str,
        *,
        region: str | None,
        timeout_seconds: float | None,
        fallback: str | None,
    ) -> TaskRecord:
        """Start the task that continues `record` (see `SubAgentManager.resume`) and return its record.

        Raises:
            NotResumable: `record` completed, has not ended, or was resumed already.
            ManagerClosed, UnknownSubAgent, RegionClosed: as `start` raises them.
        """
        if record.resumed_by is not None or record.status not in (TaskStatus.CANCELLED, TaskStatus.FAILED):
            raise NotResumable(record.task_id, record.status, resumed_by=record.resumed_by)
        cancel_request_id = record.cancel.request_id if record.cancel is not None else None
        history = resumable_history(record.history, cancel_request_id=cancel_request_id)
        # The new task is for what the old one was for: its description (which a fallback is told) is the original
        # request, and the parent's instructions are only its run's prompt.
        resumption = self._supervisor.start(
            record.subagent,
            record.description,
            region=region,
            timeout_seconds=timeout_seconds,
            fallback=fallback,
            history=history,
            prompt=resume_prompt(instructions, description=record.description, has_history=bool(history)),
        )
        self._book.resumed(record, resumption)
        return resumption
