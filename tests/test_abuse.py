"""Isolation and abuse: another run's tasks are invisible, and garbage or floods get replies, not crashes.

Two parent runs in one process each own their tasks: an id from the other run reads as unknown for
every tool. A model that sends wrong types, missing or extra arguments, huge strings, a thousand
cancels of one id, or a cancel storm over a thousand tasks gets a clear reply for each call, its run
goes on, and memory does not grow from one storm to the next.
"""

from __future__ import annotations

import gc
import json
from collections import Counter

import anyio
import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart

from subagents_cancel import SubAgentCapability, SubAgentConfig, SubAgentManager, TaskStatus

from .helpers import TASK_ID, Gate, Script, WatchedClock, after, call, latest_task_id, replies_of, text, tool_returns

pytestmark = pytest.mark.anyio


def researcher(script: Script) -> SubAgentConfig:
    return SubAgentConfig(name='researcher', description='Researches', model=script.model)


def _forever() -> Script:
    """A sub-agent whose model requests never return by themselves."""
    gate = Gate()
    return Script([gate.block_forever() for _ in range(3)])


async def test_another_runs_task_ids_read_as_unknown(clock: WatchedClock) -> None:
    """Run B cannot check, answer, soft- or hard-cancel run A's task: every tool says no such task, A's is untouched."""
    a_started, b_done = anyio.Event(), anyio.Event()
    a_ids: list[str] = []

    def note_id(messages: list[ModelMessage]) -> ModelResponse:
        a_ids.append(latest_task_id(messages))
        a_started.set()
        return call('check_task', task_id=TASK_ID)(messages)

    parent_a = Script(
        [
            call('task', description='Secret research', subagent_type='researcher', mode='async'),
            note_id,
            after(b_done, call('check_task', task_id=TASK_ID)),
            text('A done'),
        ]
    )

    def every_tool_on_a(messages: list[ModelMessage]) -> ModelResponse:
        (task_id,) = a_ids
        return ModelResponse(
            parts=[
                ToolCallPart('check_task', {'task_id': task_id}),
                ToolCallPart('answer_subagent', {'task_id': task_id, 'answer': 'leak'}),
                ToolCallPart('soft_cancel_task', {'task_id': task_id}),
                ToolCallPart('hard_cancel_task', {'task_id': task_id}),
                ToolCallPart('wait_tasks', {'task_ids': [task_id]}),
            ]
        )

    parent_b = Script([after(a_started, every_tool_on_a), text('B done')])
    run_a = Agent(parent_a.model, capabilities=[SubAgentCapability(subagents=[researcher(_forever())], clock=clock)])
    run_b = Agent(parent_b.model, capabilities=[SubAgentCapability(subagents=[researcher(_forever())], clock=clock)])
    results: dict[str, list[str]] = {}

    async def a() -> None:
        result = await run_a.run('go')
        results['a'] = tool_returns(result.all_messages())

    async def b() -> None:
        result = await run_b.run('go')
        results['b'] = tool_returns(result.all_messages())
        b_done.set()

    async with anyio.create_task_group() as group:
        group.start_soon(a)
        group.start_soon(b)

    (task_id,) = a_ids
    assert [reply.replace(task_id, '<A>') for reply in results['b']] == snapshot(
        [
            "No task '<A>' in this run; call list_active_tasks() to see your tasks.",
            "No task '<A>' in this run; call list_active_tasks() to see your tasks.",
            "No task '<A>' in this run; call list_active_tasks() to see your tasks.",
            "No task '<A>' in this run; call list_active_tasks() to see your tasks.",
            "No task '<A>' in this run; call list_active_tasks() to see your tasks.",
        ]
    )
    assert results['a'][-1].startswith(f'{task_id}: RUNNING')  # still running, not cancelled by B


_HUGE = 'x' * 1_000_000


