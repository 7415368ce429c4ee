"""Two clocks: an owner and the task host that runs its tasks, each on a clock of its own.

Across processes the two sides' clocks share no origin (a workflow's time is wall-clock based, an owner's
`time.monotonic()`). Here the host's `ManualClock` starts 10,000 s ahead of the owner's, and the two move apart: each
time the owner's clock moves by a second, the host's moves by a hundred. What the owner records about a task is its
own clock's reading when it reads the report; what the host waits for ends by the host's clock.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import anyio
import pytest
from inline_snapshot import snapshot
from logfire.testing import CaptureLogfire
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse

from subagents_cancel import (
    Cancelled,
    Completed,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    SubAgentPolicy,
    TaskInfo,
)
from subagents_cancel.task_host import TaskHost
from subagents_cancel.testing import ManualClock

from .helpers import TASK_ID, Gate, Script, Step, after, call, new_transport, replies_of, researcher, resolve, text

pytestmark = pytest.mark.anyio

HOST_AHEAD = 10_000.0
"""Where the host's clock starts, when the owner's starts at 0."""
HOST_PACE = 100
"""How many seconds the host's clock moves for each second the owner's moves."""


@dataclass
class Sides:
    """An owner and a task host on one transport, and their two clocks."""

    manager: SubAgentManager
    owner_clock: ManualClock
    host_clock: ManualClock

    def advance(self, seconds: float) -> None:
        """Move the owner's clock by `seconds`, and the host's by `HOST_PACE` times as much."""
        self.owner_clock.advance(seconds)
        self.host_clock.advance(seconds * HOST_PACE)

    def moving(self, seconds: float, step: Step) -> Step:
        """Move both clocks (see `advance`), then take `step`."""

        async def respond(messages: list[ModelMessage]) -> ModelResponse:
            self.advance(seconds)
            return await resolve(step, messages)

        return respond

    def parent(self, *steps: Step) -> Agent[None, str]:
        """A parent agent whose model takes `steps`, with the owner's tools."""
        return Agent(Script(list(steps)).model, capabilities=[SubAgentCapability(manager=self.manager)])


@asynccontextmanager
async def two_clocks(*configs: SubAgentConfig, policy: SubAgentPolicy | None = None) -> AsyncGenerator[Sides]:
    """An owner at clock time 0, and a host running its tasks at `HOST_AHEAD`, linked by this test's transport."""
    owner_clock, host_clock = ManualClock(), ManualClock(HOST_AHEAD)
    async with new_transport() as transport, TaskHost(configs, transport=transport, clock=host_clock) as host:
        async with SubAgentManager(
            configs, transport=transport, host=host.address, clock=owner_clock, policy=policy
        ) as manager:
            yield Sides(manager, owner_clock, host_clock)


def release(gate: Gate, step: Step) -> Step:
    """Let the sub-agent's request held at `gate` return, then take `step`."""

    async def respond(messages: list[ModelMessage]) -> ModelResponse:
        gate.release.set()
        return await resolve(step, messages)

    return respond


def span_events(capfire: CaptureLogfire) -> list[tuple[str, object]]:
    """The events of the one task's span (recorded on the host), each with its attributes."""
    (span,) = [span for span in capfire.exporter.exported_spans_as_dict() if span['name'] == 'subagent task {task_id}']
    return [(event['name'], event.get('attributes', {})) for event in cast(list[dict[str, Any]], span['events'])]


def times(info: TaskInfo) -> dict[str, float | None]:
    """The times the owner recorded about a task, by name."""
    cancel = info.cancel
    return {
        'created_at': info.created_at,
        'started_at': info.started_at,
        'requested_at': cancel and cancel.requested_at,
        'held_at': cancel and cancel.held_at,
        'acknowledged_at': cancel and cancel.acknowledged_at,
        'escalated_at': cancel and cancel.escalated_at,
        'ended_at': info.ended_at,
        'elapsed_seconds': info.elapsed_seconds,
    }


