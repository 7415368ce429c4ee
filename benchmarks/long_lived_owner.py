"""A long-lived owner: memory must stay flat over many tasks (target: an RSS slope of about 0 KB per 1,000).

Run: python benchmarks/long_lived_owner.py [--tasks 50000] [--keep-finished 1000] [--trace-tasks 2000]

One `SubAgentManager` lives for the whole run, like a web server's. Tasks come in requests of 10: each request
starts 5 sub-agents that answer at once and 5 whose model request hangs, then cancels those 5 (two or three
softly, the rest hard) and waits for all 10. Every other request puts its tasks in a region of its own and
cancels the hard ones with one region cancel. The sub-agents are trivial `FunctionModel`s, so what grows is the
library's (and pydantic-ai's) memory, not the work's.

After a warm-up (past `keep_finished`, so the owner keeps as many records as it ever will), the resident set
size is sampled every 1,000 tasks; the slope of a least-squares line through the samples is printed in KB per
1,000 tasks. Then `tracemalloc` follows `--trace-tasks` more tasks and prints the allocation sites that grew the
most between its two snapshots. Figures depend on the machine and the allocator; the slope should be about 0.

The default, 50,000 tasks, takes about 4 minutes of CPU. `--tasks 100000` took 8 minutes of CPU, 17 minutes of
wall time on 2 cores shared with other work (load average 5).
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

import anyio
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart

from benchkit.stats import rss_bytes
from benchkit.subagent import function_model
from subagents_cancel import CancelReason, SubAgentConfig, SubAgentManager, SubAgentPolicy
from subagents_cancel.metrics import RECENT_CANCELLED_RUNS

REQUEST_SIZE = 10
SAMPLE_EVERY = 1_000


class Requests:
    """Plays the requests of a server, one after another, on one owner."""

    def __init__(self, manager: SubAgentManager) -> None:
        self.manager = manager
        self.served = 0
        self._hanging = 0
        self._all_hanging = anyio.Event()

    async def respond(self, messages: list[ModelMessage]) -> ModelResponse:
        prompt = _first_prompt(messages)
        if prompt == 'answer' or _cancel_request_in(messages[-1]):
            return ModelResponse(parts=[TextPart('done')])
        self._hanging += 1
        if self._hanging == REQUEST_SIZE // 2:
            self._all_hanging.set()
        await anyio.sleep_forever()
        raise AssertionError('unreachable')

    async def serve(self) -> None:
        """One request: 10 tasks, 5 of them cancelled, in a region of its own every other time."""
        region = f'request-{self.served}' if self.served % 2 else None
        self._hanging, self._all_hanging = 0, anyio.Event()
        ids = [
            (await self.manager.start('worker', 'answer' if number % 2 else 'hang', region=region)).task_id
            for number in range(REQUEST_SIZE)
        ]
        await self._all_hanging.wait()
        hanging = ids[0::2]
        soft = hanging[: 2 + self.served % 2]
        for task_id in soft:
            await self.manager.soft_cancel(task_id)
        if region is not None:
            await self.manager.hard_cancel_region(region, reason=CancelReason(kind='user'))
        else:
            for task_id in hanging[len(soft) :]:
                await self.manager.hard_cancel(task_id)
        await self.manager.wait(ids)
        self.served += 1

    async def serve_until(self, tasks: int) -> None:
        while self.served * REQUEST_SIZE < tasks:
            await self.serve()


def _first_prompt(messages: list[ModelMessage]) -> str:
    first = messages[0]
    assert isinstance(first, ModelRequest)
    return next(str(part.content) for part in first.parts if isinstance(part, UserPromptPart))


def _cancel_request_in(message: ModelMessage) -> bool:
    if not isinstance(message, ModelRequest):
        return False
    return any(isinstance(part, UserPromptPart) and 'CANCEL_REQUEST' in str(part.content) for part in message.parts)


def slope_kb_per_thousand(samples: list[tuple[int, int]]) -> float:
    """The slope of the least-squares line through (tasks, RSS bytes), in KB per 1,000 tasks."""
    count = len(samples)
    mean_x = sum(x for x, _ in samples) / count
    mean_y = sum(y for _, y in samples) / count
    spread = sum((x - mean_x) ** 2 for x, _ in samples)
    return sum((x - mean_x) * (y - mean_y) for x, y in samples) / spread * 1000 / 1024


async def main(tasks: int, keep_finished: int, trace_tasks: int, top: int) -> None:
    policy = SubAgentPolicy(keep_finished=keep_finished, preempt_on_soft_cancel=True)
    requests: Requests | None = None

    async def respond(messages: list[ModelMessage]) -> ModelResponse:
        assert requests is not None
        return await requests.respond(messages)

    config = SubAgentConfig(name='worker', description='Works', model=function_model(respond))
    async with SubAgentManager([config], policy=policy) as manager:
        requests = Requests(manager)
        warm_up = 2 * max(keep_finished, RECENT_CANCELLED_RUNS) + 2 * SAMPLE_EVERY
        started = time.perf_counter()
        if tasks < warm_up + 2 * SAMPLE_EVERY:
            raise SystemExit(f'--tasks must be at least {warm_up + 2 * SAMPLE_EVERY:,}: {warm_up:,} warm up the owner')
        await requests.serve_until(warm_up)
        samples: list[tuple[int, int]] = []
        while requests.served * REQUEST_SIZE < tasks:
            await requests.serve()
            if requests.served * REQUEST_SIZE % SAMPLE_EVERY == 0:
                samples.append((requests.served * REQUEST_SIZE, rss_bytes()))
        elapsed = time.perf_counter() - started
        (first, first_rss), (last, last_rss) = samples[0], samples[-1]
        figures = manager.metrics().of('worker')
        print(f'{requests.served * REQUEST_SIZE:,} tasks in {elapsed:.0f} s, keep_finished={keep_finished:,}')
        print(f'RSS after warm-up ({first:,} tasks): {first_rss / 2**20:.1f} MB; ', end='')
        print(f'at {last:,}: {last_rss / 2**20:.1f} MB')
        print(f'RSS slope after warm-up: {slope_kb_per_thousand(samples):+.2f} KB per 1,000 tasks (target: about 0)')
        print(f'kept: {len(manager.tasks()):,} task records, {len(manager.regions()):,} regions; ', end='')
        print(f'metrics: {figures.finished:,} ended, {len(figures.cancelled_runs):,} cancelled runs kept')

        # tracemalloc sees only what is allocated once it runs: first let everything the owner keeps be replaced.
        tracemalloc.start()
        await requests.serve_until(requests.served * REQUEST_SIZE + 2 * max(keep_finished, RECENT_CANCELLED_RUNS))
        before = _snapshot()
        await requests.serve_until(requests.served * REQUEST_SIZE + trace_tasks)
        after = _snapshot()
        tracemalloc.stop()
        growers = sorted(after.compare_to(before, 'lineno'), key=lambda stat: stat.size_diff, reverse=True)[:top]
        print(f'\ntracemalloc: the {top} allocation sites that grew most over {trace_tasks:,} more tasks')
        for stat in growers:
            frame = stat.traceback[0]
            print(f'{stat.size_diff / 1024:+9.1f} KB {stat.count_diff:+7,} blocks  {frame.filename}:{frame.lineno}')


def _snapshot() -> tracemalloc.Snapshot:
    gc.collect()
    return tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument('--tasks', type=int, default=50_000, help='tasks to start in all (default 50,000)')
    parser.add_argument('--keep-finished', type=int, default=1_000, help='SubAgentPolicy.keep_finished (default 1,000)')
    parser.add_argument('--trace-tasks', type=int, default=2_000, help='tasks followed by tracemalloc at the end')
    parser.add_argument('--top', type=int, default=12, help='allocation sites to print')
    arguments = parser.parse_args()
    anyio.run(main, arguments.tasks, arguments.keep_finished, arguments.trace_tasks, arguments.top)
