"""Every request to a task and every fact from it travels on the transport, with ids that tie replies to requests."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import pytest
from inline_snapshot import snapshot
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from subagents_cancel import (
    Cancelled,
    CancelReason,
    CancelTimeout,
    Completed,
    PartialResult,
    SubAgentConfig,
    SubAgentManager,
    SubAgentPolicy,
    TaskStatus,
)
from subagents_cancel.messages import (
    Answer,
    CancelAcknowledged,
    CancelRequest,
    Question,
)
from subagents_cancel.testing import ManualClock
from subagents_cancel.transport import Mailbox
from subagents_cancel.wire import StartTask, WireMessage

from .helpers import Gate, Script, WrappedTransport, call, new_transport, text

pytestmark = pytest.mark.anyio


@dataclass
class Tap:
    """Records what crosses the transport."""

    seen: list[tuple[str, WireMessage]] = field(default_factory=list[tuple[str, WireMessage]])

    def __call__(self, address: str, message: WireMessage) -> None:
        self.seen.append((address, message))

    def kinds(self, owner: str) -> list[str]:
        return [
            f'{"owner" if address == owner else "task"} <- {type(message).__name__}' for address, message in self.seen
        ]

    def first(self, kind: type[WireMessage]) -> WireMessage:
        return next(message for _, message in self.seen if isinstance(message, kind))


async def test_a_question_and_a_soft_cancel_on_the_transport(clock: ManualClock) -> None:
    """The whole conversation between owner and task, in order; answers and acknowledgements name what they answer."""
    in_phase_2 = Gate()
    sub = Script(
        [call('ask_parent', question='EU or US?'), in_phase_2.hold(call('checkpoint', completed=['EU']))],
        on_cancel=text('Completed: EU'),
    )
    transport, tap = new_transport(), Tap()
    transport.subscribe(tap)
    config = SubAgentConfig(name='researcher', description='Researches', model=sub.model)
    async with transport, SubAgentManager([config], clock=clock, transport=transport) as manager:
        info = await manager.run('researcher', 'Research X')
        await manager.answer(info.task_id, 'EU')
        await in_phase_2.reached.wait()
        await manager.soft_cancel(info.task_id)
        in_phase_2.release.set()
        await manager.wait([info.task_id])

    assert tap.kinds(manager.owner_id) == snapshot(
        [
            'owner <- StatusChanged',
            'task <- StartTask',
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
            'task <- SettleTask',
            'owner <- StatusChanged',
            'owner <- HooksFinished',
        ]
    )
    question, answer = tap.first(Question), tap.first(Answer)
    assert isinstance(answer, Answer) and answer.correlation_id == question.message_id
    request, ack = tap.first(CancelRequest), tap.first(CancelAcknowledged)
    assert isinstance(ack, CancelAcknowledged) and ack.correlation_id == request.message_id


class _LosesCancelRequests(WrappedTransport):
    """A transport that loses every cancel request, to show there is no other way for one to reach a task."""

    def send_nowait(self, address: str, message: WireMessage) -> bool:
        if isinstance(message, CancelRequest):
            return False
        return super().send_nowait(address, message)


async def test_without_the_transport_a_task_is_never_told(clock: ManualClock) -> None:
    """If the transport loses the requests, neither a soft nor a hard cancel reaches the task: there is no side channel."""
    working = Gate()
    sub = Script([working.hold(text('finished regardless'))], on_cancel=text('never'))
    config = SubAgentConfig(name='researcher', description='Researches', model=sub.model)
    transport = _LosesCancelRequests()
    async with transport, SubAgentManager([config], clock=clock, transport=transport) as manager:
        task = await manager.start('researcher', 'Research X')
        await working.reached.wait()

        async def give_up_waiting() -> None:
            await anyio.wait_all_tasks_blocked()
            clock.advance(5.0)

        # With no receipt coming, the soft cancel waits for one `receipt_wait_seconds`; the hard one waits until
        # `hard_cancel_wait_seconds` pass on the clock.
        async with anyio.create_task_group() as group:
            group.start_soon(give_up_waiting)
            await manager.soft_cancel(task.task_id)
        async with anyio.create_task_group() as group:
            group.start_soon(give_up_waiting)
            with pytest.raises(CancelTimeout):
                await manager.hard_cancel(task.task_id)
        working.release.set()
        (info,) = (await manager.wait([task.task_id])).tasks
    assert not sub.saw_cancel_request()
    # No request reached the run, so its output was committed first: the cancel lost.
    assert info.outcome == Completed('finished regardless') and info.cancel is not None and info.cancel.lost


class _LosesSoftRequests(WrappedTransport):
    """A transport that loses every soft cancel request: the task never hears of its grace window."""

    def send_nowait(self, address: str, message: WireMessage) -> bool:
        if isinstance(message, CancelRequest) and message.mode == 'soft':
            return False
        return super().send_nowait(address, message)


async def test_the_grace_window_ends_on_the_owner_even_if_the_task_never_heard_the_request(clock: ManualClock) -> None:
    """The soft request is lost: the owner's own timer still escalates on time, and its escalation stops the task."""
    stuck = Gate()
    sub = Script([stuck.block_forever()])
    config = SubAgentConfig(name='researcher', description='Researches', model=sub.model, grace_seconds=10)
    transport = _LosesSoftRequests()
    async with transport, SubAgentManager([config], clock=clock, transport=transport) as manager:
        task = await manager.start('researcher', 'Research X')
        await stuck.reached.wait()
        manager.cancel_all('soft', reason=CancelReason(kind='user'))  # returns at once: no receipt is awaited
        clock.advance(9.9)
        await anyio.wait_all_tasks_blocked()
        waiting = manager.get(task.task_id).cancel
        clock.advance(0.1)
        await anyio.wait_all_tasks_blocked()
        escalated = manager.get(task.task_id).cancel
        assert escalated is not None and (escalated.mode, escalated.escalated_at) == ('hard', 10.0)
        (info,) = (await manager.wait([task.task_id])).tasks

    assert waiting is not None and (waiting.mode, waiting.escalated_at) == ('soft', None)
    assert stuck.stopped.is_set() and not sub.saw_cancel_request()
    assert info.outcome == snapshot(
        Cancelled(mode='hard', reason=CancelReason(), partial=PartialResult(), escalated=True)
    )


