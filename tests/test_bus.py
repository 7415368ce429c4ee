"""Every request to a task and every fact from it travels on the bus, with ids that tie replies to requests."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import pytest
from inline_snapshot import snapshot
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from subagents_cancel import (
    CancelReason,
    CancelTimeout,
    Completed,
    SubAgentConfig,
    SubAgentManager,
    SubAgentPolicy,
    TaskStatus,
)
from subagents_cancel.bus import InProcessBus, MailboxHandler
from subagents_cancel.messages import (
    Answer,
    BusMessage,
    CancelAcknowledged,
    CancelRequest,
    Question,
)
from subagents_cancel.testing import ManualClock

from .helpers import Gate, Script, call, text

pytestmark = pytest.mark.anyio


@dataclass
class Tap:
    """Records what crosses the bus."""

    seen: list[tuple[str, BusMessage]] = field(default_factory=list[tuple[str, BusMessage]])

    def __call__(self, address: str, message: BusMessage) -> None:
        self.seen.append((address, message))

    def kinds(self, owner: str) -> list[str]:
        return [
            f'{"owner" if address == owner else "task"} <- {type(message).__name__}' for address, message in self.seen
        ]

    def first(self, kind: type[BusMessage]) -> BusMessage:
        return next(message for _, message in self.seen if isinstance(message, kind))


async def test_a_question_and_a_soft_cancel_on_the_bus(clock: ManualClock) -> None:
    """The whole conversation between owner and task, in order; answers and acknowledgements name what they answer."""
    in_phase_2 = Gate()
    sub = Script(
        [call('ask_parent', question='EU or US?'), in_phase_2.hold(call('checkpoint', completed=['EU']))],
        on_cancel=text('Completed: EU'),
    )
    bus, tap = InProcessBus(), Tap()
    bus.subscribe(tap)
    config = SubAgentConfig(name='researcher', description='Researches', model=sub.model)
    async with SubAgentManager([config], clock=clock, bus=bus) as manager:
        info = await manager.run('researcher', 'Research X')
        await manager.answer(info.task_id, 'EU')
        await in_phase_2.reached.wait()
        await manager.soft_cancel(info.task_id)
        in_phase_2.release.set()
        await manager.wait([info.task_id])

    assert tap.kinds(manager.owner_id) == snapshot(
        [
            'owner <- StatusChanged',
            'owner <- Question',
            'owner <- StatusChanged',
            'owner <- StatusChanged',
            'task <- Answer',
            'owner <- StatusChanged',
            'task <- CancelRequest',
            'owner <- CancelReceived',
            'owner <- CheckpointRecorded',
            'owner <- CancelAcknowledged',
            'owner <- RunFinished',
            'owner <- StatusChanged',
        ]
    )
    question, answer = tap.first(Question), tap.first(Answer)
    assert isinstance(answer, Answer) and answer.correlation_id == question.message_id
    request, ack = tap.first(CancelRequest), tap.first(CancelAcknowledged)
    assert isinstance(ack, CancelAcknowledged) and ack.correlation_id == request.message_id


class _LosesCancelRequests(InProcessBus):
    """A transport that loses every cancel request, to show there is no other way for one to reach a task."""

    def send(self, address: str, message: BusMessage) -> bool:
        if isinstance(message, CancelRequest):
            return False
        return super().send(address, message)


async def test_without_the_bus_a_task_is_never_told(clock: ManualClock) -> None:
    """If the bus loses the requests, neither a soft nor a hard cancel reaches the task: there is no side channel."""
    working = Gate()
    sub = Script([working.hold(text('finished regardless'))], on_cancel=text('never'))
    config = SubAgentConfig(name='researcher', description='Researches', model=sub.model)
    async with SubAgentManager([config], clock=clock, bus=_LosesCancelRequests()) as manager:
        task = await manager.start('researcher', 'Research X')
        await working.reached.wait()
        await manager.soft_cancel(task.task_id)

        async def give_up_waiting() -> None:
            await anyio.wait_all_tasks_blocked()
            clock.advance(5.0)

        async with anyio.create_task_group() as group:
            group.start_soon(give_up_waiting)
            with pytest.raises(CancelTimeout):
                await manager.hard_cancel(task.task_id)
        working.release.set()
        (info,) = (await manager.wait([task.task_id])).tasks
    assert not sub.saw_cancel_request()
    # No request reached the run, so its output was committed first: the cancel lost.
    assert info.outcome == Completed('finished regardless') and info.cancel is not None and info.cancel.lost


async def test_two_owners_on_one_bus_never_share_a_task_id(clock: ManualClock) -> None:
    """A thousand tasks each on two managers sharing a bus: every start succeeds, and each owner's figures are its own."""
    config = SubAgentConfig(name='researcher', description='Researches', model=FunctionModel(_answer_at_once))
    bus = InProcessBus()
    per_owner, completed = 1000, 10
    policy = SubAgentPolicy(max_running=1)  # the tasks wait for the slot: cancelling them costs no run
    async with (
        SubAgentManager([config], clock=clock, bus=bus, policy=policy) as first,
        SubAgentManager([config], clock=clock, bus=bus, policy=policy) as second,
    ):
        await first.wait([(await first.start('researcher', 'Research X')).task_id for _ in range(completed)])
        for number in range(per_owner):  # nothing runs until the loop yields: every task's mailbox is open at once
            if number >= completed:
                await first.start('researcher', 'Research X')
            await second.start('researcher', 'Research Y')
        for manager in (first, second):
            manager.cancel_all('hard', reason=CancelReason())
            await manager.wait()

        first_ids, second_ids = {info.task_id for info in first.tasks()}, {info.task_id for info in second.tasks()}
        assert (len(first_ids), len(second_ids), first_ids & second_ids) == (per_owner, per_owner, set())
        first_figures, second_figures = first.metrics().of('researcher'), second.metrics().of('researcher')
        assert (first_figures.completed, first_figures.cancelled) == (completed, per_owner - completed)
        assert (second_figures.completed, second_figures.cancelled) == (0, per_owner)
        assert [info.status for info in second.tasks()] == [TaskStatus.CANCELLED] * per_owner


async def _answer_at_once(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart('done')])


class _Crowded(InProcessBus):
    """A bus where the next `refuse_next` addresses asked for are already held by owners this test cannot see."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[str] = []
        self.refuse_next = 0

    def open_mailbox(self, address: str, handler: MailboxHandler) -> bool:
        if self.refuse_next:
            self.refuse_next -= 1
            self.refused.append(address)
            return False
        return super().open_mailbox(address, handler)


async def test_an_address_another_owner_holds_is_never_shared(clock: ManualClock) -> None:
    """The owner and its task each get an address nobody on the bus has; the refused ones leave no record."""
    config = SubAgentConfig(name='researcher', description='Researches', model=FunctionModel(_answer_at_once))
    bus = _Crowded()
    bus.refuse_next = 1
    async with SubAgentManager([config], clock=clock, bus=bus) as manager:
        bus.refuse_next = 2
        task = await manager.start('researcher', 'Research X')
        await manager.wait([task.task_id])

    owner_refused, *task_refused = bus.refused
    assert manager.owner_id != owner_refused and owner_refused.startswith('owner-')
    assert task.task_id not in task_refused and len(task_refused) == 2
    assert [(info.task_id, info.status) for info in manager.tasks()] == [(task.task_id, TaskStatus.COMPLETED)]
