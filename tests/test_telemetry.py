"""Telemetry: one span per task under the parent's tool call, cancel events on it, and the seed metrics.

Spans and metrics are read back with logfire's `capfire` fixture (in memory, nothing is sent); the same
figures come from `SubAgentManager.metrics()`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, cast

import anyio
import pytest
from inline_snapshot import Is, snapshot
from logfire.testing import CaptureLogfire
from pydantic_ai import Agent, Tool
from pydantic_ai.capabilities import Instrumentation
from pydantic_ai.messages import ModelResponse, ToolCallPart
from pydantic_ai.usage import RequestUsage

from subagents_cancel import CancelTimeout, SubAgentCapability, SubAgentConfig, SubAgentManager, TaskInfo, TaskStatus
from subagents_cancel.messages import TaskId, ThreadsFinished
from subagents_cancel.metrics import CancelledRun
from subagents_cancel.testing import ManualClock
from subagents_cancel.wire import WireMessage

from .helpers import Gate, LingersAfterTheEnd, Script, call, new_transport, text
from .temporal_support import durable

pytestmark = pytest.mark.anyio

STEP_USAGE = RequestUsage(input_tokens=100, output_tokens=10)
"""Every scripted response costs 110 tokens, so the token figures are exact."""


def checkpoint(step: int) -> ModelResponse:
    done = [f'step {n}' for n in range(1, step + 1)]
    return ModelResponse(
        parts=[
            ToolCallPart(
                'checkpoint',
                {'completed': done, 'in_progress': [], 'not_started': [], 'findings': [f'finding {step}']},
            )
        ]
    )


async def fetch(url: str) -> str:
    """Fetch a page."""
    return f'contents of {url}'


def five_step_worker(gate: Gate) -> Agent[None, str]:
    """A sub-agent planned for five steps; the third request is held by `gate`, and then it fetches.

    It can run on a Temporal worker too (in process, its `TemporalDurability` changes nothing).
    """
    script = Script(
        [checkpoint(1), checkpoint(2), gate.hold(call('fetch', url='https://example.com/3')), checkpoint(3)],
        on_cancel=text('Completed: step 1, step 2'),
        usage=STEP_USAGE,
    )
    return durable(script.model, 'worker', tools=[Tool(fetch)])


async def cancel_after_two_steps(manager: SubAgentManager, gate: Gate, clock: ManualClock) -> TaskInfo:
    """Start the five-step task and soft-cancel it while its third request is in flight; return it once it ended."""
    task = await manager.start('worker', 'Do the five steps')
    await gate.reached.wait()  # steps 1 and 2 are checkpointed; the third request is in flight
    clock.advance(2.0)
    await manager.soft_cancel(task.task_id)
    clock.advance(0.5)
    gate.release.set()  # the response in flight arrives after the request; the next request reads it
    (info,) = (await manager.wait([task.task_id])).tasks
    return info


def two_of_five_cancelled(task_id: str) -> CancelledRun:
    """The figures of the task `cancel_after_two_steps` cancels: it read the request after 0.5 s, and stopped."""
    return CancelledRun(
        task_id=TaskId(task_id),
        subagent='worker',
        mode='soft',
        escalated=False,
        reason='user',
        checkpoints=2,
        acknowledged_after_seconds=0.5,
        stopped_after_seconds=0.5,
        tokens=4 * 110,
        requests=4,
        tokens_after_request=2 * 110,
        requests_after_request=2,
        tokens_saved=None,
    )


def spans(capfire: CaptureLogfire, name: str) -> list[dict[str, Any]]:
    return [span for span in capfire.exporter.exported_spans_as_dict() if span['name'] == name]


def points(metrics: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """The data points of one metric, each with its attributes."""
    for found in metrics:
        if found['name'] == metric:
            return cast(list[dict[str, Any]], found['data']['data_points'])
    raise AssertionError(f'no metric {metric!r}')


def sums(metrics: list[dict[str, Any]], metric: str, *keys: str) -> dict[tuple[object, ...], float]:
    return {
        tuple(point['attributes'][key] for key in keys): point['sum'] if 'sum' in point else point['value']
        for point in points(metrics, metric)
    }


def events(span: dict[str, Any]) -> list[tuple[str, dict[str, object]]]:
    return [(event['name'], event.get('attributes', {})) for event in cast(Sequence[dict[str, Any]], span['events'])]


async def test_soft_cancel_after_two_of_five_steps(capfire: CaptureLogfire, clock: ManualClock) -> None:
    """Two checkpoints, the acknowledgement time and the tokens after the request reach the span, metrics and summary."""
    gate = Gate()
    config = SubAgentConfig(name='worker', description='Works in five steps', agent=five_step_worker(gate))
    async with SubAgentManager([config], clock=clock) as manager:
        task = await cancel_after_two_steps(manager, gate, clock)
        summary = manager.metrics()

    assert task.status is TaskStatus.CANCELLED
    (run,) = summary.cancelled_runs
    assert run == two_of_five_cancelled(task.task_id)
    worker = summary.of('worker')
    assert (worker.finished, worker.cancelled, worker.cancel_rate) == (1, 1, 1.0)

    (span,) = spans(capfire, 'subagent task {task_id}')
    assert span['attributes'] | {'logfire.json_schema': '…'} == snapshot(
        {
            'code.filepath': Is(span['attributes']['code.filepath']),
            'code.function': Is(span['attributes']['code.function']),
            'code.lineno': Is(span['attributes']['code.lineno']),
            'logfire.msg_template': 'subagent task {task_id}',
            'logfire.msg': Is(f'subagent task {task.task_id}'),
            'logfire.json_schema': '…',
            'task_id': Is(task.task_id),
            'subagent': 'worker',
            'logfire.span_type': 'span',
            'status': 'CANCELLED',
            'checkpoints': 2,
            'tokens': 440,
            'requests': 4,
            'cancel_mode': 'soft',
            'cancel_reason': 'user',
            'escalated': False,
        }
    )
    assert events(span) == snapshot(
        [
            ('cancel requested', {'mode': 'soft', 'reason': 'user', 'grace_seconds': 30.0}),
            ('cancel acknowledged', {'after_seconds': 0.5}),
            ('task terminated', {'after_seconds': 0.5}),
        ]
    )
    metrics = capfire.get_collected_metrics()  # read once: histograms and counters report deltas
    by_mode = {'subagent': 'worker', 'mode': 'soft', 'escalated': False}
    assert [(p['attributes'], p['sum'], p['count']) for p in points(metrics, 'subagents.cancel.acknowledge_time')] == [
        (by_mode, 0.5, 1)
    ]
    assert sums(metrics, 'subagents.cancelled.tokens_after_request', 'mode') == {('soft',): 220}
    assert sums(metrics, 'subagents.cancelled.requests_after_request', 'mode') == {('soft',): 2}
    assert sums(metrics, 'subagents.tasks.finished', 'subagent', 'status') == {('worker', 'CANCELLED'): 1}


async def test_status_counts_cancel_rate_and_tokens_saved(capfire: CaptureLogfire, clock: ManualClock) -> None:
    """A completed run sets the sub-agent's typical cost; a hard cancel after one step saved the rest (an estimate)."""
    held = Gate()
    script = Script(
        [checkpoint(1), checkpoint(2), text('all done'), checkpoint(1), held.block_forever()], usage=STEP_USAGE
    )
    config = SubAgentConfig(name='worker', description='Works', model=script.model)
    async with SubAgentManager([config], clock=clock) as manager:
        done = await manager.run('worker', 'Work')
        task = await manager.start('worker', 'Work again')
        await held.reached.wait()
        clock.advance(1.0)
        await manager.hard_cancel(task.task_id)
        summary = manager.metrics()

    assert done.status is TaskStatus.COMPLETED
    worker = summary.of('worker')
    assert (worker.completed, worker.cancelled, worker.cancel_rate, worker.typical_tokens) == (1, 1, 0.5, 330.0)
    (run,) = worker.cancelled_runs
    assert (run.mode, run.checkpoints, run.acknowledged_after_seconds, run.stopped_after_seconds) == (
        'hard',
        1,
        None,
        0.0,
    )
    assert (run.tokens, run.tokens_after_request, run.requests_after_request, run.tokens_saved) == (110, 0, 0, 220)
    assert worker.tokens_saved == 220
    metrics = capfire.get_collected_metrics()
    assert sums(metrics, 'subagents.tasks.finished', 'subagent', 'status') == {
        ('worker', 'COMPLETED'): 1,
        ('worker', 'CANCELLED'): 1,
    }
    assert sums(metrics, 'subagents.cancel.stop_time', 'mode') == {('hard',): 0.0}
    assert sums(metrics, 'subagents.cancelled.tokens_saved', 'mode') == {('hard',): 220}
    cancelled = [
        span for span in spans(capfire, 'subagent task {task_id}') if span['attributes']['status'] == 'CANCELLED'
    ]
    assert [name for name, _ in events(cancelled[0])] == ['cancel requested', 'task terminated']


