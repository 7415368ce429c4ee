"""A task reaches the owners opened inside it only through messages: the cascade, and the view of their tasks.

The nested owner here is a `SubAgentManager` that a sub-agent's tool opens on a transport of its own, so the only
way between it and the task it runs in is what the two transports carry; each test records that traffic.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import anyio
import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent

from subagents_cancel import (
    Cancelled,
    SubAgentConfig,
    SubAgentManager,
    SubAgentPolicy,
    TaskContext,
    TaskInfo,
    TaskStatus,
    current_task,
)
from subagents_cancel.messages import CancelAllReceived, CancelReceived, CancelRequest, SubtasksChanged
from subagents_cancel.task_context import NestedOwner
from subagents_cancel.testing import ManualClock
from subagents_cancel.transport import Transport
from subagents_cancel.wire import WireMessage

from .helpers import Gate, Script, WrappedTransport, call, new_transport, researcher, text

pytestmark = pytest.mark.anyio


@dataclass
class Traffic:
    """The kinds of the messages on two transports, in order, each with the transport it travelled on."""

    seen: list[str] = field(default_factory=list[str])

    def watch(self, transport: Transport, name: str, *, skip: tuple[str, ...] = ('status_changed',)) -> Transport:
        def note(address: str, message: WireMessage) -> None:
            if message.kind not in skip:
                self.seen.append(f'{name} {message.kind} {message.task_id.split("-")[0]}')

        transport.subscribe(note)
        return transport


def in_causal_order(seen: list[str], expected: list[str], chain: list[str]) -> bool:
    """Whether `seen` carries the messages of `expected` and the causal `chain` in order.

    In-process every message is delivered as it is sent, so the whole interleaving is fixed and `seen` must be
    `expected`. Over the loopback each message is delivered a moment later from the transport's own task, so
    messages of independent senders may interleave otherwise; what must hold is that every message came (the
    `subtasks_changed` notes aside: a burst may be coalesced differently) and that causes precede their effects.
    """
    if seen == expected:
        return True
    notes = ('subtasks_changed',)
    if Counter(m for m in seen if m.split()[1] not in notes) != Counter(
        m for m in expected if m.split()[1] not in notes
    ):
        return False
    rest = iter(seen)
    return all(step in rest for step in chain)


@dataclass
class Opener:
    """A sub-agent tool that opens its own manager on `transport`, starts a `leaf` task in it and waits for it."""

    leaf: SubAgentConfig
    transport: Transport
    contexts: list[TaskContext] = field(default_factory=list[TaskContext])
    owner_ids: list[str] = field(default_factory=list[str])
    waited: anyio.Event = field(default_factory=anyio.Event)
    go_on: anyio.Event = field(default_factory=anyio.Event)

    async def dig(self) -> str:
        """Start the leaf and wait for it."""
        context = current_task()
        assert context is not None
        async with SubAgentManager([self.leaf], transport=self.transport) as inner:
            self.contexts.append(context)
            self.owner_ids.append(inner.owner_id)
            started = await inner.start('leaf', 'Dig')
            (info,) = (await inner.wait([started.task_id])).tasks
            self.waited.set()
            await self.go_on.wait()
        return f'leaf {info.status.value}'


def middle(opener: Opener, script: Script) -> SubAgentConfig:
    agent = Agent(script.model, tools=[opener.dig])
    return SubAgentConfig(name='middle', description='Opens an owner of its own', agent=agent)


def leaf_config(script: Script) -> SubAgentConfig:
    return SubAgentConfig(name='leaf', description='Digs', model=script.model)


async def test_a_soft_cancel_reaches_a_nested_owner_only_through_messages(
    clock: ManualClock, transport_kind: str
) -> None:
    """The task knows its nested owner by transport and address; a soft cancel sends it CancelAll, and waits for SubtasksEnded."""
    traffic = Traffic()
    outer, inner = traffic.watch(new_transport(), 'outer'), traffic.watch(new_transport(), 'inner')
    leaf_working = Gate()
    leaf = Script(
        [call('checkpoint', completed=['source 1']), leaf_working.hold(text('all sources'))],
        on_cancel=text('leaf partial'),
    )
    opener = Opener(leaf_config(leaf), inner)
    opener.go_on.set()
    script = Script([call('dig'), text('middle done')], on_cancel=text('middle partial'))

    async with outer, inner, SubAgentManager([middle(opener, script)], clock=clock, transport=outer) as manager:
        task = await manager.start('middle', 'Survey')
        await leaf_working.reached.wait()
        (context,) = opener.contexts
        assert context.nested_owners == (NestedOwner(transport=inner, address=opener.owner_ids[0]),)
        traffic.seen.clear()
        await manager.soft_cancel(task.task_id, grace_seconds=40)
        leaf_working.release.set()
        (info,) = (await manager.wait([task.task_id])).tasks

    assert isinstance(info.outcome, Cancelled)
    assert info.outcome.partial.final_message == 'middle partial'
    assert (
        in_causal_order(traffic.seen, EXPECTED_SOFT, SOFT_CHAIN)
        if transport_kind == 'loopback'
        else (traffic.seen == EXPECTED_SOFT)
    )


SOFT_CHAIN = [
    'outer cancel_request middle',
    'inner cancel_all middle',
    'inner cancel_request leaf',
    'inner cancel_received leaf',
    'outer cancel_all_received middle',
    'outer cancel_received middle',
    'inner run_finished leaf',
    'outer subtasks_ended middle',
    'outer cancel_acknowledged middle',
    'outer run_finished middle',
    'outer settle_task middle',
    'outer hooks_finished middle',
]
EXPECTED_SOFT = [
    'outer cancel_request middle',
    'inner cancel_all middle',
    'outer subtasks_changed middle',
    'inner cancel_request leaf',
    'inner cancel_received leaf',
    'outer subtasks_changed middle',
    'outer cancel_all_received middle',
    'outer cancel_received middle',
    'inner run_finished leaf',
    'inner settle_task leaf',
    'outer subtasks_changed middle',
    'inner hooks_finished leaf',
    'outer subtasks_ended middle',
    'outer subtasks_changed middle',
    'outer subtasks_changed middle',
    'outer cancel_acknowledged middle',
    'outer run_finished middle',
    'outer settle_task middle',
    'outer hooks_finished middle',
]


async def test_a_hard_cancel_sends_cancel_all_and_the_nested_tasks_stop_first(
    clock: ManualClock, transport_kind: str
) -> None:
    """A hard cancel sends the nested owner a hard CancelAll; its task ends before the task that opened it."""
    traffic = Traffic()
    outer, inner = traffic.watch(new_transport(), 'outer'), traffic.watch(new_transport(), 'inner')
    leaf_blocked = Gate()
    opener = Opener(leaf_config(Script([leaf_blocked.block_forever()])), inner)
    script = Script([call('dig'), text('middle done')])

    async with outer, inner, SubAgentManager([middle(opener, script)], clock=clock, transport=outer) as manager:
        task = await manager.start('middle', 'Survey')
        await leaf_blocked.reached.wait()
        traffic.seen.clear()
        info = await manager.hard_cancel(task.task_id)

    assert leaf_blocked.stopped.is_set()
    assert info.status is TaskStatus.CANCELLED
    assert (
        in_causal_order(traffic.seen, EXPECTED_HARD, HARD_CHAIN)
        if transport_kind == 'loopback'
        else (traffic.seen == EXPECTED_HARD)
    )


HARD_CHAIN = [
    'outer cancel_request middle',
    'inner cancel_all middle',
    'inner cancel_request leaf',
    'inner run_finished leaf',
    'outer subtasks_ended middle',
    'outer run_finished middle',
    'outer settle_task middle',
    'outer hooks_finished middle',
]
EXPECTED_HARD = [
    'outer cancel_request middle',
    'inner cancel_all middle',
    'outer cancel_received middle',
    'outer subtasks_changed middle',
    'inner cancel_request leaf',
    'inner cancel_received leaf',
    'outer subtasks_changed middle',
    'outer subtasks_changed middle',
    'inner cancel_request leaf',
    'inner cancel_received leaf',
    'inner run_finished leaf',
    'inner settle_task leaf',
    'outer subtasks_changed middle',
    'inner hooks_finished leaf',
    'outer subtasks_ended middle',
    'outer subtasks_changed middle',
    'outer subtasks_changed middle',
    'outer run_finished middle',
    'outer settle_task middle',
    'outer hooks_finished middle',
]


class _HoldsCascadeReceipts(WrappedTransport):
    """A transport that never delivers `CancelAllReceived`: a task's soft receipt stays held for its cascade."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = anyio.Event()

    def send_nowait(self, address: str, message: WireMessage) -> bool:
        if isinstance(message, CancelAllReceived):
            self.holding.set()
            return True
        return super().send_nowait(address, message)


