"""Soft cancel: is the sub-agent told, how soon does it stop, and does its partial result reach the parent?

`steps`: the sub-agent's model steps take 200 ms; the request lands at a random point of a step.
`long`: the request lands 0.5 s into a 3 s model request or a 3 s tool call, with each grace setting.

Measured from the soft-cancel tool starting: *acknowledged* (the sub-agent's model received a request
that tells it about the cancellation), *terminal* (the asyncio task hosting the sub-agent is done), the
model requests made from then on, and whether the parent got the sub-agent's partial result back
(the wrap-up answer, in any tool reply or message the parent's model received afterwards).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import anyio

from adapters import Adapter, Options
from benchkit.parent import Conversation, ToolTimer, converse
from benchkit.stats import Size, by_size, summarize
from benchkit.subagent import PARTIAL_MARKER, Stepping, build_agent

STEP_SECONDS = 0.2
LONG_SECONDS = 3.0
LONG_CANCEL_AT = 0.5
GIVE_UP_SECONDS = 10.0
"""A task not done this long after the request is recorded as not stopped, then stopped from outside."""


async def _one(adapter: Adapter, stepping: Stepping, options: Options, cancel_after: float) -> dict[str, Any]:
    """Start one task, soft-cancel it `cancel_after` seconds into its step, and follow it to the end."""
    timer = ToolTimer()
    conversation = Conversation()
    texts: list[str] = []

    async def script() -> dict[str, Any]:
        await conversation.opened()
        (reply,) = await conversation.call(adapter.start('Work through the job.', background=True))
        task_id = adapter.task_id(reply)
        (task,) = adapter.hosting_tasks([task_id])
        finished: list[float] = []
        task.add_done_callback(lambda _: finished.append(time.perf_counter()))
        await stepping.working.wait()
        await anyio.sleep(cancel_after)
        texts.extend(await conversation.call(adapter.soft_cancel(task_id)))
        requested = timer.last(adapter.soft_cancel(task_id).tool_name).started
        done, _ = await asyncio.wait([task], timeout=GIVE_UP_SECONDS)
        if not done:
            task.cancel()
            await asyncio.wait([task])
        texts.extend(await conversation.call(adapter.status(task_id)))
        conversation.finish()
        return {
            'acknowledged_ms': None if stepping.notice_read_at is None else (stepping.notice_read_at - requested) * 1e3,
            'terminal_ms': (finished[0] - requested) * 1e3 if done else None,
            'requests_after': stepping.requests_after(requested),
            'partial': any(PARTIAL_MARKER in text for text in texts),
        }

    subagent = build_agent(stepping.respond, stepping.work_step)
    async with adapter.parent(conversation.model, subagent, timer, options) as parent:
        return await converse(parent.run, script)


def _summary(trials: list[dict[str, Any]]) -> dict[str, Any]:
    acknowledged = [trial['acknowledged_ms'] for trial in trials if trial['acknowledged_ms'] is not None]
    terminal = [trial['terminal_ms'] for trial in trials if trial['terminal_ms'] is not None]
    return {
        'trials': len(trials),
        'acknowledged': len(acknowledged),
        'acknowledged_ms': summarize(acknowledged) if acknowledged else None,
        'terminal': len(terminal),
        'terminal_ms': summarize(terminal) if terminal else None,
        'requests_after_max': max(trial['requests_after'] for trial in trials),
        'partial': sum(trial['partial'] for trial in trials),
    }


async def _steps(adapter: Adapter, size: Size) -> dict[str, Any]:
    rng = random.Random(5)
    trials: list[dict[str, Any]] = []
    for _ in range(by_size(size, 2, 10, 30)):
        stepping = Stepping(step_seconds=STEP_SECONDS, wrapup_seconds=STEP_SECONDS)
        trials.append(await _one(adapter, stepping, Options(), rng.uniform(0, STEP_SECONDS)))
    return _summary(trials)


LONG_SETTINGS: dict[str, Options] = {
    'default': Options(),
    'grace 1 s': Options(grace_seconds=1.0),
    'preempt': Options(preempt=True),
}


async def _long(adapter: Adapter, size: Size) -> dict[str, Any]:
    cells: dict[str, Any] = {}
    for step in ('request', 'tool'):
        for setting, options in LONG_SETTINGS.items():
            key = f'{step} / {setting}'
            if (gap := adapter.soft_cancel_gap(options)) is not None:
                cells[key] = {'not_supported': gap}
                continue
            trials: list[dict[str, Any]] = []
            for _ in range(by_size(size, 1, 1, 2)):
                stepping = Stepping(
                    step_seconds=STEP_SECONDS, wrapup_seconds=STEP_SECONDS, long_step=step, long_seconds=LONG_SECONDS
                )
                trials.append(await _one(adapter, stepping, options, LONG_CANCEL_AT))
            cells[key] = _summary(trials)
    return cells


async def run(adapter: Adapter, size: Size, param: str) -> dict[str, Any]:
    """`param` is `steps` or `long`."""
    if param == 'steps':
        return await _steps(adapter, size)
    assert param == 'long', f'unknown soft_cancel variant {param!r}'
    return await _long(adapter, size)
