"""What a hostile review of the sixth lean round found, now mended, and what it checked on the real clock.

The round made `TaskCapability` public: a user's own agent carries the sub-agent task capability from its
construction. A run of it is the task's when it is the first run of the task's agent to ask (not another run of the
same agent that the task's tool starts); an agent refuses it twice, or ahead of a capability that handles model
responses. Driven as a model drives them: the sub-agent's tools and the manager's API.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent, RunContext, Tool
from pydantic_ai.capabilities import Hooks
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import ModelRequestContext
from pydantic_ai.models.function import AgentInfo, FunctionModel

from subagents_cancel import (
    Cancelled,
    CancelReason,
    Completed,
    PartialResult,
    SubAgentConfig,
    SubAgentManager,
    SubAgentPolicy,
    TaskCapability,
    TaskStatus,
)
from subagents_cancel.messages import CancelRequest
from subagents_cancel.testing import ManualClock
from subagents_cancel.wire import WireMessage

from .helpers import Gate, Script, Step, WrappedTransport, call, resolve, text, tool_returns

# The hard-cancel tests' tool that swallows its cancellation, the one such tool of the suite (no second copy here).
from .test_hard_cancel import _Stubborn  # pyright: ignore[reportPrivateUsage]

pytestmark = pytest.mark.anyio


class _Offered:
    """A scripted model that also notes, per request, the tools offered and whether the cancel instructions came."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.offered: list[tuple[list[str], bool]] = []

    @property
    def model(self) -> FunctionModel:
        async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            told = 'CANCEL_REQUEST' in (info.instructions or '')
            self.offered.append((sorted(tool.name for tool in info.function_tools), told))
            return await resolve(self.steps.pop(0), messages)

        return FunctionModel(respond)


@pytest.mark.parametrize('consulted', ['another agent', 'the same agent'])
async def test_a_hard_cancel_while_a_tool_ran_an_agent_with_the_capability_stops_the_task(
    clock: ManualClock, consulted: str
) -> None:
    """A hard cancel while the sub-agent's tool is still running stops the task, whatever agent that tool ran."""
    held = Gate()

    async def consult(question: str) -> str:
        """Ask an agent, then wait."""
        answer = (await (worker if consulted == 'the same agent' else helper).run(question)).output
        await held.wait()
        return answer

    sub = Script([call('consult', question='What first?'), text('an answer to the tool'), text('the task output')])
    worker = Agent(sub.model, tools=[consult], capabilities=[TaskCapability()])
    helper = Agent(sub.model, capabilities=[TaskCapability()])
    async with SubAgentManager([SubAgentConfig(name='worker', description='W', agent=worker)], clock=clock) as mgr:
        task_id = (await mgr.start('worker', 'Go.')).task_id
        await held.reached.wait()
        outcome = await mgr.hard_cancel_outcome(task_id)
    assert (outcome.result, outcome.info.status, outcome.info.outcome, held.stopped.is_set()) == snapshot(
        (
            'stopped',
            TaskStatus.CANCELLED,
            Cancelled(mode='hard', reason=CancelReason(), partial=PartialResult()),
            True,
        )
    )


async def test_the_tasks_agent_run_again_by_its_own_tool_is_a_plain_agent(clock: ManualClock) -> None:
    """The task's own agent, run again by one of its tools, is offered no task tools and no cancel instructions."""

    async def consult(question: str) -> str:
        """Ask the same agent."""
        return (await worker.run(question)).output

    sub = _Offered([call('consult', question='What first?'), text('first this'), text('done')])
    worker = Agent(sub.model, tools=[consult], capabilities=[TaskCapability()])
    async with SubAgentManager([SubAgentConfig(name='worker', description='W', agent=worker)], clock=clock) as mgr:
        info = await mgr.run('worker', 'Go.')
    assert (info.outcome, sub.offered) == snapshot(
        (
            Completed(output='done'),
            [
                (['ask_parent', 'checkpoint', 'consult'], True),
                (['consult'], False),
                (['ask_parent', 'checkpoint', 'consult'], True),
            ],
        )
    )


def _task_capability_per_run(ctx: RunContext[None]) -> TaskCapability:
    """A capability function: the agent builds its `TaskCapability` for each run."""
    return TaskCapability()


async def test_an_agent_given_the_capability_by_a_capability_function_runs_its_task_as_with_one(
    clock: ManualClock,
) -> None:
    """An agent given `TaskCapability()` by a capability function runs its task as if it carried one from the start."""
    sub = Script([call('checkpoint', completed=['read the brief']), text('The market is $4B.')])
    worker = Agent(sub.model, deps_type=type(None), capabilities=[_task_capability_per_run])
    async with SubAgentManager([SubAgentConfig(name='worker', description='W', agent=worker)], clock=clock) as mgr:
        info = await mgr.run('worker', 'Research X')
    told = [(each or '').count('CANCEL_REQUEST') for each in sub.instructions]
    assert (info.outcome, [tool_returns(messages) for messages in sub.requests], told) == snapshot(
        (Completed(output='The market is $4B.'), [[], ['Checkpoint 1 recorded.']], [1, 1])
    )


