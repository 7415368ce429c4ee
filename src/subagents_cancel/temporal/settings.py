"""The settings of a Temporal worker that matter for cancels: how fast one reaches an activity, how long things wait."""

from __future__ import annotations

from dataclasses import dataclass

from subagents_cancel.config import check_duration

__all__ = ('WorkerSettings',)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSettings:
    """How a worker runs task activities; the defaults are what the guide "Across machines" measures.

    A cancel reaches an activity only in the reply to one of its heartbeats: `heartbeat_seconds` bounds how long a
    hard cancel takes to stop a model request or a tool in flight, at the price of one heartbeat call per activity
    that often.
    """

    heartbeat_seconds: float = 0.1
    """How often every activity heartbeats (the worker sends no heartbeat more often than this either)."""
    heartbeat_timeout_seconds: float = 10.0
    """An activity silent this long is taken as lost with its worker, and retried on another."""
    activity_seconds: float = 600.0
    """How long one model request or tool call may run (Temporal's start-to-close timeout)."""
    outbox_read_seconds: float = 60.0
    """How long a finished task's workflow waits for its owner to read its last reports, before it closes."""
    sticky_queue_seconds: float = 10.0
    """How long a task's next workflow step waits for the worker that ran its last one, before any worker may take it
    (Temporal's sticky queue timeout). A worker that died holds its tasks this long: it bounds how late a cancel
    sent meanwhile is applied. Shorter means more replays of whole histories on workers that are only busy."""

    def __post_init__(self) -> None:
        """Check every duration.

        Raises:
            ValueError: a duration is not a finite number of seconds greater than 0.
        """
        for name in (
            'heartbeat_seconds',
            'heartbeat_timeout_seconds',
            'activity_seconds',
            'outbox_read_seconds',
            'sticky_queue_seconds',
        ):
            check_duration(name, getattr(self, name))
