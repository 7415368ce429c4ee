"""Overhead: a trivial foreground delegation against running the same sub-agent directly with `agent.run()`.

The sub-agent answers at once (one model request, no tools). The parent's model makes one foreground
(`sync`) delegation per response; each is timed from the library's tool starting to its reply, so the
parent's own model round trips are not counted. The direct runs are timed one by one, before and after
the delegations (half each), in the same process. Reported: medians and totals, and their ratio.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from adapters import Adapter, Options
from benchkit.parent import Conversation, ToolTimer, converse
from benchkit.stats import Size, by_size, summarize
from benchkit.subagent import answer_at_once, build_agent

WARMUP = 20


async def _direct(count: int) -> list[float]:
    agent = build_agent(answer_at_once)
    times: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        await agent.run('Do the job.')
        times.append((time.perf_counter() - started) * 1e3)
    return times


async def run(adapter: Adapter, size: Size, param: str) -> dict[str, Any]:
    count = by_size(size, 10, 200, 1000)
    timer = ToolTimer()
    conversation = Conversation()
    call = adapter.start('Do the job.', background=False)

    async def script() -> None:
        await conversation.opened()
        for _ in range(WARMUP + count):
            (reply,) = await conversation.call(call)
            assert 'done' in reply, reply
        conversation.finish()

    await _direct(WARMUP)
    direct = await _direct(count // 2)
    async with adapter.parent(conversation.model, build_agent(answer_at_once), timer, Options()) as parent:
        await converse(parent.run, script)
    direct += await _direct(count - count // 2)
    delegated = [(timing.replied - timing.started) * 1e3 for timing in timer.timings[WARMUP:]]
    return {
        'count': count,
        'direct_ms': summarize(direct),
        'delegated_ms': summarize(delegated),
        'ratio_p50': statistics.median(delegated) / statistics.median(direct),
        'ratio_total': sum(delegated) / sum(direct),
    }
