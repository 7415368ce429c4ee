"""The seed workflow, end to end.

A parent model starts research in the background, checks on it, soft-cancels it, and receives the
partial results the sub-agent hands back after reading the request.
"""

from __future__ import annotations

import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse

from subagents_cancel import SubAgentCapability, SubAgentConfig
from subagents_cancel.testing import ManualClock

from .helpers import TASK_ID, Gate, Script, Step, call, cancel_requested, latest_task_id, replies_of, resolve, text
from .temporal_support import Backend, durable

pytestmark = pytest.mark.anyio


def releasing(gate: Gate, step: Step) -> Step:
    async def respond(messages: list[ModelMessage]) -> ModelResponse:
        gate.release.set()
        return await resolve(step, messages)

    return respond


def checkpointed(backend: Backend, gate: Gate, step: Step) -> Step:
    """The step, once the sub-agent is at `gate` and its owner has heard of its checkpoint."""

    async def respond(messages: list[ModelMessage]) -> ModelResponse:
        await gate.reached.wait()
        task_id = latest_task_id(messages)
        await backend.until(lambda: backend.owner.get(task_id).checkpoints)
        return await resolve(step, messages)

    return respond


async def test_soft_cancel_hands_back_partial_results(backend: Backend, clock: ManualClock) -> None:
    """The sub-agent reads CANCEL_REQUEST, stops, and check_task shows what was done, under way and not started."""
    in_phase_2 = Gate()
    sub = Script(
        steps=[
            call(
                'checkpoint',
                completed=['market size'],
                in_progress=['competitors'],
                not_started=['pricing'],
                findings=['the market is worth $4B'],
            ),
            in_phase_2.hold(call('search', query='competitors')),
        ],
        on_cancel=text('Completed: market size\nIn progress: competitors (3 found)\nNot started: pricing'),
    )
    searches: list[str] = []
    research_agent = durable(sub.model, 'researcher')

    @research_agent.tool_plain
    async def search(query: str) -> str:
        """Search the web."""
        searches.append(query)
        return 'results'

    researcher = SubAgentConfig(
        name='researcher', description='Researches a topic and reports findings', agent=research_agent
    )
    parent = Script(
        steps=[
            call('task', description='Comprehensive market research', subagent_type='researcher', mode='async'),
            checkpointed(backend, in_phase_2, call('check_task', task_id=TASK_ID)),
            call('soft_cancel_task', task_id=TASK_ID),
            releasing(in_phase_2, call('wait_tasks', task_ids=[TASK_ID])),
            call('check_task', task_id=TASK_ID),
            text('done'),
        ]
    )
    async with backend.manager([researcher], clock=clock) as manager:
        agent = Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)])
        result = await agent.run('Research the market, then stop when I say so.')

    assert result.output == 'done'
    assert replies_of(result.all_messages()) == snapshot(
        [
            'Task started with ID: researcher-0001 (researcher); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.',
            """\
researcher-0001: RUNNING for 0.0 ms.
Checkpoints: 1. Completed: market size. In progress: competitors. Not started: pricing.
Findings so far: the market is worth $4B.\
""",
            'Cancellation requested for researcher-0001: it has been told, and it hands back partial results within 30s or is stopped. check_task or wait_tasks will show them.',
            """\
The task has ended.

Task cancelled: researcher-0001 (soft, on request; it read the request after 0.0 ms; it ended 0.0 ms after the request). Partial results:
Completed: market size
In progress: competitors
Not started: pricing
Findings: the market is worth $4B
(from 1 checkpoint)
Its final message:
Completed: market size
In progress: competitors (3 found)
Not started: pricing\
""",
            """\
Task cancelled: researcher-0001 (soft, on request; it read the request after 0.0 ms; it ended 0.0 ms after the request). Partial results:
Completed: market size
In progress: competitors
Not started: pricing
Findings: the market is worth $4B
(from 1 checkpoint)
Its final message:
Completed: market size
In progress: competitors (3 found)
Not started: pricing\
""",
        ]
    )
    assert sub.saw_cancel_request()
    assert searches == []  # the call made after the request was refused, so no new side effect started
    assert [cancel_requested(messages) for messages in sub.requests] == snapshot([False, False, True])
