"""The in-process cost of the owner <-> task seam, measured in one process through the public Python API.

`benchmarks/seam.py` runs this same code in a fresh process for each commit it compares, so it may use only
what every compared commit has: `SubAgentManager`, `SubAgentConfig`, `SubAgentPolicy` and `TaskStatus`. Every
sub-agent is a `FunctionModel` blocked in a model request, so the figures are the library's own cost plus
pydantic-ai's unwinding, never a model's time.

* hard cancel: from `hard_cancel()` being called to it returning (the task has stopped), wall and CPU time,
  with the garbage collector on (after a full collection) and off, as `cancel_latency.py` measures it;
* region cancel: `hard_cancel_region()` of a region whose every task is in a model request, until it returns
  (every task terminal), after a full collection; the tasks and model requests left running are counted;
* soft-cancel acknowledgement: from `soft_cancel()` returning to the sub-agent's model receiving the request
  that tells it; the blocked model request is released at once, so this includes one pydantic-ai step.

CPU time is the process's (`time.process_time`): on a loaded machine it moves less than wall time.
"""

from __future__ import annotations

import gc
import inspect
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypedDict

import anyio
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart

import subagents_cancel
from subagents_cancel import SubAgentConfig, SubAgentManager, SubAgentPolicy, TaskStatus

from .stats import Size, by_size, summarize
from .subagent import Blocking, cancel_notice_in_request, function_model

Transport = Literal['inprocess', 'loopback']
WARMUP = 10
"""Cancels made before the counted ones, in each series."""
REGION = 'seam'
LOOPBACK = 'LoopbackTransport'
"""The name `subagents_cancel` exports its loopback transport under, once it has one (issue 12)."""


class Counts(TypedDict):
    """How much was measured, and what was left running (which must be 0)."""

    hard_cancels: int
    region_cancels: int
    region_tasks: int
    left_running: int
    soft_acknowledgements: int


class Measurement(TypedDict):
    """One process's figures (milliseconds, by name, in the order they are printed) and what they came from."""

    source: str
    """The directory of the `subagents_cancel` package that was measured."""
    transport: Transport
    figures: dict[str, float]
    counts: Counts


def available_transports() -> tuple[Transport, ...]:
    """The transports this commit has: in-process always; loopback once the library exports it.

    Loopback counts as there when `subagents_cancel.LoopbackTransport` exists and `SubAgentManager` takes a
    `transport` argument (issue 12).
    """
    takes_transport = 'transport' in inspect.signature(SubAgentManager).parameters
    return ('inprocess', 'loopback') if takes_transport and hasattr(subagents_cancel, LOOPBACK) else ('inprocess',)


@asynccontextmanager
async def _manager(
    transport: Transport, config: SubAgentConfig, policy: SubAgentPolicy | None = None
) -> AsyncGenerator[SubAgentManager]:
    """A manager on `transport`, entered; in-process is the default, so it is built exactly as the oldest commits do.

    A transport given to a manager is entered by its caller, around the manager's block: here.
    """
    if transport == 'inprocess':
        async with SubAgentManager([config], policy=policy) as manager:
            yield manager
        return
    # Looked up by name and passed through a mapping, so this file type-checks before and after the transport lands.
    loopback: Any = getattr(subagents_cancel, LOOPBACK)()
    async with loopback, SubAgentManager([config], policy=policy, **{'transport': loopback}) as manager:
        yield manager


@dataclass(frozen=True, slots=True)
class Clocks:
    """Wall-clock and process CPU time, in seconds."""

    wall: float
    cpu: float

    @classmethod
    def now(cls) -> Clocks:
        return cls(time.perf_counter(), time.process_time())

    def ms_until(self, later: Clocks) -> tuple[float, float]:
        """(wall, CPU) milliseconds from this reading to `later`."""
        return (later.wall - self.wall) * 1e3, (later.cpu - self.cpu) * 1e3


@contextmanager
def _collected(*, disabled: bool = False) -> Generator[None]:
    """Start from a full collection; with `disabled`, keep the collector off inside the block."""
    gc.collect()
    if disabled:
        gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _percentiles(name: str, wall: list[float], cpu: list[float]) -> dict[str, float]:
    cpu_summary, wall_summary = summarize(cpu), summarize(wall)
    return {
        f'{name}, CPU p50 (ms)': cpu_summary['p50'],
        f'{name}, CPU p99 (ms)': cpu_summary['p99'],
        f'{name}, wall p50 (ms)': wall_summary['p50'],
        f'{name}, wall p99 (ms)': wall_summary['p99'],
    }


async def _series(trials: int, one: Callable[[], Awaitable[tuple[float, float]]]) -> tuple[list[float], list[float]]:
    """(wall, CPU) ms of `trials` calls of `one`, after `WARMUP` that are not counted."""
    timings = [await one() for _ in range(WARMUP + trials)][WARMUP:]
    return [wall for wall, _ in timings], [cpu for _, cpu in timings]


