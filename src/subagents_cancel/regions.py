"""Cancel regions: named groups of tasks that are cancelled together and joined all-or-nothing.

A region is named by a path: `research`, `research/patents`. A region contains the regions below it,
so cancelling `research` cancels `research/patents` too, but not the reverse, and not `writing`.
Once a region's cancel has fired, no task in it can complete any more (the cancel was requested
first), and no new task starts in it while its owner keeps any of its tasks (a long-lived owner forgets old
finished tasks, and a region with its last one). Tasks that completed before the cancel keep their results.
A cancel and a delivery are mutually exclusive: once a join has delivered every result of a region, a later cancel
of it stops nothing and changes no join; it only closes the region to new tasks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from ._text.reasons import FOR_PEOPLE
from .errors import SubAgentsError
from .messages import CancelMode, CancelReason, TaskId
from .notebook_view import region_cancelled_html, region_completed_html, region_incomplete_html
from .results import Completed, TaskInfo
from .states import TaskStatus

__all__ = (
    'REGION_PATTERN',
    'RegionCancel',
    'RegionCancelOutcome',
    'RegionCancelResult',
    'RegionCancelled',
    'RegionClosed',
    'RegionCompleted',
    'RegionIncomplete',
    'RegionOutcome',
    'check_region',
    'region_contains',
    'region_outcome',
)

REGION_PATTERN = r'^[A-Za-z0-9_-]{1,48}(/[A-Za-z0-9_-]{1,48}){0,7}$'
"""A region name: up to eight `/`-separated parts of letters, digits, `_` and `-`."""

_REGION = re.compile(REGION_PATTERN)


class RegionClosed(SubAgentsError):
    """The region was cancelled, so no new task can start in it."""

    def __init__(self, region: str, reason: CancelReason) -> None:
        self.region = region
        self.reason = reason
        super().__init__(f'Region {region!r} was cancelled ({FOR_PEOPLE[reason.kind]}); no new task can start in it.')


def check_region(name: str) -> str:
    """Return `name` if it is a valid region name.

    Raises:
        TypeError: it is not a `str`.
        ValueError: it is not a valid name.
    """
    if not isinstance(name, str):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise TypeError(f"region must be a str, such as 'research', not {type(name).__name__}: {name!r:.80}.")
    if not _REGION.match(name):
        raise ValueError(f"Invalid region name {name!r}: use parts of letters, digits, '_' and '-' joined by '/'.")
    return name


def region_contains(outer: str, inner: str | None) -> bool:
    """Whether region `inner` is `outer` or lies inside it."""
    return inner is not None and (inner == outer or inner.startswith(f'{outer}/'))


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionCancel:
    """A region's cancel: how, why and when (clock seconds) it fired."""

    mode: CancelMode
    reason: CancelReason
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionCompleted:
    """Every task of the region completed; here is each result."""

    region: str
    outputs: Mapping[TaskId, object]

    def _repr_html_(self) -> str:
        return region_completed_html(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionCancelled:
    """The region was cancelled, so it delivers no results as if complete; `tasks` holds what each had."""

    region: str
    cancel: RegionCancel
    tasks: tuple[TaskInfo, ...]

    def _repr_html_(self) -> str:
        return region_cancelled_html(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionIncomplete:
    """The region was not cancelled, but some of its tasks did not complete (they failed or were cancelled)."""

    region: str
    tasks: tuple[TaskInfo, ...]
    """Every task of the region; the ones whose status is not COMPLETED are why."""

    def _repr_html_(self) -> str:
        return region_incomplete_html(self)


RegionOutcome = RegionCompleted | RegionCancelled | RegionIncomplete
"""What an all-or-nothing join of a region delivers."""

RegionCancelResult = Literal['cancelled', 'already_delivered']
"""What a region cancel did.

* `'cancelled'`: the region is cancelled; each of its tasks that had not ended was asked to stop, and its join
  delivers a cancellation notice.
* `'already_delivered'`: a join of the region (or of a region around it) had delivered every result before; nothing
  was stopped and its join still delivers them. The region is closed to new tasks all the same.
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionCancelOutcome:
    """The outcome of a region cancel command: what it found, and the tasks it asked to stop."""

    region: str
    result: RegionCancelResult
    tasks: tuple[TaskInfo, ...]
    """The tasks asked to stop, as of now (after a hard cancel, once they stopped or the wait ran out); none if the
    region had already delivered."""
    delivered: tuple[TaskInfo, ...] = ()
    """If the region had already delivered: its tasks, each `COMPLETED`, whose results its join delivered."""


def region_outcome(region: str, tasks: Iterable[TaskInfo], cancel: RegionCancel | None) -> RegionOutcome:
    """Join the ended tasks of `region`: every result, or a notice saying why not."""
    tasks = tuple(tasks)
    assert all(task.is_terminal for task in tasks)
    if cancel is not None:
        return RegionCancelled(region=region, cancel=cancel, tasks=tasks)
    if all(task.status is TaskStatus.COMPLETED for task in tasks):
        return RegionCompleted(
            region=region,
            outputs={task.task_id: task.outcome.output for task in tasks if isinstance(task.outcome, Completed)},
        )
    return RegionIncomplete(region=region, tasks=tasks)
