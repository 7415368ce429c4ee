"""Fan-out: N background tasks blocked in model requests, then cancelled all at once; memory per running task.

`param` is N. The parent's model starts the tasks in batches of parallel tool calls and waits until
every sub-agent is blocked in its model request. Then, twice:

* *cancel all*: one region cancel where the library has regions, else one hard-cancel tool call per
  task, all in one model response (as an LLM would do it);
* *owner ends*: the parent run's model gives its final answer with the tasks still running (a library
  may end the run at once, or hold the run open until its tasks are done).

Reported: the time from the cancel (or from the run's final answer) to the last hosting asyncio task
being done, and how many sub-agents were still in their model request when that ended or after
`GIVE_UP_SECONDS`. Tasks left running are then stopped from outside so the next phase starts clean.
The resident set size is read once all N are blocked, against a baseline taken after a warm-up.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic_ai.messages import ToolCallPart

from adapters import Adapter, Options
from benchkit.parent import Conversation, ToolTimer, converse
from benchkit.stats import Size, rss_bytes
from benchkit.subagent import Blocking, build_agent

BATCH = 500
REGION = 'fan'
GIVE_UP_SECONDS = 5.0
WARMUP = 20


def _starts(adapter: Adapter, count: int) -> list[ToolCallPart]:
    region = REGION if adapter.region_cancel(REGION) is not None else None
    return [adapter.start(f'Job {index}.', background=True, region=region) for index in range(count)]


async def _start_all(adapter: Adapter, conversation: Conversation, blocking: Blocking, count: int) -> list[str]:
    blocking.reset(count)
    task_ids: list[str] = []
    for first in range(0, count, BATCH):
        replies = await conversation.call(*_starts(adapter, min(BATCH, count - first)))
        task_ids += [adapter.task_id(reply) for reply in replies]
    await blocking.reached.wait()
    return task_ids


async def _ended(tasks: list[asyncio.Task[Any]], since: float) -> tuple[float | None, int]:
    """Wait for `tasks` (at most `GIVE_UP_SECONDS`); return ms from `since` to the last one done, and how many are not.

    Tasks not done by then are cancelled from outside, so the next measurement starts clean.
    """
    finished: list[float] = []
    for task in tasks:
        task.add_done_callback(lambda _: finished.append(time.perf_counter()))
    _, pending = await asyncio.wait(tasks, timeout=GIVE_UP_SECONDS)
    for task in pending:
        task.cancel()
    await asyncio.wait(tasks)
    return (max(finished) - since) * 1e3 if not pending else None, len(pending)


async def run(adapter: Adapter, size: Size, param: str) -> dict[str, Any]:
    count = int(param) if size == 'full' else min(int(param), 50 if size == 'smoke' else 1000)
    blocking = Blocking()
    timer = ToolTimer()
    conversation = Conversation()
    result: dict[str, Any] = {'tasks': count}
    region_call = adapter.region_cancel(REGION)

    async def cancel_all() -> None:
        await conversation.opened()
        warm = await _start_all(adapter, conversation, blocking, WARMUP)
        await conversation.call(*[adapter.hard_cancel(task_id) for task_id in warm])
        baseline = rss_bytes()
        task_ids = await _start_all(adapter, conversation, blocking, count)
        result['rss_per_task_kb'] = (rss_bytes() - baseline) / count / 1024
        tasks = adapter.hosting_tasks(task_ids)
        cancel_calls = [region_call] if region_call else [adapter.hard_cancel(task_id) for task_id in task_ids]
        sent = time.perf_counter()
        await conversation.call(*cancel_calls)
        replied = time.perf_counter()
        still = blocking.still_running
        ms, pending = await _ended(tasks, sent)
        result['cancel'] = {
            'how': 'one region cancel' if region_call else f'{count} hard-cancel calls in one response',
            'all_done_ms': ms,
            'reply_ms': (replied - sent) * 1e3,
            'running_at_reply': still,
            'not_done': pending,
        }
        conversation.finish()

    launched: list[asyncio.Task[Any]] = []
    all_blocked = asyncio.Event()

    async def owner_ends() -> None:
        await conversation.opened()
        launched.extend(adapter.hosting_tasks(await _start_all(adapter, conversation, blocking, count)))
        conversation.finish()
        all_blocked.set()

    async with adapter.parent(conversation.model, build_agent(blocking.respond), timer, Options()) as parent:
        await converse(parent.run, cancel_all)
        parent_run = asyncio.ensure_future(converse(parent.run, owner_ends))
        await all_blocked.wait()
        ms, pending = await _ended(launched, conversation.finished_at or time.perf_counter())
        result['owner_ends'] = {
            'all_done_ms': ms,
            'not_done': pending,
            'run_ended_first': parent_run.done(),
        }
        await parent_run
    return result