async def test_a_soft_cancel_is_timed_on_the_owners_clock(capfire: CaptureLogfire) -> None:
    """Start, request, acknowledgement and end are the owner's readings as it read each report; its metrics follow.

    The task's span, on the host, times the acknowledgement from the request's arrival on the host's clock.
    """
    in_phase_2, wrapping_up = Gate(), Gate()
    checkpoint = call('checkpoint', completed=['phase 1'], in_progress=['phase 2'])
    sub = Script([checkpoint, in_phase_2.hold(checkpoint)], on_cancel=wrapping_up.hold(text('partial')))
    async with two_clocks(researcher(sub)) as sides:
        task = await sides.manager.start('researcher', 'Research X')
        await in_phase_2.reached.wait()
        sides.advance(5)
        await sides.manager.soft_cancel(task.task_id)
        sides.advance(2)
        in_phase_2.release.set()  # the next request carries the cancel request: the task acknowledges it
        await wrapping_up.reached.wait()
        await anyio.wait_all_tasks_blocked()  # the owner has read the acknowledgement
        sides.advance(3)
        wrapping_up.release.set()
        (info,) = (await sides.manager.wait([task.task_id])).tasks
        (run,) = sides.manager.metrics().cancelled_runs

    assert isinstance(info.outcome, Cancelled)
    assert times(info) == snapshot(
        {
            'created_at': 0.0,
            'started_at': 0.0,
            'requested_at': 5.0,
            'held_at': None,
            'acknowledged_at': 7.0,
            'escalated_at': None,
            'ended_at': 10.0,
            'elapsed_seconds': 10.0,
        }
    )
    assert (run.acknowledged_after_seconds, run.stopped_after_seconds) == snapshot((2.0, 5.0))
    assert span_events(capfire) == snapshot(
        [
            ('cancel requested', {'mode': 'soft', 'reason': 'user', 'grace_seconds': 30.0}),
            ('cancel acknowledged', {'after_seconds': 200.0}),
            ('task terminated', {'after_seconds': 5.0}),
        ]
    )


async def test_an_escalation_is_timed_on_the_owners_clock(capfire: CaptureLogfire) -> None:
    """The grace window runs out on the owner's clock, whatever the host's says; the span times it on the host's."""
    stuck = Gate()
    async with two_clocks(researcher(Script([stuck.block_forever()]), grace_seconds=10)) as sides:
        task = await sides.manager.start('researcher', 'Research X')
        await stuck.reached.wait()
        sides.advance(1)
        await sides.manager.soft_cancel(task.task_id)
        sides.advance(9.5)
        await anyio.wait_all_tasks_blocked()
        stopped_early = stuck.stopped.is_set()
        sides.advance(0.5)
        (info,) = (await sides.manager.wait([task.task_id])).tasks
        (run,) = sides.manager.metrics().cancelled_runs

    assert not stopped_early
    assert times(info) == snapshot(
        {
            'created_at': 0.0,
            'started_at': 0.0,
            'requested_at': 1.0,
            'held_at': None,
            'acknowledged_at': None,
            'escalated_at': 11.0,
            'ended_at': 11.0,
            'elapsed_seconds': 11.0,
        }
    )
    assert (run.escalated, run.stopped_after_seconds) == snapshot((True, 10.0))
    assert span_events(capfire) == snapshot(
        [
            ('cancel requested', {'mode': 'soft', 'reason': 'user', 'grace_seconds': 10.0}),
            ('cancel escalated', {'after_seconds': 1000.0}),
            ('task terminated', {'after_seconds': 10.0}),
        ]
    )


async def test_a_question_and_its_answer_are_timed_on_the_owners_clock() -> None:
    """The question is the owner's when it reads it; the tools' replies give ages and durations on the owner's clock."""
    asking, answered = Gate(), Gate()
    sub = Script([asking.hold(call('ask_parent', question='Which market?')), answered.hold(text('EU: 3 sources'))])
    async with two_clocks(researcher(sub)) as sides:
        result = await sides.parent(
            call('task', description='Research X', subagent_type='researcher', mode='async'),
            after(asking.reached, sides.moving(3, release(asking, call('wait_tasks', task_ids=[TASK_ID])))),
            sides.moving(4, call('check_task', task_id=TASK_ID)),
            call('answer_subagent', task_id=TASK_ID, answer='the EU'),
            after(answered.reached, sides.moving(2, release(answered, call('wait_tasks', task_ids=[TASK_ID])))),
            text('done'),
        ).run('go')
        (info,) = sides.manager.tasks()

    assert info.outcome == Completed('EU: 3 sources')
    assert (info.started_at, info.ended_at, info.elapsed_seconds) == snapshot((0.0, 9.0, 9.0))
    assert replies_of(result.all_messages())[1:] == snapshot(
        [
            """\
Waiting for your answer: researcher-0001.

researcher-0001: WAITING_FOR_ANSWER for 3.0s.
It asks: Which market?
Reply with answer_subagent(task_id='researcher-0001', answer=...); it goes on in the background, and wait_tasks waits for its result.
No checkpoints yet.\
""",
            """\
researcher-0001: WAITING_FOR_ANSWER for 7.0s.
It asks: Which market?
Reply with answer_subagent(task_id='researcher-0001', answer=...); it goes on in the background, and wait_tasks waits for its result.
No checkpoints yet.\
""",
            'Answer delivered to researcher-0001; it continues its work.',
            """\
The task has ended.

researcher-0001: COMPLETED in 9.0s. Output:
EU: 3 sources\
""",
        ]
    )


