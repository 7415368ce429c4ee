"""Application shutdown: every task is told to wrap up, gets a grace window, and is then stopped.

Like a Kubernetes pod's termination grace period: on SIGTERM the application has `grace_seconds` to
finish cleanly, after which it is killed. [`shutdown`][subagents_cancel.shutdown.shutdown] soft-cancels every
task of the given managers, waits up to the grace window for them to hand back their partial results,
hard-cancels the rest and waits for them within the policy's
[`hard_cancel_wait_seconds`][subagents_cancel.SubAgentPolicy.hard_cancel_wait_seconds]. It returns within
grace + that bound, whatever the tasks do; a task that did not stop is reported, not waited for.

[`shutdown_on_signals`][subagents_cancel.shutdown_on_signals] runs it when the process receives a signal,
then cancels the body of its `async with` block.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from .config import check_duration
from .manager import SubAgentManager
from .message_parts import given_reason
from .messages import CancelReason
from .results import TaskInfo
from .states import TaskStatus

__all__ = ('ShutdownReport', 'ShutdownSignal', 'shutdown', 'shutdown_on_signals')

_SHUTDOWN = CancelReason(kind='parent_ended', detail='the application is shutting down')


@dataclass(frozen=True, slots=True, kw_only=True)
class ShutdownReport:
    """How the tasks of a shutdown ended."""

    tasks: tuple[TaskInfo, ...]
    """Every task that was running when the shutdown began (or started during it), as it is now."""
    grace_seconds: float
    """The grace window the tasks were given."""

    @property
    def stopped_in_grace(self) -> tuple[TaskInfo, ...]:
        """Tasks that ended on their own or by wrapping up within the grace window."""
        return tuple(task for task in self.tasks if task.status.is_terminal and not _was_stopped(task))

    @property
    def hard_cancelled(self) -> tuple[TaskInfo, ...]:
        """Tasks that were stopped because the grace window ran out."""
        return tuple(task for task in self.tasks if task.status.is_terminal and _was_stopped(task))

    @property
    def unresponsive(self) -> tuple[TaskInfo, ...]:
        """Tasks that had not stopped when the shutdown gave up waiting (they swallow cancellation)."""
        return tuple(task for task in self.tasks if not task.status.is_terminal)

    @property
    def lingering_threads(self) -> int:
        """Sync tool calls still running in worker threads; no cancellation can stop them."""
        return sum(task.lingering_threads for task in self.tasks)


def _was_stopped(task: TaskInfo) -> bool:
    return task.status is TaskStatus.CANCELLED and task.cancel is not None and task.cancel.mode == 'hard'


async def shutdown(
    managers: Sequence[SubAgentManager], *, grace_seconds: float, reason: CancelReason = _SHUTDOWN
) -> ShutdownReport:
    """Soft-cancel every task of `managers`, wait up to `grace_seconds`, then hard-cancel what is left.

    Tasks started during the grace window (a fallback, or a parent that has not stopped yet) are
    soft-cancelled too, with what is left of the window. The managers stay open; their `async with`
    blocks close them. Runs shielded: cancelling the caller does not cut the shutdown short.

    Args:
        managers: The owners of the tasks to stop.
        grace_seconds: How long the tasks may wrap up, in seconds of each manager's clock.
        reason: The reason the tasks are given; `parent_ended`, "the application is shutting down" by default.

    Returns:
        The tasks and how they ended.

    Raises:
        TypeError: `reason` is not a `CancelReason`.
        ValueError: `grace_seconds` is not finite and 0 or more.
    """
    check_duration('grace_seconds', grace_seconds, zero_allowed=True)
    reason = given_reason(reason, _SHUTDOWN)
    seen: dict[str, TaskInfo] = {}
    with anyio.CancelScope(shield=True):
        async with anyio.create_task_group() as group:
            for manager in managers:
                group.start_soon(_shut_down_one, manager, grace_seconds, reason, seen)
    return ShutdownReport(tasks=tuple(seen.values()), grace_seconds=grace_seconds)


async def _shut_down_one(
    manager: SubAgentManager, grace_seconds: float, reason: CancelReason, seen: dict[str, TaskInfo]
) -> None:
    deadline = manager.clock.now() + grace_seconds
    while (active := manager.active_tasks()) and (left := deadline - manager.clock.now()) > 0:
        seen.update((task.task_id, task) for task in active)
        manager.cancel_all('soft', reason=reason, grace_seconds=left)
        await manager.wait(timeout_seconds=left)  # returns early when a task starts or asks; look again
    if active := manager.active_tasks():
        seen.update((task.task_id, task) for task in active)
        manager.cancel_all('hard', reason=reason)
        await manager.wait(timeout_seconds=manager.policy.hard_cancel_wait_seconds)
    seen.update((task_id, manager.get(task_id)) for task_id in tuple(seen))


@dataclass(slots=True)
class ShutdownSignal:
    """What [`shutdown_on_signals`][subagents_cancel.shutdown_on_signals] saw."""

    received: anyio.Event = field(default_factory=anyio.Event)
    """Set as soon as a signal arrives, before the tasks are cancelled: stop taking new work."""
    signal: signal.Signals | None = None
    """The signal that started the shutdown."""
    report: ShutdownReport | None = None
    """How the tasks ended, once the shutdown has run."""


@asynccontextmanager
async def shutdown_on_signals(
    managers: Sequence[SubAgentManager],
    *,
    grace_seconds: float,
    signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
) -> AsyncGenerator[ShutdownSignal]:
    """Shut the tasks of `managers` down when the process receives one of `signals`, then end the block.

    On the first signal, `received` is set, [`shutdown`][subagents_cancel.shutdown.shutdown] runs, its report is
    stored, and the body of the `async with` block is cancelled. Only the main thread can receive signals.

    Example:
        ```python
        async with SubAgentManager([researcher]) as manager:
            async with shutdown_on_signals([manager], grace_seconds=25) as stop:
                await serve(manager)  # until SIGTERM
            print(stop.report)
        ```
    """
    state = ShutdownSignal()
    async with anyio.create_task_group() as group:

        async def listen() -> None:
            with anyio.open_signal_receiver(*signals) as received:
                async for signum in received:
                    state.signal = signal.Signals(signum)
                    state.received.set()
                    state.report = await shutdown(managers, grace_seconds=grace_seconds)
                    group.cancel_scope.cancel()
                    return

        group.start_soon(listen)
        try:
            yield state
        finally:
            group.cancel_scope.cancel()  # the body ended on its own: stop listening
