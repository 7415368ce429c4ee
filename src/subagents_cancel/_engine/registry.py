"""The records of one owner's tasks and regions: state, progress, outcome, and lookups."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TypeVar

import anyio
from pydantic_ai import RunUsage
from pydantic_ai.messages import ModelMessage

from subagents_cancel.errors import UnknownTask
from subagents_cancel.ids import random_hex
from subagents_cancel.messages import Checkpoint, Question, RunEnding, RunError, RunOutput, RunStopped, TaskId
from subagents_cancel.regions import RegionCancel, region_contains
from subagents_cancel.results import CancelInfo, Cancelled, Completed, Failed, Outcome, PartialResult, TaskInfo
from subagents_cancel.states import TaskEvent, TaskState, TaskStatus, next_state

__all__ = ('Registry', 'TaskRecord')

_K = TypeVar('_K')


@dataclass(eq=False, slots=True, kw_only=True)
class TaskRecord:
    """The mutable record of one task; its state changes only through `apply`."""

    task_id: TaskId
    subagent: str
    description: str
    created_at: float
    region: str | None = None
    deadline_at: float | None = None
    parent_task_id: TaskId | None = None
    root_id: str = ''
    fallback_name: str | None = None
    """The sub-agent that takes over if this task is cancelled."""
    fallback_for: TaskId | None = None
    fallback_id: TaskId | None = None
    awaiting_fallback: bool = False
    """It was cancelled and its fallback has not ended yet."""
    hooks_done: bool = False
    """Its run is over and its `cleanup` / `promote` hook has run (or had nothing to do)."""
    state: TaskState = TaskState(TaskStatus.PENDING)
    status: TaskStatus = field(default=TaskStatus.PENDING, init=False)
    """The task's status: its `state`'s, kept beside it (`apply` writes both) since every step reads it."""
    started_at: float | None = None
    ended_at: float | None = None
    cancel: CancelInfo | None = None
    checkpoints: list[Checkpoint] = field(default_factory=list[Checkpoint])
    question: Question | None = None
    outcome: Outcome | None = None
    usage: RunUsage | None = None
    unresponsive_since: float | None = None
    lingering_threads: int = 0
    cleanup_error: str | None = None
    resumed_from: TaskId | None = None
    """The cancelled or failed task this one continues, from its conversation."""
    resumed_by: TaskId | None = None
    """The task that continues this one (a task is resumed once)."""
    inherited_checkpoints: int = 0
    """How many of `checkpoints` came from the task it continues (they come first)."""
    history: tuple[ModelMessage, ...] = ()
    """The conversation its run ended with, kept while it can be resumed: it ended CANCELLED or FAILED."""
    dropped: list[TaskEvent] = field(default_factory=list[TaskEvent])
    """Events that arrived after the task had ended: they lost the race, and are kept, not applied."""
    _ended: anyio.Event | None = field(default=None, init=False, repr=False)

    @property
    def ended(self) -> anyio.Event:
        """Set when the task reaches a terminal status.

        Made when first asked for (about 0.9 KB): most tasks end without anyone waiting for this event.
        """
        if self._ended is None:
            self._ended = anyio.Event()
            if self.status.is_terminal:
                self._ended.set()
        return self._ended

    @property
    def settled(self) -> bool:
        """Whether it has ended, its hooks have run, and the fallback it started (if any) has ended too."""
        return self.status.is_terminal and self.hooks_done and not self.awaiting_fallback

    def apply(self, event: TaskEvent, *, at: float, ending: RunEnding | None = None) -> bool:
        """Move the task by `event`; return `False` (and keep the event in `dropped`) if it had already ended.

        `ending` is how its run ended, when `event` reports that; a terminal move turns it into the outcome.

        Raises:
            IllegalTransition: the move is not in the transition table.
        """
        new = next_state(self.state, event)
        if new is None:
            self.dropped.append(event)
            return False
        self.state, self.status = new, new.status
        if new.status is not TaskStatus.WAITING_FOR_ANSWER:
            self.question = None
        if new.status is TaskStatus.RUNNING and self.started_at is None:
            self.started_at = at
        if new.status.is_terminal:
            self.ended_at = at
            self.outcome = outcome = self._conclude(ending)
            if self.cancel is not None and not isinstance(outcome, Cancelled):
                self.cancel = replace(self.cancel, lost=True, lost_to=outcome)  # its output (or failure) came first
            if self._ended is not None:
                self._ended.set()
        return True

    def note_lost(self, ending: RunOutput | RunError) -> None:
        """The task says a cancel request reached it after the run had committed (or raised) `ending`: the cancel lost.

        Recorded at once, before the task has ended (a report that comes after its end changes nothing).
        """
        if self.cancel is not None and not self.status.is_terminal:
            self.cancel = replace(self.cancel, lost=True, lost_to=_result(ending))

    def _conclude(self, ending: RunEnding | None) -> Outcome:
        match self.status:
            case TaskStatus.COMPLETED:
                assert isinstance(ending, RunOutput)
                return _result(ending)
            case TaskStatus.FAILED:
                assert isinstance(ending, RunError)
                return _result(ending)
            case _:
                assert self.status is TaskStatus.CANCELLED and self.cancel is not None
                return Cancelled(
                    mode=self.cancel.mode,
                    reason=self.cancel.reason,
                    escalated=self.cancel.escalated_at is not None,
                    error=ending.error if isinstance(ending, RunStopped) else None,
                    partial=PartialResult.assemble(
                        self.checkpoints,
                        final_message=ending.output if isinstance(ending, RunStopped) else None,
                        read_request=self.cancel.acknowledged_at is not None,
                    ),
                )

    def info(self, now: float, *, fallback: TaskInfo | None = None, subtasks: tuple[TaskInfo, ...] = ()) -> TaskInfo:
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
            usage=self.usage,
            region=self.region,
            deadline_at=self.deadline_at,
            parent_task_id=self.parent_task_id,
            root_id=self.root_id,
            subtasks=subtasks,
            fallback_for=self.fallback_for,
            fallback=fallback,
            unresponsive_since=self.unresponsive_since,
            lingering_threads=self.lingering_threads,
            cleanup_error=self.cleanup_error,
            resumed_from=self.resumed_from,
            resumed_by=self.resumed_by,
            inherited_checkpoints=self.inherited_checkpoints,
        )


def _result(ending: RunOutput | RunError) -> Completed | Failed:
    """The result of a run that ended before any cancel request reached it: its output, or its error."""
    if isinstance(ending, RunOutput):
        return Completed(ending.output)
    return Failed(ending.error_type, ending.message)


class Registry:
    """One owner's task records, by id and by region, and the cancels of its regions.

    Finished tasks are forgotten oldest first once more than `keep_finished` are done, or `finished_ttl_seconds`
    after they ended; a task is done when it has settled and has no sync-tool thread still running.

    A region is forgotten with the last task it holds (or holds in a region inside it), and so are its cancel and
    its delivery: a cancelled region stays closed while the owner keeps any of its tasks. A region cancelled while
    it held no task stays closed until `keep_finished` more such regions have been cancelled, or
    `finished_ttl_seconds` after its cancel.
    """

    def __init__(self, *, keep_finished: int | None = None, finished_ttl_seconds: float | None = None) -> None:
        self._records: dict[TaskId, TaskRecord] = {}
        self._active: dict[TaskId, TaskRecord] = {}
        self._by_region: dict[str, dict[TaskId, TaskRecord]] = {}
        self._region_cancels: dict[str, RegionCancel] = {}
        self._delivered: set[str] = set()
        """Regions holding tasks whose results a join delivered (of them or of a region around them), and that no
        task has joined since."""
        self._cancelled_empty: dict[str, float] = {}
        """Regions cancelled while they held no task, oldest first, with when: closed until `keep_finished` newer
        ones, or until the TTL has passed."""
        self._stopped_but_running: dict[TaskId, TaskRecord] = {}
        """Tasks marked unresponsive, until they have really stopped: kept apart so listing them costs nothing
        per finished task."""
        self._done: dict[TaskId, float] = {}
        """Done tasks, oldest first, with when they ended: the ones that may be forgotten."""
        self._keep_finished = keep_finished
        self._finished_ttl_seconds = finished_ttl_seconds
        self.forgotten = 0
        """How many finished tasks have been forgotten."""

    def new_task_id(self, subagent: str) -> TaskId:
        """A readable id this owner does not know: `<subagent>-<8 hex digits>`, 32 random bits, hard to guess.

        Unique among this owner's tasks; a task host shared by several owners refuses a second live task with an
        id it runs already, which 32 random bits make rare.
        """
        while True:  # the records are bounded far below 2**32, so this ends at once in practice
            task_id = TaskId(f'{subagent}-{random_hex(4)}')
            if task_id not in self._records:
                return task_id

    def add(self, record: TaskRecord) -> None:
        """Track a new task."""
        assert record.task_id not in self._records
        self._records[record.task_id] = record
        self._active[record.task_id] = record
        if record.region is not None:
            self._by_region.setdefault(record.region, {})[record.task_id] = record
            self._delivered.difference_update(_outwards(record.region))  # they hold a task no join delivered

    def get(self, task_id: str) -> TaskRecord:
        """The record of `task_id`.

        Raises:
            TypeError: `task_id` is not a `str`.
            UnknownTask: this owner has no such task.
        """
        # Applications call the API from untyped code (a UI handler, a webhook), where an int id slips through.
        if not isinstance(task_id, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(
                f'task_id must be a str (the `task_id` of a TaskInfo), not {type(task_id).__name__}: {task_id!r}.'
            )
        try:
            return self._records[TaskId(task_id)]
        except KeyError:
            raise UnknownTask(task_id, finished_forgotten=self.forgotten > 0) from None

    def find(self, task_id: TaskId) -> TaskRecord | None:
        """The record of `task_id`, or `None` if it was never known or has been forgotten."""
        return self._records.get(task_id)

    def settle(self, record: TaskRecord) -> None:
        """Note that `record` has ended, so it no longer counts as active."""
        assert record.status.is_terminal
        self._active.pop(record.task_id, None)

    def note_unresponsive(self, record: TaskRecord) -> None:
        """Note that `record`'s task was stopped but something of it may still run."""
        self._stopped_but_running[record.task_id] = record

    def unresponsive(self) -> tuple[TaskRecord, ...]:
        """The tasks noted unresponsive that may still be running (a run, or a sync tool's thread), oldest first."""
        for task_id, record in tuple(self._stopped_but_running.items()):
            if record.status.is_terminal and not record.lingering_threads:
                del self._stopped_but_running[task_id]
        return tuple(self._stopped_but_running.values())

    def done(self, record: TaskRecord, now: float) -> None:
        """Note that nothing of `record`'s task will change any more, if so, and forget what is past keeping."""
        if record.settled and not record.lingering_threads and record.task_id in self._records:
            self._done.setdefault(record.task_id, record.ended_at if record.ended_at is not None else now)
        self.forget_past_keeping(now)

    def forget_past_keeping(self, now: float) -> None:
        """Forget the oldest done tasks beyond `keep_finished`, and those that ended over the TTL ago."""
        for task_id in self._past_keeping(self._done, now):
            record = self._records.pop(task_id)
            self._stopped_but_running.pop(task_id, None)  # done: it stopped, and its threads have returned
            if record.region is not None:
                self._forget_in_region(record.region, task_id)
            self.forgotten += 1
        self._forget_cancelled_empty(now)

    def _forget_in_region(self, region: str, task_id: TaskId) -> None:
        """Drop a forgotten task from its region; forget the region, and the cancels around it, once they are empty."""
        records = self._by_region[region]
        del records[task_id]
        if records:
            return
        del self._by_region[region]
        for name in _outwards(region):
            if (name in self._region_cancels or name in self._delivered) and not self._holds_tasks(name):
                self._region_cancels.pop(name, None)
                self._delivered.discard(name)

    def _holds_tasks(self, region: str) -> bool:
        return any(region_contains(region, name) for name in self._by_region)

    def active(self) -> tuple[TaskRecord, ...]:
        """The tasks that have not ended, oldest first."""
        return tuple(self._active.values())

    def all(self) -> tuple[TaskRecord, ...]:
        """Every task this owner knows, oldest first."""
        return tuple(self._records.values())

    def in_region(self, region: str) -> tuple[TaskRecord, ...]:
        """The tasks of `region` and of the regions inside it, oldest first within each region."""
        return tuple(
            record
            for name, records in self._by_region.items()
            if region_contains(region, name)
            for record in records.values()
        )

    def region_cancel(self, region: str | None) -> RegionCancel | None:
        """The cancel of `region` or of a region around it, if one has fired (the outermost one)."""
        if region is None:
            return None
        return next((cancel for name in _outwards(region) if (cancel := self._region_cancels.get(name))), None)

    def cancel_region(self, region: str, cancel: RegionCancel) -> None:
        """Record that `region` was cancelled; the first cancel of a region is the one kept."""
        if region in self._region_cancels:
            return
        self._region_cancels[region] = cancel
        if not self._holds_tasks(region):
            self._cancelled_empty[region] = cancel.at
            self._forget_cancelled_empty(cancel.at)

    def deliver_region(self, region: str) -> None:
        """Record that a join of `region` delivered every result of the tasks it holds now.

        Each region inside it that holds one of them is delivered too, so that a task starting beside it later (which
        makes `region` undelivered) leaves it delivered.
        """
        self._delivered.update(
            outer
            for name in self._by_region
            if region_contains(region, name)
            for outer in _outwards(name)
            if region_contains(region, outer)
        )

    def region_delivered(self, region: str) -> bool:
        """Whether a join delivered every result of the tasks `region` holds, and no task has joined it since."""
        return region in self._delivered

    def _forget_cancelled_empty(self, now: float) -> None:
        """Reopen the oldest regions cancelled while empty beyond `keep_finished`, and those cancelled a TTL ago."""
        for oldest in self._past_keeping(self._cancelled_empty, now):
            if not self._holds_tasks(oldest):
                self._region_cancels.pop(oldest, None)

    def _past_keeping(self, entries: dict[_K, float], now: float) -> Iterator[_K]:
        """Remove and yield the oldest `entries` (key -> when) beyond `keep_finished`, or over the TTL old."""
        keep, ttl = self._keep_finished, self._finished_ttl_seconds
        while entries:
            oldest, at = next(iter(entries.items()))
            if not ((keep is not None and len(entries) > keep) or (ttl is not None and at + ttl <= now)):
                return
            del entries[oldest]
            yield oldest

    def regions(self) -> tuple[str, ...]:
        """The regions this owner knows: those holding a task it keeps, and the cancelled ones it keeps closed."""
        return tuple(dict.fromkeys([*self._by_region, *self._region_cancels]))


def _outwards(region: str) -> Iterator[str]:
    """`a`, `a/b`, `a/b/c` for `a/b/c`: the region and those around it, outermost first."""
    parts = region.split('/')
    return ('/'.join(parts[:depth]) for depth in range(1, len(parts) + 1))
