"""The exceptions raised by the Python API.

```text
SubAgentsError
├── ConfigError            invalid configuration, raised at construction (also a ValueError)
├── ManagerClosed          the manager is not open, or is shutting down
├── UnknownSubAgent        no configured sub-agent has this name
├── UnknownTask            no task with this id belongs to this owner
├── TaskAlreadyFinished    the task is COMPLETED, FAILED or CANCELLED (no longer raised; kept for `except`)
├── NotWaitingForAnswer    the task has no open question
├── RegionClosed           a task was started in a region that was cancelled
├── CancelTimeout          a hard cancel did not stop the task within the bound
└── IllegalTransition      a state-machine transition the table does not allow (a bug)
```

The parent's tools never let these reach the model: each one becomes a short reply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .messages import CancelReason
    from .states import TaskEvent, TaskState, TaskStatus

__all__ = (
    'CancelTimeout',
    'ConfigError',
    'IllegalTransition',
    'ManagerClosed',
    'NotWaitingForAnswer',
    'RegionClosed',
    'SubAgentsError',
    'TaskAlreadyFinished',
    'UnknownSubAgent',
    'UnknownTask',
)


class SubAgentsError(Exception):
    """Base class of every exception this library raises."""


class ConfigError(SubAgentsError, ValueError):
    """A configuration value is invalid; raised when the configuration is built, never at run time."""


class ManagerClosed(SubAgentsError):
    """A task was started on a manager that is not open (outside `async with`) or is shutting down."""

    def __init__(self) -> None:
        super().__init__('The sub-agent manager is not open; use `async with manager:` around the work.')


class UnknownSubAgent(SubAgentsError):
    """No configured sub-agent has this name."""

    def __init__(self, name: str, available: tuple[str, ...]) -> None:
        self.name = name
        self.available = available
        super().__init__(f'No sub-agent named {name!r}; available: {", ".join(available) or "none"}.')


class UnknownTask(SubAgentsError):
    """No task with this id belongs to this owner (a task of another owner reads the same)."""

    def __init__(self, task_id: str, *, finished_forgotten: bool = False) -> None:
        self.task_id = task_id
        self.finished_forgotten = finished_forgotten
        """The owner has forgotten finished tasks (see `SubAgentPolicy.keep_finished`): it may have been one."""
        super().__init__(f'No task {task_id!r} belongs to this owner.')


class TaskAlreadyFinished(SubAgentsError):
    """The task has ended (COMPLETED, FAILED or CANCELLED).

    No longer raised: a cancel of a task that has ended returns it as it ended (see
    [`SubAgentManager.soft_cancel`][subagents_cancel.SubAgentManager.soft_cancel]). Kept so that code that
    catches it still imports.
    """

    def __init__(self, task_id: str, status: TaskStatus) -> None:
        self.task_id = task_id
        self.status = status
        super().__init__(f'Task {task_id!r} has already ended ({status.name}).')


class NotWaitingForAnswer(SubAgentsError):
    """The task has not asked a question, so there is nothing to answer."""

    def __init__(self, task_id: str, status: TaskStatus) -> None:
        self.task_id = task_id
        self.status = status
        super().__init__(f'Task {task_id!r} is not waiting for an answer (it is {status.name}).')


class RegionClosed(SubAgentsError):
    """The region was cancelled, so no new task can start in it."""

    def __init__(self, region: str, reason: CancelReason) -> None:
        self.region = region
        self.reason = reason
        super().__init__(f'Region {region!r} was cancelled ({reason.kind}); no new task can start in it.')


class CancelTimeout(SubAgentsError):
    """A hard cancel did not stop the task within the bound; the task is marked unresponsive."""

    def __init__(self, task_id: str, waited_seconds: float) -> None:
        self.task_id = task_id
        self.waited_seconds = waited_seconds
        super().__init__(
            f'Task {task_id!r} did not stop within {waited_seconds:g}s of a hard cancel; it is marked unresponsive.'
        )


class IllegalTransition(SubAgentsError):
    """The transition table has no entry for this state and event: the caller has a bug."""

    def __init__(self, state: TaskState, event: TaskEvent) -> None:
        self.state = state
        self.event = event
        super().__init__(f'No transition from {state} on {event.name}.')