@pytest.mark.parametrize('mode', ['soft', 'hard'])
async def test_a_cancel_that_lost_is_not_counted_as_a_cancel(
    capfire: CaptureLogfire, clock: ManualClock, mode: str
) -> None:
    """A cancel that lands after the run accepted its answer: COMPLETED in the metrics, marked lost on the span."""
    lingers = LingersAfterTheEnd()
    config = SubAgentConfig(
        name='worker', description='Works', agent=Agent(Script([text('all done')]).model, capabilities=[lingers])
    )
    async with SubAgentManager([config], clock=clock) as manager:
        task = await manager.start('worker', 'Work')
        await lingers.reached.wait()
        if mode == 'soft':
            await manager.soft_cancel(task.task_id)  # the runner reports at once that it lost
            lingers.release.set()
            await manager.wait([task.task_id])
        else:
            await manager.hard_cancel(task.task_id)
        worker = manager.metrics().of('worker')

    assert (worker.completed, worker.cancelled, worker.cancel_rate, worker.cancelled_runs) == (1, 0, 0.0, ())
    assert sums(capfire.get_collected_metrics(), 'subagents.tasks.finished', 'subagent', 'status') == {
        ('worker', 'COMPLETED'): 1
    }
    (span,) = spans(capfire, 'subagent task {task_id}')
    attributes = span['attributes']
    assert (attributes['status'], attributes['cancel_mode'], attributes['cancel_lost']) == ('COMPLETED', mode, True)
    assert [name for name, _ in events(span)] == ['cancel requested']


