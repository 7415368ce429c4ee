"""The tasks whose workflow id another workflow on the server holds, and what their owner gets in their place.

Task ids are random and unique in their owner, so two owners can draw the same one, and a closed workflow keeps its
id for the namespace's retention period. Such a task never starts: its transport answers for it, here, with a named
failure, instead of letting the owner wait for reports that cannot come.
"""

from __future__ import annotations

from pydantic_ai import RunUsage

from subagents_cancel.messages import RunError, RunFinished, TaskId
from subagents_cancel.transport import InProcessTransport
from subagents_cancel.wire import HooksFinished, SettleTask, StartTask, WireMessage

__all__ = ('TakenIds',)


class TakenIds:
    """The tasks of a transport's owners whose workflow could not start because its id is taken."""

    def __init__(self, local: InProcessTransport) -> None:
        """Answer for such tasks into the mailboxes of `local`, where their owners are."""
        self._local = local
        self._owners: dict[TaskId, str] = {}
        """Per task, the address of its owner, until the owner settles it."""

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._owners

    def take(self, message: StartTask | SettleTask) -> None:
        """The task of `message` could not start: its id is taken. Answer `message`, and from now on the rest."""
        self._owners[message.task_id] = message.owner_address
        self.answer(message)

    def answer(self, message: WireMessage) -> None:
        """Answer `message` in the task's place.

        Its start by a failed run (`TaskIdTaken`), its settle by the end of hooks that never ran; a cancel needs no
        answer (the run's end answered it).
        """
        owner = self._owners[message.task_id]
        report: WireMessage
        if isinstance(message, StartTask):
            taken = RunError(
                'TaskIdTaken',
                f'the Temporal server already has a workflow with the id {message.task_id!r}; start the task again',
            )
            report = RunFinished(task_id=message.task_id, sent_at=message.sent_at, ending=taken, usage=RunUsage())
        elif isinstance(message, SettleTask):
            del self._owners[message.task_id]  # the owner is done with it
            report = HooksFinished(task_id=message.task_id, sent_at=message.sent_at, cleanup_error=None)
        else:
            return
        self._local.send_nowait(owner, report)
