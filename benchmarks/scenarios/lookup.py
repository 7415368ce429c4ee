"""Lookups with many finished tasks known, and memory after many finished tasks.

One long-lived owner (the library's way for an application to keep tasks across parent runs) runs
trivial background tasks to completion, one parent run per batch of parallel tool calls (so the
parent's own history stays short). At each checkpoint (the
number of finished tasks so far) the parent's model calls the status tool on the first task and the
list-active tool `PROBES` times each, timed from the library's tool starting to its reply, and the
resident set size is read. A lookup whose time grows with the finished count is linear in it; an RSS
that keeps growing means finished tasks are kept forever.
"""

from __future__ import annotations

import asyncio
import statistics
from functools import partial
from typing import Any

from adapters import Adapter
from benchkit.parent import Conversation, ToolTimer, converse
from benchkit.stats import Size, rss_bytes
from benchkit.subagent import answer_at_once, build_agent

BATCH = 500
PROBES = 30
CHECKPOINTS = (0, 500, 1_000, 3_000, 10_000, 20_000, 30_000)
"""Finished-task counts probed, up to the run's limit."""
FULL_LIMIT = 3_000
"""The full run stops at 3,000 to stay within its time budget; `lookup:30000` (with `--large`) goes on."""


def _median_us(timer: ToolTimer, tool_name: str) -> float:
    times = [(timing.replied - timing.started) * 1e6 for timing in timer.timings if timing.tool_name == tool_name]
    return statistics.median(times[-PROBES:])


async def run(adapter: Adapter, size: Size, param: str) -> dict[str, Any]:
    limit = {'smoke': 500, 'quick': 1_000, 'full': int(param or FULL_LIMIT)}[size]
    timer = ToolTimer()
    conversation = Conversation()
    points: list[dict[str, Any]] = []
    first: list[str] = []

    async def batch(count: int) -> None:
        await conversation.opened()
        replies = await conversation.call(*[adapter.start('Do the job.', background=True) for _ in range(count)])
        task_ids = [adapter.task_id(reply) for reply in replies]
        if running := adapter.hosting_tasks(task_ids, strict=False):
            await asyncio.wait(running)
        first[:] = first or task_ids[:1]
        conversation.finish()

    async def probe() -> None:
        await conversation.opened()
        for _ in range(PROBES):
            await conversation.call(adapter.status(first[0] if first else 'none-0000'))
            await conversation.call(adapter.list_active())
        conversation.finish()

    async with adapter.session(conversation.model, build_agent(answer_at_once), timer) as parent:
        finished = 0
        for checkpoint in [point for point in CHECKPOINTS if point <= limit]:
            while finished < checkpoint:
                count = min(BATCH, checkpoint - finished)
                await converse(parent.run, partial(batch, count))
                finished += count
            await converse(parent.run, probe)
            points.append(
                {
                    'finished': finished,
                    'status_us': _median_us(timer, adapter.status('x').tool_name),
                    'list_active_us': _median_us(timer, adapter.list_active().tool_name),
                    'rss_mb': rss_bytes() / 2**20,
                }
            )
    return {'points': points}
