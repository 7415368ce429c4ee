"""Cancel against completion: whichever reaches the task first wins, and no answer that has arrived is lost.

The commit point is the moment the run has its final answer and has accepted it (pydantic-ai's output
processing is done and the run has reached its end). A cancel that reaches the task after it loses: the task
ends COMPLETED with its output. A cancel that reaches it while the final answer is being processed waits
until the run either ends (the answer wins) or goes on (the cancel wins); a hard one waits a bounded time.
"""

from __future__ import annotations

import anyio
import pytest
from inline_snapshot import snapshot
from pydantic import BaseModel
from pydantic_ai import Agent, ModelRetry
from pydantic_ai.messages import ModelMessage, ModelResponse

from subagents_cancel import (
    Cancelled,
    CancelReason,
    Completed,
    ManualClock,
    PartialResult,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    TaskStatus,
)

from .helpers import TASK_ID, LingersAfterTheEnd, Script, after, call, replies_of, text

pytestmark = pytest.mark.anyio


class Report(BaseModel):
    title: str
    pages: int


def report(title: str, pages: int) -> Script:
    """A sub-agent model whose final answer is a `Report` (pydantic-ai's output tool)."""
    return Script(
        [call('final_result', title=title, pages=pages)], on_cancel=call('final_result', title='wrap-up', pages=0)
    )


@pytest.mark.parametrize('mode', ['soft', 'hard'])
async def test_a_cancel_after_the_run_ended_loses(clock: ManualClock, mode: str) -> None:
    """The run has its answer and has ended; a later cancel leaves it COMPLETED: no fallback, no extra request."""
    lingers = LingersAfterTheEnd()
    sub = Script([text('FULL answer')], on_cancel=text('wrap-up'))
    summary = Script([])  # the fallback: fails if it is ever asked
    configs = [
        SubAgentConfig(name='r', description='R', agent=Agent(sub.model, capabilities=[lingers]), fallback='s'),
        SubAgentConfig(name='s', description='S', model=summary.model),
    ]
    async with SubAgentManager(configs, clock=clock) as manager:
        task = await manager.start('r', 'Research X')
        await lingers.reached.wait()
        if mode == 'soft':
            await manager.soft_cancel(task.task_id)
            lingers.release.set()
            (info,) = (await manager.wait([task.task_id])).tasks
        else:
            info = await manager.hard_cancel(task.task_id)
        every_task = manager.tasks()
        metrics = manager.metrics().of('r')

    assert (info.status, info.outcome) == (TaskStatus.COMPLETED, Completed('FULL answer'))
    assert info.cancel is not None and info.cancel.lost
    assert len(sub.requests) == 1
    assert [task.task_id for task in every_task] == [task.task_id]
    assert summary.requests == []
    assert (metrics.completed, metrics.cancelled, metrics.cancel_rate) == (1, 0, 0.0)


async def test_the_owner_ending_after_the_run_ended_keeps_it_completed(clock: ManualClock) -> None:
    """An owner's teardown is a cancel like any other: a task that had its answer already ends COMPLETED."""
    lingers = LingersAfterTheEnd()
    agent = Agent(Script([text('FULL answer')]).model, capabilities=[lingers])
    async with SubAgentManager([SubAgentConfig(name='r', description='R', agent=agent)], clock=clock) as manager:
        task = await manager.start('r', 'Research X')
        await lingers.reached.wait()
    info = manager.get(task.task_id)
    assert (info.status, info.outcome) == (TaskStatus.COMPLETED, Completed('FULL answer'))
    assert info.cancel is not None and info.cancel.reason == CancelReason(kind='parent_ended') and info.cancel.lost


async def test_a_cancel_of_a_finished_task_returns_it(clock: ManualClock) -> None:
    """Pressing Stop on a finished task needs no `try`: both cancels return the task as it ended, untouched."""
    sub = Script([text('done')])
    async with SubAgentManager([SubAgentConfig(name='r', description='R', model=sub.model)], clock=clock) as manager:
        done = await manager.run('r', 'Research X')
        soft = await manager.soft_cancel(done.task_id)
        hard = await manager.hard_cancel(done.task_id)
        again = await manager.soft_cancel(done.task_id)
    assert soft == hard == again == done
    assert (done.status, done.outcome, done.cancel) == (TaskStatus.COMPLETED, Completed('done'), None)


