"""Cancel figures an application can show without an observability backend.

[`SubAgentManager.metrics()`][subagents_cancel.SubAgentManager.metrics] returns a
[`CancelMetrics`][subagents_cancel.CancelMetrics]: for each sub-agent, how its tasks ended, how fast cancelled
tasks read the request and stopped, what cancelled runs consumed (in all, and after the request), and an
estimate of what cancelling saved; the same counts and response times for each cancel region and for the owner
as a whole; and how many cancelled tasks left *orphaned side effects* (their cleanup hook raised, ran out of time,
or never ran). The same figures are recorded as OpenTelemetry metrics (see the telemetry guide).

**A window, not a history.** The counts and token sums cover every task the owner has seen end, but only the
most recent [`RECENT_CANCELLED_RUNS`][subagents_cancel.metrics.RECENT_CANCELLED_RUNS] cancelled runs of each
sub-agent (and of the owner as a whole) are kept one by one, so a long-lived owner's figures take bounded
memory. The response-time percentiles are exact over that window, and blind to what came before it. Regions are
bounded twice: only the
[`REGIONS_KEPT`][subagents_cancel.metrics.REGIONS_KEPT] regions whose tasks ended most recently have figures (an
owner that names a region per request would otherwise grow without end), each with its
[`RECENT_REGION_RUNS`][subagents_cancel.metrics.RECENT_REGION_RUNS] most recent cancelled runs.

**Tokens saved** is an estimate: the mean tokens of the sub-agent's completed runs that the owner had seen
when the cancelled run ended, minus the tokens the cancelled run consumed, and never below 0. It is `None`
until the owner has seen a completed run of that sub-agent.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

from pydantic_ai import RunUsage

from .messages import CancelMode, CancelReasonKind, TaskId
from .notebook_view import metrics_html
from .results import TaskInfo
from .states import TaskStatus

__all__ = (
    'RECENT_CANCELLED_RUNS',
    'RECENT_REGION_RUNS',
    'REGIONS_KEPT',
    'CancelMetrics',
    'CancelledRun',
    'Durations',
    'MetricsCollector',
    'RegionMetrics',
    'SubAgentMetrics',
    'TaskFigures',
)

RECENT_CANCELLED_RUNS = 1_000
"""How many cancelled runs of each sub-agent, and of the owner as a whole, are kept one by one (about 300 bytes
each), newest last."""
REGIONS_KEPT = 100
"""How many regions have figures: those whose tasks ended most recently. The least recent is dropped for a new one."""
RECENT_REGION_RUNS = 100
"""How many cancelled runs of each kept region are kept one by one (so at most about 3 MB for all regions)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Durations:
    """A summary of durations in seconds: how many, the median, the 99th percentile (nearest rank) and the longest."""

    count: int = 0
    p50_seconds: float | None = None
    p99_seconds: float | None = None
    max_seconds: float | None = None

    @classmethod
    def of(cls, seconds: Iterable[float]) -> Durations:
        """Summarize `seconds`; every field but `count` is `None` when there are none."""
        ordered = sorted(seconds)
        if not ordered:
            return cls()
        return cls(
            count=len(ordered),
            p50_seconds=_nearest_rank(ordered, 0.50),
            p99_seconds=_nearest_rank(ordered, 0.99),
            max_seconds=ordered[-1],
        )