async def test_a_task_that_waited_for_a_slot_starts_when_it_gets_one() -> None:
    """`started_at` is the owner's reading as it sends the task's start: for a task that waited, when its slot freed."""
    first = Gate()
    sub = Script([first.hold(text('first done')), text('second done')])
    async with two_clocks(researcher(sub), policy=SubAgentPolicy(max_running=1)) as sides:
        running = await sides.manager.start('researcher', 'Research X')
        waiting = await sides.manager.start('researcher', 'Research Y')
        await first.reached.wait()
        sides.advance(4)
        first.release.set()
        infos = (await sides.manager.wait([running.task_id, waiting.task_id])).tasks

    assert [(info.outcome, info.created_at, info.started_at, info.ended_at) for info in infos] == snapshot(
        [(Completed('first done'), 0.0, 0.0, 4.0), (Completed('second done'), 0.0, 4.0, 4.0)]
    )


class Checking:
    """A sub-agent whose output validator holds its final answer until `release`, then accepts it."""

    def __init__(self) -> None:
        self.validating, self.release = anyio.Event(), anyio.Event()
        agent = Agent(Script([text('FULL answer')], on_cancel=text('wrap-up')).model)
        agent.output_validator(self._check)
        self.config = SubAgentConfig(name='researcher', description='Researches a topic', agent=agent)

    async def _check(self, output: str) -> str:
        self.validating.set()
        await self.release.wait()
        return output


async def test_a_held_cancel_is_timed_on_the_owners_clock() -> None:
    """A soft cancel held while the final answer is checked is held at the owner's reading when it read the receipt."""
    checking = Checking()
    async with two_clocks(checking.config) as sides:
        task = await sides.manager.start('researcher', 'Research X')
        await checking.validating.wait()
        sides.advance(6)
        await sides.manager.soft_cancel(task.task_id)
        sides.advance(1)
        checking.release.set()
        (info,) = (await sides.manager.wait([task.task_id])).tasks

    assert info.outcome == Completed('FULL answer')
    assert times(info) == snapshot(
        {
            'created_at': 0.0,
            'started_at': 0.0,
            'requested_at': 6.0,
            'held_at': 6.0,
            'acknowledged_at': None,
            'escalated_at': None,
            'ended_at': 7.0,
            'elapsed_seconds': 7.0,
        }
    )


async def test_the_cascade_waits_on_the_hosts_clock_and_subtasks_age_on_the_owners() -> None:
    """The run hears of the cancel once its sub-agents' window ends on the host's clock; a subtask ages on the owner's."""
    inner_working = Gate()
    inner = Script([inner_working.block_forever()])
    outer = Script(
        [call('task', subagent_type='inner', description='Dig', mode='async'), call('ask_parent', question='Go on?')],
        on_cancel=text('outer partial'),
    )
    inner_config = SubAgentConfig(name='inner', description='Digs', model=inner.model)
    nested_clock = ManualClock(50_000)  # the owner opened inside the task has a clock of its own, never moved
    nested = SubAgentCapability(subagents=[inner_config], clock=nested_clock)
    outer_config = SubAgentConfig(name='outer', description='Surveys', agent=Agent(outer.model, capabilities=[nested]))
    async with two_clocks(outer_config) as sides:
        task = await sides.manager.start('outer', 'Research the market')
        await inner_working.reached.wait()
        await sides.manager.wait([task.task_id])  # until it asks
        sides.advance(4)
        (subtask,) = sides.manager.get(task.task_id).subtasks
        assert subtask.elapsed_seconds == 4.0

        await sides.manager.soft_cancel(task.task_id, grace_seconds=30)  # its sub-agents get 15 s (the host's)
        sides.host_clock.advance(14)
        await anyio.wait_all_tasks_blocked()
        told_early = outer.saw_cancel_request()
        sides.host_clock.advance(1)
        (info,) = (await sides.manager.wait([task.task_id])).tasks

    assert not told_early
    assert inner_working.stopped.is_set()
    assert isinstance(info.outcome, Cancelled)
    assert info.outcome.partial.final_message == 'outer partial'
    assert times(info) == snapshot(
        {
            'created_at': 0.0,
            'started_at': 0.0,
            'requested_at': 4.0,
            'held_at': None,
            'acknowledged_at': 4.0,
            'escalated_at': None,
            'ended_at': 4.0,
            'elapsed_seconds': 4.0,
        }
    )
