"""A cancel sent while every worker is down, applied once one returns (`temporal_cancel.py`, Temporal only).

Each trial starts a task whose model request is in flight, SIGKILLs every worker process, and calls
`hard_cancel()`. Once the server has recorded the cancel (the workflow's history has one more signal) a
new worker process is started; `hard_cancel()` returns once the task has stopped. Then the fleet is made whole
again for the next trial.

* persisted: `hard_cancel()` called -> the signal in the workflow's history (a long poll of its new events);
* worker ready: the new worker process started -> it polls the task queue;
* applied: the new worker ready -> `hard_cancel()` returned, the task `CANCELLED` (the workflow task of the dead
  worker's sticky queue times out first, then the model activity that was running there must end: its heartbeat
  timeout, as nothing is left to report its cancel);
* end to end: `hard_cancel()` called -> returned.
"""

from __future__ import annotations

import time
from typing import TypedDict

import anyio
from temporalio.client import Client

from subagents_cancel import TaskStatus

from .stats import Summary, summarize
from .temporal_agents import describe
from .temporal_fleet import Fleet
from .temporal_trials import Site

__all__ = ('OutageFigures', 'cancels_while_down')


class OutageFigures(TypedDict):
    """Cancels sent while no worker was up."""

    trials: int
    cancelled: int
    """Trials whose task ended `CANCELLED` (all of them, or the cancel was lost)."""
    persisted_ms: Summary
    worker_ready_ms: Summary
    applied_ms: Summary
    end_to_end_ms: Summary


async def _signals(client: Client, workflow_id: str) -> int:
    history = client.get_workflow_handle(workflow_id).fetch_history_events()
    return sum([event.HasField('workflow_execution_signaled_event_attributes') async for event in history])


async def _persisted(client: Client, workflow_id: str, before: int) -> float:
    """When the history of `workflow_id` has more than `before` signals (a long poll of its new events)."""
    seen = 0
    history = client.get_workflow_handle(workflow_id).fetch_history_events(wait_new_event=True)
    async for event in history:
        seen += event.HasField('workflow_execution_signaled_event_attributes')
        if seen > before:
            return time.monotonic()
    raise RuntimeError(f'The workflow {workflow_id!r} closed before the cancel was recorded.')


async def cancels_while_down(site: Site, fleet: Fleet, client: Client, trials: int) -> OutageFigures:
    """`trials` hard cancels sent while every worker process is down."""
    persisted: list[float] = []
    ready: list[float] = []
    applied: list[float] = []
    end_to_end: list[float] = []
    cancelled = 0
    for _ in range(trials):
        token = site.token('outage')
        task = await site.manager.start('blocker', describe(token))
        await site.note('called', token)
        before = await _signals(client, task.task_id)
        workers = len(fleet.workers)
        await fleet.kill_all()
        asked = time.monotonic()
        async with anyio.create_task_group() as group:
            group.start_soon(site.manager.hard_cancel, task.task_id)
            persisted.append((await _persisted(client, task.task_id, before) - asked) * 1e3)
            await fleet.start_one()
        returned = time.monotonic()
        worker = fleet.workers[-1]
        ready.append((worker.ready_at - worker.started_at) * 1e3)
        applied.append((returned - worker.ready_at) * 1e3)
        end_to_end.append((returned - asked) * 1e3)
        cancelled += site.manager.get(task.task_id).status is TaskStatus.CANCELLED
        while len(fleet.workers) < workers:
            await fleet.start_one()
    return OutageFigures(
        trials=trials,
        cancelled=cancelled,
        persisted_ms=summarize(persisted),
        worker_ready_ms=summarize(ready),
        applied_ms=summarize(applied),
        end_to_end_ms=summarize(end_to_end),
    )
