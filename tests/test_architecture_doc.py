"""The architecture page says what the code does: its message table and its soft cancels, checked against the code.

The page (`docs/concepts/architecture.md`) lists every message a transport carries and follows a soft cancel
message by message, once read and wrapped up, once escalated. These tests read the page's tables and hold them
against `WIRE_ADAPTER` and against the traffic of real soft cancels, so the page fails the suite the day it goes
stale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse

from subagents_cancel import Cancelled, SubAgentCapability, SubAgentManager
from subagents_cancel.messages import MESSAGE_ADAPTER, RunFinished, RunStopped
from subagents_cancel.wire import WIRE_ADAPTER, WireMessage

from .helpers import TASK_ID, Gate, Script, WatchedClock, call, new_transport, replies_of, researcher, text

pytestmark = pytest.mark.anyio

PAGE = Path(__file__).parent.parent / 'docs' / 'concepts' / 'architecture.md'
DESTINATIONS = {'owner → host': 'host', 'host → owner': 'owner', 'owner announcement': 'owner', 'cascade': None}
"""Where a message of each direction on the page goes: the host's address, or the owner's (a cascade: neither)."""


def section(title: str) -> str:
    """The text of the page's `## title` section."""
    match = re.search(rf'^## {re.escape(title)}\n(.*?)(?=^## |\Z)', PAGE.read_text(), re.S | re.M)
    assert match is not None, f'the page has no section {title!r}'
    return match.group(1)


def rows(title: str) -> list[list[str]]:
    """The body rows of the table in the section `title`, as stripped cells."""
    lines = [line for line in section(title).splitlines() if line.startswith('|')]
    return [[cell.strip() for cell in line.strip('|').split('|')] for line in lines[2:]]


def message_table() -> dict[str, tuple[str, str]]:
    """The page's message table: each kind's message name and direction."""
    table: dict[str, tuple[str, str]] = {}
    for name, kind, direction, _ in rows('The messages'):
        assert kind.strip('`') not in table, f'{kind} has two rows'
        table[kind.strip('`')] = (name.strip('`'), direction)
    return table


def wire_kinds() -> dict[str, str]:
    """Every kind `WIRE_ADAPTER` tells apart, with the name of its message."""
    mapping: dict[str, str] = WIRE_ADAPTER.json_schema()['discriminator']['mapping']
    return {kind: ref.rsplit('/', 1)[1] for kind, ref in mapping.items()}


def test_the_message_table_has_one_row_per_kind_a_transport_carries() -> None:
    """Every kind in `WIRE_ADAPTER`'s union has a row under its message's name, with a known direction; no other row."""
    table = message_table()
    assert {kind: name for kind, (name, _) in table.items()} == wire_kinds()
    assert {direction for _, direction in table.values()} == set(DESTINATIONS)
    # The task messages are a part of what a transport carries: the three that start and settle a task are the rest.
    assert set(wire_kinds()) - set(MESSAGE_ADAPTER.json_schema()['discriminator']['mapping']) == snapshot(
        {'hooks_finished', 'settle_task', 'start_task'}
    )


def walkthrough(title: str) -> list[tuple[str, str]]:
    """The messages of the page's sequence `title`, in order: each one's name and where it goes (`owner` or `host`)."""
    steps: list[tuple[str, str]] = []
    for _, _, on_the_transport, _ in rows(title):
        if on_the_transport:
            found = re.fullmatch(r'`(\w+)` → (owner|host)', on_the_transport)
            assert found is not None, f'not a message and its destination: {on_the_transport!r}'
            steps.append((found.group(1), found.group(2)))
    return steps


@dataclass
class Tap:
    """Records what crosses a transport, with its address."""

    seen: list[tuple[str, WireMessage]] = field(default_factory=list[tuple[str, WireMessage]])

    def __call__(self, address: str, message: WireMessage) -> None:
        self.seen.append((address, message))

    def traffic(self, owner_id: str) -> list[tuple[str, str]]:
        """Each message's name and where it went: `owner`, `host` (the owner's own task host), or its address."""
        places = {owner_id: 'owner', f'{owner_id}/tasks': 'host'}
        return [(type(message).__name__, places.get(address, address)) for address, message in self.seen]

    def agrees_with_the_table(self, owner_id: str) -> bool:
        """Whether every message went where the page's message table says messages of its direction go."""
        table = message_table()
        where = [DESTINATIONS[table[message.kind][1]] for _, message in self.seen]
        return where == [place for _, place in self.traffic(owner_id)]