def _nearest_rank(ordered: Sequence[float], quantile: float) -> float:
    return ordered[max(math.ceil(quantile * len(ordered)), 1) - 1]


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelledRun:
    """What one cancelled task cost and how fast it stopped; durations are clock seconds after the request."""

    task_id: TaskId
    subagent: str
    mode: CancelMode
    """The mode of the first request: a soft cancel that escalated is `'soft'` here, with `escalated` set."""
    escalated: bool
    """The grace window of a soft cancel expired and the run was stopped."""
    reason: CancelReasonKind
    checkpoints: int
    """How many checkpoints the sub-agent recorded before it stopped."""
    acknowledged_after_seconds: float | None
    """From the request until the sub-agent's model read it; `None` when it never did."""
    stopped_after_seconds: float
    """From the request until the task was terminal."""
    tokens: int
    """Tokens the run consumed in all."""
    requests: int
    """Model responses the run received in all."""
    tokens_after_request: int
    """Tokens in the model responses received after the request (the one in flight at the request included)."""
    requests_after_request: int
    """Model responses received after the request."""
    tokens_saved: int | None
    """The estimate described in the module docstring; `None` without a completed run to compare with."""
    region: str | None = None
    """The cancel region of the task, if it had one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFigures:
    """How a set of tasks ended, how fast the cancelled ones stopped, and which left side effects behind."""

    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    """How many of the tasks were cancelled."""
    orphaned: int = 0
    """How many cancelled tasks left orphaned side effects: their cleanup hook raised, ran longer than the policy's
    `hook_seconds`, or never ran (their task host had closed). Counted once the hook has reported, an instant after
    the task ended."""
    cancelled_runs: tuple[CancelledRun, ...] = ()
    """The most recent cancelled runs, oldest first (see the module docstring for how many are kept)."""

    @property
    def finished(self) -> int:
        """How many of the tasks have ended, whatever their status."""
        return self.completed + self.failed + self.cancelled

    @property
    def cancel_rate(self) -> float | None:
        """Cancelled tasks as a share of finished ones, from 0 to 1; `None` before any has finished."""
        return self.cancelled / self.finished if self.finished else None

    @property
    def orphaned_share(self) -> float | None:
        """Orphaned tasks as a share of cancelled ones, from 0 to 1; `None` before any was cancelled."""
        return self.orphaned / self.cancelled if self.cancelled else None

    def acknowledge_times(self, mode: CancelMode = 'soft') -> Durations:
        """How long the recent cancelled tasks took to read a request of `mode` (only those that read it)."""
        return Durations.of(
            run.acknowledged_after_seconds
            for run in self.cancelled_runs
            if run.mode == mode and run.acknowledged_after_seconds is not None
        )

    def stop_times(self, mode: CancelMode) -> Durations:
        """How long the recent cancelled tasks took from a request of `mode` until they were terminal."""
        return Durations.of(run.stopped_after_seconds for run in self.cancelled_runs if run.mode == mode)


@dataclass(frozen=True, slots=True, kw_only=True)
class SubAgentMetrics(TaskFigures):
    """The figures of one sub-agent's tasks that have ended."""

    subagent: str
    typical_tokens: float | None = None
    """The mean tokens of its completed runs; `None` before the first one."""
    tokens_consumed: int = 0
    """Tokens its cancelled runs consumed in all."""
    tokens_after_request: int = 0
    """Tokens its cancelled runs consumed after the request."""
    tokens_saved: int | None = None
    """The sum of the estimates that are known (see the module docstring); `None` when none is."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionMetrics(TaskFigures):
    """The figures of the ended tasks started in one cancel region (by its exact name: not those of its sub-regions)."""

    region: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelMetrics:
    """The cancel figures of one owner's tasks, in all, per sub-agent and per region, as of when it was taken."""

    owner: TaskFigures = TaskFigures()
    """The figures of all the owner's tasks (for a parent run: of one request)."""
    subagents: tuple[SubAgentMetrics, ...] = ()
    """One entry per sub-agent with a finished task, in the order their first task finished."""
    regions: tuple[RegionMetrics, ...] = ()
    """One entry per region with a finished task, the region whose task ended least recently first; at most
    [`REGIONS_KEPT`][subagents_cancel.metrics.REGIONS_KEPT]."""
    regions_dropped: int = 0
    """How many regions lost their figures to more recent ones (their tasks still count in `owner`)."""
    unresponsive: int = 0
    """Tasks a hard cancel gave up waiting for that have still not stopped (orphans)."""

    def of(self, subagent: str) -> SubAgentMetrics:
        """The figures of `subagent`; all zero when none of its tasks has finished."""
        return next(
            (entry for entry in self.subagents if entry.subagent == subagent), SubAgentMetrics(subagent=subagent)
        )

    def region(self, region: str) -> RegionMetrics:
        """The figures of `region`; all zero when none of its tasks has finished, or its figures were dropped."""
        return next((entry for entry in self.regions if entry.region == region), RegionMetrics(region=region))

    @property
    def cancelled_runs(self) -> tuple[CancelledRun, ...]:
        """The recent cancelled runs of every sub-agent, grouped by sub-agent."""
        return tuple(run for entry in self.subagents for run in entry.cancelled_runs)

    def _repr_html_(self) -> str:
        return metrics_html(self)


class _CountFields(TypedDict):
    completed: int
    failed: int
    cancelled: int
    orphaned: int
    cancelled_runs: tuple[CancelledRun, ...]


@dataclass(slots=True)
class _Counts:
    """How a set of tasks ended so far, with a window of its recent cancelled runs."""

    recent: deque[CancelledRun]
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    orphaned: int = 0

    @classmethod
    def keeping(cls, runs: int) -> _Counts:
        return cls(deque[CancelledRun](maxlen=runs))

    def count(self, status: TaskStatus, run: CancelledRun | None) -> None:
        if run is not None:
            self.cancelled += 1
            self.recent.append(run)
        elif status is TaskStatus.COMPLETED:
            self.completed += 1
        else:
            self.failed += 1

    def fields(self) -> _CountFields:
        return _CountFields(
            completed=self.completed,
            failed=self.failed,
            cancelled=self.cancelled,
            orphaned=self.orphaned,
            cancelled_runs=tuple(self.recent),
        )


