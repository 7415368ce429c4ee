"""Outputs that are awkward to show a model: objects pydantic cannot serialise, and megabytes of text.

A sub-agent's output is shown to the parent as text: a string as it is, anything else as JSON, or by
its `repr` when pydantic has no JSON form for it; every piece of it is cut to a bounded length and the
reply says how much was left out. The Python API keeps the value itself, whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import ClassVar

import pytest
from inline_snapshot import snapshot
from pydantic import BaseModel, model_serializer
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from subagents_cancel import (
    Cancelled,
    Completed,
    Failed,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    TaskStatus,
)
from subagents_cancel.output_codec import UNSERIALISABLE, EncodedOutput
from subagents_cancel.testing import ManualClock

from .helpers import TASK_ID, Gate, Script, after, call, replies_of, researcher, text, tool_returns

pytestmark = pytest.mark.anyio


class Report:
    """A plain class: pydantic has no JSON form for it."""

    def __init__(self, title: str) -> None:
        self.title = title


def make_report(title: str) -> object:
    """The sub-agent's output function: it returns a `Report`.

    Annotated `object`, as pydantic-ai warns when it cannot build a return schema, and warnings fail tests.
    """
    return Report(title)


def _final_report(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    (output_tool,) = info.output_tools
    return ModelResponse(parts=[ToolCallPart(output_tool.name, {'title': 'Q3'})])


def reporter() -> SubAgentConfig:
    """A sub-agent whose output is a `Report`."""
    agent = Agent(FunctionModel(_final_report), output_type=make_report)
    return SubAgentConfig(name='reporter', description='Writes reports', agent=agent)


def abridged(reply: str) -> str:
    """`reply` with each line over 100 characters shown as its length and its last 60 characters."""
    return re.sub(r'[^\n]{100,}', lambda line: f'<{len(line.group()):,} characters>…{line.group()[-60:]}', reply)


def _is_the_report(output: object, transport_kind: str, title: str = 'Q3') -> bool:
    """In-process the Python API keeps the `Report` itself; JSON cannot carry one, so the loopback carries its repr."""
    if transport_kind == 'in-process':
        return isinstance(output, Report) and output.title == title
    return (
        isinstance(output, EncodedOutput)
        and output.type_name == f'tests.test_unusual_outputs.Report{UNSERIALISABLE}'
        and isinstance(output.data, str)
        and output.data.startswith('<tests.test_unusual_outputs.Report object at 0x')
    )


def without_addresses(replies: list[str]) -> list[str]:
    return [re.sub(r' at 0x[0-9a-f]+>', ' at 0x…>', reply) for reply in replies]


async def test_an_output_pydantic_cannot_serialise_is_shown_by_its_repr(
    clock: ManualClock, transport_kind: str
) -> None:
    """`task`, `wait_region`, `wait_tasks`, `check_task` and `hard_cancel_task` show a plain object by its repr."""
    parent = Script(
        [
            call('task', description='Q3 report', subagent_type='reporter'),
            call('task', description='Q3 report', subagent_type='reporter', mode='async', region='reports'),
            call('wait_region', region='reports'),
            call('wait_tasks', task_ids=[TASK_ID]),
            call('check_task', task_id=TASK_ID),
            call('hard_cancel_task', task_id=TASK_ID),
            text('the parent is still alive'),
        ]
    )
    async with SubAgentManager([reporter()], clock=clock) as manager:
        result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')
        tasks = manager.tasks()
    assert result.output == 'the parent is still alive'
    assert without_addresses(replies_of(result.all_messages())) == snapshot(
        [
            """\
reporter-0001: COMPLETED in 0.0 ms. Output:
<tests.test_unusual_outputs.Report object at 0x…>\
""",
            'Task started with ID: reporter-0002 (reporter); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.',
            """\
Region 'reports' completed: all 1 results.

reporter-0002:
<tests.test_unusual_outputs.Report object at 0x…>\
""",
            """\
The task has ended.

reporter-0002: COMPLETED in 0.0 ms. Output:
<tests.test_unusual_outputs.Report object at 0x…>\
""",
            """\
