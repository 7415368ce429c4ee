"""A cancel message the transport loses, delays or duplicates is still enforced, and a copy of one changes nothing.

The owner sends a cancel request again, with the same `message_id`, until the task's receipt comes (every
`cancel_resend_seconds` on the owner's clock); it sends an escalation again until the task ends. The task answers a
copy with the receipt it gave the first one, and changes nothing else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import pytest
from dirty_equals import IsStr
from inline_snapshot import snapshot
from pydantic_ai import Agent

from subagents_cancel import (
    Cancelled,
    CancelReason,
    PartialResult,
    SubAgentCapability,
    SubAgentManager,
    SubAgentPolicy,
    TaskStatus,
)
from subagents_cancel.messages import (
    CancelAcknowledged,
    CancelEscalated,
    CancelHeld,
    CancelLost,
    CancelReceived,
    CancelRequest,
)
from subagents_cancel.wire import WireMessage

from .helpers import (
    TASK_ID,
    Gate,
    Script,
    WatchedClock,
    WrappedTransport,
    after,
    call,
    replies_of,
    researcher,
    text,
    user_prompts,
)

pytestmark = pytest.mark.anyio

_T = TypeVar('_T')

WRAP_UP = 'Completed: EU\nNot started: US'
RESEND = 1.0
POLICY = SubAgentPolicy(cancel_resend_seconds=RESEND)

_CANCEL_MESSAGES = (CancelRequest, CancelEscalated, CancelReceived, CancelHeld, CancelLost, CancelAcknowledged)


class _Lossy(WrappedTransport):
    """Loses the first `lose` messages of the kinds given; `refuse` says so to the sender, else it claims delivery.

    `sent` lists every cancel message handed to it (receipts included), whether it was delivered or lost.
    """

    def __init__(self, *kinds: type[WireMessage], lose: int = 1, refuse: bool = True) -> None:
        super().__init__()
        self._kinds, self._lose, self._refuse = kinds, lose, refuse
        self.lost: list[tuple[str, WireMessage]] = []
        self.sent: list[WireMessage] = []
        self.losing = anyio.Event()

    def send_nowait(self, address: str, message: WireMessage) -> bool:
        if isinstance(message, _CANCEL_MESSAGES):
            self.sent.append(message)
        if isinstance(message, self._kinds) and len(self.lost) < self._lose:
            self.lost.append((address, message))
            self.losing.set()
            return not self._refuse
        return self.inner.send_nowait(address, message)

    def kinds(self) -> Counter[str]:
        return Counter(type(message).__name__ for message in self.sent)


class _Late(_Lossy):
    """Holds the first cancel request until `deliver()`: it arrives after the owner has sent it again."""

    def __init__(self) -> None:
        super().__init__(CancelRequest, refuse=False)

    def deliver(self) -> None:
        for address, message in self.lost:
            self.inner.send_nowait(address, message)


class _Doubles(_Lossy):
    """Delivers every cancel message, receipts included, twice (`sent` lists both copies)."""

    def send_nowait(self, address: str, message: WireMessage) -> bool:
        delivered = super().send_nowait(address, message)
        if isinstance(message, _CANCEL_MESSAGES):
            self.sent.append(message)
            self.inner.send_nowait(address, message)
        return delivered


def wraps_up(gate: Gate) -> Script:
    """A sub-agent whose model request is in flight at `gate`, and that wraps up when it reads a cancel request."""
    return Script([gate.hold(call('checkpoint', completed=['EU'], not_started=['US']))], on_cancel=text(WRAP_UP))


WRAPPED_UP = Cancelled(
    mode='soft',
    reason=CancelReason(kind='user'),
    partial=PartialResult(
        completed=('EU',), not_started=('US',), final_message=WRAP_UP, checkpoints=1, read_request=True
    ),
)


async def resend_once_waiting(clock: WatchedClock, transport: _Lossy) -> None:
    """Once the first cancel message is lost and everything waits, move the owner's clock to its re-send."""
    await transport.losing.wait()
    await anyio.wait_all_tasks_blocked()
    clock.advance(RESEND)


async def during(helper: Coroutine[Any, Any, None], work: Awaitable[_T]) -> _T:
    """Await `work` while `helper` runs beside it (it moves the clock); return what `work` returns."""
    results: list[_T] = []
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: helper)
        results.append(await work)
    return results[0]


