"""The scenarios of `temporal_cancel.py`, each run the same way on an owner whose tasks run in process or on workers.

Every time is `time.monotonic()`, the clock the models' notes use in every process of the machine. CPU time is
the owner's (`time.process_time`) and, on Temporal, that of the other processes (the workers and the dev server,
from `/proc`, in clock ticks of 10 ms: a mean over many operations, not one operation's).

* hard: `hard_cancel()` called -> returned, for a task whose model request is in flight; it returns once the task
  has stopped, which the model's own `stopped` note (taken when its request was cancelled) is checked against;
  `hard_cancel()` called -> that note is the part of the time until the request is cancelled where it runs;
* first request: `start()` called -> the sub-agent's model called, on the same tasks;
* soft: a task in 200 ms model steps, cancelled at a random point of its first step: `soft_cancel()` called -> the
  model receives the request that tells it (acknowledged), and -> `wait()` returns it `CANCELLED` (terminal);
* region: `hard_cancel_region()` of a region whose every task has its model request in flight -> returned; the
  tasks left running and the model requests never stopped are counted. Before the cancel, the other processes'
  CPU time is measured for `IDLE_SECONDS` while the requests wait: on Temporal, the activities' heartbeats.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict

import anyio

from subagents_cancel import SubAgentManager, SubAgentPolicy, TaskStatus

from .stats import Summary, summarize
from .temporal_agents import STEP_SECONDS, describe
from .temporal_fleet import Notes

__all__ = (
    'POLICY',
    'HardFigures',
    'RegionFigures',
    'Site',
    'SoftFigures',
    'hard_cancels',
    'region_cancel',
    'soft_cancels',
)

WARMUP = 3
"""Hard cancels made before the counted ones."""
REGION = 'bench'
NOTE_SECONDS = 30.0
"""How long a model's note may take to come, after what should have caused it."""
IDLE_SECONDS = 1.0
"""How long the region's tasks wait in their model requests while the other processes' CPU time is measured."""
POLICY = SubAgentPolicy(hard_cancel_wait_seconds=120, teardown_seconds=120)
"""Wait for every stop however long it takes: the default bound (5 s) would report a slow one unresponsive."""


@dataclass
class Site:
    """Where the tasks run: the owner, the notes of its models, and the other processes whose CPU time counts."""

    manager: SubAgentManager
    notes: Notes
    other_cpu: Callable[[], float] = lambda: 0.0
    """The CPU seconds used so far by the processes other than this one (none in process)."""
    _tokens: int = field(default=0, init=False)

    def token(self, scenario: str) -> str:
        """A fresh token, named after `scenario`."""
        self._tokens += 1
        return f'{scenario}-{self._tokens}'

    async def note(self, kind: str, token: str) -> float:
        """When `token`'s model noted `kind`, waiting for it at most `NOTE_SECONDS`."""
        with anyio.fail_after(NOTE_SECONDS):
            return await self.notes.wait(kind, token)


class HardFigures(TypedDict):
    """Single hard cancels, and the first model request of the same tasks."""

    trials: int
    wall_ms: Summary
    owner_cpu_ms: float
    """Mean CPU time of the owner's process per hard cancel."""
    other_cpu_ms: float
    """Mean CPU time of the other processes per hard cancel."""
    stopped_before_return: int
    """Hard cancels that returned after their model request had stopped (all of them, or a promise is broken)."""
    stopped_ms: Summary
    """`hard_cancel()` called -> the model request cancelled (its `stopped` note, taken where it runs)."""
    first_request_ms: Summary


class SoftFigures(TypedDict):
    """Soft cancels of tasks in 200 ms model steps."""

    trials: int
    acknowledged_ms: Summary
    terminal_ms: Summary


class RegionFigures(TypedDict):
    """One region cancel of many tasks in model requests."""

    tasks: int
    wall_ms: float
    owner_cpu_ms: float
    other_cpu_ms: float
    in_flight_other_cpu_ms_per_s: float
    """CPU time of the other processes per second while the tasks wait in their model requests, before the cancel."""
    still_running: int
    """Tasks not terminal once the call returned, plus model requests never stopped: must be 0."""