async def test_two_owners_on_one_transport_never_share_a_task_id(clock: ManualClock) -> None:
    """A thousand tasks each on two managers sharing a transport: every start succeeds, and each owner's figures are its own."""
    config = SubAgentConfig(name='researcher', description='Researches', model=FunctionModel(_answer_at_once))
    transport = new_transport()
    per_owner, completed = 1000, 10
    policy = SubAgentPolicy(max_running=1)  # the tasks wait for the slot: cancelling them costs no run
    async with (
        transport,
        SubAgentManager([config], clock=clock, transport=transport, policy=policy) as first,
        SubAgentManager([config], clock=clock, transport=transport, policy=policy) as second,
    ):
        await first.wait([(await first.start('researcher', 'Research X')).task_id for _ in range(completed)])
        for number in range(per_owner):  # nothing runs until the loop yields: every task's mailbox is open at once
            if number >= completed:
                await first.start('researcher', 'Research X')
            await second.start('researcher', 'Research Y')
        for manager in (first, second):  # both before either waits: no task of either gets to run first
            manager.cancel_all('hard', reason=CancelReason())
        for manager in (first, second):
            await manager.wait()

        first_ids, second_ids = {info.task_id for info in first.tasks()}, {info.task_id for info in second.tasks()}
        assert (len(first_ids), len(second_ids), first_ids & second_ids) == (per_owner, per_owner, set())
        first_figures, second_figures = first.metrics().of('researcher'), second.metrics().of('researcher')
        assert (first_figures.completed, first_figures.cancelled) == (completed, per_owner - completed)
        assert (second_figures.completed, second_figures.cancelled) == (0, per_owner)
        assert [info.status for info in second.tasks()] == [TaskStatus.CANCELLED] * per_owner