@pytest.mark.parametrize(
    ('tool', 'args'),
    [
        ('check_task', {'task_id': 123}),
        ('check_task', {'task_id': ['a', 'b']}),
        ('check_task', {'task_id': None}),
        ('check_task', {}),
        ('check_task', {'task_id': 'researcher-0000', 'extra': True}),
        ('check_task', {'task_id': _HUGE}),
        ('check_task', {'task_id': '\x00\n\u202e' * 10}),
        ('soft_cancel_task', {'task_id': ''}),
        ('soft_cancel_task', {'task_id': 'researcher-0000', 'reason': _HUGE}),
        ('hard_cancel_task', {'task_id': {'nested': 'dict'}}),
        ('answer_subagent', {'task_id': 'researcher-0000'}),
        ('answer_subagent', {'task_id': 'researcher-0000', 'answer': _HUGE}),
        ('task', {'description': _HUGE, 'subagent_type': 'nobody', 'mode': 'async'}),
        ('task', {'description': '', 'subagent_type': 'researcher'}),
        ('task', {'description': 'x', 'subagent_type': 'researcher', 'mode': 'later'}),
        ('task', {'description': 'x', 'subagent_type': 'researcher', 'mode': 'async', 'region': '../../etc'}),
        ('task', {'description': 'x', 'subagent_type': 'researcher', 'mode': 'async', 'timeout_seconds': -1}),
        ('wait_tasks', {'task_ids': 'not-a-list'}),
        ('wait_tasks', {'task_ids': ['researcher-0000'] * 5000}),
        ('list_active_tasks', {'unexpected': 1}),
    ],
)
async def test_garbage_arguments_get_a_short_reply_and_the_run_goes_on(
    clock: WatchedClock, tool: str, args: dict[str, object]
) -> None:
    """Each bad call gets a reply that names the problem, never echoes a huge input, and the parent run ends normally."""
    parent = Script([call(tool, **args), text('parent survived')])
    agent = Agent(parent.model, capabilities=[SubAgentCapability(subagents=[researcher(_forever())], clock=clock)])
    result = await agent.run('go')
    assert result.output == 'parent survived'
    (reply,) = tool_returns(result.all_messages())
    assert 0 < len(reply) < 2_000 and 'Traceback' not in reply, reply[:300]


async def test_hostile_argument_names_and_values_get_short_replies(clock: WatchedClock) -> None:
    """Hostile names, 10,000 unknown arguments, JSON nested too deep, an infinite budget: short replies, no raw echo."""
    hostile = [
        ('check_task', json.dumps({'x' * 1_000_000: 1, 'task_id': 'a'})),
        ('check_task', json.dumps({'\x00\n\u202eevil': 1, 'task_id': 'a'})),
        ('check_task', json.dumps({f'k{index}': index for index in range(10_000)})),
        ('check_task', '{"task_id": ' + '[' * 100_000 + ']' * 100_000 + '}'),
        ('task', '{"description": "x", "subagent_type": "researcher", "mode": "async", "timeout_seconds": 1e999}'),
    ]
    parent = Script([*(ModelResponse(parts=[ToolCallPart(tool, args)]) for tool, args in hostile), text('survived')])
    agent = Agent(parent.model, capabilities=[SubAgentCapability(subagents=[researcher(_forever())], clock=clock)])
    result = await agent.run('go')
    assert result.output == 'survived'
    replies = tool_returns(result.all_messages())
    assert [len(reply) < 400 and '\x00' not in reply and '\n' not in reply for reply in replies] == [True] * 5
    assert replies == snapshot(
        [
            "Invalid arguments for check_task: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'… (1,000,000 characters): Extra inputs are not permitted. Call it again with arguments that fit its schema.",
            "Invalid arguments for check_task: '\\x00\\n\\u202eevil': Extra inputs are not permitted. Call it again with arguments that fit its schema.",
            'Invalid arguments for check_task: task_id: Field required; k0: Extra inputs are not permitted; k1: Extra inputs are not permitted; k2: Extra inputs are not permitted; k3: Extra inputs are not permitted; and 9,996 more problems. Call it again with arguments that fit its schema.',
            'Invalid arguments for check_task: the arguments are not valid JSON (recursion limit exceeded at line 1 column 213); they must be a JSON object with task_id. Call it again with arguments that fit its schema.',
            'Invalid arguments for task: timeout_seconds: Input should be a finite number. Call it again with arguments that fit its schema.',
        ]
    )


