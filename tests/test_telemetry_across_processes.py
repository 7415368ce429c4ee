"""Telemetry wherever a task runs: one trace, and the owner's metrics, the same in process and on a Temporal worker.

One trace goes from the parent's tool call to what the sub-agent's model request traces; a Temporal worker's
workflows are replayed at the end of each test, and must not emit their spans again.

Spans and metrics are read back with logfire's `capfire` fixture; on Temporal, the worker runs in the test's process,
so its spans reach the same exporter.
"""

from __future__ import annotations

from typing import Any

import logfire
import pytest
from inline_snapshot import snapshot
from logfire.testing import CaptureLogfire
from pydantic_ai import Agent
from pydantic_ai.capabilities import Instrumentation
from pydantic_ai.durable_exec.temporal import TemporalDurability
from pydantic_ai.messages import ModelMessage, ModelResponse

from subagents_cancel import SubAgentCapability, SubAgentConfig, TaskStatus
from subagents_cancel.temporal import activity_config
from subagents_cancel.testing import ManualClock

from .helpers import Gate, Script, call, text
from .temporal_support import Backend
from .test_telemetry import cancel_after_two_steps, events, five_step_worker, points, sums, two_of_five_cancelled

pytestmark = pytest.mark.anyio

TASK_SPAN = 'subagent task {task_id}'
TEMPORAL_SPANS = ('StartActivity:', 'RunActivity:')
"""The spans Temporal's tracing interceptor adds around an activity, on a worker only."""


def answering_in_a_span(messages: list[ModelMessage]) -> ModelResponse:
    """The model's answer, given inside a span of its own: where the request runs (an activity on Temporal)."""
    with logfire.span('the model answers'):
        return text('found it')


def opened(capfire: CaptureLogfire, name: str) -> list[int]:
    """The ids of the spans called `name` as each was opened, in order.

    logfire sends a marker (a pending span, whose parent is the span) as a span opens, so that a live view shows it:
    a replay that opens a span again sends one again.
    """
    return [
        span.parent.span_id
        for span in capfire.exporter.exported_spans
        if span.name == name
        and span.parent is not None
        and span.attributes
        and span.attributes.get('logfire.span_type') == 'pending_span'
    ]


def ancestors(span: dict[str, Any], by_id: dict[int, dict[str, Any]]) -> list[str]:
    """The names of the spans above `span`, nearest first."""
    names: list[str] = []
    parent = span['parent']
    while parent is not None and parent['span_id'] in by_id:
        above = by_id[parent['span_id']]
        names.append(above['name'])
        parent = above['parent']
    return names


async def test_one_trace_from_the_tool_call_to_the_model_request(backend: Backend, capfire: CaptureLogfire) -> None:
    """The task's span, the sub-agent's run and what its model request traces are in the tool call's trace, once."""
    sub = Agent(
        Script([answering_in_a_span]).model,
        name='researcher',
        capabilities=[TemporalDurability(activity_config=activity_config()), Instrumentation()],
    )
    researcher = SubAgentConfig(name='researcher', description='Researches', agent=sub)
    parent = Script([call('task', description='Research X', subagent_type='researcher', mode='sync'), text('ok')])
    async with backend.manager([researcher]) as manager:
        result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager), Instrumentation()]).run(
            'go'
        )

    assert result.output == 'ok'
    exported = capfire.exporter.exported_spans_as_dict()
    assert sorted(span['name'] for span in exported if not span['name'].startswith(TEMPORAL_SPANS)) == snapshot(
        [
            'chat function:_respond:_stream',
            'chat function:_respond:_stream',
            'chat function:_respond:_stream',
            'execute_tool task',
            'invoke_agent agent',
            'invoke_agent researcher',
            'subagent task {task_id}',
            'the model answers',
        ]
    )
    by_id = {span['context']['span_id']: span for span in exported}
    (tool_call,) = [span for span in exported if span['attributes'].get('gen_ai.tool.name') == 'task']
    (task_span,) = [span for span in exported if span['name'] == TASK_SPAN]
    (answer,) = [span for span in exported if span['name'] == 'the model answers']
    assert task_span['parent']['span_id'] == tool_call['context']['span_id']
    assert [name for name in ancestors(answer, by_id) if not name.startswith(TEMPORAL_SPANS)] == snapshot(
        [
            'chat function:_respond:_stream',
            'invoke_agent researcher',
            'subagent task {task_id}',
            'execute_tool task',
            'invoke_agent agent',
        ]
    )
    assert {span['context']['trace_id'] for span in (tool_call, task_span, answer)} == {
        tool_call['context']['trace_id']
    }
    assert set(opened(capfire, TASK_SPAN)) == {task_span['context']['span_id']}


async def test_the_owner_records_the_same_metrics(
    backend: Backend, capfire: CaptureLogfire, clock: ManualClock
) -> None:
    """A soft cancel after two of five steps: the same summary, metrics and span on every backend, on the owner's clock."""
    gate = Gate()
    config = SubAgentConfig(name='worker', description='Works in five steps', agent=five_step_worker(gate))
    async with backend.manager([config], clock=clock) as manager:
        info = await cancel_after_two_steps(manager, gate, clock)
        summary = manager.metrics()

    assert info.status is TaskStatus.CANCELLED
    assert summary.cancelled_runs == (two_of_five_cancelled(info.task_id),)  # as in process
    assert (summary.of('worker').cancel_rate, summary.unresponsive) == snapshot((1.0, 0))
    metrics = capfire.get_collected_metrics()
    assert [
        (p['attributes'], p['sum'], p['count']) for p in points(metrics, 'subagents.cancel.acknowledge_time')
    ] == snapshot([({'subagent': 'worker', 'mode': 'soft', 'escalated': False}, 0.5, 1)])
    assert sums(metrics, 'subagents.cancelled.tokens_after_request', 'mode') == snapshot({('soft',): 220})
    assert sums(metrics, 'subagents.cancel.stop_time', 'mode') == snapshot({('soft',): 0.5})
    assert sums(metrics, 'subagents.tasks.finished', 'subagent', 'status') == snapshot({('worker', 'CANCELLED'): 1})
    (span,) = [span for span in capfire.exporter.exported_spans_as_dict() if span['name'] == TASK_SPAN]
    assert {name: span['attributes'][name] for name in ('status', 'checkpoints', 'tokens', 'cancel_mode')} == snapshot(
        {'status': 'CANCELLED', 'checkpoints': 2, 'tokens': 440, 'cancel_mode': 'soft'}
    )
    assert events(span)[-1] == snapshot(('task terminated', {'after_seconds': 0.5}))
    assert [name for name, _ in events(span)] == snapshot(
        ['cancel requested', 'cancel acknowledged', 'task terminated']
    )