async def test_the_task_span_nests_under_the_parent_tool_call(capfire: CaptureLogfire) -> None:
    """An instrumented parent's `task` tool call is the parent of the task's span; a region is an attribute."""
    sub = Script([text('found it')])
    parent = Agent(
        Script([call('task', description='Research X', subagent_type='researcher', mode='sync'), text('ok')]).model,
        capabilities=[
            SubAgentCapability(
                subagents=[SubAgentConfig(name='researcher', description='Researches', model=sub.model)]
            ),
            Instrumentation(),
        ],
    )
    assert (await parent.run('go')).output == 'ok'

    exported = capfire.exporter.exported_spans_as_dict()
    (task_span,) = [span for span in exported if span['name'] == 'subagent task {task_id}']
    (tool_span,) = [span for span in exported if span['context']['span_id'] == task_span['parent']['span_id']]
    assert tool_span['attributes']['gen_ai.tool.name'] == 'task'
    assert task_span['attributes']['status'] == 'COMPLETED'


async def test_an_unresponsive_task_is_counted_as_an_orphan_until_it_stops(
    capfire: CaptureLogfire, clock: ManualClock
) -> None:
    """The orphan gauge goes up when a hard cancel gives up on a task and down when the task finally stops."""
    entered, swallowed, let_go = anyio.Event(), anyio.Event(), anyio.Event()

    async def stubborn_tool() -> str:
        """Ignores the first cancellation, then stops once it is let go."""
        entered.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            swallowed.set()
            with anyio.CancelScope(shield=True):
                await let_go.wait()
            raise
        return 'unreachable'

    agent = Agent(Script([call('stubborn_tool'), text('done')]).model, tools=[Tool(stubborn_tool)])
    async with SubAgentManager(
        [SubAgentConfig(name='stubborn', description='Stuck', agent=agent)], clock=clock
    ) as manager:
        task = await manager.start('stubborn', 'Get stuck')
        await entered.wait()

        async def advance_once_swallowed() -> None:
            await swallowed.wait()
            clock.advance(5.0)

        async with anyio.create_task_group() as group:
            group.start_soon(advance_once_swallowed)
            with pytest.raises(CancelTimeout):
                await manager.hard_cancel(task.task_id)
        during = manager.metrics().unresponsive
        gauge_during = sums(capfire.get_collected_metrics(), 'subagents.tasks.unresponsive', 'subagent')
        let_go.set()
        await manager.wait([task.task_id])
        after = manager.metrics().unresponsive

    assert (during, after) == (1, 0)
    assert gauge_during == {('stubborn',): 1}
    assert sums(capfire.get_collected_metrics(), 'subagents.tasks.unresponsive', 'subagent') == {('stubborn',): 0}


