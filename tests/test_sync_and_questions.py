"""Sync tasks return their result in the tool call; questions go to the parent and come back as answers."""

from __future__ import annotations

import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse

from subagents_cancel import Cancelled, Failed, SubAgentCapability, SubAgentConfig, SubAgentManager, TaskStatus
from subagents_cancel.testing import ManualClock

from .helpers import TASK_ID, Script, Step, call, calls, replies_of, text, tool_returns
from .temporal_support import Backend

pytestmark = pytest.mark.anyio


def researcher_on(sub: Script) -> SubAgentConfig:
    return SubAgentConfig(name='researcher', description='Researches', model=sub.model)


def parent_with(manager: SubAgentManager, *steps: Step) -> Agent[None, str]:
    parent = Script([*steps, text('done')])
    return Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)])


async def test_sync_task_returns_its_output(backend: Backend, clock: ManualClock) -> None:
    """`task(mode='sync')` waits for the sub-agent and returns what it produced."""
    sub = Script([call('checkpoint', completed=['all'], findings=['X']), text('The market is worth $4B.')])
    async with backend.manager([researcher_on(sub)], clock=clock) as manager:
        result = await parent_with(manager, call('task', description='Research X', subagent_type='researcher')).run(
            'go'
        )
    assert replies_of(result.all_messages()) == snapshot(
        [
            """\
researcher-0001: COMPLETED in 0.0 ms. Output:
The market is worth $4B.\
"""
        ]
    )


async def test_failed_subagent_reports_the_error_class_not_its_text(backend: Backend, clock: ManualClock) -> None:
    """A sub-agent whose model raises ends FAILED; the reply names the error type, never the provider's text."""

    async def broken(messages: list[ModelMessage]) -> ModelResponse:
        raise RuntimeError('401 from provider: invalid key sk-secret-123')

    sub = Script([broken] * 3)  # on a worker, a failed model request is tried three times (`activity_config`)
    async with backend.manager([researcher_on(sub)], clock=clock) as manager:
        result = await parent_with(manager, call('task', description='Research X', subagent_type='researcher')).run(
            'go'
        )
    (reply,) = replies_of(result.all_messages())
    assert 'sk-secret' not in reply
    assert reply == snapshot(
        'researcher-0001: FAILED after 0.0 ms: RuntimeError: the sub-agent run raised this error; details are in the logs'
    )


async def test_usage_limit_is_reported_in_pydantic_ai_words(backend: Backend, clock: ManualClock) -> None:
    """pydantic-ai's own errors carry no provider text, so their message is kept."""
    sub = Script([call('checkpoint', completed=['step'])] * 60)
    async with backend.manager([SubAgentConfig(name='r', description='R', model=sub.model)], clock=clock) as manager:
        info = await manager.run('r', 'Research X')
    assert isinstance(info.outcome, Failed) and info.outcome.error_type == 'UsageLimitExceeded'
    assert info.outcome.message.startswith('The next request would exceed the request_limit of 50')
    assert len(info.checkpoints) == 50


async def test_sync_task_that_asks_returns_the_question(backend: Backend, clock: ManualClock) -> None:
    """A sync task cannot wait for a parent that waits for it: the question comes back as the tool's result."""
    sub = Script([call('ask_parent', question='Which region, EU or US?'), text('EU market: $4B')])
    parent = Script(
        [
            call('task', description='Research X', subagent_type='researcher'),
            _answer_latest('EU'),
            _wait_latest(),
            text('done'),
        ]
    )
    async with backend.manager([researcher_on(sub)], clock=clock) as manager:
        result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')
    assert replies_of(result.all_messages()) == snapshot(
        [
            """\
researcher-0001: WAITING_FOR_ANSWER for 0.0 ms.
It asks: Which region, EU or US?
Reply with answer_subagent(task_id='researcher-0001', answer=...); it goes on in the background, and wait_tasks waits for its result.
No checkpoints yet.\
""",
            'Answer delivered to researcher-0001; it continues its work.',
            """\
The task has ended.

researcher-0001: COMPLETED in 0.0 ms. Output:
EU market: $4B\
""",
        ]
    )
    assert tool_returns(sub.requests[-1])[-1] == 'Your parent answered: EU'