@pytest.mark.parametrize('refuse', [True, False], ids=['refused', 'dropped'])
async def test_a_lost_soft_request_is_sent_again_and_read_once(clock: WatchedClock, refuse: bool) -> None:
    """The first soft request is lost (the send says so, or not): its copy reaches the task, which wraps up once."""
    working = Gate()
    sub = wraps_up(working)
    transport = _Lossy(CancelRequest, refuse=refuse)
    async with (
        transport,
        SubAgentManager([researcher(sub)], clock=clock, transport=transport, policy=POLICY) as manager,
    ):
        task = await manager.start('researcher', 'Research X')
        await working.reached.wait()
        resent = resend_once_waiting(clock, transport)
        outcome = await during(resent, manager.soft_cancel_outcome(task.task_id, reason=CancelReason(kind='user')))
        working.release.set()
        (info,) = (await manager.wait([task.task_id])).tasks

    ((_, lost),) = transport.lost
    assert outcome.result == 'requested' and outcome.info.cancel is not None
    assert isinstance(lost, CancelRequest) and lost.message_id == outcome.info.cancel.request_id
    assert transport.kinds() == snapshot({'CancelRequest': 2, 'CancelReceived': 1, 'CancelAcknowledged': 1})
    assert {m.message_id for m in transport.sent if isinstance(m, CancelRequest)} == {lost.message_id}
    assert (info.status, info.outcome) == (TaskStatus.CANCELLED, WRAPPED_UP)
    assert manager.metrics().of('researcher').cancelled == 1


async def test_a_late_request_and_its_copy_both_arrive_and_the_copy_changes_nothing(clock: WatchedClock) -> None:
    """The first request arrives after its copy: the task answers it with the same receipt and reads one request."""
    working = Gate()
    sub = wraps_up(working)
    transport = _Late()
    async with (
        transport,
        SubAgentManager([researcher(sub)], clock=clock, transport=transport, policy=POLICY) as manager,
    ):
        task = await manager.start('researcher', 'Research X')
        await working.reached.wait()
        async with anyio.create_task_group() as group:
            group.start_soon(resend_once_waiting, clock, transport)
            await manager.soft_cancel(task.task_id, reason=CancelReason(kind='user'))
        transport.deliver()
        await anyio.wait_all_tasks_blocked()
        working.release.set()
        (info,) = (await manager.wait([task.task_id])).tasks

    receipts = [message for message in transport.sent if isinstance(message, CancelReceived)]
    assert transport.kinds() == snapshot({'CancelRequest': 2, 'CancelReceived': 2, 'CancelAcknowledged': 1})
    assert receipts[0] == receipts[1] and info.cancel is not None
    assert receipts[0].correlation_id == info.cancel.request_id
    assert (info.status, info.outcome) == (TaskStatus.CANCELLED, WRAPPED_UP)
    assert [prompt for prompt in user_prompts(sub.requests[-1]) if 'CANCEL_REQUEST' in prompt] == [IsStr()]
    assert manager.metrics().of('researcher').cancelled == 1


async def test_every_cancel_message_twice_is_harmless(clock: WatchedClock) -> None:
    """Each request, receipt and acknowledgement arrives twice: one wrap-up, one partial result, one cancel counted."""
    working = Gate()
    sub = wraps_up(working)
    transport = _Doubles()
    async with (
        transport,
        SubAgentManager([researcher(sub)], clock=clock, transport=transport, policy=POLICY) as manager,
    ):
        task = await manager.start('researcher', 'Research X')
        await working.reached.wait()
        outcome = await manager.soft_cancel_outcome(task.task_id, reason=CancelReason(kind='user'))
        working.release.set()
        (info,) = (await manager.wait([task.task_id])).tasks

    assert outcome.result == 'requested'
    # Sent once each and delivered twice; the task gave the duplicate request the same receipt (twice, too).
    assert transport.kinds() == snapshot({'CancelRequest': 2, 'CancelReceived': 4, 'CancelAcknowledged': 2})
    assert (info.status, info.outcome) == (TaskStatus.CANCELLED, WRAPPED_UP)
    assert [prompt for prompt in user_prompts(sub.requests[-1]) if 'CANCEL_REQUEST' in prompt] == [IsStr()]
    assert manager.metrics().of('researcher').cancelled == 1


async def test_an_escalation_twice_stops_the_task_once(clock: WatchedClock) -> None:
    """The grace window runs out and its escalation arrives twice: the task is stopped once, escalated."""
    stuck = Gate()
    config = researcher(Script([stuck.block_forever()]), grace_seconds=10)
    transport = _Doubles()
    async with transport, SubAgentManager([config], clock=clock, transport=transport, policy=POLICY) as manager:
        task = await manager.start('researcher', 'Research X')
        await stuck.reached.wait()
        await manager.soft_cancel(task.task_id)
        clock.advance(10)
        (info,) = (await manager.wait([task.task_id])).tasks

    assert transport.kinds()['CancelEscalated'] == 2
    assert info.outcome == snapshot(
        Cancelled(mode='hard', reason=CancelReason(), partial=PartialResult(), escalated=True)
    )
    assert manager.metrics().of('researcher').cancelled == 1


