"""Soft cancel with preemption: the step in flight is cut short, and the wrap-up request starts at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent, RunContext, Tool
from pydantic_ai.capabilities import AbstractCapability, AgentNode
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart
from pydantic_ai.models import ModelRequestContext

from subagents_cancel import (
    Cancelled,
    Completed,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    SubAgentPolicy,
    TaskInfo,
    TaskStatus,
)
from subagents_cancel.testing import ManualClock

from .helpers import TASK_ID, Gate, Script, Step, call, cancel_requested, replies_of, researcher, text, tool_returns
from .temporal_support import Backend, durable

pytestmark = pytest.mark.anyio

PARTIAL_ANSWER = 'Completed: sources\nIn progress: analysis\nNot started: report'
PREEMPT = SubAgentPolicy(preempt_on_soft_cancel=True)


def checkpoint_sources() -> Step:
    return call('checkpoint', completed=['sources'], in_progress=['analysis'], not_started=['report'])


def shape(messages: Sequence[ModelMessage]) -> list[str]:
    """Each message as its kind, its parts' kinds and, when not complete, its state."""
    shown: list[str] = []
    for message in messages:
        kind = 'request' if isinstance(message, ModelRequest) else 'response'
        parts = '+'.join(type(part).__name__.removesuffix('Part') for part in message.parts)
        state = '' if message.state == 'complete' else f' <{message.state}>'
        shown.append(f'{kind}: {parts}{state}')
    return shown


class _SlowCrawl:
    """A tool that runs until it is cancelled, and says so."""

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.stopped = anyio.Event()

    async def crawl(self, url: str) -> str:
        """Crawl a site."""
        self.started.set()
        try:
            await anyio.sleep_forever()
        finally:
            self.stopped.set()
        return 'unreachable'  # pragma: no cover


async def test_the_model_request_in_flight_is_cut_short_and_the_wrap_up_starts_at_once(
    backend: Backend, clock: ManualClock
) -> None:
    """The request in flight ends now; the model sees a stand-in for it, then the CANCEL_REQUEST."""
    slow_step = Gate()
    sub = Script([checkpoint_sources(), slow_step.block_forever()], on_cancel=text(PARTIAL_ANSWER))
    async with backend.manager([researcher(sub)], policy=PREEMPT, clock=clock) as manager:
        task = await manager.start('researcher', 'Research X')
        await slow_step.reached.wait()
        await manager.soft_cancel(task.task_id)
        (info,) = (await manager.wait([task.task_id])).tasks

    assert slow_step.stopped.is_set()
    assert info.status is TaskStatus.CANCELLED
    assert isinstance(info.outcome, Cancelled) and info.outcome.mode == 'soft'
    assert info.outcome.partial.final_message == PARTIAL_ANSWER
    assert info.outcome.partial.completed == ('sources',) and info.outcome.partial.read_request
    assert [cancel_requested(messages) for messages in sub.requests] == [False, False, True]
    wrap_up = sub.requests[-1]
    assert shape(wrap_up) == snapshot(
        [
            'request: UserPrompt',
            'response: ToolCall',
            'request: ToolReturn',
            'response: Text <interrupted>',
            'request: UserPrompt',
        ]
    )
    stand_in = wrap_up[-2]
    assert isinstance(stand_in, ModelResponse) and isinstance(stand_in.parts[0], TextPart)
    assert stand_in.parts[0].content == snapshot(
        '[Interrupted before this response was finished: your parent asked you to stop (CANCEL_REQUEST).]'
    )


async def test_a_tool_call_in_flight_is_cut_short_and_closed_out(backend: Backend, clock: ManualClock) -> None:
    """The tool is cancelled; its call gets a note as its result, in the request that carries the CANCEL_REQUEST."""
    tool = _SlowCrawl()
    sub = Script([call('crawl', url='https://example.com')], on_cancel=text(PARTIAL_ANSWER))
    agent = durable(sub.model, 'researcher', tools=[Tool(tool.crawl)])
    config = SubAgentConfig(name='researcher', description='Researches', agent=agent, preempt_on_soft_cancel=True)
    async with backend.manager([config], clock=clock) as manager:  # on for this sub-agent, off in the policy
        task = await manager.start('researcher', 'Research X')
        await tool.started.wait()
        await manager.soft_cancel(task.task_id)
        (info,) = (await manager.wait([task.task_id])).tasks

    assert tool.stopped.is_set()
    assert isinstance(info.outcome, Cancelled) and info.outcome.partial.final_message == PARTIAL_ANSWER
    wrap_up = sub.requests[-1]
    assert shape(wrap_up)[-1] == 'request: ToolReturn+UserPrompt'
    assert tool_returns(wrap_up) == snapshot(
        [
            'Interrupted (crawl): your parent asked you to stop (CANCEL_REQUEST) before this call finished, so it has no result. Do not call it again; reply now with your partial results.'
        ]
    )
    assert cancel_requested(wrap_up)


async def test_a_sub_agent_can_opt_out_of_the_policy(backend: Backend, clock: ManualClock) -> None:
    """With preemption off for the sub-agent, the step in flight finishes and the request follows it."""
    slow_step = Gate()
    sub = Script([slow_step.hold(checkpoint_sources())], on_cancel=text(PARTIAL_ANSWER))
    async with backend.manager([researcher(sub, preempt_on_soft_cancel=False)], policy=PREEMPT, clock=clock) as manager:
        task = await manager.start('researcher', 'Research X')
        await slow_step.reached.wait()
        await manager.soft_cancel(task.task_id)
        slow_step.release.set()
        (info,) = (await manager.wait([task.task_id])).tasks

    assert not slow_step.stopped.is_set()
    assert isinstance(info.outcome, Cancelled) and info.outcome.partial.checkpoints == 1
    assert shape(sub.requests[-1])[-2:] == ['response: ToolCall', 'request: ToolReturn+UserPrompt']