async def hard_cancels(site: Site, trials: int) -> HardFigures:
    """`trials` hard cancels of a task in its model request, after `WARMUP` that are not counted."""
    walls: list[float] = []
    firsts: list[float] = []
    owner_cpu = other_cpu = 0.0
    stopped_first = 0
    stops: list[float] = []
    for index in range(WARMUP + trials):
        token = site.token('hard')
        asked = time.monotonic()
        task = await site.manager.start('blocker', describe(token))
        called = await site.note('called', token)
        started, owner, other = time.monotonic(), time.process_time(), site.other_cpu()
        info = await site.manager.hard_cancel(task.task_id)
        returned = time.monotonic()
        if index < WARMUP:
            continue
        owner_cpu += time.process_time() - owner
        other_cpu += site.other_cpu() - other
        assert info.status is TaskStatus.CANCELLED, info
        stopped = await site.note('stopped', token)
        stopped_first += stopped <= returned
        stops.append((stopped - started) * 1e3)
        walls.append((returned - started) * 1e3)
        firsts.append((called - asked) * 1e3)
    return HardFigures(
        trials=trials,
        wall_ms=summarize(walls),
        owner_cpu_ms=owner_cpu / trials * 1e3,
        other_cpu_ms=other_cpu / trials * 1e3,
        stopped_before_return=stopped_first,
        stopped_ms=summarize(stops),
        first_request_ms=summarize(firsts),
    )


async def soft_cancels(site: Site, trials: int, seed: int = 7) -> SoftFigures:
    """`trials` soft cancels, each at a random point of the task's first 200 ms model step."""
    rng = random.Random(seed)
    acknowledged: list[float] = []
    terminal: list[float] = []
    for _ in range(trials):
        token = site.token('soft')
        task = await site.manager.start('stepper', describe(token))
        await site.note('called', token)
        await anyio.sleep(STEP_SECONDS * rng.random())  # land anywhere in the step
        asked = time.monotonic()
        await site.manager.soft_cancel(task.task_id)
        (info,) = (await site.manager.wait([task.task_id])).tasks
        ended = time.monotonic()
        assert info.status is TaskStatus.CANCELLED, info
        acknowledged.append((await site.note('acknowledged', token) - asked) * 1e3)
        terminal.append((ended - asked) * 1e3)
    return SoftFigures(trials=trials, acknowledged_ms=summarize(acknowledged), terminal_ms=summarize(terminal))


async def region_cancel(site: Site, size: int) -> RegionFigures:
    """One `hard_cancel_region()` of `size` tasks, each with its model request in flight."""
    tokens = [site.token('region') for _ in range(size)]
    for token in tokens:
        await site.manager.start('blocker', describe(token), region=REGION)
    for token in tokens:
        await site.note('called', token)
    waiting = site.other_cpu()
    await anyio.sleep(IDLE_SECONDS)
    idle_cpu = (site.other_cpu() - waiting) / IDLE_SECONDS * 1e3
    started, owner, other = time.monotonic(), time.process_time(), site.other_cpu()
    await site.manager.hard_cancel_region(REGION)
    wall = (time.monotonic() - started) * 1e3
    owner_cpu, other_cpu = (time.process_time() - owner) * 1e3, (site.other_cpu() - other) * 1e3
    running = len(site.manager.active_tasks())
    with anyio.move_on_after(NOTE_SECONDS):  # a worker's notes come through a pipe, a little after the fact
        for token in tokens:
            await site.notes.wait('stopped', token)
    never_stopped = sum(('stopped', token) not in site.notes.at for token in tokens)
    return RegionFigures(
        tasks=size,
        wall_ms=wall,
        owner_cpu_ms=owner_cpu,
        other_cpu_ms=other_cpu,
        in_flight_other_cpu_ms_per_s=idle_cpu,
        still_running=running + never_stopped,
    )
