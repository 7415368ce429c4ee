"""A task host's settles: the hook each task gets once its owner settles it, and what the host says when it cannot.

[`HostSettles`][subagents_cancel._engine.host_settles.HostSettles] is the part of
[`TaskHost`][subagents_cancel.task_host.TaskHost] that acts on [`SettleTask`][subagents_cancel.wire.SettleTask]:
it runs the task's cleanup and promote hook (in a task kept until it ends, or under a traced task's span), and
sends [`HooksFinished`][subagents_cancel.wire.HooksFinished] to the owner; a task with nothing to run is answered at
once. A host that closes before the owner settled a task gives up on it, and tells the owner its hook was not run
once its run is over. Routing and running the tasks is the host's (`task_host.py`), which inherits this part.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from subagents_cancel.clock import Clock
from subagents_cancel.config import SubAgentConfig, SubAgentPolicy
from subagents_cancel.messages import TaskId
from subagents_cancel.telemetry import TaskSpans
from subagents_cancel.transport import Transport
from subagents_cancel.wire import HooksFinished, SettleTask, StartTask

from .arrivals import Arrivals
from .launch import settle_task
from .runner import TaskRunner

__all__ = ('HookRunner', 'HostSettles', 'HostedTask')

HookRunner = Callable[[SettleTask, Path | None, float], Awaitable[str | None]]
"""Runs the hook of a settled task (its settle, its scratch directory, its bound) and returns why it failed."""

_NOT_RUN = 'its hook was not run: its task host had closed before the task ended'


@dataclass(eq=False, slots=True)
class HostedTask:
    """One task on a host: its start, its runner, and what becomes of its hook once its run is over."""

    start: StartTask
    runner: TaskRunner
    settled: asyncio.Future[None] | None
    """A traced task's (made with it; `None` for an untraced one): done once the owner's `SettleTask` came, or the host
    gave up on it. The task's span stays open until its hook has run: a task of the span's waits on this for the
    settle, then runs the hook.

    A bare future rather than an `anyio.Event`, and only where something waits: the event's wrappers were a good
    part of the objects a task costs in process (`benchmarks/seam.py`).
    """
    settle: SettleTask | None = None
    given_up: bool = False
    """The host is closing: no settle is coming any more, and its hook is not run."""


class HostSettles:
    """The settles and hooks of a task host's tasks; see the module docstring."""

    _configs: Mapping[str, SubAgentConfig]
    _arrivals: Arrivals
    _hooks: HookRunner | None
    _transport: Transport
    _clock: Clock
    _policy: SubAgentPolicy
    _hosted: dict[TaskId, HostedTask]
    _keepers: set[asyncio.Task[None]]
    _spans: TaskSpans

    def _give_up(self, hosted: HostedTask) -> None:
        """The host is closing: a task not settled yet gets no hook; its owner hears so once its run is over."""
        hosted.given_up = True
        if hosted.settle is not None:
            return  # its hook runs, or has run
        if hosted.settled is not None:
            if not hosted.settled.done():
                hosted.settled.set_result(None)  # its span's task, waiting for the settle, says so
        elif hosted.runner.done:
            self._abandon(hosted)

    def _abandon(self, hosted: HostedTask) -> None:
        """Tell the owner the task's hook was not run (the host closed before the owner settled it)."""
        task_id = hosted.start.task_id
        abandoned = HooksFinished(task_id=task_id, sent_at=self._clock.now(), cleanup_error=_NOT_RUN)
        self._transport.send_nowait(hosted.start.owner_address, abandoned)
        self._hosted.pop(task_id, None)

    def _settle(self, settle: SettleTask) -> None:
        hosted = self._hosted.get(settle.task_id)
        if hosted is None:  # never started here (cancelled while PENDING): its cleanup runs all the same
            self._keep(self._hooks_unstarted(settle), name=f'settle {settle.task_id}')
            return
        if hosted.settle is not None or hosted.given_up:
            return  # settled already, or the host is closing
        hosted.settle = settle
        if hosted.settled is not None:  # a traced task's span waits for it (even while the run goes on)
            if not hosted.settled.done():
                hosted.settled.set_result(None)
            return
        scratch = hosted.runner.context.settle_scratch_dir()
        if hosted.runner.done and self._no_hook(settle, scratch):
            self._hooks_finished(settle, None)  # nothing to run: no task, no wait
            return
        # Its run is over and it has a hook, or its owner gave up waiting for a run that has not stopped: the hook
        # runs in the context of an untraced run (its owner's trace context, no valid current span).
        hook = self._run_hook(settle, scratch, hosted.start.hook_seconds)
        self._keep(hook, name=f'settle {settle.task_id}', context=self._spans.untraced(hosted.start))

    def _no_hook(self, settle: SettleTask, scratch: Path | None) -> bool:
        """Whether settling the task runs nothing: no hook of its sub-agent's, no hook runner, no scratch directory."""
        config = self._configs.get(settle.info.subagent)
        no_hook = config is None or (config.cleanup is None and config.promote is None)
        return no_hook and self._hooks is None and scratch is None

    def _keep(self, hook: Coroutine[Any, Any, None], *, name: str, context: contextvars.Context | None = None) -> None:
        task = asyncio.get_running_loop().create_task(hook, name=name, context=context)
        self._keepers.add(task)
        task.add_done_callback(self._keepers.discard)

    async def _hooks_unstarted(self, settle: SettleTask) -> None:
        with anyio.CancelScope(shield=True):
            await self._run_hook(settle, None, self._policy.hook_seconds)

    async def _run_hook(self, settle: SettleTask, scratch: Path | None, hook_seconds: float) -> None:
        config = self._configs.get(settle.info.subagent)
        if config is None:
            cleanup_error = None
        elif self._hooks is not None:
            cleanup_error = await self._hooks(settle, scratch, hook_seconds)
        else:
            cleanup_error = await settle_task(
                self._arrivals.info(settle.info), scratch, config, clock=self._clock, hook_seconds=hook_seconds
            )
        self._hooks_finished(settle, cleanup_error)

    def _hooks_finished(self, settle: SettleTask, cleanup_error: str | None) -> None:
        finished = HooksFinished(task_id=settle.task_id, sent_at=self._clock.now(), cleanup_error=cleanup_error)
        self._transport.send_nowait(settle.owner_address, finished)
        self._hosted.pop(settle.task_id, None)
