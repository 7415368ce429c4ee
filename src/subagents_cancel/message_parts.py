"""The values that messages and task snapshots share: task ids, cancel modes and reasons, checkpoints, run errors.

They live below both [`messages`][subagents_cancel.messages] (which re-exports them) and
[`results`][subagents_cancel.results], so that a message can carry task snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NewType, get_args

__all__ = ('CancelMode', 'CancelReason', 'CancelReasonKind', 'Checkpoint', 'RunError', 'TaskId', 'given_reason')

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

    def __post_init__(self) -> None:
        """Refuse a kind there is not, and a detail that is not text: every reader of a reason relies on both.

        Raises:
            ValueError: `kind` is not one of `CancelReasonKind`'s.
            TypeError: `detail` is neither a `str` nor `None`.
        """
        if self.kind not in _KINDS:
            kinds = ', '.join(repr(kind) for kind in _KINDS)
            raise ValueError(f'CancelReason.kind must be one of {kinds}; got {self.kind!r}.')
        if self.detail is not None and not isinstance(self.detail, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(
                f'CancelReason.detail must be a str or None, not {type(self.detail).__name__}: {self.detail!r}.'
            )


_KINDS: tuple[CancelReasonKind, ...] = get_args(CancelReasonKind)


def given_reason(reason: CancelReason | None, default: CancelReason) -> CancelReason:
    """The reason an application gave a cancel, or `default` if it gave none.

    Raises:
        TypeError: `reason` is not a `CancelReason` (a bare kind such as `'user'`, say).
    """
    if reason is None:
        return default
    if not isinstance(reason, CancelReason):  # pyright: ignore[reportUnnecessaryIsInstance]
        shown = repr(reason)[:80]
        raise TypeError(
            f"reason must be a CancelReason, such as CancelReason(kind='user'), not {type(reason).__name__}: {shown}."
        )
    return reason


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
