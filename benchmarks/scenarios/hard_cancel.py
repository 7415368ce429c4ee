"""Hard cancel: from the cancel tool starting to the sub-agent's task being done, and whether the reply waits for it.

The sub-agent is blocked in a model request that never returns. The parent's model starts it in the
background, then calls the library's hard-cancel tool. "Done" is the moment the asyncio task that hosts
the sub-agent has finished: nothing of it can run any more. Each parent run makes `PER_RUN` cancels;
the first `WARMUP` are not counted.
"""

from __future__ import annotations

import asyncio
import gc
import time
from functools import partial
from typing import Any

from adapters import Adapter, Options
from benchkit.parent import Conversation, ToolTimer, converse
from benchkit.stats import Size, by_size, summarize
from benchkit.subagent import Blocking, build_agent

PER_RUN = 50
WARMUP = 10


async def _trials(adapter: Adapter, trials: int) -> dict[str, Any]:
    blocking = Blocking()
    timer = ToolTimer()
    conversation = Conversation()
    done_ms: list[float] = []
    reply_ms: list[float] = []
    replied_after_done: list[bool] = []
    cancel_tool = adapter.hard_cancel('x').tool_name

    async def one_cancel() -> None:
        blocking.reset()
        (reply,) = await conversation.call(adapter.start('Work through the job.', background=True))
        await blocking.reached.wait()
        (task,) = adapter.hosting_tasks([adapter.task_id(reply)])
        finished: list[float] = []
        task.add_done_callback(lambda _: finished.append(time.perf_counter()))
        timer.probe = task.done
        await conversation.call(adapter.hard_cancel(adapter.task_id(reply)))
        await asyncio.wait([task])  # a library that replied early is still given the time to finish
        timing = timer.last(cancel_tool)
        done_at = min(finished[0], timing.replied) if timing.probe else finished[0]
        done_ms.append((done_at - timing.started) * 1e3)
        reply_ms.append((timing.replied - timing.started) * 1e3)
        replied_after_done.append(bool(timing.probe))
        assert blocking.still_running == 0

    async def script(count: int) -> None:
        await conversation.opened()
        for _ in range(count):
            await one_cancel()
        conversation.finish()

    async with adapter.parent(conversation.model, build_agent(blocking.respond), timer, Options()) as parent:
        remaining = trials + WARMUP
        while remaining:
            count = min(PER_RUN, remaining)
            await converse(parent.run, partial(script, count))
            remaining -= count
    return {
        'done_ms': summarize(done_ms[WARMUP:]),
        'reply_ms': summarize(reply_ms[WARMUP:]),
        'replied_after_done': sum(replied_after_done[WARMUP:]),
        'trials': trials,
    }


async def run(adapter: Adapter, size: Size, param: str) -> dict[str, Any]:
    """`param` `gc-off` measures with the garbage collector disabled (after a full collection)."""
    trials = by_size(size, 5, 100, 1000)
    gc.collect()
    if param != 'gc-off':
        return await _trials(adapter, trials)
    gc.disable()
    try:
        return await _trials(adapter, trials)
    finally:
        gc.enable()