async def hard_cancels(transport: Transport, trials: int) -> tuple[list[float], list[float]]:
    """(wall, CPU) ms of `trials` single hard cancels of a task blocked in its model request."""
    blocking = Blocking()
    config = SubAgentConfig(name='blocked', description='Never answers', model=function_model(blocking.respond))

    async def one(manager: SubAgentManager) -> tuple[float, float]:
        blocking.reset()
        task = await manager.start('blocked', 'Wait.')
        await blocking.reached.wait()
        started = Clocks.now()
        info = await manager.hard_cancel(task.task_id)
        elapsed = started.ms_until(Clocks.now())
        assert info.status is TaskStatus.CANCELLED, info
        return elapsed

    async with _manager(transport, config) as manager:
        timings = await _series(trials, partial(one, manager))
        assert blocking.still_running == 0 and not manager.active_tasks()
    return timings


async def region_cancel(transport: Transport, size: int) -> tuple[float, float, int]:
    """(wall, CPU) ms of one `hard_cancel_region()` of `size` blocked tasks, and how many were left running."""
    blocking = Blocking(expected=size)
    config = SubAgentConfig(name='blocked', description='Never answers', model=function_model(blocking.respond))
    # Wait for every run to stop however long it takes, as region_cancel.py does: the default bounds would mark
    # the slowest of many unwinding runs unresponsive and stop the clock before they are terminal.
    policy = SubAgentPolicy(sync_tool_threads=1, hard_cancel_wait_seconds=600, teardown_seconds=600)
    async with _manager(transport, config, policy) as manager:
        for index in range(size):
            await manager.start('blocked', f'Topic {index}', region=REGION)
        await blocking.reached.wait()
        with _collected():
            started = Clocks.now()
            await manager.hard_cancel_region(REGION)
            wall, cpu = started.ms_until(Clocks.now())
        left = max(len(manager.active_tasks()), blocking.still_running)
    return wall, cpu, left


@dataclass
class Held:
    """Each model request waits for `release`, then asks for a checkpoint; one that tells of a cancel is answered.

    `acknowledged` is the moment the model received the request carrying the cancellation.
    """

    blocked: anyio.Event = field(default_factory=anyio.Event)
    release: anyio.Event = field(default_factory=anyio.Event)
    told: anyio.Event = field(default_factory=anyio.Event)
    acknowledged: Clocks | None = None

    def reset(self) -> None:
        self.blocked, self.release, self.told, self.acknowledged = anyio.Event(), anyio.Event(), anyio.Event(), None

    async def respond(self, messages: list[ModelMessage]) -> ModelResponse:
        if cancel_notice_in_request(messages):
            self.acknowledged = Clocks.now()
            self.told.set()
            return ModelResponse(parts=[TextPart('Completed: nothing. Findings: none.')])
        self.blocked.set()
        await self.release.wait()
        return ModelResponse(parts=[ToolCallPart('checkpoint', {'completed': ['step 1']})])


async def soft_acknowledgements(transport: Transport, trials: int) -> tuple[list[float], list[float]]:
    """(wall, CPU) ms from `soft_cancel()` returning to the sub-agent's model receiving the cancellation."""
    held = Held()
    config = SubAgentConfig(name='held', description='Works in steps', model=function_model(held.respond))

    async def one(manager: SubAgentManager) -> tuple[float, float]:
        held.reset()
        task = await manager.start('held', 'Work until stopped.')
        await held.blocked.wait()
        await manager.soft_cancel(task.task_id)
        returned = Clocks.now()
        held.release.set()
        await held.told.wait()
        assert held.acknowledged is not None
        (info,) = (await manager.wait([task.task_id])).tasks
        assert info.status is TaskStatus.CANCELLED, info
        return returned.ms_until(held.acknowledged)

    async with _manager(transport, config) as manager:
        return await _series(trials, partial(one, manager))


async def measure(transport: Transport, size: Size) -> Measurement:
    """Every figure of the seam on `transport`, at `size` (`smoke` only proves the code works)."""
    hard_trials = by_size(size, 5, 200, 1000)
    region_size, region_repeat = by_size(size, 20, 1000, 1000), by_size(size, 1, 1, 3)
    soft_trials = by_size(size, 3, 50, 200)
    figures: dict[str, float] = {}
    with _collected():
        figures |= _percentiles('hard cancel', *await hard_cancels(transport, hard_trials))
    with _collected(disabled=True):
        figures |= _percentiles('hard cancel, GC off', *await hard_cancels(transport, hard_trials))
    regions = [await region_cancel(transport, region_size) for _ in range(region_repeat)]
    figures[f'region cancel of {region_size:,}, CPU (ms)'] = summarize([cpu for _, cpu, _ in regions])['p50']
    figures[f'region cancel of {region_size:,}, wall (ms)'] = summarize([wall for wall, _, _ in regions])['p50']
    with _collected():
        figures |= _percentiles('soft-cancel acknowledgement', *await soft_acknowledgements(transport, soft_trials))
    return Measurement(
        source=str(Path(subagents_cancel.__file__).parent),
        transport=transport,
        figures=figures,
        counts=Counts(
            hard_cancels=2 * hard_trials,
            region_cancels=region_repeat,
            region_tasks=region_size,
            left_running=max(left for _, _, left in regions),
            soft_acknowledgements=soft_trials,
        ),
    )
