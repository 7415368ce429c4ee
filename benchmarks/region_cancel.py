"""Region cancel at scale: N running sub-agent tasks in one region, cancelled with one call.

Run: python benchmarks/region_cancel.py [--sizes 1000 10000] [--repeat 3] [--modes floor hard soft]

Each task is a real pydantic-ai run whose model request is in flight when the region is cancelled.

* hard: from `hard_cancel_region()` being called to it returning, which it does once every task of the
  region is terminal (or marked unresponsive).
* soft: from `soft_cancel_region()` being called to every task being terminal; each in-flight model step
  then returns, and the next request (which carries the CANCEL_REQUEST) is answered with a wrap-up at once.

* floor: the same N runs without this library, each stopped with pydantic-ai's own `AgentRun.cancel()`; the
  time until every run has unwound is what pydantic-ai itself needs, and bounds what any region cancel can do.

After each cancel it counts the tasks that are still not terminal: it must be 0. Wall-clock figures depend
on the machine; re-run before quoting them.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Literal

import anyio
import pydantic_ai
from pydantic_ai import Agent, RunCancelled
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.run import AgentRun

from subagents_cancel import SubAgentConfig, SubAgentManager, SubAgentPolicy

Mode = Literal['hard', 'soft', 'floor']


class _Fleet:
    """The scripted sub-agents: count the requests in flight, and release them all at once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.in_flight = 0
        self.all_in_flight = anyio.Event()
        self.release = anyio.Event()

    async def model(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1]
        if isinstance(last, ModelRequest) and any(
            isinstance(part, UserPromptPart) and 'CANCEL_REQUEST' in str(part.content) for part in last.parts
        ):
            return ModelResponse(parts=[TextPart('Completed: nothing. Findings: none.')])
        self.in_flight += 1
        if self.in_flight == self.size:
            self.all_in_flight.set()
        await self.release.wait()
        return ModelResponse(parts=[ToolCallPart('checkpoint', {'completed': ['step 1']})])


async def one_trial(size: int, mode: Mode) -> tuple[float, int]:
    if mode == 'floor':
        return await floor_trial(size)
    fleet = _Fleet(size)
    config = SubAgentConfig(name='researcher', description='Researches', model=FunctionModel(fleet.model))
    # Wait for every run to stop, however long it takes: the default bounds (5 s) would report the slowest of
    # 10,000 unwinding runs as unresponsive and stop timing before they are terminal.
    policy = SubAgentPolicy(sync_tool_threads=1, hard_cancel_wait_seconds=600, teardown_seconds=600)
    async with SubAgentManager([config], policy=policy) as manager:
        for index in range(size):
            await manager.start('researcher', f'Topic {index}', region='research')
        await fleet.all_in_flight.wait()
        gc.collect()
        started = time.perf_counter()
        if mode == 'hard':
            await manager.hard_cancel_region('research')
        else:
            await manager.soft_cancel_region('research')
            fleet.release.set()
            await manager.wait(timeout_seconds=600)
        elapsed = time.perf_counter() - started
        still_running = len(manager.active_tasks())
    return elapsed * 1000, still_running


async def floor_trial(size: int) -> tuple[float, int]:
    """The same runs driven by pydantic-ai alone, stopped with `AgentRun.cancel()`."""
    fleet = _Fleet(size)
    agent = Agent(FunctionModel(fleet.model))
    runs: list[AgentRun[None, str]] = []
    ended = 0
    started = 0.0

    async def drive() -> None:
        nonlocal ended
        try:
            async with agent.iter('Research') as run:
                runs.append(run)
                async for _ in run:
                    pass
        except RunCancelled:
            ended += 1

    async with anyio.create_task_group() as group:
        for _ in range(size):
            group.start_soon(drive)
        await fleet.all_in_flight.wait()
        gc.collect()
        started = time.perf_counter()
        for run in runs:
            run.cancel()
    elapsed = time.perf_counter() - started
    return elapsed * 1000, size - ended


def row(size: int, mode: Mode, timings_ms: Sequence[float], running: Sequence[int]) -> str:
    return (
        f'| {size:,} | {mode} | {len(timings_ms)} | {statistics.median(timings_ms):.1f} | {max(timings_ms):.1f} | '
        f'{max(running)} |'
    )


async def main(sizes: Sequence[int], repeat: int, modes: Sequence[Mode]) -> int:
    print(f'Python {sys.version.split()[0]}, pydantic-ai {pydantic_ai.__version__}, {platform.platform()}')
    print('| tasks | mode | trials | median ms | max ms | still running |')
    print('|---|---|---|---|---|---|')
    leaks = 0
    for size in sizes:
        for mode in modes:
            results = [await one_trial(size, mode) for _ in range(repeat)]
            timings, running = [r[0] for r in results], [r[1] for r in results]
            leaks += sum(running)
            print(row(size, mode, timings, running), flush=True)
    return 1 if leaks else 0


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument('--sizes', type=int, nargs='+', default=[1000, 10000])
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--modes', nargs='+', choices=('floor', 'hard', 'soft'), default=['floor', 'hard', 'soft'])
    arguments = parser.parse_args()
    sys.exit(anyio.run(main, arguments.sizes, arguments.repeat, arguments.modes))