async def test_a_cancel_tool_after_the_run_ended_says_it_had_finished_first(clock: ManualClock) -> None:
    """The parent's hard cancel lands after the sub-agent's answer: the reply says so and shows the result."""
    lingers = LingersAfterTheEnd()
    agent = Agent(Script([text('FULL answer')]).model, capabilities=[lingers])
    parent = Script(
        [
            call('task', description='Research X', subagent_type='r', mode='async'),
            after(lingers.reached, call('hard_cancel_task', task_id=TASK_ID)),
            call('soft_cancel_task', task_id=TASK_ID),
            call('check_task', task_id=TASK_ID),
            text('done'),
        ]
    )
    capability = SubAgentCapability(subagents=[SubAgentConfig(name='r', description='R', agent=agent)], clock=clock)
    result = await Agent(parent.model, capabilities=[capability]).run('go')
    assert replies_of(result.all_messages())[1:] == snapshot(
        [
            """\
r-0001 had finished before the cancel arrived, so nothing was cancelled: COMPLETED in 0.0 ms. Output:
FULL answer\
""",
            """\
r-0001 had finished before the cancel arrived, so nothing was cancelled: COMPLETED in 0.0 ms. Output:
FULL answer\
""",
            """\
r-0001: COMPLETED in 0.0 ms (it had finished before the cancel arrived). Output:
FULL answer\
""",
        ]
    )


@pytest.mark.parametrize('structured', [False, True], ids=['text', 'structured'])
async def test_a_soft_cancel_while_the_final_answer_is_processed_loses(clock: ManualClock, structured: bool) -> None:
    """The request lands after the final answer arrived, while its output is validated: the answer wins, typed.

    Found by the fuzzer (seed 109761): the request was queued into a run that was already ending, so pydantic-ai
    sent the model one more request to deliver it and dropped the finished answer.
    """
    validating, release = anyio.Event(), anyio.Event()
    sub = report('Q3', 12) if structured else Script([text('FULL answer')], on_cancel=text('wrap-up'))
    agent = Agent(sub.model, output_type=Report if structured else str)

    @agent.output_validator
    async def check(output: Report | str) -> Report | str:
        validating.set()  # the run has the final answer and is processing it
        await release.wait()
        return output

    async with SubAgentManager([SubAgentConfig(name='r', description='R', agent=agent)], clock=clock) as manager:
        task = await manager.start('r', 'Research X')
        await validating.wait()
        await manager.soft_cancel(task.task_id)
        release.set()
        (info,) = (await manager.wait([task.task_id])).tasks
    assert len(sub.requests) == 1
    assert info.status is TaskStatus.COMPLETED
    assert info.outcome == Completed(Report(title='Q3', pages=12) if structured else 'FULL answer')
    assert info.cancel is not None and info.cancel.lost and info.cancel.acknowledged_at is None


@pytest.mark.parametrize('structured', [False, True], ids=['text', 'structured'])
async def test_a_held_cancel_is_delivered_when_the_answer_is_rejected(clock: ManualClock, structured: bool) -> None:
    """Validation rejects the final answer and the run goes on: the held request goes out and wins."""
    validating, release = anyio.Event(), anyio.Event()
    sub = report('Q3', 12) if structured else Script([text('FULL answer')], on_cancel=text('wrap-up'))
    agent = Agent(sub.model, output_type=Report if structured else str)

    @agent.output_validator
    async def check(output: Report | str) -> Report | str:
        if not validating.is_set():
            validating.set()
            await release.wait()
            raise ModelRetry('Too short.')
        return output

    async with SubAgentManager([SubAgentConfig(name='r', description='R', agent=agent)], clock=clock) as manager:
        task = await manager.start('r', 'Research X')
        await validating.wait()
        await manager.soft_cancel(task.task_id)
        release.set()
        (info,) = (await manager.wait([task.task_id])).tasks
    assert len(sub.requests) == 2 and sub.saw_cancel_request()
    assert info.outcome == Cancelled(
        mode='soft',
        reason=CancelReason(kind='user'),
        partial=PartialResult(
            final_message=Report(title='wrap-up', pages=0) if structured else 'wrap-up', read_request=True
        ),
    )


