"""Cancel response time, measured on real pydantic-ai runs driven by scripted models.

Run: python benchmarks/cancel_latency.py [--hard-trials 1000] [--soft-trials 40]

* hard: a sub-agent blocked in a slow model request; from `hard_cancel()` being called to it returning,
  which happens only once the sub-agent's task has stopped. Measured with the garbage collector on and off.
* soft: a sub-agent whose model steps take 200 ms; the request lands at a random point of a step.
  request -> acknowledged (the CANCEL_REQUEST went out in a model request) and request -> CANCELLED.

Wall-clock figures depend on the machine; compare rows with each other, and re-run before quoting them.
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import statistics
import sys
import time
from collections.abc import Sequence

import anyio
import pydantic_ai
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from subagents_cancel import SubAgentConfig, SubAgentManager, TaskStatus

STEP_SECONDS = 0.2


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(name: str, values_ms: Sequence[float]) -> str:
    return (
        f'| {name} | {len(values_ms)} | {statistics.median(values_ms):.3f} | {percentile(values_ms, 0.99):.3f} | '
        f'{max(values_ms):.3f} |'
    )


async def hard_cancel_trials(trials: int) -> list[float]:
    blocked = anyio.Event()

    async def slow_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        blocked.set()
        await anyio.sleep_forever()
        raise AssertionError('unreachable')

    config = SubAgentConfig(name='slow', description='Never answers', model=FunctionModel(slow_model))
    latencies: list[float] = []
    async with SubAgentManager([config]) as manager:
        for _ in range(trials + 20):  # the first 20 warm up
            blocked = anyio.Event()
            task = await manager.start('slow', 'wait')
            await blocked.wait()
            started = time.perf_counter()
            info = await manager.hard_cancel(task.task_id)
            latencies.append((time.perf_counter() - started) * 1e3)
            assert info.status is TaskStatus.CANCELLED
        assert not manager.active_tasks()
    return latencies[20:]


def _asked_to_stop(messages: list[ModelMessage]) -> bool:
    last = messages[-1]
    return isinstance(last, ModelRequest) and 'CANCEL_REQUEST' in str(last.parts)


async def stepping_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    await anyio.sleep(STEP_SECONDS)
    if _asked_to_stop(messages):
        return ModelResponse(parts=[TextPart('Completed: some phases')])
    return ModelResponse(parts=[ToolCallPart('checkpoint', {'completed': ['a phase']})])


async def soft_cancel_trials(trials: int) -> tuple[list[float], list[float], list[int]]:
    config = SubAgentConfig(name='stepper', description='Works in 200 ms steps', model=FunctionModel(stepping_model))
    acknowledged: list[float] = []
    terminal: list[float] = []
    requests_after: list[int] = []
    rng = random.Random(7)
    async with SubAgentManager([config]) as manager:
        for _ in range(trials):
            task = await manager.start('stepper', 'work until stopped')
            await anyio.sleep(STEP_SECONDS * (1 + rng.random()))  # land anywhere inside the second step
            info = await manager.soft_cancel(task.task_id)
            requests_before = len(manager.get(task.task_id).checkpoints) + 1
            (info,) = (await manager.wait([task.task_id])).tasks
            assert info.status is TaskStatus.CANCELLED and info.cancel is not None and info.ended_at is not None
            assert info.cancel.acknowledged_at is not None and info.usage is not None
            acknowledged.append((info.cancel.acknowledged_at - info.cancel.requested_at) * 1e3)
            terminal.append((info.ended_at - info.cancel.requested_at) * 1e3)
            requests_after.append(info.usage.requests - requests_before)
    return acknowledged, terminal, requests_after


async def main(hard: int, soft: int) -> None:
    print(f'subagents-cancel cancel latency — {time.strftime("%Y-%m-%d")}')
    print(
        f'python {sys.version.split()[0]}, pydantic-ai {pydantic_ai.__version__}, {platform.machine()}, '
        f'{platform.system()}; wall-clock ms on this machine'
    )
    print()
    print('| measurement | n | p50 ms | p99 ms | max ms |')
    print('|---|---|---|---|---|')
    gc.collect()
    print(summary('hard: hard_cancel() call -> returned, task stopped (GC on)', await hard_cancel_trials(hard)))
    gc.collect()
    gc.disable()
    try:
        print(summary('hard: same, GC off', await hard_cancel_trials(hard)))
    finally:
        gc.enable()
    acknowledged, terminal, requests_after = await soft_cancel_trials(soft)
    print(summary(f'soft: request -> acknowledged ({STEP_SECONDS * 1e3:.0f} ms steps)', acknowledged))
    print(summary(f'soft: request -> CANCELLED ({STEP_SECONDS * 1e3:.0f} ms steps)', terminal))
    print()
    print(
        f'soft: model requests after the request: max {max(requests_after)}, '
        f'mean {statistics.mean(requests_after):.2f} (the step in flight finishes, then one wrap-up request)'
    )


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--hard-trials', type=int, default=1000)
    parser.add_argument('--soft-trials', type=int, default=40)
    arguments = parser.parse_args()
    anyio.run(main, arguments.hard_trials, arguments.soft_trials, backend='asyncio')