@pytest.mark.parametrize('refuse', [True, False], ids=['refused', 'dropped'])
async def test_every_request_lost_still_ends_cancelled_when_the_grace_runs_out(
    clock: WatchedClock, refuse: bool
) -> None:
    """Every soft request and the first escalation are lost: the escalation is sent again and stops the task."""
    stuck = Gate()
    config = researcher(Script([stuck.block_forever()]), grace_seconds=10)
    transport = _Lossy(CancelRequest, CancelEscalated, lose=11, refuse=refuse)
    async with transport, SubAgentManager([config], clock=clock, transport=transport, policy=POLICY) as manager:
        task = await manager.start('researcher', 'Research X')
        await stuck.reached.wait()
        manager.cancel_all('soft', reason=CancelReason(kind='user'))
        for _ in range(10):  # one copy of the request every second, each lost
            clock.advance(RESEND)
            await anyio.wait_all_tasks_blocked()
        escalated = manager.get(task.task_id)
        clock.advance(RESEND)  # the escalation's copy is the twelfth cancel message: delivered
        (info,) = (await manager.wait([task.task_id])).tasks

    assert transport.kinds() == snapshot({'CancelRequest': 10, 'CancelEscalated': 2})
    assert (escalated.status, escalated.cancel and escalated.cancel.escalated_at) == (TaskStatus.RUNNING, 10.0)
    assert stuck.stopped.is_set() and info.ended_at == 11.0
    assert info.outcome == snapshot(
        Cancelled(mode='hard', reason=CancelReason(kind='user'), partial=PartialResult(), escalated=True)
    )


@asynccontextmanager
async def stuck_losing_a_request(clock: WatchedClock) -> AsyncGenerator[tuple[SubAgentManager, str, Gate, _Lossy]]:
    """A task whose model request never returns, on a transport that loses the first cancel request sent to it."""
    stuck = Gate()
    config = researcher(Script([stuck.block_forever()]))
    transport = _Lossy(CancelRequest)
    async with transport, SubAgentManager([config], clock=clock, transport=transport, policy=POLICY) as manager:
        task = await manager.start('researcher', 'Research X')
        await stuck.reached.wait()
        yield manager, task.task_id, stuck, transport


async def test_a_lost_hard_request_is_sent_again_and_stops_the_task(clock: WatchedClock) -> None:
    """The hard request is lost once: the owner sends it again while it waits, and the task stops in time."""
    async with stuck_losing_a_request(clock) as (manager, task_id, stuck, transport):

        async def resend_once_stopping() -> None:
            await clock.wait_for_deadline(manager.policy.hard_cancel_wait_seconds)
            clock.advance(RESEND)

        outcome = await during(resend_once_stopping(), manager.hard_cancel_outcome(task_id))

    assert outcome.result == 'stopped' and stuck.stopped.is_set()
    assert transport.kinds() == snapshot({'CancelRequest': 2, 'CancelReceived': 1})
    assert outcome.info.unresponsive_since is None and manager.orphans() == ()


async def test_a_lost_hard_request_is_sent_again_after_its_caller_stopped_waiting(clock: WatchedClock) -> None:
    """The hard request is lost and the caller of `hard_cancel` gives up at once: the owner still sends it again."""
    async with stuck_losing_a_request(clock) as (manager, task_id, stuck, transport):
        async with anyio.create_task_group() as group:
            group.start_soon(manager.hard_cancel, task_id)
            await transport.losing.wait()
            group.cancel_scope.cancel()
        await anyio.wait_all_tasks_blocked()
        clock.advance(RESEND)
        await anyio.wait_all_tasks_blocked()
        assert transport.kinds()['CancelRequest'] == 2  # the copy went out without anyone waiting for the task
        (info,) = (await manager.wait([task_id])).tasks

    assert transport.kinds() == snapshot({'CancelRequest': 2, 'CancelReceived': 1})
    assert (info.status, info.unresponsive_since) == (TaskStatus.CANCELLED, None) and stuck.stopped.is_set()