async def test_cancel_all_with_a_mode_there_is_not_raises_and_touches_no_task(clock: ManualClock) -> None:
    """`cancel_all('Hard', ...)` (a careless spelling) raises, naming the mode, before any task is touched."""
    gate = Gate()
    sub = Script([gate.block_forever()])
    worker = Agent(sub.model, capabilities=[TaskCapability()])
    async with SubAgentManager([SubAgentConfig(name='worker', description='W', agent=worker)], clock=clock) as mgr:
        task_id = (await mgr.start('worker', 'Go.')).task_id
        await gate.reached.wait()
        with pytest.raises(ValueError, match=r"^mode must be 'soft' or 'hard'; got 'Hard'\.$"):
            # A mode the type does not allow is the point: an application without a type checker sends it.
            mgr.cancel_all('Hard', reason=CancelReason())  # pyright: ignore[reportArgumentType]
        info = mgr.get(task_id)
    assert (info.status, info.cancel) == snapshot((TaskStatus.RUNNING, None))


def test_an_agent_refuses_the_capability_twice_and_takes_it_in_any_place() -> None:
    """`TaskCapability` twice is refused, naming the problem; once, it is taken wherever it is listed."""
    model = Script([]).model
    with pytest.raises(UserError, match=r'^An agent carries TaskCapability once; this one has it 2 times\.$'):
        Agent(model, capabilities=[TaskCapability(), TaskCapability()])
    Agent(model, capabilities=[TaskCapability(), Hooks[object](after_model_request=_unchanged)])
    Agent(model, capabilities=[Hooks[object](after_model_request=_unchanged), TaskCapability()])


async def _unchanged(
    ctx: RunContext[object], *, request_context: ModelRequestContext, response: ModelResponse
) -> ModelResponse:
    return response


# --- checked, no defect found: the cancel path on the real clock (the fuzz runs a manual clock) -------------------


async def test_on_the_real_clock_a_grace_window_ends_before_a_later_deadline() -> None:
    """On the real clock, a grace window that ends before the task's own deadline escalates the cancel then."""
    gate = Gate()
    worker = Agent(Script([gate.block_forever()]).model, capabilities=[TaskCapability()])
    async with SubAgentManager([SubAgentConfig(name='worker', description='W', agent=worker)]) as mgr:
        task_id = (await mgr.start('worker', 'Go.', timeout_seconds=3600)).task_id
        await gate.reached.wait()
        await mgr.soft_cancel(task_id, grace_seconds=0.01)
        (info,) = (await mgr.wait([task_id])).tasks
    assert (info.outcome, gate.stopped.is_set()) == snapshot(
        (Cancelled(mode='hard', reason=CancelReason(), partial=PartialResult(), escalated=True), True)
    )


async def test_on_the_real_clock_a_grace_window_set_once_every_timer_was_cancelled_ends() -> None:
    """On the real clock, after the owner's only timer was cancelled (its task ended), a new grace window still ends."""
    gate = Gate()
    worker = Agent(Script([text('done'), gate.block_forever()]).model, capabilities=[TaskCapability()])
    async with SubAgentManager([SubAgentConfig(name='worker', description='W', agent=worker)]) as mgr:
        first = await mgr.run('worker', 'Quick.', timeout_seconds=3600)
        task_id = (await mgr.start('worker', 'Go.')).task_id
        await gate.reached.wait()
        await mgr.soft_cancel(task_id, grace_seconds=0.01)
        (info,) = (await mgr.wait([task_id])).tasks
    assert (first.outcome, info.outcome) == snapshot(
        (
            Completed(output='done'),
            Cancelled(mode='hard', reason=CancelReason(), partial=PartialResult(), escalated=True),
        )
    )


class _LosesRequests(WrappedTransport):
    """Loses the first `lose` cancel requests it is given, and tells the sender each was delivered."""

    def __init__(self, lose: int) -> None:
        super().__init__()
        self.lose = lose
        self.lost: list[CancelRequest] = []

    def send_nowait(self, address: str, message: WireMessage) -> bool:
        if isinstance(message, CancelRequest) and len(self.lost) < self.lose:
            self.lost.append(message)
            return True
        return self.inner.send_nowait(address, message)


@asynccontextmanager
async def _a_task_behind(
    transport: _LosesRequests, policy: SubAgentPolicy, sub: Script, gate: Gate
) -> AsyncGenerator[tuple[SubAgentManager, str]]:
    """A manager on the real clock and `transport`, and a task of an agent carrying `TaskCapability` at `gate`."""
    worker = Agent(sub.model, capabilities=[TaskCapability()])
    config = SubAgentConfig(name='worker', description='W', agent=worker)
    async with transport, SubAgentManager([config], transport=transport, policy=policy) as mgr:
        task_id = (await mgr.start('worker', 'Go.')).task_id
        await gate.reached.wait()
        yield mgr, task_id


