"""The task book's reading of what the tasks report: each report applied to its task's record.

[`BookReports`][subagents_cancel._engine.book_reports.BookReports] is the part of the
[`TaskBook`][subagents_cancel._engine.task_book.TaskBook] that takes every message from the owner's mailbox: the
receipt of a cancel request, a question, a checkpoint, what became of a cancel, the run's end, threads and hooks
done, the tasks of the owners opened inside a task, and a cascade from the task this owner runs in. It applies each
to the record through the book's writing commands (`task_book.py`), which the book inherits it beside; no
message costs a call more.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable

from subagents_cancel.clock import Clock
from subagents_cancel.messages import (
    Answer,
    CancelAcknowledged,
    CancelAll,
    CancelHeld,
    CancelLost,
    CancelMode,
    CancelReason,
    CancelReceived,
    CancelRequest,
    CheckpointRecorded,
    OwnerAnnouncement,
    Question,
    QuestionWithdrawn,
    RunEnding,
    RunError,
    RunFinished,
    RunOutput,
    RunStopped,
    SubtasksChanged,
    TaskId,
    ThreadsFinished,
)
from subagents_cancel.results import TaskInfo
from subagents_cancel.states import TaskEvent
from subagents_cancel.wire import HooksFinished, SettleTask, StartTask, WireMessage

from .arrivals import Arrivals
from .receipts import Receipts
from .registry import Registry, TaskRecord

__all__ = ('BookReports',)


class BookReports(ABC):
    """What the tasks report, applied to their records; the book's commands make each change."""

    records: Registry
    _clock: Clock
    _arrivals: Arrivals
    _receipts: Receipts
    _subtasks: dict[TaskId, dict[str, tuple[float, tuple[TaskInfo, ...]]]]
    _threads_finished: Callable[[TaskRecord], None]
    _changed: Callable[[TaskRecord], None]
    _cancel_all: Callable[[CancelAll], None]

    @abstractmethod
    def transition(self, record: TaskRecord, event: TaskEvent, at: float, *, ending: RunEnding | None = None) -> None:
        """Move the task by `event` (see `TaskBook.transition`)."""

    @abstractmethod
    def request_cancel(
        self, record: TaskRecord, mode: CancelMode, reason: CancelReason, grace: float, *, at: float | None = None
    ) -> None:
        """Record a cancel request and send it (see `TaskBook.request_cancel`)."""

    @abstractmethod
    def mark_unresponsive(self, record: TaskRecord, at: float | None = None) -> None:
        """Record that something of the task still runs although it was stopped."""

    @abstractmethod
    def hooks_done(self, record: TaskRecord, cleanup_error: str | None) -> None:
        """Record that the task's hook has run."""

    @abstractmethod
    def _notify(self, record: TaskRecord) -> None:
        """`record` changed: wake its waiters, and let a nested owner report it."""

    def receive(self, message: WireMessage) -> None:
        """Handle one message from the owner's mailbox: a report on a task, or a cascade from the task it runs in."""
        if isinstance(message, CancelAll):
            self._cancel_all(message)  # from the task this owner was opened in, whose cancel cascades
            return
        if isinstance(message, CancelReceived | CancelHeld | CancelLost | RunFinished):
            self._receipts.received(message)
        if (record := self._reported_task(message)) is not None:
            self._apply_report(record, message)

    def _apply_report(self, record: TaskRecord, message: WireMessage) -> None:
        """Apply a task's report to its record."""
        match message:
            case Question() | QuestionWithdrawn() if not record.state.cancel_requested:  # else the cancel answers it
                self._on_question(record, message)
            case CheckpointRecorded(checkpoint=checkpoint):
                record.checkpoints.append(checkpoint)
                self._notify(record)
            case CancelAcknowledged() | CancelHeld() | CancelLost() if record.cancel is not None:
                self._on_cancel_report(record, message)
            case RunFinished():
                self._finish(record, message)
            case ThreadsFinished():
                self._on_threads_finished(record)
            case HooksFinished():
                self.hooks_done(record, message.cleanup_error)
            case SubtasksChanged(owner_address=owner, subtasks=subtasks) if not record.status.is_terminal:
                self._subtasks.setdefault(record.task_id, {})[owner] = (self._clock.now(), subtasks)
                self._changed(record)
            case _:  # a question, acknowledgement or deadline that lost a race with a cancel or the end
                pass

    def _reported_task(self, message: WireMessage) -> TaskRecord | None:
        """The task a report is about; `None` for what is not a task's report to this owner."""
        if isinstance(
            message,
            OwnerAnnouncement | CancelRequest | Answer | StartTask | SettleTask,
        ):
            return None  # our own announcements, for observers; requests for tasks sent here by mistake
        return self.records.find(message.task_id)  # `None`: a sender on a shared transport used the wrong address

    def _on_cancel_report(self, record: TaskRecord, message: CancelAcknowledged | CancelHeld | CancelLost) -> None:
        """What became of the task's cancel request: the sub-agent read it, it waits, or it lost."""
        assert record.cancel is not None
        match message:
            case CancelAcknowledged():
                record.cancel = dataclasses.replace(record.cancel, acknowledged_at=self._clock.now())
            case CancelHeld():
                record.cancel = dataclasses.replace(record.cancel, held_at=self._clock.now())
            case CancelLost(ending=ending):
                record.note_lost(self._arrivals.ending(record.subagent, ending))
        self._notify(record)

    def _on_threads_finished(self, record: TaskRecord) -> None:
        record.lingering_threads = 0
        self.records.done(record, self._clock.now())
        self._notify(record)
        self._threads_finished(record)

    def _on_question(self, record: TaskRecord, message: Question | QuestionWithdrawn) -> None:
        if isinstance(message, Question):
            record.question = message
            self.transition(record, TaskEvent.ASK, self._clock.now())
        elif record.question is not None and record.question.message_id == message.correlation_id:
            self.transition(record, TaskEvent.ANSWER, self._clock.now())  # its ask_parent call was cut off: it works on

    def _finish(self, record: TaskRecord, message: RunFinished) -> None:
        now = self._clock.now()
        record.usage = message.usage
        if not isinstance(message.ending, RunOutput):  # it may be resumed: keep its conversation while it is kept
            record.history = message.messages
        if message.lingering_threads:
            record.lingering_threads = message.lingering_threads
            self.mark_unresponsive(record, now)
        match message.ending:
            case RunOutput():
                event = TaskEvent.COMPLETE
            case RunError():
                event = TaskEvent.FAIL
            case RunStopped():
                if record.cancel is None and not record.status.is_terminal:
                    # Stopped from outside (its owner's task was cancelled): record that as the cancel, requested when
                    # the owner read that the run had stopped, so that the stop time is never negative.
                    reason = CancelReason(kind='parent_cancelled')
                    self.request_cancel(record, 'hard', reason, 0.0, at=now)
                event = TaskEvent.STOP
        self.transition(record, event, now, ending=self._arrivals.ending(record.subagent, message.ending))