async def test_a_hard_cancel_is_answered_at_once_while_a_soft_receipt_waits_for_the_cascade(clock: ManualClock) -> None:
    """A hard cancel reaches a task that holds its soft receipt for the cascade: both receipts go out at once."""
    outer, inner = _HoldsCascadeReceipts(), new_transport()
    seen: list[WireMessage] = []
    outer.subscribe(lambda address, message: seen.append(message))
    leaf_working = Gate()
    opener = Opener(leaf_config(Script([leaf_working.block_forever()])), inner)
    script = Script([call('dig'), text('middle done')])
    policy = SubAgentPolicy(receipt_wait_seconds=3600)  # the soft cancel returns once its receipt came, not before
    soft_returned = anyio.Event()
    stopped: list[TaskInfo] = []

    async with (
        outer,
        inner,
        SubAgentManager([middle(opener, script)], clock=clock, transport=outer, policy=policy) as manager,
    ):
        task = await manager.start('middle', 'Survey')
        await leaf_working.reached.wait()

        async def soft_cancel() -> None:
            await manager.soft_cancel(task.task_id, grace_seconds=40)
            soft_returned.set()

        async with anyio.create_task_group() as group:
            group.start_soon(soft_cancel)
            await outer.holding.wait()  # the nested owner's receipt is held back, so the task holds its own
            stopped.append(await manager.hard_cancel(task.task_id))
            await anyio.wait_all_tasks_blocked()
            group.cancel_scope.cancel()  # a soft cancel still waiting for its receipt fails the test below

    assert soft_returned.is_set()
    assert [info.status for info in stopped] == [TaskStatus.CANCELLED]
    modes = {m.message_id: m.mode for m in seen if isinstance(m, CancelRequest) and m.task_id == task.task_id}
    middle_traffic = [
        f'{message.kind} {modes[message.correlation_id]}' if isinstance(message, CancelReceived) else message.kind
        for message in seen
        if message.task_id == task.task_id and message.kind in ('cancel_received', 'subtasks_ended', 'run_finished')
    ]
    assert middle_traffic[:3] == ['cancel_received soft', 'cancel_received hard', 'subtasks_ended']
    assert middle_traffic[-1] == 'run_finished'


