"""The exceptions raised by the Python API.

```text
SubAgentsError
├── ConfigError            invalid configuration, raised at construction (also a ValueError)
├── ManagerClosed          the manager is not open, or is shutting down
├── UnknownSubAgent        no configured sub-agent has this name
├── UnknownTask            no task with this id belongs to this owner
├── CancelTimeout          a hard cancel did not stop the task within the bound
├── NotWaitingForAnswer    the task has no open question                    [states]
├── TaskAlreadyFinished    the task has ended (no longer raised)            [states]
├── IllegalTransition      a move the state table does not allow (a bug)    [states]
├── RegionClosed           a task was started in a cancelled region         [regions]
└── NotResumable           the task completed, runs, or was resumed already [resume]
```

The parent's tools never let these reach the model: each one becomes a short reply. The errors marked `[states]`,
`[regions]` and `[resume]` carry a task's status or a cancel reason, so they live beside those types (in
`subagents_cancel.states`, `subagents_cancel.regions` and `subagents_cancel.outcomes`): this module imports
nothing of the package, and any module can import it.
"""

from __future__ import annotations

__all__ = (
    'CancelTimeout',
    'ConfigError',
    'ManagerClosed',
    'SubAgentsError',
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


class CancelTimeout(SubAgentsError):
    """A hard cancel did not stop the task within the bound; the task is marked unresponsive."""

    def __init__(self, task_id: str, waited_seconds: float) -> None:
        self.task_id = task_id
        self.waited_seconds = waited_seconds
        super().__init__(
            f'Task {task_id!r} did not stop within {waited_seconds:g}s of a hard cancel; it is marked unresponsive.'
        )
