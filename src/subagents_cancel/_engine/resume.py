"""Resume a cancelled or failed task: a new task of the same sub-agent that continues the old one's conversation.

The new task's run starts from the old run's messages, repaired by
[`resumable_history`][subagents_cancel.history_surgery.resumable_history], with the parent's instructions as the
next user message. The old task keeps its status and its partial result; it names its resumption in `resumed_by`,
and the new task names it in `resumed_from`. The new task inherits the old one's checkpoints. Its region, time
budget and fallback are those given to `resume` (or the sub-agent's defaults, as for any new task): the old task's
are not carried over.

A task is resumed at most once, and only once it has ended `CANCELLED` or `FAILED`; anything else is refused with
[`NotResumable`][subagents_cancel.outcomes.NotResumable] before anything changes.
"""

from __future__ import annotations

from subagents_cancel._text.instructions import resume_prompt
from subagents_cancel.history_surgery import resumable_history
from subagents_cancel.outcomes import NotResumable
from subagents_cancel.states import TaskStatus

from .registry import TaskRecord
from .supervisor import Supervisor
from .task_book import TaskBook

__all__ = ('Resumes',)


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
