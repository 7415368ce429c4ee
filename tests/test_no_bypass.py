"""No bypass: an owner and its tasks linked by nothing but a loopback transport.

The task host is built from sub-agent configs of its own: the same factory as the owner's, called a second time,
so they have the same names and sub-agents but are other Python objects. The owner's sub-agent models refuse every
request, so a task run with anything the owner holds would fail. A parent agent drives the owner through the
public tools, and every message the two sides exchange is watched on the transport and must survive JSON.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import typing
from collections.abc import AsyncGenerator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import ModuleType

import pytest
from inline_snapshot import snapshot
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo, FunctionModel

from subagents_cancel import (
    Cancelled,
    CancelReason,
    Completed,
    PartialResult,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    TaskContext,
    TaskInfo,
    TaskStatus,
    current_task,
)
from subagents_cancel import transport as transport_module
from subagents_cancel.task_host import TaskHost
from subagents_cancel.testing import ManualClock
from subagents_cancel.transport import LoopbackTransport
from subagents_cancel.wire import WIRE_ADAPTER, StartTask, WireMessage

from .helpers import TASK_ID, Gate, Script, Step, after, call, replies_of, resolve, text, user_prompts

pytestmark = pytest.mark.anyio

PARTIAL_ANSWER = 'Completed: phase 1\nIn progress: phase 2'
WIRE_KINDS = typing.get_args(WireMessage)


class Report(BaseModel):
    """The analyst's structured output."""

    title: str
    sources: int


@dataclass
class Side:
    """What one side's sub-agents run on, and what their cleanup hooks were given."""

    researcher: FunctionModel
    analyst: FunctionModel
    cleaned: list[TaskInfo] = field(default_factory=list[TaskInfo])


def team(side: Side) -> list[SubAgentConfig]:
    """The sub-agents, `researcher` (text) and `analyst` (a `Report`): called once per side, for objects of its own."""

    async def cleanup(info: TaskInfo) -> None:
        side.cleaned.append(info)

    return [
        SubAgentConfig(name='researcher', description='Researches a topic', model=side.researcher, cleanup=cleanup),
        SubAgentConfig(
            name='analyst',
            description='Analyses the findings',
            agent=Agent(side.analyst, output_type=Report),
            cleanup=cleanup,
        ),
    ]


