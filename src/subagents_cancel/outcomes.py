"""What the Python API's commands return, and the refusal to resume: typed, so that the tools only format them.

[`SubAgentManager.wait`][subagents_cancel.SubAgentManager.wait] returns a `WaitResult`; the `*_outcome` cancel
commands return a `SoftCancelOutcome` or a `HardCancelOutcome`, whose `result` says what the request found and
did; [`SubAgentManager.resume`][subagents_cancel.SubAgentManager.resume] raises `NotResumable`, whose `reason` says
why. Region cancels return a [`RegionCancelOutcome`][subagents_cancel.regions.RegionCancelOutcome].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import SubAgentsError
from .messages import TaskId
from .results import TaskInfo
from .states import TaskStatus

__all__ = (
    'HardCancelOutcome',
    'HardCancelResult',
    'NotResumable',
    'NotResumableReason',
    'SoftCancelOutcome',
    'SoftCancelResult',
    'WaitFor',
    'WaitResult',
)

WaitFor = Literal['all', 'any']
"""Wait until all of the tasks have ended, or until any one of them has."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitResult:
    """What [`SubAgentManager.wait`][subagents_cancel.SubAgentManager.wait] saw when it returned."""

    tasks: tuple[TaskInfo, ...]
    timed_out: bool
    """The timeout passed before the tasks ended or one of them asked a question."""


SoftCancelResult = Literal[
    'requested', 'unconfirmed', 'held', 'never_started', 'already_requested', 'already_ended', 'lost'
]
"""What a soft cancel did.

* `'requested'`: the task was asked to wrap up (and its open question, if any, answered with the request).
* `'unconfirmed'`: the request was sent, but the task had not confirmed it within `receipt_wait_seconds` (its host is
  slow, or down: a Temporal worker that is not running); it is sent again until the task has it, and the grace window
  runs from the request.
* `'held'`: the task holds the request while its final answer is checked; the answer wins if accepted.
* `'never_started'`: the task was PENDING; it is cancelled and never starts.
* `'already_requested'`: a cancel had been requested before; nothing changed.
* `'already_ended'`: the task had ended before; nothing changed.
* `'lost'`: the task's output was committed (or its run had raised) before the request reached it.
"""

HardCancelResult = Literal['stopped', 'timed_out', 'already_ended', 'lost']
"""What a hard cancel did.

* `'stopped'`: the task stopped and ended `CANCELLED`.
* `'timed_out'`: it did not stop within `hard_cancel_wait_seconds`; it is marked unresponsive.
* `'already_ended'`: the task had ended before; nothing changed.
* `'lost'`: the task's output was committed (or its run had raised) before the request reached it.
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class SoftCancelOutcome:
    """The outcome of a soft cancel command."""

    info: TaskInfo
    """The task as of now."""
    result: SoftCancelResult
    answered_question: bool = False
    """The task was waiting for an answer, and the request answers its question."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HardCancelOutcome:
    """The outcome of a hard cancel command."""

    info: TaskInfo
    """The task as of now."""
    result: HardCancelResult


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