@dataclass(slots=True)
class _Tally:
    """A sub-agent's counts, with what its runs consumed."""

    counts: _Counts = field(default_factory=lambda: _Counts.keeping(RECENT_CANCELLED_RUNS))
    completed_tokens: int = 0
    """The tokens of its completed runs, summed."""
    tokens_consumed: int = 0
    tokens_after_request: int = 0
    tokens_saved: int | None = None

    def add(self, task: TaskInfo, run: CancelledRun | None) -> None:
        self.counts.count(task.status, run)
        if task.status is TaskStatus.COMPLETED:
            self.completed_tokens += (task.usage or RunUsage()).total_tokens
        if run is not None:
            self.tokens_consumed += run.tokens
            self.tokens_after_request += run.tokens_after_request
            if run.tokens_saved is not None:
                self.tokens_saved = (self.tokens_saved or 0) + run.tokens_saved

    @property
    def typical_tokens(self) -> float | None:
        completed = self.counts.completed
        return self.completed_tokens / completed if completed else None

    def figures(self, subagent: str) -> SubAgentMetrics:
        return SubAgentMetrics(
            subagent=subagent,
            **self.counts.fields(),
            typical_tokens=self.typical_tokens,
            tokens_consumed=self.tokens_consumed,
            tokens_after_request=self.tokens_after_request,
            tokens_saved=self.tokens_saved,
        )


class MetricsCollector:
    """Adds up an owner's tasks as they end; `summary()` gives the figures so far."""

    def __init__(self) -> None:
        self._owner = _Counts.keeping(RECENT_CANCELLED_RUNS)
        self._tallies: dict[str, _Tally] = {}
        self._regions: OrderedDict[str, _Counts] = OrderedDict()
        """The kept regions, the one whose task ended least recently first."""
        self._regions_dropped = 0

    def task_ended(
        self, task: TaskInfo, *, requested_mode: CancelMode | None, usage_after_request: RunUsage | None
    ) -> CancelledRun | None:
        """Count a task that has just ended; return its figures if it was cancelled.

        Args:
            task: The task, in its terminal state.
            requested_mode: The mode of the first cancel request it received, if any.
            usage_after_request: The usage of the responses its run received after that request.
        """
        tally = self._tallies.setdefault(task.subagent, _Tally())
        run = (
            _cancelled_run(task, requested_mode, usage_after_request or RunUsage(), tally.typical_tokens)
            if task.status is TaskStatus.CANCELLED
            else None
        )
        tally.add(task, run)
        self._owner.count(task.status, run)
        if task.region is not None:
            self._region(task.region).count(task.status, run)
        return run

    def cleanup_failed(self, run: CancelledRun) -> None:
        """Count the cancelled run `run` as orphaned: its cleanup hook raised, ran out of time or never ran."""
        self._owner.orphaned += 1
        self._tallies[run.subagent].counts.orphaned += 1
        if run.region is not None and (region := self._regions.get(run.region)) is not None:
            region.orphaned += 1  # unless its region was dropped meanwhile, with its cancelled count

    def _region(self, region: str) -> _Counts:
        """The counts of `region`, now the most recent; a new region drops the least recent past `REGIONS_KEPT`."""
        counts = self._regions.get(region)
        if counts is not None:
            self._regions.move_to_end(region)
            return counts
        if len(self._regions) >= REGIONS_KEPT:
            self._regions.popitem(last=False)
            self._regions_dropped += 1
        counts = self._regions[region] = _Counts.keeping(RECENT_REGION_RUNS)
        return counts

    def owner(self) -> TaskFigures:
        """The figures of all the owner's tasks that have ended so far."""
        return TaskFigures(**self._owner.fields())

    def summary(self, *, unresponsive: int = 0) -> CancelMetrics:
        """The figures of the tasks that have ended so far; `unresponsive` is the current orphan count."""
        return CancelMetrics(
            owner=self.owner(),
            subagents=tuple(tally.figures(name) for name, tally in self._tallies.items()),
            regions=tuple(RegionMetrics(region=name, **counts.fields()) for name, counts in self._regions.items()),
            regions_dropped=self._regions_dropped,
            unresponsive=unresponsive,
        )


def _cancelled_run(
    task: TaskInfo, requested_mode: CancelMode | None, after: RunUsage, typical_tokens: float | None
) -> CancelledRun:
    cancel = task.cancel
    assert task.status is TaskStatus.CANCELLED and cancel is not None and task.ended_at is not None, task
    usage = task.usage or RunUsage()
    return CancelledRun(
        task_id=task.task_id,
        subagent=task.subagent,
        mode=requested_mode or cancel.mode,
        escalated=cancel.escalated_at is not None,
        reason=cancel.reason.kind,
        checkpoints=len(task.checkpoints),
        acknowledged_after_seconds=None
        if cancel.acknowledged_at is None
        else cancel.acknowledged_at - cancel.requested_at,
        stopped_after_seconds=task.ended_at - cancel.requested_at,
        tokens=usage.total_tokens,
        requests=usage.requests,
        tokens_after_request=after.total_tokens,
        requests_after_request=after.requests,
        tokens_saved=None if typical_tokens is None else max(round(typical_tokens) - usage.total_tokens, 0),
        region=task.region,
    )