reporter-0002: COMPLETED in 0.0 ms. Output:
<tests.test_unusual_outputs.Report object at 0x…>\
""",
            """\
reporter-0002 had finished before the cancel arrived, so nothing was cancelled: COMPLETED in 0.0 ms. Output:
<tests.test_unusual_outputs.Report object at 0x…>\
""",
        ]
    )
    outputs = [task.outcome.output for task in tasks if isinstance(task.outcome, Completed)]
    assert len(outputs) == 2 and all(_is_the_report(output, transport_kind) for output in outputs)


async def test_a_wrap_up_pydantic_cannot_serialise_is_shown_by_its_repr(
    clock: ManualClock, transport_kind: str
) -> None:
    """A soft-cancelled task whose wrap-up is a plain object: the partial result shows it by its repr."""
    working = Gate()
    sub = Script([working.hold(call('checkpoint', completed=['intro']))], on_cancel=_final_report_step())

    def release_then_wait(messages: list[ModelMessage]) -> ModelResponse:
        working.release.set()
        return call('wait_tasks', task_ids=[TASK_ID])(messages)

    parent = Script(
        [
            call('task', description='Q3 report', subagent_type='reporter', mode='async'),
            after(working.reached, call('soft_cancel_task', task_id=TASK_ID)),
            release_then_wait,
            text('the parent is still alive'),
        ]
    )
    agent = Agent(sub.model, output_type=make_report)
    config = SubAgentConfig(name='reporter', description='Writes reports', agent=agent)
    async with SubAgentManager([config], clock=clock) as manager:
        result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')
        (task,) = manager.tasks()
    assert without_addresses(replies_of(result.all_messages()))[-1] == snapshot("""\
The task has ended.

Task cancelled: reporter-0001 (soft, on request; it read the request after 0.0 ms; it ended 0.0 ms after the request). Partial results:
Completed: intro
In progress: nothing
Not started: nothing
Findings: nothing
(from 1 checkpoint)
Its final message:
<tests.test_unusual_outputs.Report object at 0x…>\
""")
    assert isinstance(task.outcome, Cancelled)
    assert _is_the_report(task.outcome.partial.final_message, transport_kind, title='Q3 (partial)')


def _final_report_step() -> ModelResponse:
    return ModelResponse(parts=[ToolCallPart('final_result', {'title': 'Q3 (partial)'})])


MEGABYTE = 1_000_000


async def test_a_megabyte_output_is_cut_and_the_reply_says_how_much(clock: ManualClock) -> None:
    """A 1 MB text output is cut in `task` and `check_task` replies, which say how much was left out."""
    huge = 'findings ' * (MEGABYTE // 9)
    sub = Script([text(huge)])
    parent = Script(
        [
            call('task', description='Research X', subagent_type='researcher', mode='async'),
            call('wait_tasks', task_ids=[TASK_ID]),
            call('check_task', task_id=TASK_ID),
            text('the parent is still alive'),
        ]
    )
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')
        (task,) = manager.tasks()
    replies = replies_of(result.all_messages())
    assert [len(reply) < 25_000 for reply in replies] == [True, True, True]
    assert [reply[-60:] for reply in replies[1:]] == snapshot(
        [
            'ngs findings findings findings fi… (979,999 more characters)',
            'ngs findings findings findings fi… (979,999 more characters)',
        ]
    )
    assert task.outcome == Completed(huge)


async def test_a_megabyte_checkpoint_is_cut_and_the_reply_says_how_much(clock: ManualClock) -> None:
    """1 MB findings and a 10,000-step plan are cut in `check_task` and `hard_cancel_task`; the API keeps them whole."""
    working = Gate()
    finding = 'a' * MEGABYTE
    steps = [f'step {index}' for index in range(10_000)]
    sub = Script([call('checkpoint', completed=steps, findings=[finding]), working.block_forever()])
    parent = Script(
        [
            call('task', description='Research X', subagent_type='researcher', mode='async'),
            after(working.reached, call('check_task', task_id=TASK_ID)),
            call('hard_cancel_task', task_id=TASK_ID),
            text('the parent is still alive'),
        ]
    )
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')
        (task,) = manager.tasks()
    replies = replies_of(result.all_messages())
    assert [len(reply) < 50_000 for reply in replies] == [True, True, True]
    assert [abridged(reply) for reply in replies[1:]] == snapshot(
        [
            """\
