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

from subagents_cancel import SubAgentCapability, SubAgentConfig
from subagents_cancel.temporal import activity_config

from .helpers import Script, call, text
from .temporal_support import Backend

pytestmark = pytest.mark.anyio

TASK_SPAN = 'subagent task {task_id}'
TEMPORAL_SPANS = ('StartActivity:', 'RunActivity:')
"""The spans Temporal's tracing interceptor adds around an activity, on a worker only."""


def answering_in_a_span(messages: list[ModelMessage]) -> ModelResponse:
    """The model's answer, given inside a span of its own: where the request runs (an activity on Temporal)."""
    with logfire.span('the model answers'):
        return text('found it')


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