async def _answer_at_once(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart('done')])


class _Crowded(WrappedTransport):
    """A transport where the next `refuse_next` owner addresses asked for are held by owners this test cannot see."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[str] = []
        self.refuse_next = 0

    async def open(self, address: str) -> Mailbox | None:
        # A manager's own task host opens `<owner>/tasks`; only owner mailboxes are refused here.
        if self.refuse_next and '/' not in address:
            self.refuse_next -= 1
            self.refused.append(address)
            return None
        return await super().open(address)


async def test_an_address_another_owner_holds_is_never_shared(clock: ManualClock) -> None:
    """The owner gets an address nobody on the transport has, a task opens none; the refused ones leave no record."""
    config = SubAgentConfig(name='researcher', description='Researches', model=FunctionModel(_answer_at_once))
    transport = _Crowded()
    transport.refuse_next = 1
    async with transport, SubAgentManager([config], clock=clock, transport=transport) as manager:
        transport.refuse_next = 2
        task = await manager.start('researcher', 'Research X')
        await manager.wait([task.task_id])

    owner_refused, *task_refused = transport.refused
    assert manager.owner_id != owner_refused and owner_refused.startswith('owner-')
    # A task has no mailbox of its own: its owner's task host routes its messages by task id.
    assert (task_refused, transport.refuse_next) == ([], 2)
    assert [(info.task_id, info.status) for info in manager.tasks()] == [(task.task_id, TaskStatus.COMPLETED)]


@pytest.mark.parametrize('taken', [('host',), ('owner', 'host')])
async def test_a_taken_task_host_address_is_never_shared(clock: ManualClock, taken: tuple[str, ...]) -> None:
    """Another mailbox holds the address of the manager's own task host (and its owner id): it picks free ones and works."""
    config = SubAgentConfig(name='researcher', description='Researches', model=FunctionModel(_answer_at_once))
    transport, tap = new_transport(), Tap()
    manager = SubAgentManager([config], clock=clock, transport=transport)
    wanted = manager.owner_id
    squatted = [{'owner': wanted, 'host': f'{wanted}/tasks'}[name] for name in taken]
    async with transport:
        transport.subscribe(tap)
        for address in squatted:
            assert await transport.open(address) is not None  # as an owner with the same id, and its host, would
        async with manager:
            task = await manager.start('researcher', 'Research X')
            (info,) = (await manager.wait([task.task_id])).tasks

    assert info.outcome == Completed('done')
    assert (manager.owner_id == wanted) == ('owner' not in taken)
    (host,) = {address for address, message in tap.seen if isinstance(message, StartTask)}
    assert host.startswith(f'{manager.owner_id}/tasks')
    assert {address for address, _ in tap.seen}.isdisjoint(squatted)


async def test_a_manager_whose_host_addresses_are_all_taken_refuses_to_open(clock: ManualClock) -> None:
    """Every address its own host may take is held: entering raises, and the owner leaves nothing open or running."""
    config = SubAgentConfig(name='researcher', description='Researches', model=FunctionModel(_answer_at_once))
    transport = new_transport()
    manager = SubAgentManager([config], clock=clock, transport=transport)
    async with transport:
        for address in [f'{manager.owner_id}/tasks', *(f'{manager.owner_id}/tasks-{n}' for n in range(2, 65))]:
            assert await transport.open(address) is not None
        with pytest.raises(
            RuntimeError, match=rf'^Every task host address under {manager.owner_id!r} is taken on this transport\.$'
        ):
            async with manager:
                pass
        assert await transport.open(manager.owner_id) is not None  # the owner released its address
