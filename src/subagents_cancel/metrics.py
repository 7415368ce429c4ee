"""Cancel figures an application can show without an observability backend.

[`SubAgentManager.metrics()`][subagents_cancel.SubAgentManager.metrics] returns a
[`CancelMetrics`][subagents_cancel.CancelMetrics]: for each sub-agent, how its tasks ended, how fast cancelled
tasks read the request and stopped, what cancelled runs consumed (in all, and after the request), and an
estimate of what cancelling saved. The same figures are recorded as OpenTelemetry metrics (see the telemetry
guide).

**A window, not a history.** The counts and token sums cover every task the owner has seen end, but only the
most recent [`RECENT_CANCELLED_RUNS`][subagents_cancel.metrics.RECENT_CANCELLED_RUNS] cancelled runs of each
sub-agent are kept one by one, so a long-lived owner's figures take bounded memory. The response-time
percentiles are exact over that window, and blind to what came before it.

**Tokens saved** is an estimate: the mean tokens of the sub-agent's completed runs that the owner had seen
when the cancelled run ended, minus the tokens the cancelled run consumed, and never below 0. It is `None`
until the owner has seen a completed run of that sub-agent.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pydantic_ai import RunUsage

from .messages import CancelMode, CancelReasonKind, TaskId
from .notebook_view import metrics_html
from .results import TaskInfo
from .states import TaskStatus

__all__ = ('RECENT_CANCELLED_RUNS', 'CancelMetrics', 'CancelledRun', 'Durations', 'MetricsCollector', 'SubAgentMetrics')

RECENT_CANCELLED_RUNS = 1_000
"""How many cancelled runs of each sub-agent are kept one by one (about 300 bytes each), newest last."""


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


@dataclass(frozen=True, slots=True, kw_only=True)
class SubAgentMetrics:
    """The figures of one sub-agent's tasks that have ended."""

    subagent: str
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    """How many of its tasks were cancelled."""
    cancelled_runs: tuple[CancelledRun, ...] = ()
    """Its most recent cancelled runs, oldest first: all of them up to `RECENT_CANCELLED_RUNS`, then that many."""
    typical_tokens: float | None = None
    """The mean tokens of its completed runs; `None` before the first one."""
    tokens_consumed: int = 0
    """Tokens its cancelled runs consumed in all."""
    tokens_after_request: int = 0
    """Tokens its cancelled runs consumed after the request."""
    tokens_saved: int | None = None
    """The sum of the estimates that are known (see the module docstring); `None` when none is."""

    @property
    def finished(self) -> int:
        """How many of its tasks have ended, whatever their status."""
        return self.completed + self.failed + self.cancelled

    @property
    def cancel_rate(self) -> float | None:
        """Cancelled tasks as a share of finished ones, from 0 to 1; `None` before any has finished."""
        return self.cancelled / self.finished if self.finished else None

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
class CancelMetrics:
    """The cancel figures of one owner's tasks, per sub-agent, as of when it was taken."""

    subagents: tuple[SubAgentMetrics, ...] = ()
    """One entry per sub-agent with a finished task, in the order their first task finished."""
    unresponsive: int = 0
    """Tasks a hard cancel gave up waiting for that have still not stopped (orphans)."""

    def of(self, subagent: str) -> SubAgentMetrics:
        """The figures of `subagent`; all zero when none of its tasks has finished."""
        return next(
            (entry for entry in self.subagents if entry.subagent == subagent), SubAgentMetrics(subagent=subagent)
        )

    @property
    def cancelled_runs(self) -> tuple[CancelledRun, ...]:
        """The recent cancelled runs of every sub-agent, grouped by sub-agent."""
        return tuple(run for entry in self.subagents for run in entry.cancelled_runs)

    def _repr_html_(self) -> str:
        return metrics_html(self)


@dataclass(slots=True)
class _Tally:
    completed: int = 0
    completed_tokens: int = 0
    """The tokens of its completed runs, summed."""
    failed: int = 0
    cancelled: int = 0
    recent: deque[CancelledRun] = field(default_factory=lambda: deque[CancelledRun](maxlen=RECENT_CANCELLED_RUNS))
    tokens_consumed: int = 0
    tokens_after_request: int = 0
    tokens_saved: int | None = None

    def add_cancelled(self, run: CancelledRun) -> None:
        self.cancelled += 1
        self.recent.append(run)
        self.tokens_consumed += run.tokens
        self.tokens_after_request += run.tokens_after_request
        if run.tokens_saved is not None:
            self.tokens_saved = (self.tokens_saved or 0) + run.tokens_saved

    @property
    def typical_tokens(self) -> float | None:
        return self.completed_tokens / self.completed if self.completed else None


class MetricsCollector:
    """Adds up an owner's tasks as they end; `summary()` gives the figures so far."""

    def __init__(self) -> None:
        self._tallies: dict[str, _Tally] = {}

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
        match task.status:
            case TaskStatus.COMPLETED:
                tally.completed += 1
                tally.completed_tokens += (task.usage or RunUsage()).total_tokens
            case TaskStatus.FAILED:
                tally.failed += 1
            case _:
                run = _cancelled_run(task, requested_mode, usage_after_request or RunUsage(), tally.typical_tokens)
                tally.add_cancelled(run)
                return run
        return None

    def summary(self, *, unresponsive: int = 0) -> CancelMetrics:
        """The figures of the tasks that have ended so far; `unresponsive` is the current orphan count."""
        return CancelMetrics(
            subagents=tuple(
                SubAgentMetrics(
                    subagent=name,
                    completed=tally.completed,
                    failed=tally.failed,
                    cancelled=tally.cancelled,
                    cancelled_runs=tuple(tally.recent),
                    typical_tokens=tally.typical_tokens,
                    tokens_consumed=tally.tokens_consumed,
                    tokens_after_request=tally.tokens_after_request,
                    tokens_saved=tally.tokens_saved,
                )
                for name, tally in self._tallies.items()
            ),
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
    )
