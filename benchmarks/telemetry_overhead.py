"""What telemetry costs: task round trips and hard cancels, before and after logfire is configured.

Run: python benchmarks/telemetry_overhead.py [--trials 300]

* complete: start a task whose scripted model answers at once, and wait for it (one span, one counter).
* hard cancel: a sub-agent blocked in a model request; from `hard_cancel()` being called to it returning
  (span events and the cancel histograms are recorded on the way).
* span: opening and closing one task span with its attributes, alone (what telemetry adds to each task).

First with logfire not configured (spans and metrics go nowhere), then configured in memory
(`send_to_logfire=False`, an in-memory span exporter and metric reader), in the same process.
Wall-clock figures depend on the machine, and the round trips are noisy on a shared one (the in-memory
exporter also keeps every span); the span row isolates the cost of telemetry itself.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Sequence

import anyio
import logfire
import pydantic_ai
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from subagents_cancel import SubAgentConfig, SubAgentManager, TaskStatus, telemetry

WARM_UP = 20


def row(name: str, values_ms: Sequence[float]) -> str:
    ordered = sorted(values_ms)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f'| {name} | {len(ordered)} | {statistics.median(ordered):.3f} | {p99:.3f} |'


async def complete_trials(trials: int) -> list[float]:
    async def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart('done')])

    config = SubAgentConfig(name='quick', description='Answers at once', model=FunctionModel(answer))
    times: list[float] = []
    async with SubAgentManager([config]) as manager:
        for _ in range(trials + WARM_UP):
            began = time.perf_counter()
            task = await manager.start('quick', 'go')
            (info,) = (await manager.wait([task.task_id])).tasks
            times.append((time.perf_counter() - began) * 1000)
            assert info.status is TaskStatus.COMPLETED
    return times[WARM_UP:]


async def hard_cancel_trials(trials: int) -> list[float]:
    blocked = anyio.Event()

    async def slow(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        blocked.set()
        await anyio.sleep_forever()
        raise AssertionError('unreachable')

    config = SubAgentConfig(name='slow', description='Never answers', model=FunctionModel(slow))
    times: list[float] = []
    async with SubAgentManager([config]) as manager:
        for _ in range(trials + WARM_UP):
            blocked = anyio.Event()
            task = await manager.start('slow', 'wait')
            await blocked.wait()
            began = time.perf_counter()
            info = await manager.hard_cancel(task.task_id)
            times.append((time.perf_counter() - began) * 1000)
            assert info.status is TaskStatus.CANCELLED
    return times[WARM_UP:]


def span_trials(trials: int) -> list[float]:
    """One task span with the attributes telemetry sets, through a logfire instance like the library's own."""
    tracer = logfire.with_settings(custom_scope_suffix='subagents_cancel')
    times: list[float] = []
    for _ in range(trials):
        began = time.perf_counter()
        with tracer.span(telemetry.TASK_SPAN, task_id='researcher-3f9a', subagent='researcher') as span:
            span.set_attributes({'status': 'CANCELLED', 'checkpoints': 2, 'tokens': 440, 'requests': 4})
        times.append((time.perf_counter() - began) * 1000)
    return times


async def measure(label: str, trials: int) -> list[str]:
    return [
        row(f'complete, {label}', await complete_trials(trials)),
        row(f'hard cancel, {label}', await hard_cancel_trials(trials)),
        row(f'span, {label}', span_trials(trials * 10)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--trials', type=int, default=300)
    args = parser.parse_args()
    print(f'python {platform.python_version()}, pydantic-ai {pydantic_ai.__version__}, {platform.machine()}')
    print('| case | trials | p50 ms | p99 ms |')
    print('|---|---|---|---|')
    for line in anyio.run(measure, 'logfire not configured', args.trials, backend='asyncio'):
        print(line)
    spans = InMemorySpanExporter()
    logfire.configure(
        send_to_logfire=False,
        console=False,
        additional_span_processors=[SimpleSpanProcessor(spans)],
        metrics=logfire.MetricsOptions(additional_readers=[InMemoryMetricReader()]),
    )
    for line in anyio.run(measure, 'logfire in memory', args.trials, backend='asyncio'):
        print(line)
    print(f'spans exported: {len(spans.get_finished_spans())}', file=sys.stderr)


if __name__ == '__main__':
    main()