async def test_a_task_no_cancel_message_reaches_is_unresponsive_and_teardown_ends(clock: WatchedClock) -> None:
    """No cancel message arrives: the task is unresponsive `hard_cancel_wait_seconds` after its escalation, an orphan."""
    stuck = Gate()
    config = researcher(Script([stuck.block_forever()]), grace_seconds=10)
    transport = _Lossy(CancelRequest, CancelEscalated, lose=1000)
    manager = SubAgentManager([config], clock=clock, transport=transport, policy=POLICY)

    async def give_up_tearing_down() -> None:
        await clock.wait_for_deadline(15.0 + manager.policy.teardown_seconds)
        clock.advance(manager.policy.teardown_seconds)

    async with transport, manager:
        task = await manager.start('researcher', 'Research X')
        await stuck.reached.wait()
        manager.cancel_all('soft', reason=CancelReason(kind='user'))
        for _ in range(10 + 5):  # the grace window, then `hard_cancel_wait_seconds`
            clock.advance(RESEND)
            await anyio.wait_all_tasks_blocked()
        info = manager.get(task.task_id)
        await during(give_up_tearing_down(), manager.aclose())

    assert transport.kinds() == snapshot(Counter({'CancelRequest': 11, 'CancelEscalated': 5}))
    assert (info.status, info.unresponsive_since) == (TaskStatus.RUNNING, 15.0)
    assert [orphan.task_id for orphan in manager.orphans()] == [task.task_id]


async def test_the_tools_tell_a_task_whose_first_request_was_lost(clock: WatchedClock) -> None:
    """Through the parent's tools: the first soft request is lost, its copy arrives, and the task wraps up."""
    working = Gate()
    sub = wraps_up(working)
    transport = _Lossy(CancelRequest)
    parent = Script(
        [
            call('task', description='Research X', subagent_type='researcher', mode='async'),
            after(working.reached, call('soft_cancel_task', task_id=TASK_ID)),
            call('wait_tasks', task_ids=[TASK_ID]),
            text('done'),
        ]
    )
    policy = SubAgentPolicy(cancel_resend_seconds=RESEND, receipt_wait_seconds=30)
    async with (
        transport,
        SubAgentManager([researcher(sub)], clock=clock, transport=transport, policy=policy) as manager,
    ):

        async def wrap_up_once_told() -> None:
            await resend_once_waiting(clock, transport)
            await anyio.wait_all_tasks_blocked()
            working.release.set()

        async with anyio.create_task_group() as group:
            group.start_soon(wrap_up_once_told)
            await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')

    assert transport.kinds() == snapshot({'CancelRequest': 2, 'CancelReceived': 1, 'CancelAcknowledged': 1})
    assert replies_of(parent.requests[-1])[1:] == snapshot(
        [
            'Cancellation requested for researcher-0001: it has been told, and it hands back partial results within 30s or is stopped. check_task or wait_tasks will show them.',
            """\
The task has ended.

Task cancelled: researcher-0001 (soft, on request; it read the request after 1.0s; it ended 1.0s after the request). Partial results:
Completed: EU
In progress: nothing
Not started: US
Findings: nothing
(from 1 checkpoint)
Its final message:
Completed: EU
Not started: US\
""",
        ]
    )


async def test_the_soft_cancel_tool_says_when_the_task_has_not_confirmed_the_request(clock: WatchedClock) -> None:
    """No receipt within `receipt_wait_seconds` (a worker that is down): the reply says the request is on its way."""
    working = Gate()
    sub = Script([working.hold(text('the full report'))], on_cancel=text(WRAP_UP))
    transport = _Lossy(CancelRequest, lose=1_000, refuse=False)
    parent = Script(
        [
            call('task', description='Research X', subagent_type='researcher', mode='async'),
            after(working.reached, call('soft_cancel_task', task_id=TASK_ID)),
            text('done'),
        ]
    )
    policy = SubAgentPolicy(receipt_wait_seconds=0.01)
    async with (
        transport,
        SubAgentManager([researcher(sub)], clock=clock, transport=transport, policy=policy) as manager,
    ):
        await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')
        (task,) = manager.tasks()
        outcome = await manager.soft_cancel_outcome(task.task_id, reason=CancelReason(kind='user'))
        working.release.set()  # the request never reached it: it answers in full
        (info,) = (await manager.wait([task.task_id])).tasks

    assert outcome.result == 'already_requested'
    assert replies_of(parent.requests[-1])[1:] == snapshot(
        [
            'Cancellation requested for researcher-0001: the request is on its way, but the task has not confirmed it yet (its host may be busy or down); it is sent again until the task has it. It hands back partial results within 30s of the request or is stopped. check_task or wait_tasks will show them.'
        ]
    )
    assert info.status is TaskStatus.COMPLETED and info.cancel is not None and info.cancel.lost
