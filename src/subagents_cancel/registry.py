"""The records of one owner's tasks: their state, progress and outcome, and lookups by id."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import anyio
from pydantic_ai import RunUsage

from .errors import UnknownTask
from .messages import Checkpoint, Question, TaskId
from .results import CancelInfo, Outcome, TaskInfo
from .states import TaskEvent, TaskState, TaskStatus, next_state

__all__ = ('Registry', 'TaskRecord')


@dataclass(eq=False, slots=True, kw_only=True)
class TaskRecord:
    """The mutable record of one task; its state changes only through `apply`."""

    task_id: TaskId
    subagent: str
    description: str
    created_at: float
    parent_task_id: TaskId | None = None
    state: TaskState = TaskState(TaskStatus.PENDING)
    started_at: float | None = None
    ended_at: float | None = None
    cancel: CancelInfo | None = None
    checkpoints: list[Checkpoint] = field(default_factory=list[Checkpoint])
    question: Question | None = None
    outcome: Outcome | None = None
    usage: RunUsage | None = None
    unresponsive_since: float | None = None
    dropped: list[TaskEvent] = field(default_factory=list[TaskEvent])
    """Events that arrived after the task had ended: they lost the race, and are kept, not applied."""
    ended: anyio.Event = field(default_factory=anyio.Event)
    """Set when the task reaches a terminal status."""

    @property
    def status(self) -> TaskStatus:
        """The task's status."""
        return self.state.status

    def apply(self, event: TaskEvent, *, at: float) -> bool:
        """Move the task by `event`; return `False` (and keep the event in `dropped`) if it had already ended.

        Raises:
            IllegalTransition: the move is not in the transition table.
        """
        new = next_state(self.state, event)
        if new is None:
            self.dropped.append(event)
            return False
        self.state = new
        if new.status is not TaskStatus.WAITING_FOR_ANSWER:
            self.question = None
        if new.status is TaskStatus.RUNNING and self.started_at is None:
            self.started_at = at
        if new.status.is_terminal:
            self.ended_at = at
            self.ended.set()
        return True

    def info(self, now: float) -> TaskInfo:
        """A snapshot of this record; `now` is the clock time it is taken at."""
        return TaskInfo(
            task_id=self.task_id,
            subagent=self.subagent,
            description=self.description,
            status=self.status,
            created_at=self.created_at,
            started_at=self.started_at,
            ended_at=self.ended_at,
            elapsed_seconds=(self.ended_at if self.ended_at is not None else now) - self.created_at,
            checkpoints=tuple(self.checkpoints),
            question=self.question.text if self.question else None,
            cancel=self.cancel,
            outcome=self.outcome,
            unresponsive_since=self.unresponsive_since,
            usage=self.usage,
            parent_task_id=self.parent_task_id,
        )


class Registry:
    """One owner's task records, by id."""

    def __init__(self) -> None:
        self._records: dict[TaskId, TaskRecord] = {}
        self._active: dict[TaskId, TaskRecord] = {}

    def new_task_id(self, subagent: str) -> TaskId:
        """A readable id not used by this owner yet: `<subagent>-<4 hex digits>`, longer once those run short."""
        for attempt in range(64):
            task_id = TaskId(f'{subagent}-{secrets.token_hex(2 if attempt < 8 else 4)}')
            if task_id not in self._records:
                return task_id
        raise AssertionError('no free task id after 64 attempts')  # pragma: no cover - 2**32 ids per name

    def add(self, record: TaskRecord) -> None:
        """Track a new task."""
        assert record.task_id not in self._records
        self._records[record.task_id] = record
        self._active[record.task_id] = record

    def get(self, task_id: str) -> TaskRecord:
        """The record of `task_id`.

        Raises:
            UnknownTask: this owner has no such task.
        """
        try:
            return self._records[TaskId(task_id)]
        except KeyError:
            raise UnknownTask(task_id) from None

    def settle(self, record: TaskRecord) -> None:
        """Note that `record` has ended, so it no longer counts as active."""
        assert record.status.is_terminal
        self._active.pop(record.task_id, None)

    def active(self) -> tuple[TaskRecord, ...]:
        """The tasks that have not ended, oldest first."""
        return tuple(self._active.values())

    def all(self) -> tuple[TaskRecord, ...]:
        """Every task this owner knows, oldest first."""
        return tuple(self._records.values())
