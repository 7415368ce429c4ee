"""The values that messages and task snapshots share: task ids, cancel modes and reasons, checkpoints, run errors.

They live below both [`messages`][subagents_cancel.messages] (which re-exports them) and
[`results`][subagents_cancel.results], so that a message can carry task snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NewType

__all__ = ('CancelMode', 'CancelReason', 'CancelReasonKind', 'Checkpoint', 'RunError', 'TaskId')

TaskId = NewType('TaskId', str)
"""A readable task id, `<sub-agent name>-<8 hex digits>` (32 random bits), e.g. `researcher-3f9a07c2`."""

CancelMode = Literal['soft', 'hard']
"""`'soft'`: the sub-agent is told and wraps up; `'hard'`: its run is stopped now."""

CancelReasonKind = Literal['user', 'parent_cancelled', 'parent_ended', 'deadline', 'region', 'sibling', 'budget']
"""Why a task is cancelled.

* `'user'`: the parent model (a cancel tool) or the application asked for it.
* `'parent_cancelled'`: the run or task that owns this task was cancelled.
* `'parent_ended'`: the run or scope that owns this task ended while the task was still running.
* `'deadline'`, `'region'`, `'sibling'`, `'budget'`: a deadline expired, a cancel region fired, a sibling
  made the work unnecessary, a budget ran out.
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelReason:
    """Why a cancel was requested: a kind, and optional free text from whoever asked."""

    kind: CancelReasonKind = 'user'
    detail: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """A progress record made by the sub-agent's `checkpoint` tool.

    `completed`, `in_progress` and `not_started` describe the work as of this checkpoint; `findings`
    are what it learned since the previous one.
    """

    completed: tuple[str, ...] = ()
    in_progress: tuple[str, ...] = ()
    not_started: tuple[str, ...] = ()
    findings: tuple[str, ...] = ()
    at: float
    """Clock time when it was recorded, on the task's clock (its host's, which may have another origin than its
    owner's)."""


@dataclass(frozen=True, slots=True)
class RunError:
    """The run raised before any cancel request reached the runner (the failure wins).

    `message` is ours, never provider text (which may carry secrets).
    """

    error_type: str
    message: str
    kind: Literal['run_error'] = field(default='run_error', repr=False)