async def test_an_escalated_region_cancel(capfire: CaptureLogfire, clock: ManualClock) -> None:
    """A stuck task in a cancelled region: the region is on the span, and the escalation is an event and an attribute."""
    stuck = Gate()
    config = SubAgentConfig(
        name='crawler', description='Crawls', model=Script([stuck.block_forever()]).model, grace_seconds=10
    )
    async with SubAgentManager([config], clock=clock) as manager:
        task = await manager.start('crawler', 'Crawl the site', region='crawl')
        await stuck.reached.wait()
        await manager.soft_cancel_region('crawl')
        clock.advance(10.0)  # the grace window runs out; the run is stopped
        (info,) = (await manager.wait([task.task_id])).tasks
        (run,) = manager.metrics().cancelled_runs

    assert info.status is TaskStatus.CANCELLED
    assert (run.mode, run.escalated, run.reason, run.acknowledged_after_seconds, run.stopped_after_seconds) == (
        'soft',
        True,
        'region',
        None,
        10.0,
    )
    (span,) = spans(capfire, 'subagent task {task_id}')
    attributes = span['attributes']
    assert (attributes['region'], attributes['cancel_mode'], attributes['cancel_reason'], attributes['escalated']) == (
        'crawl',
        'soft',
        'region',
        True,
    )
    assert events(span) == [
        ('cancel requested', {'mode': 'soft', 'reason': 'region', 'grace_seconds': 10.0}),
        ('cancel escalated', {'after_seconds': 10.0}),
        ('task terminated', {'after_seconds': 10.0}),
    ]
    metrics = capfire.get_collected_metrics()
    assert [(p['attributes'], p['sum']) for p in points(metrics, 'subagents.cancel.stop_time')] == [
        ({'subagent': 'crawler', 'mode': 'soft', 'escalated': True}, 10.0)
    ]


async def test_a_nested_task_span_names_its_parent_task(capfire: CaptureLogfire, clock: ManualClock) -> None:
    """A task started by a sub-agent's own sub-agent has `parent_task_id` and nests under the outer task's span."""
    searcher = SubAgentConfig(name='searcher', description='Searches', model=Script([text('found')]).model)
    lead_script = Script([call('task', description='Search X', subagent_type='searcher', mode='sync'), text('done')])
    lead = Agent(lead_script.model, capabilities=[SubAgentCapability(subagents=[searcher], clock=clock)])
    config = SubAgentConfig(name='lead', description='Leads', agent=lead)
    async with SubAgentManager([config], clock=clock) as manager:
        outer = await manager.run('lead', 'Lead the search')

    assert outer.status is TaskStatus.COMPLETED
    by_subagent = {span['attributes']['subagent']: span for span in spans(capfire, 'subagent task {task_id}')}
    inner_span, outer_span = by_subagent['searcher'], by_subagent['lead']
    assert inner_span['attributes']['parent_task_id'] == outer.task_id
    assert 'parent_task_id' not in outer_span['attributes']
    ancestors = {span['context']['span_id']: span['parent'] for span in capfire.exporter.exported_spans_as_dict()}
    parent, chain = inner_span['parent'], list[str]()
    while parent is not None:
        chain.append(parent['span_id'])
        parent = ancestors.get(parent['span_id'])
    assert outer_span['context']['span_id'] in chain


async def test_a_lingering_sync_tool_thread_counts_as_an_orphan_until_it_returns(
    capfire: CaptureLogfire, clock: ManualClock
) -> None:
    """A hard cancel stops the run at once, but a sync tool's thread cannot be stopped: it is an orphan until it returns."""
    entered, let_go = threading.Event(), threading.Event()

    def crunch() -> str:
        """Crunches numbers in a worker thread."""
        entered.set()
        let_go.wait()
        return 'crunched'

    threads_done = anyio.Event()

    def watch(address: str, message: WireMessage) -> None:
        if isinstance(message, ThreadsFinished):
            threads_done.set()

    bus = new_transport()
    bus.subscribe(watch)
    agent = Agent(Script([call('crunch'), text('done')]).model, tools=[Tool(crunch)])
    config = SubAgentConfig(name='cruncher', description='Crunches', agent=agent)
    async with bus, SubAgentManager([config], clock=clock, transport=bus) as manager:
        task = await manager.start('cruncher', 'Crunch')
        await anyio.to_thread.run_sync(entered.wait)
        stopped = await manager.hard_cancel(task.task_id)
        during = manager.metrics().unresponsive
        gauge_during = sums(capfire.get_collected_metrics(), 'subagents.tasks.unresponsive', 'subagent')
        let_go.set()
        await threads_done.wait()
        await anyio.wait_all_tasks_blocked()  # and the owner has read it
        after = manager.metrics().unresponsive

    assert (stopped.status, stopped.lingering_threads) == (TaskStatus.CANCELLED, 1)
    assert (during, after) == (1, 0)
    assert gauge_during == {('cruncher',): 1}
    assert sums(capfire.get_collected_metrics(), 'subagents.tasks.unresponsive', 'subagent') == {('cruncher',): 0}
    (span,) = spans(capfire, 'subagent task {task_id}')
    assert [name for name, _ in events(span)] == ['cancel requested', 'task unresponsive', 'task terminated']