@dataclass
class Refusals:
    """The owner's sub-agent models: every request fails, and is noted, for the owner must never run a task."""

    requests: list[str] = field(default_factory=list[str])

    def model(self, name: str) -> FunctionModel:
        async def refuse(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            self.requests.append(name)
            raise AssertionError(f'the owner ran its own {name}: a bypass of the transport')

        return FunctionModel(refuse)


@dataclass
class Link:
    """An owner and a task host on one loopback transport, and everything the transport carried."""

    transport: LoopbackTransport
    host: TaskHost
    manager: SubAgentManager
    owner: Side
    owner_configs: list[SubAgentConfig]
    task_side: Side
    host_configs: list[SubAgentConfig]
    wire: list[tuple[str, WireMessage]]

    def parent(self, *steps: Step) -> Agent[None, str]:
        """A parent agent whose model takes `steps`, with the owner's tools."""
        return Agent(Script(list(steps)).model, capabilities=[SubAgentCapability(manager=self.manager)])

    def wire_kinds(self) -> list[str]:
        """The kinds of message the transport carried, each checked: a wire message, to one side, that survives JSON."""
        for address, message in self.wire:
            assert address in (self.host.address, self.manager.owner_id)
            assert isinstance(message, WIRE_KINDS)
            assert WIRE_ADAPTER.validate_json(WIRE_ADAPTER.dump_json(message)) == message
        return sorted({message.kind for _, message in self.wire})


@asynccontextmanager
async def linked(researcher: Script, analyst: Script | None = None) -> AsyncGenerator[Link]:
    """An owner, and a host running `researcher` and `analyst` for it, linked only by a loopback transport."""
    refusals = Refusals()
    owner = Side(refusals.model('researcher'), refusals.model('analyst'))
    task_side = Side(researcher.model, (analyst or Script([])).model)
    owner_configs, host_configs = team(owner), team(task_side)
    wire: list[tuple[str, WireMessage]] = []
    async with (
        LoopbackTransport() as transport,
        TaskHost(host_configs, transport=transport, clock=ManualClock()) as host,
    ):
        transport.subscribe(lambda address, message: wire.append((address, message)))
        async with SubAgentManager(
            owner_configs, transport=transport, host=host.address, clock=ManualClock()
        ) as manager:
            yield Link(transport, host, manager, owner, owner_configs, task_side, host_configs, wire)
    assert (refusals.requests, owner.cleaned) == ([], [])  # the owner's own sub-agents never ran, nor their hooks


def release(gate: Gate, step: Step) -> Step:
    """Let the sub-agent's request held at `gate` return, then take `step`."""

    async def respond(messages: list[ModelMessage]) -> ModelResponse:
        gate.release.set()
        return await resolve(step, messages)

    return respond


async def test_a_soft_cancel_brings_the_partial_result_back_over_the_wire() -> None:
    """The request reaches the host's run, which wraps up; its checkpoints and answer reach the owner as the partial."""
    in_phase_2 = Gate()
    checkpoint = call('checkpoint', completed=['phase 1'], in_progress=['phase 2'], findings=['A'])
    sub = Script([checkpoint, in_phase_2.hold(checkpoint)], on_cancel=text(PARTIAL_ANSWER))
    async with linked(sub) as link:
        result = await link.parent(
            call('task', description='Research X', subagent_type='researcher', mode='async'),
            after(in_phase_2.reached, call('soft_cancel_task', task_id=TASK_ID)),
            release(in_phase_2, call('wait_tasks', task_ids=[TASK_ID])),
            text('done'),
        ).run('go')
        (task_id,) = SubAgentCapability.started_tasks(result.all_messages())
        info = link.manager.get(task_id)

    partial = PartialResult(
        completed=('phase 1',),
        in_progress=('phase 2',),
        findings=('A',),
        final_message=PARTIAL_ANSWER,
        checkpoints=2,
        read_request=True,
    )
    assert info.outcome == Cancelled(mode='soft', reason=CancelReason(kind='user'), partial=partial)
    assert [cleaned.outcome for cleaned in link.task_side.cleaned] == [info.outcome]
    assert replies_of(result.all_messages()) == snapshot(
        [
            'Task started with ID: researcher-0001 (researcher); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.',
            'Cancellation requested for researcher-0001: it has been told, and it hands back partial results within 30s or is stopped. check_task or wait_tasks will show them.',
            """\
The task has ended.

Task cancelled: researcher-0001 (soft, on request; it read the request after 0.0 ms; it ended 0.0 ms after the request). Partial results:
Completed: phase 1
In progress: phase 2
Not started: nothing
Findings: A
(from 2 checkpoints)
Its final message:
Completed: phase 1
In progress: phase 2\
""",
        ]
    )
    assert link.wire_kinds() == snapshot(
        [
            'cancel_acknowledged',
            'cancel_received',
            'cancel_request',
            'checkpoint_recorded',
            'hooks_finished',
            'run_finished',
            'settle_task',
            'start_task',
            'status_changed',
        ]
    )


async def test_a_hard_cancel_stops_the_run_on_the_host() -> None:
    """hard_cancel_task stops the host's model request in flight; the cleanup hook runs there, with the outcome."""
    working = Gate()
    sub = Script([call('checkpoint', completed=['intro']), working.block_forever()])
    async with linked(sub) as link:
        result = await link.parent(
            call('task', description='Research X', subagent_type='researcher', mode='async'),
            after(working.reached, call('hard_cancel_task', task_id=TASK_ID)),
            text('done'),
        ).run('go')

    assert working.stopped.is_set()
    (cleaned,) = link.task_side.cleaned
    assert (cleaned.status, cleaned.outcome) == snapshot(
        (
            TaskStatus.CANCELLED,
            Cancelled(mode='hard', reason=CancelReason(), partial=PartialResult(completed=('intro',), checkpoints=1)),
        )
    )
    assert replies_of(result.all_messages()) == snapshot(
        [
            'Task started with ID: researcher-0001 (researcher); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.',
            """\
Task cancelled: researcher-0001 stopped 0.0 ms after the hard cancel. Partial results:
Completed: intro
In progress: nothing
Not started: nothing
Findings: nothing
(from 1 checkpoint)\
""",
        ]
    )
    assert link.wire_kinds() == snapshot(
        [
            'cancel_received',
            'cancel_request',
            'checkpoint_recorded',
            'hooks_finished',
            'run_finished',
            'settle_task',
            'start_task',
            'status_changed',
        ]
    )


async def test_a_question_and_its_answer_travel_over_the_wire() -> None:
    """ask_parent on the host reaches the owner's parent as a question; answer_subagent's answer reaches the run."""
    sub = Script([call('ask_parent', question='Which market?'), text('EU: 3 sources')])
    async with linked(sub) as link:
        result = await link.parent(
            call('task', description='Research X', subagent_type='researcher', mode='async'),
            call('wait_tasks', task_ids=[TASK_ID]),
            call('answer_subagent', task_id=TASK_ID, answer='the EU'),
            call('wait_tasks', task_ids=[TASK_ID]),
            text('done'),
        ).run('go')

    assert replies_of(result.all_messages()) == snapshot(
        [
            'Task started with ID: researcher-0001 (researcher); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.',
            """\
Waiting for your answer: researcher-0001.

researcher-0001: WAITING_FOR_ANSWER for 0.0 ms.
It asks: Which market?
Reply with answer_subagent(task_id='researcher-0001', answer=...); it goes on in the background, and wait_tasks waits for its result.
No checkpoints yet.\
""",
            'Answer delivered to researcher-0001; it continues its work.',
            """\
The task has ended.

researcher-0001: COMPLETED in 0.0 ms. Output:
EU: 3 sources\
""",
        ]
    )
    assert replies_of(sub.requests[-1]) == snapshot(['Your parent answered: the EU'])
    assert link.wire_kinds() == snapshot(
        ['answer', 'hooks_finished', 'question', 'run_finished', 'settle_task', 'start_task', 'status_changed']
    )


async def test_a_structured_output_arrives_as_its_model_type() -> None:
    """The analyst's `Report` crosses as JSON and is a `Report` again in the owner's record and in the tool's reply."""
    analyst = Script([call('final_result', title='E-bikes', sources=3)])
    async with linked(Script([]), analyst) as link:
        result = await link.parent(
            call('task', description='Analyse X', subagent_type='analyst', mode='sync'), text('done')
        ).run('go')
        (task_id,) = SubAgentCapability.started_tasks(result.all_messages())
        info = link.manager.get(task_id)

    assert isinstance(info.outcome, Completed)
    assert type(info.outcome.output) is Report
    assert info.outcome == Completed(Report(title='E-bikes', sources=3))
    assert replies_of(result.all_messages()) == snapshot(
        [
            """\
analyst-0001: COMPLETED in 0.0 ms. Output:
{"title":"E-bikes","sources":3}\
"""
        ]
    )
    assert link.wire_kinds() == snapshot(
        ['hooks_finished', 'run_finished', 'settle_task', 'start_task', 'status_changed']
    )


async def test_the_cleanup_hook_runs_on_the_host_with_the_restored_outcome() -> None:
    """A soft-cancelled analyst wraps up with a `Report`: the host's hook gets the owner's outcome, the `Report` typed."""
    in_flight = Gate()
    wrap_up = call('final_result', title='E-bikes (partial)', sources=1)
    checkpoint = call('checkpoint', completed=['sources'], in_progress=['trends'])
    analyst = Script([checkpoint, in_flight.hold(checkpoint)], on_cancel=wrap_up)
    async with linked(Script([]), analyst) as link:
        result = await link.parent(
            call('task', description='Analyse X', subagent_type='analyst', mode='async'),
            after(in_flight.reached, call('soft_cancel_task', task_id=TASK_ID)),
            release(in_flight, call('wait_tasks', task_ids=[TASK_ID])),
            text('done'),
        ).run('go')
        (task_id,) = SubAgentCapability.started_tasks(result.all_messages())
        info = link.manager.get(task_id)

    (cleaned,) = link.task_side.cleaned
    assert isinstance(cleaned.outcome, Cancelled)
    assert type(cleaned.outcome.partial.final_message) is Report
    assert (cleaned.status, cleaned.outcome) == (info.status, info.outcome)
    assert cleaned.outcome == snapshot(
        Cancelled(
            mode='soft',
            reason=CancelReason(),
            partial=PartialResult(
                completed=('sources',),
                in_progress=('trends',),
                final_message=Report(title='E-bikes (partial)', sources=1),
                checkpoints=2,
                read_request=True,
            ),
        )
    )
    assert link.wire_kinds() == snapshot(
        [
            'cancel_acknowledged',
            'cancel_received',
            'cancel_request',
            'checkpoint_recorded',
            'hooks_finished',
            'run_finished',
            'settle_task',
            'start_task',
            'status_changed',
        ]
    )


def reachable(start: object) -> dict[int, object]:
    """Every object reachable from `start` through references, except through the transport.

    The transport's own objects (of the classes in its module: the transport, its mailboxes, its receive loop) are
    the one permitted link, so they are not followed. Neither are modules, classes, module globals and event loops:
    they are shared by the whole process, and reach everything in it.
    """
    globals_ = {id(vars(module)) for module in tuple(sys.modules.values()) if hasattr(module, '__dict__')}
    seen: dict[int, object] = {id(start): start}
    todo = [start]
    while todo:
        for referent in gc.get_referents(todo.pop()):
            if id(referent) in seen or id(referent) in globals_:
                continue
            if isinstance(referent, ModuleType | type | asyncio.AbstractEventLoop):
                continue
            if type(referent).__module__ == transport_module.__name__:
                continue
            seen[id(referent)] = referent
            todo.append(referent)
    return seen


def held(by: dict[int, object], objects: Iterable[object]) -> list[str]:
    """The names of the `objects` that `by` holds."""
    return [type(item).__name__ for item in objects if id(item) in by]


def side_objects(side: Side, configs: Iterable[SubAgentConfig]) -> list[object]:
    """What one side was built from: its configs and what they hold, its models and its hooks' list."""
    in_configs = [part for config in configs for part in (config, config.model, config.agent, config.cleanup) if part]
    return [*in_configs, side.researcher, side.analyst, side.cleaned]


async def test_nothing_but_the_transport_links_the_owner_and_the_host() -> None:
    """While a task runs, neither side reaches an object of the other except through the transport."""
    working = Gate()
    in_task: list[tuple[TaskContext | None, str]] = []

    async def note_the_task(messages: list[ModelMessage]) -> ModelResponse:
        in_task.append((current_task(), user_prompts(messages)[0]))
        await working.wait(forever=True)
        raise AssertionError('unreachable')

    async with linked(Script([note_the_task])) as link:
        await link.parent(
            call('task', description='Research X', subagent_type='researcher', mode='async'), text('done')
        ).run('go')
        await working.reached.wait()
        from_owner, from_host = reachable(link.manager), reachable(link.host)
        with_a_host = reachable(SubAgentManager(link.owner_configs, transport=link.transport))
        (start,) = [message for _, message in link.wire if isinstance(message, StartTask)]
        await link.manager.hard_cancel(start.task_id)

    assert held(from_owner, [link.host, *side_objects(link.task_side, link.host_configs)]) == []
    assert held(from_host, [link.manager, *side_objects(link.owner, link.owner_configs)]) == []
    assert [type(found) for found in from_owner.values() if isinstance(found, TaskHost | TaskContext)] == []
    # The walk finds what a side holds: a manager with a host of its own reaches it.
    assert [type(found) for found in with_a_host.values() if isinstance(found, TaskHost)] == [TaskHost]
    own = side_objects(link.task_side, link.host_configs)
    assert held(from_host, own) == [type(item).__name__ for item in own]  # and the host reaches all of its own
    ((context, prompt),) = in_task
    assert context is not None
    assert (context.transport is link.transport, context.owner_address, context.host_address) == (
        True,
        link.manager.owner_id,
        link.host.address,
    )
    assert prompt == start.prompt
    assert link.manager.get(start.task_id).status is TaskStatus.CANCELLED
