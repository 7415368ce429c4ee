"""Memory per running task: pydantic-ai alone against the same runs as sub-agent tasks of this library.

Run: python benchmarks/memory_per_task.py [--sizes 1000 10000]

Each measurement runs in a fresh process. It warms up with 20 runs (started, blocked in their model request,
stopped), reads the resident set size, starts N runs that block in their model request, collects garbage and
reads it again: the growth divided by N. *pydantic-ai alone* drives `Agent.run` in a task group; *as tasks*
starts the same agent with `SubAgentManager.start`. The difference is what this library adds to each task
(its runner, record, capabilities, tools and telemetry span). Figures depend on the machine and allocator.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from typing import Literal

import anyio
from pydantic_ai import Agent

from benchkit.stats import rss_bytes
from benchkit.subagent import Blocking, function_model
from subagents_cancel import SubAgentConfig, SubAgentManager

Way = Literal['alone', 'tasks']
WARMUP = 20


async def measure(way: Way, size: int) -> float:
    """KB of resident memory per run blocked in its model request, after a warm-up."""
    blocking = Blocking()
    agent = Agent(function_model(blocking.respond))
    config = SubAgentConfig(name='worker', description='Works', agent=agent)
    async with SubAgentManager([config]) as manager:

        async def blocked_runs(count: int, region: str) -> int:
            """Start `count` runs, wait until all are blocked, read the RSS, stop them; the RSS read."""
            blocking.reset(count)
            if way == 'tasks':
                for _ in range(count):
                    await manager.start('worker', 'Do the job.', region=region)
                await blocking.reached.wait()
                resident = rss_bytes()
                await manager.hard_cancel_region(region)
                return resident
            resident = 0
            async with anyio.create_task_group() as group:
                for _ in range(count):
                    group.start_soon(agent.run, 'Do the job.')
                await blocking.reached.wait()
                resident = rss_bytes()
                group.cancel_scope.cancel()
            return resident

        await blocked_runs(WARMUP, 'warm-up')
        before = rss_bytes()
        return (await blocked_runs(size, 'measured') - before) / size / 1024


def main(sizes: Sequence[int]) -> None:
    print('| running tasks | pydantic-ai alone (KB per run) | as tasks of this library (KB per task) | added |')
    print('|---|---|---|---|')
    for size in sizes:
        alone, tasks = (float(_in_fresh_process(way, size)) for way in ('alone', 'tasks'))
        print(f'| {size:,} | {alone:.1f} | {tasks:.1f} | {tasks - alone:+.1f} |', flush=True)


def _in_fresh_process(way: Way, size: int) -> str:
    command = [sys.executable, __file__, '--one', way, str(size)]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument('--sizes', type=int, nargs='+', default=[1000, 10000])
    parser.add_argument('--one', nargs=2, metavar=('WAY', 'SIZE'), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.one:
        way, size = arguments.one
        print(anyio.run(measure, way, int(size)))
    else:
        main(arguments.sizes)
