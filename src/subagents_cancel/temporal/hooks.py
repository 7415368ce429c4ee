"""A task's cleanup hook on a worker runs as an activity: once, whatever the workflow's replays.

Workflow code runs again each time its workflow is replayed (a worker taking a task over, a query after it closed);
an activity's result is kept in the history instead. So a task's hook, which is user code with effects of its own (a
file deleted, a message sent), runs in [`run_task_hook`][subagents_cancel.temporal.hooks.run_task_hook], once, and
the workflow reads what it returned. A task with no hook to run starts no activity.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from subagents_cancel._engine.arrivals import Arrivals
from subagents_cancel._engine.launch import settle_task
from subagents_cancel.clock import MonotonicClock
from subagents_cancel.config import index_subagents
from subagents_cancel.states import TaskStatus
from subagents_cancel.task_host import HookRunner
from subagents_cancel.wire import SettleTask, decode_wire, encode_wire

from .registry import HostedSubagents, hosted_subagents

__all__ = ('HOOK_ACTIVITY', 'hook_in_activity', 'run_task_hook')

HOOK_ACTIVITY = 'subagents_cancel.task_hook'

_MARGIN_SECONDS = 10.0
"""On top of the hook's own bound, for the activity to be picked up and to report."""


@activity.defn(name=HOOK_ACTIVITY)
async def run_task_hook(settle: str, hook_seconds: float) -> str | None:
    """Run the cleanup hook of the task `settle` names (the wire's JSON), within `hook_seconds`; return its failure."""
    message = decode_wire(settle.encode())
    assert isinstance(message, SettleTask)  # only the workflow schedules this activity, with what it encoded
    configs = index_subagents(hosted_subagents(activity.info().task_queue).subagents)
    info = Arrivals(configs).info(message.info)
    return await settle_task(info, None, configs[info.subagent], clock=MonotonicClock(), hook_seconds=hook_seconds)


def hook_in_activity(hosted: HostedSubagents) -> HookRunner:
    """The hook runner of a task host inside a workflow: the hook, if the task has one to run, as an activity."""

    async def run(settle: SettleTask, scratch: Path | None, hook_seconds: float) -> str | None:
        config = next((config for config in hosted.subagents if config.name == settle.info.subagent), None)
        if config is None or config.cleanup is None or settle.info.status is not TaskStatus.CANCELLED:
            return None  # nothing to run (a task on a worker has no scratch directory to promote)
        try:
            return await workflow.execute_activity(
                HOOK_ACTIVITY,
                args=(encode_wire(settle).decode(), hook_seconds),
                start_to_close_timeout=timedelta(seconds=hook_seconds + _MARGIN_SECONDS),
                retry_policy=RetryPolicy(maximum_attempts=1),  # a hook runs at most once
                result_type=str | None,  # pyright: ignore[reportArgumentType]
            )
        except ActivityError as error:
            return f'its hook could not be run on a worker ({type(error.cause).__name__})'

    return run
