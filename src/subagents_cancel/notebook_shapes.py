"""What the notebook renderers read, as read-only protocols.

[`notebook_view`][subagents_cancel.notebook_view] renders [`TaskInfo`][subagents_cancel.TaskInfo], the outcomes, the
region outcomes and [`CancelMetrics`][subagents_cancel.CancelMetrics], whose modules call down into it from their
`_repr_html_` methods; so neither it nor this module may import them. Each protocol names exactly the fields a
renderer reads, and pyright checks at each `_repr_html_` that the real type has them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from pydantic_ai import RunUsage

from subagents_cancel.message_parts import CancelMode, CancelReason, Checkpoint, RunError, TaskId
from subagents_cancel.states import TaskStatus

__all__ = (
    'CancelShape',
    'CancelledRunShape',
    'CancelledShape',
    'CompletedShape',
    'DurationsShape',
    'FailedShape',
    'FiguresShape',
    'PartialShape',
    'RegionCancelShape',
    'RegionCancelledShape',
    'RegionCompletedShape',
    'RegionFiguresShape',
    'RegionIncompleteShape',
    'SubAgentFiguresShape',
    'TaskFiguresShape',
    'TaskShape',
)


class CancelShape(Protocol):
    """What the view reads of a [`CancelInfo`][subagents_cancel.CancelInfo]."""

    @property
    def mode(self) -> CancelMode: ...
    @property
    def reason(self) -> CancelReason: ...
    @property
    def requested_at(self) -> float: ...
    @property
    def acknowledged_at(self) -> float | None: ...
    @property
    def escalated_at(self) -> float | None: ...
    @property
    def lost(self) -> bool: ...


class TaskShape(Protocol):
    """What the view reads of a [`TaskInfo`][subagents_cancel.TaskInfo]."""

    @property
    def task_id(self) -> str: ...
    @property
    def subagent(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def status(self) -> TaskStatus: ...
    @property
    def elapsed_seconds(self) -> float: ...
    @property
    def checkpoints(self) -> Sequence[Checkpoint]: ...
    @property
    def question(self) -> str | None: ...
    @property
    def cancel(self) -> CancelShape | None: ...
    @property
    def outcome(self) -> object | None: ...
    @property
    def usage(self) -> RunUsage | None: ...
    @property
    def region(self) -> str | None: ...
    @property
    def subtasks(self) -> Sequence[TaskShape]: ...
    @property
    def fallback(self) -> TaskShape | None: ...
    @property
    def unresponsive(self) -> bool: ...


class CompletedShape(Protocol):
    """What the view reads of a [`Completed`][subagents_cancel.Completed]."""

    @property
    def output(self) -> object: ...


class FailedShape(Protocol):
    """What the view reads of a [`Failed`][subagents_cancel.Failed]."""

    @property
    def error_type(self) -> str: ...
    @property
    def message(self) -> str: ...


class PartialShape(Protocol):
    """What the view reads of a [`PartialResult`][subagents_cancel.PartialResult]."""

    @property
    def completed(self) -> Sequence[str]: ...
    @property
    def in_progress(self) -> Sequence[str]: ...
    @property
    def not_started(self) -> Sequence[str]: ...
    @property
    def findings(self) -> Sequence[str]: ...
    @property
    def final_message(self) -> object | None: ...
    @property
    def checkpoints(self) -> int: ...
    @property
    def read_request(self) -> bool: ...
    @property
    def is_empty(self) -> bool: ...


class CancelledShape(Protocol):
    """What the view reads of a [`Cancelled`][subagents_cancel.Cancelled]."""

    @property
    def mode(self) -> CancelMode: ...
    @property
    def reason(self) -> CancelReason: ...
    @property
    def partial(self) -> PartialShape: ...
    @property
    def escalated(self) -> bool: ...
    @property
    def error(self) -> RunError | None: ...


class RegionCancelShape(Protocol):
    """What the view reads of a [`RegionCancel`][subagents_cancel.RegionCancel]."""

    @property
    def mode(self) -> CancelMode: ...
    @property
    def reason(self) -> CancelReason: ...


class RegionCompletedShape(Protocol):
    """What the view reads of a [`RegionCompleted`][subagents_cancel.RegionCompleted]."""

    @property
    def region(self) -> str: ...
    @property
    def outputs(self) -> Mapping[TaskId, object]: ...


class RegionIncompleteShape(Protocol):
    """What the view reads of a [`RegionIncomplete`][subagents_cancel.RegionIncomplete]."""

    @property
    def region(self) -> str: ...
    @property
    def tasks(self) -> Sequence[TaskShape]: ...


class RegionCancelledShape(RegionIncompleteShape, Protocol):
    """What the view reads of a [`RegionCancelled`][subagents_cancel.RegionCancelled]."""

    @property
    def cancel(self) -> RegionCancelShape: ...


class DurationsShape(Protocol):
    """What the view reads of [`Durations`][subagents_cancel.Durations]."""

    @property
    def p50_seconds(self) -> float | None: ...


class TaskFiguresShape(Protocol):
    """What the view reads of [`TaskFigures`][subagents_cancel.metrics.TaskFigures]."""

    @property
    def completed(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def cancelled(self) -> int: ...
    @property
    def orphaned(self) -> int: ...
    @property
    def cancel_rate(self) -> float | None: ...
    @property
    def orphaned_share(self) -> float | None: ...
    def acknowledge_times(self, mode: CancelMode = 'soft') -> DurationsShape: ...
    def stop_times(self, mode: CancelMode) -> DurationsShape: ...


class SubAgentFiguresShape(TaskFiguresShape, Protocol):
    """What the view reads of [`SubAgentMetrics`][subagents_cancel.SubAgentMetrics]."""

    @property
    def subagent(self) -> str: ...
    @property
    def tokens_after_request(self) -> int: ...
    @property
    def tokens_saved(self) -> int | None: ...


class RegionFiguresShape(TaskFiguresShape, Protocol):
    """What the view reads of [`RegionMetrics`][subagents_cancel.metrics.RegionMetrics]."""

    @property
    def region(self) -> str: ...


class CancelledRunShape(Protocol):
    """What the view reads of a [`CancelledRun`][subagents_cancel.CancelledRun]."""

    @property
    def task_id(self) -> str: ...
    @property
    def mode(self) -> CancelMode: ...
    @property
    def escalated(self) -> bool: ...
    @property
    def reason(self) -> str: ...
    @property
    def checkpoints(self) -> int: ...
    @property
    def acknowledged_after_seconds(self) -> float | None: ...
    @property
    def stopped_after_seconds(self) -> float: ...
    @property
    def tokens(self) -> int: ...
    @property
    def tokens_after_request(self) -> int: ...


class FiguresShape(Protocol):
    """What the view reads of [`CancelMetrics`][subagents_cancel.CancelMetrics]."""

    @property
    def owner(self) -> TaskFiguresShape: ...
    @property
    def subagents(self) -> Sequence[SubAgentFiguresShape]: ...
    @property
    def regions(self) -> Sequence[RegionFiguresShape]: ...
    @property
    def cancelled_runs(self) -> Sequence[CancelledRunShape]: ...
    @property
    def unresponsive(self) -> int: ...