async def test_on_the_real_clock_a_soft_cancels_receipt_wait_sends_the_lost_request_again() -> None:
    """On the real clock, a soft cancel whose request was lost sends its copy while it waits, and gets the receipt."""
    gate, transport = Gate(), _LosesRequests(lose=1)
    sub = Script([gate.hold(call('checkpoint', completed=['EU']))], on_cancel=text('Stopped: EU done.'))
    async with _a_task_behind(transport, SubAgentPolicy(cancel_resend_seconds=0.01), sub, gate) as (mgr, task_id):
        outcome = await mgr.soft_cancel_outcome(task_id)
        gate.release.set()
        (info,) = (await mgr.wait([task_id])).tasks
    assert outcome.info.cancel is not None and [request.message_id for request in transport.lost] == [
        outcome.info.cancel.request_id
    ]
    assert (outcome.result, info.outcome) == snapshot(
        (
            'requested',
            Cancelled(
                mode='soft',
                reason=CancelReason(),
                partial=PartialResult(
                    completed=('EU',), final_message='Stopped: EU done.', checkpoints=1, read_request=True
                ),
            ),
        )
    )


async def test_on_the_real_clock_a_hard_cancel_of_a_task_that_will_not_stop_returns_at_its_bound() -> None:
    """On the real clock, a hard cancel of a run that swallows it returns `timed_out` at its bound, task unresponsive."""
    stubborn = _Stubborn()
    worker = Agent(
        Script([call('stubborn'), text('done')]).model,
        tools=[Tool(stubborn.work, name='stubborn')],
        capabilities=[TaskCapability()],
    )
    policy = SubAgentPolicy(hard_cancel_wait_seconds=0.05, final_answer_wait_seconds=0.01)
    config = SubAgentConfig(name='worker', description='W', agent=worker)
    async with SubAgentManager([config], policy=policy) as mgr:
        task_id = (await mgr.start('worker', 'Go.')).task_id
        await stubborn.entered.wait()
        outcome = await mgr.hard_cancel_outcome(task_id)
        stubborn.let_go.set()
        (info,) = (await mgr.wait([task_id])).tasks
    assert (outcome.result, outcome.info.status, outcome.info.unresponsive, info.status) == snapshot(
        ('timed_out', TaskStatus.RUNNING, True, TaskStatus.CANCELLED)
    )


async def test_on_the_real_clock_a_soft_cancel_never_received_returns_unconfirmed_and_its_window_still_ends() -> None:
    """On the real clock, a soft request and every copy lost: the call returns at its bound, the grace window ends."""
    gate, transport = Gate(), _LosesRequests(lose=1_000)
    policy = SubAgentPolicy(receipt_wait_seconds=0.05, cancel_resend_seconds=0.01)
    async with _a_task_behind(transport, policy, Script([gate.block_forever()]), gate) as (mgr, task_id):
        outcome = await mgr.soft_cancel_outcome(task_id, grace_seconds=0.1)
        (info,) = (await mgr.wait([task_id])).tasks
    assert (outcome.result, len(transport.lost) > 1, info.outcome, gate.stopped.is_set()) == snapshot(
        (
            'unconfirmed',
            True,
            Cancelled(mode='hard', reason=CancelReason(), partial=PartialResult(), escalated=True),
            True,
        )
    )


async def test_on_the_real_clock_a_hard_cancel_whose_request_was_lost_sends_it_again_and_stops_the_task() -> None:
    """On the real clock, a hard request lost once is sent again within the cancel's one wait, and the task stops."""
    gate, transport = Gate(), _LosesRequests(lose=1)
    policy = SubAgentPolicy(cancel_resend_seconds=0.01)
    async with _a_task_behind(transport, policy, Script([gate.block_forever()]), gate) as (mgr, task_id):
        outcome = await mgr.hard_cancel_outcome(task_id)
    assert (outcome.result, len(transport.lost), outcome.info.outcome, gate.stopped.is_set()) == snapshot(
        ('stopped', 1, Cancelled(mode='hard', reason=CancelReason(), partial=PartialResult()), True)
    )


async def test_on_the_real_clock_grace_windows_set_latest_first_each_end() -> None:
    """On the real clock, grace windows set latest first (each moves the alarm earlier) all end, each task stopped."""
    gates = [Gate(), Gate(), Gate()]
    worker = Agent(Script([gate.block_forever() for gate in gates]).model, capabilities=[TaskCapability()])
    async with SubAgentManager([SubAgentConfig(name='worker', description='W', agent=worker)]) as mgr:
        task_ids: list[str] = []
        for gate in gates:
            task_ids.append((await mgr.start('worker', 'Go.')).task_id)
            await gate.reached.wait()
        for task_id, grace in zip(task_ids, (0.03, 0.02, 0.01), strict=True):
            await mgr.soft_cancel(task_id, grace_seconds=grace)
        infos = (await mgr.wait(task_ids)).tasks
    assert [(info.outcome, gate.stopped.is_set()) for info, gate in zip(infos, gates, strict=True)] == snapshot(
        [
            (Cancelled(mode='hard', reason=CancelReason(), partial=PartialResult(), escalated=True), True),
            (Cancelled(mode='hard', reason=CancelReason(), partial=PartialResult(), escalated=True), True),
            (Cancelled(mode='hard', reason=CancelReason(), partial=PartialResult(), escalated=True), True),
        ]
    )