async def test_an_open_question_is_answered_with_the_request_not_interrupted(
    backend: Backend, clock: ManualClock
) -> None:
    """ask_parent is never cut short: it returns the CANCEL_REQUEST itself, as without preemption."""
    sub = Script([call('ask_parent', question='Which region?')], on_cancel=text(PARTIAL_ANSWER))
    parent = Script(
        [
            call('task', description='Research X', subagent_type='researcher', mode='async'),
            call('wait_tasks', task_ids=[TASK_ID]),
            call('soft_cancel_task', task_id=TASK_ID),
            call('wait_tasks', task_ids=[TASK_ID]),
            text('done'),
        ]
    )
    async with backend.manager([researcher(sub)], policy=PREEMPT, clock=clock) as manager:
        result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')

    assert replies_of(result.all_messages())[2] == snapshot(
        'Cancellation requested for researcher-0001: its open question was answered with the cancel request, and it hands back partial results within 30s or is stopped. check_task or wait_tasks will show them.'
    )
    (answer,) = tool_returns(sub.requests[-1])
    assert answer.startswith('CANCEL_REQUEST [')


async def test_a_hard_cancel_still_stops_a_preemptible_step(backend: Backend, clock: ManualClock) -> None:
    """The cancel scopes around the steps catch only their own cancellation, never a hard cancel of the run."""
    slow_step = Gate()
    sub = Script([slow_step.block_forever()])
    async with backend.manager([researcher(sub)], policy=PREEMPT, clock=clock) as manager:
        task = await manager.start('researcher', 'Research X')
        await slow_step.reached.wait()
        info = await manager.hard_cancel(task.task_id)

    assert slow_step.stopped.is_set()
    assert isinstance(info.outcome, Cancelled) and info.outcome.mode == 'hard'
    assert len(sub.requests) == 1


async def _soft_cancel_at(gate: Gate, agent: Agent[None, str], clock: ManualClock) -> TaskInfo:
    """Run a task of `agent`; soft-cancel it once it reaches `gate`, then open the gate; its info once all is still."""
    config = SubAgentConfig(name='researcher', description='Researches', agent=agent)
    async with SubAgentManager([config], policy=PREEMPT, clock=clock) as manager:
        task = await manager.start('researcher', 'Research X')
        await gate.reached.wait()
        await manager.soft_cancel(task.task_id)
        gate.release.set()
        await anyio.wait_all_tasks_blocked()
        return manager.get(task.task_id)


@dataclass
class _HoldsTheResponse(AbstractCapability[object]):
    """An application capability that post-processes each response slowly: the response has arrived meanwhile."""

    gate: Gate

    async def after_model_request(
        self, ctx: RunContext[object], *, request_context: ModelRequestContext, response: ModelResponse
    ) -> ModelResponse:
        await self.gate.wait()
        return response


async def test_a_response_that_has_arrived_is_not_interrupted(clock: ManualClock) -> None:
    """Only the wait for the model is cut short: a complete final answer that has arrived stays, and wins."""
    post_processing = Gate()
    sub = Script([text('the full report')], on_cancel=text(PARTIAL_ANSWER))
    agent = Agent(sub.model, capabilities=[_HoldsTheResponse(post_processing)])
    info = await _soft_cancel_at(post_processing, agent, clock)

    assert not post_processing.stopped.is_set()
    assert info.outcome == Completed('the full report')
    assert len(sub.requests) == 1
    assert not any('Interrupted before' in str(message) for messages in sub.requests for message in messages)


@dataclass
class _BeginsEachStepSlowly(AbstractCapability[object]):
    """An application capability that begins each model request step slowly: the model has not been asked yet."""

    gate: Gate
    model_requests: int = 0

    async def before_node_run(self, ctx: RunContext[object], *, node: AgentNode[object]) -> AgentNode[object]:
        if Agent.is_model_request_node(node):
            self.model_requests += 1
            if self.model_requests == 2:  # the request after the checkpoint
                await self.gate.wait()
        return node


async def test_a_model_request_whose_step_has_begun_is_cut_short_as_it_starts(clock: ManualClock) -> None:
    """A soft cancel that comes as a model request step begins ends that request as it starts; the wrap-up follows."""
    preparing, slow_step = Gate(), Gate()
    sub = Script([checkpoint_sources(), slow_step.block_forever()], on_cancel=text(PARTIAL_ANSWER))
    agent = Agent(sub.model, capabilities=[_BeginsEachStepSlowly(preparing)])
    info = await _soft_cancel_at(preparing, agent, clock)

    assert not slow_step.reached.is_set()
    assert info.status is TaskStatus.CANCELLED
    assert isinstance(info.outcome, Cancelled) and info.outcome.mode == 'soft'
    assert info.outcome.partial.final_message == PARTIAL_ANSWER and info.outcome.partial.read_request
    assert shape(sub.requests[-1])[-2:] == snapshot(['response: Text <interrupted>', 'request: UserPrompt'])
