"""Cancel against completion: whichever reaches the task first wins, and no answer that has arrived is lost.

The commit point is the moment the run has its final answer and has accepted it (pydantic-ai's output
processing is done and the run has reached its end). A cancel that reaches the task after it loses: the task
ends COMPLETED with its output. A cancel that reaches it while the final answer is being processed waits
until the run either ends (the answer wins) or goes on (the cancel wins); a hard one waits a bounded time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import pytest
from inline_snapshot import snapshot
from pydantic import BaseModel
from pydantic_ai import Agent, ModelRetry, RunContext
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import ModelMessage, ModelResponse

from subagents_cancel import (
    Cancelled,
    CancelReason,
    Completed,
    Failed,
    PartialResult,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    TaskInfo,
    TaskStatus,
)
from subagents_cancel.messages import CancelReceived, CancelRequest, RunFinished
from subagents_cancel.testing import ManualClock
from subagents_cancel.wire import WireMessage

from .helpers import (
    TASK_ID,
    Gate,
    LingersAfterTheEnd,
    Script,
    Step,
    WatchedClock,
    WrappedTransport,
    after,
    call,
    calls,
    new_transport,
    replies_of,
    researcher,
    resolve,
    text,
)
from .temporal_support import Backend

pytestmark = pytest.mark.anyio


class Report(BaseModel):
    title: str
    pages: int


def report(title: str, pages: int) -> Script:
    """A sub-agent model whose final answer is a `Report` (pydantic-ai's output tool)."""
    return Script(
        [call('final_result', title=title, pages=pages)], on_cancel=call('final_result', title='wrap-up', pages=0)
    )


Verdict = Literal['accept', 'reject', 'reject once', 'never']


@dataclass
class Checking:
    """A sub-agent whose output validator holds its final answer until `release`, then gives `verdict`.

    The answer is `'FULL answer'`, or with `structured` a `Report('Q3', 12)`; a CANCEL_REQUEST it reads gets its
    wrap-up (`'wrap-up'`, or `Report('wrap-up', 0)`). `'reject once'` rejects the first answer and accepts the next.
    """

    structured: bool
    verdict: Verdict
    validating: anyio.Event = field(default_factory=anyio.Event)
    release: anyio.Event = field(default_factory=anyio.Event)

    def __post_init__(self) -> None:
        self.sub = report('Q3', 12) if self.structured else Script([text('FULL answer')], on_cancel=text('wrap-up'))
        self.agent: Agent[None, Report | str] = Agent(self.sub.model, output_type=Report if self.structured else str)
        self.agent.output_validator(self._check)

    @property
    def answer(self) -> Report | str:
        return Report(title='Q3', pages=12) if self.structured else 'FULL answer'

    @property
    def answer_as_sent(self) -> dict[str, object] | str:
        """The answer as the model sent it: a structured answer's arguments."""
        return {'title': 'Q3', 'pages': 12} if self.structured else 'FULL answer'

    @property
    def wrap_up(self) -> Report | str:
        return Report(title='wrap-up', pages=0) if self.structured else 'wrap-up'

    def config(self) -> SubAgentConfig:
        return SubAgentConfig(name='r', description='R', agent=self.agent)

    async def _check(self, output: Report | str) -> Report | str:
        if self.verdict == 'reject once' and self.validating.is_set():
            return output
        self.validating.set()  # the run has the final answer and is processing it
        if self.verdict == 'never':
            await anyio.sleep_forever()
        await self.release.wait()
        if self.verdict != 'accept':
            raise ModelRetry('Too short.')
        return output


def answers_and_lingers() -> tuple[LingersAfterTheEnd, SubAgentConfig]:
    """Sub-agent `r`: answers 'FULL answer' at once, then holds its run's end open until `lingers` lets it go."""
    lingers = LingersAfterTheEnd()
    agent = Agent(Script([text('FULL answer')]).model, capabilities=[lingers])
    return lingers, SubAgentConfig(name='r', description='R', agent=agent)


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
    lingers, config = answers_and_lingers()
    async with SubAgentManager([config], clock=clock) as manager:
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
    lingers, config = answers_and_lingers()
    parent = Script(
        [
            call('task', description='Research X', subagent_type='r', mode='async'),
            after(lingers.reached, call('hard_cancel_task', task_id=TASK_ID)),
            call('soft_cancel_task', task_id=TASK_ID),
            call('check_task', task_id=TASK_ID),
            text('done'),
        ]
    )
    capability = SubAgentCapability(subagents=[config], clock=clock)
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
    checking = Checking(structured, 'accept')
    async with SubAgentManager([checking.config()], clock=clock) as manager:
        task = await manager.start('r', 'Research X')
        await checking.validating.wait()
        await manager.soft_cancel(task.task_id)
        checking.release.set()
        (info,) = (await manager.wait([task.task_id])).tasks
    assert len(checking.sub.requests) == 1
    assert info.status is TaskStatus.COMPLETED
    assert info.outcome == Completed(checking.answer)
    assert info.cancel is not None and info.cancel.lost and info.cancel.acknowledged_at is None


@pytest.mark.parametrize('structured', [False, True], ids=['text', 'structured'])
async def test_a_held_cancel_is_delivered_when_the_answer_is_rejected(clock: ManualClock, structured: bool) -> None:
    """Validation rejects the final answer and the run goes on: the held request goes out and wins."""
    checking = Checking(structured, 'reject once')
    async with SubAgentManager([checking.config()], clock=clock) as manager:
        task = await manager.start('r', 'Research X')
        await checking.validating.wait()
        await manager.soft_cancel(task.task_id)
        checking.release.set()
        (info,) = (await manager.wait([task.task_id])).tasks
    assert len(checking.sub.requests) == 2 and checking.sub.saw_cancel_request()
    assert info.outcome == Cancelled(
        mode='soft',
        reason=CancelReason(kind='user'),
        partial=PartialResult(final_message=checking.wrap_up, read_request=True),
    )


async def _hard_cancel_while_checked(
    manager: SubAgentManager, checking: Checking, *, wait: float = 0, received: anyio.Event | None = None
) -> TaskInfo:
    """Start the task, hard-cancel it while its answer is validated, release the verdict (or let `wait` pass).

    `received`, set when the task's receipt of the request is on the transport: the task is waiting for the verdict.
    """
    task = await manager.start('r', 'Research X')
    await checking.validating.wait()
    async with anyio.create_task_group() as group:
        group.start_soon(manager.hard_cancel, task.task_id)
        if received is not None:
            await received.wait()
        await anyio.wait_all_tasks_blocked()
        assert manager.get(task.task_id).status is TaskStatus.RUNNING  # waiting for the verdict
        checking.release.set()
        if wait:
            assert isinstance(manager.clock, ManualClock)
            manager.clock.advance(wait)
    return manager.get(task.task_id)


@pytest.mark.parametrize('structured', [False, True], ids=['text', 'structured'])
async def test_a_hard_cancel_waits_for_the_verdict_on_an_answer_that_arrived(
    clock: ManualClock, structured: bool
) -> None:
    """A hard cancel while an arrived final answer is validated waits: the answer is accepted, so it wins."""
    checking = Checking(structured, 'accept')
    async with SubAgentManager([checking.config()], clock=clock) as manager:
        info = await _hard_cancel_while_checked(manager, checking)
    assert info.outcome == Completed(checking.answer)
    assert info.cancel is not None and info.cancel.lost
    assert len(checking.sub.requests) == 1


@pytest.mark.parametrize('structured', [False, True], ids=['text', 'structured'])
async def test_a_hard_cancel_stops_the_run_when_the_arrived_answer_is_rejected(
    clock: ManualClock, structured: bool
) -> None:
    """Validation rejects the answer the hard cancel waited for: the run stops before its next model request."""
    checking = Checking(structured, 'reject')
    async with SubAgentManager([checking.config()], clock=clock) as manager:
        info = await _hard_cancel_while_checked(manager, checking)
    assert info.outcome == Cancelled(
        mode='hard', reason=CancelReason(kind='user'), partial=PartialResult(final_message=checking.answer_as_sent)
    )
    assert len(checking.sub.requests) == 1


@pytest.mark.parametrize('structured', [False, True], ids=['text', 'structured'])
async def test_a_hard_cancel_stops_a_verdict_that_never_comes_and_keeps_the_answer(
    clock: ManualClock, structured: bool
) -> None:
    """Validation of the arrived answer hangs: after the policy's wait the run is stopped, the answer is the partial."""
    checking = Checking(structured, 'never')
    received = anyio.Event()
    transport = new_transport()
    async with transport, SubAgentManager([checking.config()], clock=clock, transport=transport) as manager:
        transport.subscribe(lambda address, message: received.set() if isinstance(message, CancelReceived) else None)
        wait = manager.policy.final_answer_wait_seconds
        info = await _hard_cancel_while_checked(manager, checking, wait=wait, received=received)
    assert info.outcome == Cancelled(
        mode='hard', reason=CancelReason(kind='user'), partial=PartialResult(final_message=checking.answer_as_sent)
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


@pytest.mark.parametrize('mode', ['soft', 'hard'])
async def test_a_cancel_tool_after_the_commit_point_says_at_once_that_it_had_finished(
    clock: ManualClock, mode: str
) -> None:
    """The run has accepted its answer but has not ended: the cancel tool's reply already says it finished first."""
    lingers, config = answers_and_lingers()
    parent = Script(
        [
            call('task', description='Research X', subagent_type='r', mode='async'),
            after(lingers.reached, call(f'{mode}_cancel_task', task_id=TASK_ID)),
            _ending(lingers, call('wait_tasks', task_ids=[TASK_ID])),
            text('done'),
        ]
    )
    capability = SubAgentCapability(subagents=[config], clock=clock)
    result = await Agent(parent.model, capabilities=[capability]).run('go')
    assert replies_of(result.all_messages())[1:] == snapshot(
        [
            """\
r-0001 had finished before the cancel arrived, so nothing was cancelled: COMPLETED in 0.0 ms. Output:
FULL answer\
""",
            """\
The task has ended.

r-0001: COMPLETED in 0.0 ms (it had finished before the cancel arrived). Output:
FULL answer\
""",
        ]
    )


async def test_check_task_after_a_cancel_that_lost_says_the_task_is_ending(clock: ManualClock) -> None:
    """Between the cancel that lost and the run's end, check_task, a second cancel and the list say it finished first."""
    lingers, config = answers_and_lingers()
    parent = Script(
        [
            call('task', description='Research X', subagent_type='r', mode='async'),
            after(lingers.reached, call('soft_cancel_task', task_id=TASK_ID)),
            call('check_task', task_id=TASK_ID),
            call('soft_cancel_task', task_id=TASK_ID),
            call('list_active_tasks'),
            _ending(lingers, call('wait_tasks', task_ids=[TASK_ID])),
            text('done'),
        ]
    )
    capability = SubAgentCapability(subagents=[config], clock=clock)
    result = await Agent(parent.model, capabilities=[capability]).run('go')
    assert replies_of(result.all_messages())[2:5] == snapshot(
        [
            """\
r-0001: RUNNING for 0.0 ms.
It had finished before the soft cancel arrived (requested 0.0 ms ago, on request), so nothing was cancelled; its run is ending. Output:
FULL answer
No checkpoints yet.\
""",
            """\
r-0001 had finished before the cancel arrived, so nothing was cancelled: COMPLETED in 0.0 ms. Output:
FULL answer\
""",
            """\
1 active task:
- r-0001 RUNNING 0.0 ms (r): 'Research X'; it had finished before the soft cancel arrived, and is ending\
""",
        ]
    )


def _ending(lingers: LingersAfterTheEnd, step: Step) -> Step:
    """The parent's step, after it has let the run held open by `lingers` end."""

    async def respond(messages: list[ModelMessage]) -> ModelResponse:
        lingers.release.set()
        return await resolve(step, messages)

    return respond


async def test_a_soft_cancel_after_the_commit_point_returns_the_committed_output(clock: ManualClock) -> None:
    """`soft_cancel` in the window between the accepted answer and the run's end says at once that the cancel lost."""
    lingers, config = answers_and_lingers()
    async with SubAgentManager([config], clock=clock) as manager:
        task = await manager.start('r', 'Research X')
        await lingers.reached.wait()
        info = await manager.soft_cancel(task.task_id)
        lingers.release.set()
        (ended,) = (await manager.wait([task.task_id])).tasks
    assert (info.status, info.outcome) == (TaskStatus.RUNNING, None)
    assert info.cancel is not None and info.cancel.lost and info.cancel.lost_to == Completed('FULL answer')
    assert (ended.status, ended.outcome) == (TaskStatus.COMPLETED, Completed('FULL answer'))
    assert ended.cancel is not None and ended.cancel.lost_to == Completed('FULL answer')


class _Holds(WrappedTransport):
    """An in-process transport that holds every message of one kind until `deliver()`: its mailbox hears of it late."""

    def __init__(self, kind: type[WireMessage]) -> None:
        super().__init__()
        self._kind = kind
        self.held: list[tuple[str, WireMessage]] = []
        self.holding = anyio.Event()

    def send_nowait(self, address: str, message: WireMessage) -> bool:
        if not isinstance(message, self._kind):
            return self.inner.send_nowait(address, message)
        self.held.append((address, message))
        self.holding.set()
        return True

    def deliver(self) -> None:
        for address, message in self.held:
            self.inner.send_nowait(address, message)
        self.held.clear()


@pytest.mark.parametrize('mode', ['soft', 'hard'])
async def test_a_cancel_after_the_run_failed_loses(clock: WatchedClock, mode: str) -> None:
    """The run raised before the cancel reached it, and the owner hears of it late: FAILED, and the cancel lost."""

    def provider_down(messages: list[ModelMessage]) -> ModelResponse:
        raise RuntimeError('the model provider failed')

    bus = _Holds(RunFinished)  # every report of a run's end: the owner hears of it late
    config = SubAgentConfig(name='r', description='R', model=Script([provider_down]).model)
    async with bus, SubAgentManager([config], clock=clock, transport=bus) as manager:
        task = await manager.start('r', 'Research X')
        await bus.holding.wait()  # the run has failed; its owner does not know yet
        if mode == 'soft':
            await manager.soft_cancel(task.task_id)
            bus.deliver()
        else:

            async def deliver_once_waiting() -> None:
                await clock.wait_for_deadline(manager.policy.hard_cancel_wait_seconds)
                bus.deliver()

            async with anyio.create_task_group() as group:
                group.start_soon(deliver_once_waiting)
                await manager.hard_cancel(task.task_id)  # returns once the owner hears that the run is over
        (info,) = (await manager.wait([task.task_id])).tasks
        parent = Script(
            [call('check_task', task_id=task.task_id), call('soft_cancel_task', task_id=task.task_id), text('done')]
        )
        result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')
    failed = Failed('RuntimeError', 'the sub-agent run raised this error; details are in the logs')
    assert (info.status, info.outcome) == (TaskStatus.FAILED, failed)
    assert info.cancel is not None and info.cancel.lost and info.cancel.lost_to == failed
    assert replies_of(result.all_messages()) == snapshot(
        [
            'r-0001: FAILED after 0.0 ms (it had failed before the cancel arrived): RuntimeError: the sub-agent run raised this error; details are in the logs',
            'r-0001 had already ended before the cancel arrived, so nothing was cancelled: FAILED after 0.0 ms: RuntimeError: the sub-agent run raised this error; details are in the logs',
        ]
    )


async def test_a_cancel_that_reaches_the_host_after_the_run_left_gets_its_receipt(clock: ManualClock) -> None:
    """The run has completed and left its host, its end not yet reported: the host itself says the cancel lost."""
    bus = _Holds(RunFinished)
    receipts: list[str] = []
    before_the_end: list[str] = []
    config = SubAgentConfig(name='r', description='R', model=Script([text('FULL answer')]).model)
    async with bus, SubAgentManager([config], clock=clock, transport=bus) as manager:
        bus.subscribe(lambda address, message: receipts.append(type(message).__name__))
        task = await manager.start('r', 'Research X')
        await bus.holding.wait()  # the run is over and its runner gone; its owner does not know yet
        async with anyio.create_task_group() as group:
            group.start_soon(manager.soft_cancel, task.task_id)
            await anyio.wait_all_tasks_blocked()
            before_the_end += [name for name in receipts if name.startswith('Cancel')]
            bus.deliver()
        (info,) = (await manager.wait([task.task_id])).tasks
    assert before_the_end == ['CancelRequest', 'CancelLost']
    assert (info.status, info.outcome) == (TaskStatus.COMPLETED, Completed('FULL answer'))
    assert info.cancel is not None and info.cancel.lost and info.cancel.lost_to == Completed('FULL answer')


async def test_a_cancel_that_reaches_the_task_late_is_reported_lost_later(clock: ManualClock) -> None:
    """Over a bus that delivers later, the cancel tool says the request is on its way, and check_task says it lost."""
    lingers, config = answers_and_lingers()
    bus = _Holds(CancelRequest)  # every cancel request: the task hears of it late

    async def delivered(messages: list[ModelMessage]) -> ModelResponse:
        bus.deliver()
        await anyio.wait_all_tasks_blocked()  # the task's receipt is back (a moment later over the loopback)
        return call('check_task', task_id=TASK_ID)(messages)

    parent = Script(
        [
            call('task', description='Research X', subagent_type='r', mode='async'),
            after(lingers.reached, call('soft_cancel_task', task_id=TASK_ID)),
            delivered,
            _ending(lingers, call('wait_tasks', task_ids=[TASK_ID])),
            text('done'),
        ]
    )
    async with bus, SubAgentManager([config], clock=clock, transport=bus) as manager:
        await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')
        (info,) = manager.tasks()
    assert replies_of(parent.requests[-1])[1:] == snapshot(
        [
            'Cancellation requested for r-0001: the request is on its way, but the task has not confirmed it yet (its host may be busy or down); it is sent again until the task has it. It hands back partial results within 30s of the request or is stopped. check_task or wait_tasks will show them.',
            """\
r-0001: RUNNING for 0.0 ms.
It had finished before the soft cancel arrived (requested 0.0 ms ago, on request), so nothing was cancelled; its run is ending. Output:
FULL answer
No checkpoints yet.\
""",
            """\
The task has ended.

r-0001: COMPLETED in 0.0 ms (it had finished before the cancel arrived). Output:
FULL answer\
""",
        ]
    )
    assert (info.status, info.outcome) == (TaskStatus.COMPLETED, Completed('FULL answer'))


@dataclass
class _SlowToReportErrors(AbstractCapability[object]):
    """Holds a failing step until `release` is set: the run has raised, but the error has not left it yet."""

    failing: anyio.Event = field(default_factory=anyio.Event)
    release: anyio.Event = field(default_factory=anyio.Event)

    async def on_node_run_error(self, ctx: RunContext[object], *, node: Any, error: Exception) -> Any:
        self.failing.set()
        await self.release.wait()
        raise error


@pytest.mark.parametrize('mode', ['soft', 'hard'])
async def test_a_cancel_while_the_failure_leaves_the_run_loses(clock: ManualClock, mode: str) -> None:
    """The model raised; a cancel reaches the runner while the error is on its way out of the run: FAILED."""

    def provider_down(messages: list[ModelMessage]) -> ModelResponse:
        raise RuntimeError('the model provider failed')

    slow = _SlowToReportErrors()
    agent = Agent(Script([provider_down]).model, capabilities=[slow])
    async with SubAgentManager([SubAgentConfig(name='r', description='R', agent=agent)], clock=clock) as manager:
        task = await manager.start('r', 'Research X')
        await slow.failing.wait()
        async with anyio.create_task_group() as group:
            group.start_soon(manager.soft_cancel if mode == 'soft' else manager.hard_cancel, task.task_id)
            await anyio.wait_all_tasks_blocked()
            slow.release.set()
        (info,) = (await manager.wait([task.task_id])).tasks
    failed = Failed('RuntimeError', 'the sub-agent run raised this error; details are in the logs')
    assert (info.status, info.outcome) == (TaskStatus.FAILED, failed)
    assert info.cancel is not None and info.cancel.lost


async def test_a_hard_cancel_after_the_answer_was_accepted_keeps_it_while_other_tools_run(clock: ManualClock) -> None:
    """With `end_strategy='exhaustive'`, the answer is accepted and a slow tool still runs: the answer wins, typed."""
    notifying, never = anyio.Event(), anyio.Event()
    sub = Script([calls(('final_result', {'title': 'Q3', 'pages': 12}), ('notify', {}))])
    agent = Agent(sub.model, output_type=Report, end_strategy='exhaustive')

    @agent.tool_plain
    async def notify() -> str:
        notifying.set()
        await never.wait()
        return 'sent'

    async with SubAgentManager([SubAgentConfig(name='r', description='R', agent=agent)], clock=clock) as manager:
        task = await manager.start('r', 'Research X')
        await notifying.wait()
        info = await manager.hard_cancel(task.task_id)
    assert info.outcome == Completed(Report(title='Q3', pages=12))
    assert info.cancel is not None and info.cancel.lost
    assert len(sub.requests) == 1


async def test_a_soft_cancel_tool_while_the_answer_is_checked_says_so(clock: ManualClock) -> None:
    """The soft cancel arrives while the final answer is validated: the reply says the answer may still win."""
    checking = Checking(False, 'accept')
    async with SubAgentManager([checking.config()], clock=clock) as manager:
        task = await manager.start('r', 'Research X')
        await checking.validating.wait()
        parent = Script([call('soft_cancel_task', task_id=task.task_id), text('done')])
        result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')
        checking.release.set()
        (info,) = (await manager.wait([task.task_id])).tasks
    assert info.outcome == Completed('FULL answer')
    assert [reply.replace(task.task_id, 'r-0001') for reply in replies_of(result.all_messages())] == snapshot(
        [
            'Cancellation requested for r-0001: its final answer had already arrived and is being checked. If it is accepted, the task completes and the cancel changes nothing; if not, the task is told then and hands back partial results within 30s or is stopped. check_task or wait_tasks will show which.'
        ]
    )


@pytest.mark.parametrize('mode', ['soft', 'hard'])
async def test_a_cancel_while_the_final_answer_is_on_its_way(backend: Backend, clock: ManualClock, mode: str) -> None:
    """The cancel reaches the task while the model is producing its final answer: the same outcome on every backend.

    Soft: the task had the request before the answer came, so it ends CANCELLED, and the answer is kept as its final
    message (nothing lost, no extra request). Hard: the request in flight is stopped and no answer is made up.
    """
    answering = Gate()
    sub = Script([answering.hold(text('FULL answer'))], on_cancel=text('wrap-up'))
    async with backend.manager([researcher(sub)], clock=clock) as manager:
        task = await manager.start('researcher', 'Research X')
        await answering.reached.wait()
        if mode == 'soft':
            await manager.soft_cancel(task.task_id)  # returns once the task has the request
            answering.release.set()
            (info,) = (await manager.wait([task.task_id])).tasks
        else:
            info = await manager.hard_cancel(task.task_id)
    if mode == 'soft':  # the answer is not lost: it is the final message of the cancelled task
        assert info.outcome == Cancelled(
            mode='soft', reason=CancelReason(kind='user'), partial=PartialResult(final_message='FULL answer')
        )
        assert info.cancel is not None and not info.cancel.lost
    else:
        assert info.status is TaskStatus.CANCELLED and answering.stopped.is_set()
        assert info.outcome == Cancelled(mode='hard', reason=CancelReason(kind='user'), partial=PartialResult())
    assert len(sub.requests) == 1