researcher-0001: RUNNING for 0.0 ms.
<5,099 characters>…ore characters). In progress: nothing. Not started: nothing.
<5,045 characters>…aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa… (995,000 more characters).\
""",
            """\
Task cancelled: researcher-0001 stopped 0.0 ms after the hard cancel. Partial results:
<5,038 characters>…7; step 508; step 509; step 510; … (103,888 more characters)
In progress: nothing
Not started: nothing
<5,037 characters>…aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa… (995,000 more characters)
(from 1 checkpoint)\
""",
        ]
    )
    assert isinstance(task.outcome, Cancelled) and task.outcome.partial.findings == (finding,)
    assert task.outcome.partial.completed == tuple(steps)


class Cursor:
    """An output whose repr raises, like a wrapper of a closed database cursor."""

    def __repr__(self) -> str:
        raise RuntimeError('closed cursor')


class Row:
    """A plain object with a short repr that counts how often it is asked for."""

    reprs = 0

    def __repr__(self) -> str:
        Row.reprs += 1
        return 'Row(...)'


def _output_agent(make: Callable[[], object]) -> Agent[None, object]:
    def make_output(count: int) -> object:
        """The sub-agent's output function."""
        return make()

    return Agent(FunctionModel(_final_count), output_type=make_output)


def _final_count(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    (output_tool,) = info.output_tools
    return ModelResponse(parts=[ToolCallPart(output_tool.name, {'count': 1})])


def _check_the_sync_task(messages: list[ModelMessage]) -> ModelResponse:
    (task_id,) = re.findall(r'^(db-\w+): COMPLETED', '\n'.join(tool_returns(messages)), re.MULTILINE)
    return ModelResponse(parts=[ToolCallPart('check_task', {'task_id': task_id})])


async def _replies_to_sync_task_and_check(output: Callable[[], object], clock: ManualClock) -> list[str]:
    """The replies to `task(mode='sync')` and `check_task` for a sub-agent whose output is `output()`."""
    parent = Script(
        [
            call('task', description='Fetch rows', subagent_type='db'),
            _check_the_sync_task,
            text('the parent is still alive'),
        ]
    )
    config = SubAgentConfig(name='db', description='Reads a database', agent=_output_agent(output))
    async with SubAgentManager([config], clock=clock) as manager:
        result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')
    assert result.output == 'the parent is still alive'
    return replies_of(result.all_messages())


async def test_an_output_whose_repr_raises_is_named_by_its_type(clock: ManualClock) -> None:
    """An output pydantic cannot serialise and whose repr raises: the replies name its type; the run goes on."""
    replies = await _replies_to_sync_task_and_check(Cursor, clock)
    assert replies == snapshot(
        [
            """\
db-0001: COMPLETED in 0.0 ms. Output:
<Cursor object; its repr raised RuntimeError>\
""",
            """\
db-0001: COMPLETED in 0.0 ms. Output:
<Cursor object; its repr raised RuntimeError>\
""",
        ]
    )


async def test_a_huge_output_is_shortened_before_it_is_rendered(clock: ManualClock, transport_kind: str) -> None:
    """200,000 plain objects: each reply asks for the repr of the few it shows, not of all of them."""
    Row.reprs = 0
    replies = await _replies_to_sync_task_and_check(lambda: [Row() for _ in range(200_000)], clock)
    assert ([abridged(reply) for reply in replies], Row.reprs) == snapshot(
        {
            'in-process': (
                [
                    """\
db-0001: COMPLETED in 0.0 ms. Output:
Too large to show whole; shortened:
<305 characters>…...), Row(...), Row(...), Row(...), Row(...), Row(...), ...]\
""",
                    """\
db-0001: COMPLETED in 0.0 ms. Output:
Too large to show whole; shortened:
<305 characters>…...), Row(...), Row(...), Row(...), Row(...), Row(...), ...]\
""",
                ],
                60,
            ),
            'loopback': (
                [
                    """\
db-0001: COMPLETED in 0.0 ms. Output:
<305 characters>…...), Row(...), Row(...), Row(...), Row(...), Row(...), ...]\
""",
                    """\
db-0001: COMPLETED in 0.0 ms. Output:
<305 characters>…...), Row(...), Row(...), Row(...), Row(...), Row(...), ...]\
""",
                ],
                60,
            ),
        }
    )[transport_kind]


class Point(BaseModel):
    """A pydantic model that counts how often pydantic serialises it."""

    x: int

    @model_serializer
    def _counted(self) -> dict[str, int]:
        Point.serialised += 1
        return {'x': self.x}

    serialised: ClassVar[int] = 0


async def test_a_huge_serialisable_output_is_shortened_before_it_is_rendered(
    clock: ManualClock, transport_kind: str
) -> None:
    """200,000 pydantic models: the replies are short and pydantic is not asked to serialise them all."""
    Point.serialised = 0
    replies = await _replies_to_sync_task_and_check(lambda: [Point(x=index) for index in range(200_000)], clock)
    assert ([abridged(reply) for reply in replies], Point.serialised) == snapshot(
        {
            'in-process': (
                [
                    """\
db-0001: COMPLETED in 0.0 ms. Output:
Too large to show whole; shortened:
<385 characters>…5), Point(x=26), Point(x=27), Point(x=28), Point(x=29), ...]\
""",
                    """\
db-0001: COMPLETED in 0.0 ms. Output:
Too large to show whole; shortened:
<385 characters>…5), Point(x=26), Point(x=27), Point(x=28), Point(x=29), ...]\
""",
                ],
                0,
            ),
            'loopback': (
                [
                    """\
db-0001: COMPLETED in 0.0 ms. Output:
Too large to show whole; shortened:
<325 characters>… {'x': 25}, {'x': 26}, {'x': 27}, {'x': 28}, {'x': 29}, ...]\
""",
                    """\
db-0001: COMPLETED in 0.0 ms. Output:
Too large to show whole; shortened:
<325 characters>… {'x': 25}, {'x': 26}, {'x': 27}, {'x': 28}, {'x': 29}, ...]\
""",
                ],
                400000,
            ),
        }
    )[transport_kind]


async def test_an_ordinary_structured_output_is_shown_as_json(clock: ManualClock) -> None:
    """A small serialisable output is shown whole as JSON, as pydantic serialises it."""
    Point.serialised = 0
    replies = await _replies_to_sync_task_and_check(lambda: {'points': [Point(x=1), Point(x=2)], 'note': 'ok'}, clock)
    assert (replies, Point.serialised) == snapshot(
        (
            [
                """\
db-0001: COMPLETED in 0.0 ms. Output:
{"points":[{"x":1},{"x":2}],"note":"ok"}\
""",
                """\
db-0001: COMPLETED in 0.0 ms. Output:
{"points":[{"x":1},{"x":2}],"note":"ok"}\
""",
            ],
            4,
        )
    )


async def test_a_tool_result_pydantic_cannot_serialise_does_not_stop_the_task(clock: ManualClock) -> None:
    """A tool returns a plain object, which the run cannot show its model: it fails, and its end reaches the owner.

    The end carries the run's conversation, the object in it: over a transport that serialises, its repr travels.
    """
    script = Script([call('fetch'), text('unreachable')])
    agent = Agent(script.model)

    @agent.tool_plain
    def fetch() -> object:
        """Fetch the report (a plain object, which JSON has no form for)."""
        return Report('Q3')

    config = SubAgentConfig(name='reporter', description='Writes reports', agent=agent)
    async with SubAgentManager([config], clock=clock) as manager:
        info = await manager.run('reporter', 'Read the report')
    assert (info.status, info.outcome) == (
        TaskStatus.FAILED,
        Failed('PydanticSerializationError', snapshot('the sub-agent run raised this error; details are in the logs')),
    )
