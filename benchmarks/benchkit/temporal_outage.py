"""A cancel sent while every worker is down, applied once one returns (`temporal_cancel.py`, Temporal only).

Each trial starts a task whose model request is in flight, SIGKILLs every worker process, calls `hard_cancel()`
and starts a new worker process at once; `hard_cancel()` returns once the task has stopped. Meanwhile a long poll
of the workflow's history waits for the cancel's signal. Then the fleet is made whole again for the next trial.

* in history: `hard_cancel()` called -> its signal in the workflow's history. The server holds a signal that
  arrives while a workflow task is running (here: on the killed worker) and writes it into the history when that
  task ends, which for a killed worker is its timeout;
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
    in_history_ms: Summary
    worker_ready_ms: Summary
    applied_ms: Summary
    end_to_end_ms: Summary


async def _signals(client: Client, workflow_id: str) -> int:
    history = client.get_workflow_handle(workflow_id).fetch_history_events()
    return sum([event.HasField('workflow_execution_signaled_event_attributes') async for event in history])


async def _in_history(client: Client, workflow_id: str, before: int) -> float:
    """When the history of `workflow_id` has more than `before` signals (a long poll of its new events)."""
    seen = 0
    history = client.get_workflow_handle(workflow_id).fetch_history_events(wait_new_event=True)
    async for event in history:
        seen += event.HasField('workflow_execution_signaled_event_attributes')
        if seen > before:
            return time.monotonic()
    raise RuntimeError(f'The workflow {workflow_id!r} closed before the cancel was recorded.')


async def _trial(site: Site, fleet: Fleet, client: Client) -> tuple[float, float, float, float, bool]:
    """One outage: (ms to the signal in the history, to the worker ready, ready to applied, end to end, cancelled)."""
    token = site.token('outage')
    task = await site.manager.start('blocker', describe(token))
    await site.note('called', token)
    before = await _signals(client, task.task_id)
    await fleet.kill_all()
    asked = time.monotonic()
    times: dict[str, float] = {}

    async def cancel() -> None:
        await site.manager.hard_cancel(task.task_id)
        times['returned'] = time.monotonic()

    async def watch() -> None:
        times['in_history'] = await _in_history(client, task.task_id, before)

    async with anyio.create_task_group() as group:
        group.start_soon(cancel)
        group.start_soon(watch)
        await fleet.start_one()
    worker = fleet.workers[-1]
    return (
        (times['in_history'] - asked) * 1e3,
        (worker.ready_at - worker.started_at) * 1e3,
        (times['returned'] - worker.ready_at) * 1e3,
        (times['returned'] - asked) * 1e3,
        site.manager.get(task.task_id).status is TaskStatus.CANCELLED,
    )


async def cancels_while_down(site: Site, fleet: Fleet, client: Client, trials: int) -> OutageFigures:
    """`trials` hard cancels sent while every worker process is down."""
    workers = len(fleet.workers)
    results: list[tuple[float, float, float, float, bool]] = []
    for _ in range(trials):
        results.append(await _trial(site, fleet, client))
        while len(fleet.workers) < workers:
            await fleet.start_one()
    in_history, ready, applied, end_to_end, cancelled = zip(*results, strict=True)
    return OutageFigures(
        trials=trials,
        cancelled=sum(cancelled),
        in_history_ms=summarize(in_history),
        worker_ready_ms=summarize(ready),
        applied_ms=summarize(applied),
        end_to_end_ms=summarize(end_to_end),
    )