def _task_id_from_report(messages: list[ModelMessage]) -> str:
    return tool_returns(messages)[-1].split(':')[0]


def _answer_latest(answer: str) -> Step:
    def respond(messages: list[ModelMessage]) -> ModelResponse:
        return call('answer_subagent', task_id=_task_id_from_report(messages), answer=answer)(messages)

    return respond


def _wait_latest() -> Step:
    def respond(messages: list[ModelMessage]) -> ModelResponse:
        task_id = tool_returns(messages)[-2].split(':')[0]
        return call('wait_tasks', task_ids=[task_id])(messages)

    return respond


async def test_background_question_and_answer(backend: Backend, clock: ManualClock) -> None:
    """wait_tasks returns when the task asks; answer_subagent delivers the answer and the task finishes."""
    sub = Script([call('ask_parent', question='Which region?'), text('EU market: $4B')])
    async with backend.manager([researcher_on(sub)], clock=clock) as manager:
        agent = parent_with(
            manager,
            call('task', description='Research X', subagent_type='researcher', mode='async'),
            call('wait_tasks'),
            call('list_active_tasks'),
            call('answer_subagent', task_id=TASK_ID, answer='EU'),
            call('wait_tasks', task_ids=[TASK_ID]),
        )
        result = await agent.run('go')
    assert replies_of(result.all_messages()) == snapshot(
        [
            'Task started with ID: researcher-0001 (researcher); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.',
            """\
Waiting for your answer: researcher-0001.

researcher-0001: WAITING_FOR_ANSWER for 0.0 ms.
It asks: Which region?
Reply with answer_subagent(task_id='researcher-0001', answer=...); it goes on in the background, and wait_tasks waits for its result.
No checkpoints yet.\
""",
            """\
1 active task:
- researcher-0001 WAITING_FOR_ANSWER 0.0 ms (researcher): 'Research X'; asks: 'Which region?'\
""",
            'Answer delivered to researcher-0001; it continues its work.',
            """\
The task has ended.

researcher-0001: COMPLETED in 0.0 ms. Output:
EU market: $4B\
""",
        ]
    )


async def test_one_question_at_a_time(backend: Backend, clock: ManualClock) -> None:
    """Two questions in one response: the second is told to wait for the first."""
    sub = Script(
        [calls(('ask_parent', {'question': 'Which region?'}), ('ask_parent', {'question': 'Which year?'})), text('ok')]
    )
    async with backend.manager([SubAgentConfig(name='r', description='R', model=sub.model)], clock=clock) as manager:
        info = await manager.run('r', 'Research X')
        assert info.question == 'Which region?'
        await manager.answer(info.task_id, 'EU')
        await manager.wait([info.task_id])
    assert sorted(tool_returns(sub.requests[-1])) == snapshot(
        ['You already have an open question; wait for its answer before asking another.', 'Your parent answered: EU']
    )


async def test_hard_cancel_while_waiting_for_an_answer(backend: Backend, clock: ManualClock) -> None:
    """A task blocked on its question stops at once; the question is gone."""
    sub = Script([call('ask_parent', question='Which region?')])
    async with backend.manager([SubAgentConfig(name='r', description='R', model=sub.model)], clock=clock) as manager:
        info = await manager.run('r', 'Research X')
        assert info.status is TaskStatus.WAITING_FOR_ANSWER
        info = await manager.hard_cancel(info.task_id)
    assert info.status is TaskStatus.CANCELLED and info.question is None
    assert isinstance(info.outcome, Cancelled) and info.outcome.mode == 'hard'
