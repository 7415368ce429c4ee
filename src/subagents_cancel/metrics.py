"""Cancel figures an application can show without an observability backend.

[`SubAgentManager.metrics()`][subagents_cancel.SubAgentManager.metrics] returns a
[`CancelMetrics`][subagents_cancel.CancelMetrics]: for each sub-agent, how its tasks ended, how fast cancelled
tasks read the request and stopped, what cancelled runs consumed (in all, and after the request), and an
estimate of what cancelling saved. The same figures are recorded as OpenTelemetry metrics (see the telemetry
guide).

**Tokens saved** is an estimate: the mean tokens of the sub-agent's completed runs that the owner had seen
when the cancelled run ended, minus the tokens the cancelled run consumed, and never below 0. It is `None`
until the owner has seen a completed run of that sub-agent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pydantic_ai import RunUsage

from .messages import CancelMode, CancelReasonKind, TaskId
from .results import TaskInfo
from .states import TaskStatus

__all__ = ('CancelMetrics', 'CancelledRun', 'Durations', 'MetricsCollector', 'SubAgentMetrics')


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
    cancelled_runs: tuple[CancelledRun, ...] = ()
    typical_tokens: float | None = None
    """The mean tokens of its completed runs; `None` before the first one."""

    @property
    def cancelled(self) -> int:
        """How many of its tasks were cancelled."""
        return len(self.cancelled_runs)

    @property
    def finished(self) -> int:
        """How many of its tasks have ended, whatever their status."""
        return self.completed + self.failed + self.cancelled

    @property
    def cancel_rate(self) -> float | None:
        """Cancelled tasks as a share of finished ones, from 0 to 1; `None` before any has finished."""
        return self.cancelled / self.finished if self.finished else None

    def acknowledge_times(self, mode: CancelMode = 'soft') -> Durations:
        """How long cancelled tasks took to read a request of `mode` (only those that read it)."""
        return Durations.of(
            run.acknowledged_after_seconds
            for run in self.cancelled_runs
            if run.mode == mode and run.acknowledged_after_seconds is not None
        )

    def stop_times(self, mode: CancelMode) -> Durations:
        """How long cancelled tasks took from a request of `mode` until they were terminal."""
        return Durations.of(run.stopped_after_seconds for run in self.cancelled_runs if run.mode == mode)

    @property
    def tokens_consumed(self) -> int:
        """Tokens its cancelled runs consumed in all."""
        return sum(run.tokens for run in self.cancelled_runs)

    @property
    def tokens_after_request(self) -> int:
        """Tokens its cancelled runs consumed after the request."""
        return sum(run.tokens_after_request for run in self.cancelled_runs)

    @property
    def tokens_saved(self) -> int | None:
        """The sum of the estimates that are known; `None` when none is."""
        known = [run.tokens_saved for run in self.cancelled_runs if run.tokens_saved is not None]
        return sum(known) if known else None


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
        """Every cancelled run, grouped by sub-agent."""
        return tuple(run for entry in self.subagents for run in entry.cancelled_runs)


@dataclass(slots=True)
class _Tally:
    completed: int = 0
    completed_tokens: int = 0
    """The tokens of its completed runs, summed."""
    failed: int = 0
    cancelled: list[CancelledRun] = field(default_factory=list[CancelledRun])

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
                tally.cancelled.append(run)
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
                    cancelled_runs=tuple(tally.cancelled),
                    typical_tokens=tally.typical_tokens,
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