async def test_a_soft_cancel_puts_on_the_transport_what_the_page_says(clock: WatchedClock) -> None:
    """A parent's `soft_cancel_task` sends exactly the page's messages, in its order, to its addresses."""
    in_phase_2 = Gate()
    sub = Script(
        [
            call('checkpoint', completed=['market size'], not_started=['pricing'], findings=['EUR 18bn']),
            in_phase_2.hold(call('checkpoint', completed=['market size', 'competitors'], not_started=['pricing'])),
        ],
        on_cancel=text('Completed: market size, competitors. Not started: pricing.'),
    )
    transport, tap = new_transport(), Tap()
    transport.subscribe(tap)
    cancelled_from: list[int] = []

    async def soft_cancel_while_phase_2_runs(messages: list[ModelMessage]) -> ModelResponse:
        await in_phase_2.reached.wait()
        cancelled_from.append(len(tap.seen))  # the sub-agent's request is in flight: nothing else is on its way
        return call('soft_cancel_task', task_id=TASK_ID)(messages)

    def let_phase_2_finish_and_wait(messages: list[ModelMessage]) -> ModelResponse:
        in_phase_2.release.set()
        return call('wait_tasks', task_ids=[TASK_ID])(messages)

    parent = Script(
        [
            call('task', description='Research the e-bike market', subagent_type='researcher', mode='async'),
            soft_cancel_while_phase_2_runs,
            let_phase_2_finish_and_wait,
            text('done'),
        ]
    )
    async with transport, SubAgentManager([researcher(sub)], clock=clock, transport=transport) as manager:
        result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run(
            'Research, then stop'
        )

    assert tap.traffic(manager.owner_id)[cancelled_from[0] :] == walkthrough('One soft cancel, end to end')
    assert tap.agrees_with_the_table(manager.owner_id)

    (info,) = manager.tasks()
    assert isinstance(info.outcome, Cancelled) and info.cancel is not None and info.cancel.acknowledged_at is not None
    assert (info.outcome.partial.completed, info.outcome.partial.final_message) == snapshot(
        (('market size', 'competitors'), 'Completed: market size, competitors. Not started: pricing.')
    )
    (finished,) = [message for _, message in tap.seen if isinstance(message, RunFinished)]
    assert isinstance(finished.ending, RunStopped)
    assert replies_of(result.all_messages()) == snapshot(
        [
            'Task started with ID: researcher-0001 (researcher); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.',
            'Cancellation requested for researcher-0001: it has been told, and it hands back partial results within 30s or is stopped. check_task or wait_tasks will show them.',
            """\
The task has ended.

Task cancelled: researcher-0001 (soft, on request; it read the request after 0.0 ms; it ended 0.0 ms after the request). Partial results:
Completed: market size; competitors
In progress: nothing
Not started: pricing
Findings: EUR 18bn
(from 2 checkpoints)
Its final message:
Completed: market size, competitors. Not started: pricing.\
""",
        ]
    )


async def test_an_escalation_puts_on_the_transport_what_the_page_says(clock: WatchedClock) -> None:
    """A soft cancel whose grace window runs out sends exactly the page's messages, in its order, to its addresses."""
    stuck = Gate()
    sub = Script([call('checkpoint', completed=['market size'], not_started=['pricing']), stuck.block_forever()])
    transport, tap = new_transport(), Tap()
    transport.subscribe(tap)
    async with (
        transport,
        SubAgentManager([researcher(sub, grace_seconds=5.0)], clock=clock, transport=transport) as manager,
    ):
        task = await manager.start('researcher', 'Research the e-bike market')
        await stuck.reached.wait()
        cancelled_from = len(tap.seen)
        await manager.soft_cancel(task.task_id)
        await clock.wait_for_deadline(5.0)
        clock.advance(5.0)
        (info,) = (await manager.wait([task.task_id])).tasks

    assert tap.traffic(manager.owner_id)[cancelled_from:] == walkthrough('When the grace window runs out')
    assert tap.agrees_with_the_table(manager.owner_id)
    assert isinstance(info.outcome, Cancelled) and info.outcome.escalated and stuck.stopped.is_set()
    assert (info.outcome.partial.completed, info.outcome.partial.final_message) == (('market size',), None)