@pytest.mark.parametrize('structured', [False, True], ids=['text', 'structured'])
async def test_a_hard_cancel_waits_for_the_verdict_on_an_answer_that_arrived(
    clock: ManualClock, structured: bool
) -> None:
    """A hard cancel while an arrived final answer is validated waits: the answer is accepted, so it wins."""
    validating, release = anyio.Event(), anyio.Event()
    sub = report('Q3', 12) if structured else Script([text('FULL answer')])
    agent = Agent(sub.model, output_type=Report if structured else str)

    @agent.output_validator
    async def check(output: Report | str) -> Report | str:
        validating.set()
        await release.wait()
        return output

    async with SubAgentManager([SubAgentConfig(name='r', description='R', agent=agent)], clock=clock) as manager:
        task = await manager.start('r', 'Research X')
        await validating.wait()
        async with anyio.create_task_group() as group:
            group.start_soon(manager.hard_cancel, task.task_id)
            await anyio.wait_all_tasks_blocked()
            release.set()
        info = manager.get(task.task_id)
    assert info.outcome == Completed(Report(title='Q3', pages=12) if structured else 'FULL answer')
    assert info.cancel is not None and info.cancel.lost
    assert len(sub.requests) == 1


@pytest.mark.parametrize('structured', [False, True], ids=['text', 'structured'])
async def test_a_hard_cancel_stops_the_run_when_the_arrived_answer_is_rejected(
    clock: ManualClock, structured: bool
) -> None:
    """Validation rejects the answer the hard cancel waited for: the run stops before its next model request."""
    validating, release = anyio.Event(), anyio.Event()
    sub = report('Q3', 12) if structured else Script([text('FULL answer')])
    agent = Agent(sub.model, output_type=Report if structured else str)

    @agent.output_validator
    async def check(output: Report | str) -> Report | str:
        validating.set()
        await release.wait()
        raise ModelRetry('Too short.')

    async with SubAgentManager([SubAgentConfig(name='r', description='R', agent=agent)], clock=clock) as manager:
        task = await manager.start('r', 'Research X')
        await validating.wait()
        async with anyio.create_task_group() as group:
            group.start_soon(manager.hard_cancel, task.task_id)
            await anyio.wait_all_tasks_blocked()
            release.set()
        info = manager.get(task.task_id)
    assert info.outcome == Cancelled(
        mode='hard',
        reason=CancelReason(kind='user'),
        partial=PartialResult(final_message={'title': 'Q3', 'pages': 12} if structured else 'FULL answer'),
    )
    assert len(sub.requests) == 1


@pytest.mark.parametrize('structured', [False, True], ids=['text', 'structured'])
async def test_a_hard_cancel_stops_a_verdict_that_never_comes_and_keeps_the_answer(
    clock: ManualClock, structured: bool
) -> None:
    """Validation of the arrived answer hangs: after the policy's wait the run is stopped, the answer is the partial."""
    validating = anyio.Event()
    sub = report('Q3', 12) if structured else Script([text('FULL answer')])
    agent = Agent(sub.model, output_type=Report if structured else str)

    @agent.output_validator
    async def check(output: Report | str) -> Report | str:
        validating.set()
        await anyio.sleep_forever()
        return output

    async with SubAgentManager([SubAgentConfig(name='r', description='R', agent=agent)], clock=clock) as manager:
        task = await manager.start('r', 'Research X')
        await validating.wait()
        async with anyio.create_task_group() as group:
            group.start_soon(manager.hard_cancel, task.task_id)
            await anyio.wait_all_tasks_blocked()
            assert manager.get(task.task_id).status is TaskStatus.RUNNING  # waiting for the verdict
            clock.advance(manager.policy.final_answer_wait_seconds)
        info = manager.get(task.task_id)
    assert info.outcome == Cancelled(
        mode='hard',
        reason=CancelReason(kind='user'),
        partial=PartialResult(final_message={'title': 'Q3', 'pages': 12} if structured else 'FULL answer'),
    )


async def test_a_cancel_tool_on_a_failed_task_says_it_had_ended_first(clock: ManualClock) -> None:
    """A cancel of a task that had failed says it had ended before the cancel arrived, and how."""

    def provider_down(messages: list[ModelMessage]) -> ModelResponse:
        raise RuntimeError('the model provider failed')

    sub = Script([provider_down])
    async with SubAgentManager([SubAgentConfig(name='r', description='R', model=sub.model)], clock=clock) as manager:
        failed = await manager.run('r', 'Research X')
        parent = Script([call('soft_cancel_task', task_id=failed.task_id), text('done')])
        capability = SubAgentCapability(manager=manager)
        result = await Agent(parent.model, capabilities=[capability]).run('go')
    assert replies_of(result.all_messages()) == snapshot(
        [
            'r-0001 had already ended before the cancel arrived, so nothing was cancelled: FAILED after 0.0 ms: RuntimeError: the sub-agent run raised this error; details are in the logs'
        ]
    )