async def test_a_nested_owners_task_changes_appear_in_the_enclosing_snapshot(clock: ManualClock) -> None:
    """The enclosing `get(...).subtasks` follows the nested task's checkpoint, question and end, from SubtasksChanged."""
    outer, inner = new_transport(), new_transport()
    reports: list[list[tuple[str, str, int]]] = []
    question_reported = anyio.Event()  # over the loopback the enclosing owner hears of it a moment later

    def note(address: str, message: WireMessage) -> None:
        if isinstance(message, SubtasksChanged):
            reports.append([(info.subagent, info.status.value, len(info.checkpoints)) for info in message.subtasks])
            if any(info.status is TaskStatus.WAITING_FOR_ANSWER for info in message.subtasks):
                question_reported.set()

    outer.subscribe(note)
    leaf_working = Gate()
    leaf = Script(
        [call('checkpoint', completed=['source 1']), leaf_working.hold(call('ask_parent', question='EU or US?'))]
    )
    opener = Opener(leaf_config(leaf), inner)
    script = Script([call('dig'), text('middle done')])

    async with outer, inner, SubAgentManager([middle(opener, script)], clock=clock, transport=outer) as manager:
        task = await manager.start('middle', 'Survey')
        await leaf_working.reached.wait()
        clock.advance(3)
        (working,) = manager.get(task.task_id).subtasks
        leaf_working.release.set()
        await opener.waited.wait()
        await question_reported.wait()
        await anyio.wait_all_tasks_blocked()  # and its owner has read it
        (asking,) = manager.get(task.task_id).subtasks
        opener.go_on.set()
        (info,) = (await manager.wait([task.task_id])).tasks

    assert (working.subagent, working.status, working.elapsed_seconds, working.parent_task_id) == (
        'leaf',
        TaskStatus.RUNNING,
        3.0,
        task.task_id,
    )
    assert [checkpoint.completed for checkpoint in working.checkpoints] == [('source 1',)]
    assert (asking.status, asking.question) == (TaskStatus.WAITING_FOR_ANSWER, 'EU or US?')
    assert info.subtasks == ()
    assert info.outcome is not None and info.status is TaskStatus.COMPLETED
    assert reports == snapshot(
        [
            [('leaf', 'RUNNING', 0)],
            [('leaf', 'RUNNING', 1)],
            [('leaf', 'WAITING_FOR_ANSWER', 1)],
            [('leaf', 'RUNNING', 1)],
            [],
            [],
            [],
        ]
    )


async def test_an_owner_that_is_not_nested_sends_no_subtask_reports(clock: ManualClock) -> None:
    """A top-level owner's task changes cost no SubtasksChanged message."""
    traffic = Traffic()
    transport = traffic.watch(new_transport(), 'transport')
    script = Script([call('checkpoint', completed=['source 1']), text('done')])

    async with transport, SubAgentManager([researcher(script)], clock=clock, transport=transport) as manager:
        task = await manager.start('researcher', 'Dig')
        (info,) = (await manager.wait([task.task_id])).tasks

    assert info.status is TaskStatus.COMPLETED
    assert traffic.seen == snapshot(
        [
            'transport start_task researcher',
            'transport checkpoint_recorded researcher',
            'transport run_finished researcher',
            'transport settle_task researcher',
            'transport hooks_finished researcher',
        ]
    )