async def test_a_thousand_cancels_of_one_task(clock: WatchedClock) -> None:
    """1,000 soft cancels of one id in a single response: one request, 999 'already being cancelled', one ending."""
    sub = Script([Gate().block_forever()], on_cancel=text('partial'))
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        task = await manager.start('researcher', 'Research X')
        storm = ModelResponse(parts=[ToolCallPart('soft_cancel_task', {'task_id': task.task_id}) for _ in range(1_000)])
        parent = Script([storm, text('parent survived')])
        result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')
        replies = tool_returns(result.all_messages())
        clock.advance(30)  # it never reads the request: the grace window ends it
        (info,) = (await manager.wait([task.task_id])).tasks
    assert result.output == 'parent survived'
    assert len(replies) == 1_000
    assert sum(reply.startswith('Cancellation requested') for reply in replies) == 1
    assert sum('is already being cancelled' in reply for reply in replies) == 999
    assert info.status is TaskStatus.CANCELLED


async def _storm(tasks: int, clock: WatchedClock) -> None:
    """Start `tasks` blocked tasks, then hard-cancel them all in one parent response; all must end CANCELLED."""
    async with SubAgentManager([researcher(_forever_many(tasks))], clock=clock) as manager:
        ids = [(await manager.start('researcher', f'job {index}')).task_id for index in range(tasks)]
        storm = ModelResponse(parts=[ToolCallPart('hard_cancel_task', {'task_id': task_id}) for task_id in ids])
        parent = Script([storm, text('parent survived')])
        result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')
        assert result.output == 'parent survived'
        replies = tool_returns(result.all_messages())
        assert len(replies) == tasks and all(reply.startswith('Task cancelled: ') for reply in replies), replies[:3]
        assert manager.active_tasks() == ()
    assert manager.orphans() == ()


def _forever_many(tasks: int) -> Script:
    gate = Gate()
    return Script([gate.block_forever() for _ in range(tasks)])


@pytest.mark.timeout(120)
async def test_a_cancel_storm_over_a_thousand_tasks(clock: WatchedClock) -> None:
    """1,000 running tasks, 1,000 hard cancels in one response: every one ends CANCELLED, nothing is left."""
    await _storm(1_000, clock)


def _live_library_objects() -> Counter[str]:
    """Objects of this library and pydantic-ai runs still alive after a full collection, by type."""
    gc.collect()
    live: Counter[str] = Counter()
    objects: list[object] = gc.get_objects()
    for obj in objects:
        kind = type(obj)
        if str(getattr(kind, '__module__', '')).startswith('subagents_cancel') or kind.__name__ in ('AgentRun', 'Task'):
            live[kind.__qualname__] += 1
    return live


@pytest.mark.timeout(120)
async def test_storm_after_storm_leaves_nothing_behind(clock: WatchedClock) -> None:
    """After each storm of 150 tasks, the live objects of the library (records, runners, runs) are back to before."""
    await _storm(10, clock)  # warm up: caches and module-level objects
    before = _live_library_objects()
    for _ in range(3):
        await _storm(150, clock)
        assert _live_library_objects() == before


async def test_an_absurd_time_budget_is_shown_compactly(clock: WatchedClock) -> None:
    """`task(timeout_seconds=1e308)`: `check_task` shows the budget left in a few characters, not 309 digits."""
    parent = Script(
        [
            call('task', description='Research X', subagent_type='researcher', mode='async', timeout_seconds=1e308),
            call('check_task', task_id=TASK_ID),
            call('hard_cancel_task', task_id=TASK_ID),
            text('done'),
        ]
    )
    async with SubAgentManager([researcher(_forever())], clock=clock) as manager:
        result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')
    assert replies_of(result.all_messages())[1] == snapshot("""\
researcher-0001: RUNNING for 0.0 ms.
Its time budget runs out in 1e+308s.
No checkpoints yet.\
""")
