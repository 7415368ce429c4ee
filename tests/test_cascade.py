"""Cascade across nesting: a sub-agent with sub-agents of its own is a subtree, and a cancel reaches all of it."""

from __future__ import annotations

import re

import anyio
import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent
from pydantic_ai.durable_exec.temporal import TemporalDurability
from pydantic_ai.messages import ModelMessage, ModelResponse

from subagents_cancel import (
    Cancelled,
    CancelReason,
    PartialResult,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    TaskInfo,
    TaskStatus,
)
from subagents_cancel.temporal import activity_config
from subagents_cancel.testing import ManualClock

from .helpers import Gate, Script, Step, call, text, tool_returns
from .temporal_support import Backend

pytestmark = pytest.mark.anyio


def wraps_up(level: str, order: list[str]) -> Step:
    """The answer of a sub-agent that obeys a cancel request: its own partial, with what its sub-agent reported."""

    def respond(messages: list[ModelMessage]) -> ModelResponse:
        order.append(level)
        heard = [reply for reply in tool_returns(messages) if reply.startswith('Task ')]
        return text(f'{level} partial' + (f' <{heard[-1].splitlines()[-1]}>' if heard else ''))

    return respond


def nested(name: str, script: Script, *children: SubAgentConfig, **settings: object) -> SubAgentConfig:
    """A sub-agent that runs `script`, and may itself start `children`; on a Temporal worker too."""
    capabilities = [SubAgentCapability(subagents=children)] if children else []
    durability = TemporalDurability(
        activity_config=activity_config()
    )  # a worker runs it; in process it changes nothing
    agent = Agent(script.model, name=name, capabilities=[durability, *capabilities])
    return SubAgentConfig.model_validate({'name': name, 'description': f'Level {name}', 'agent': agent, **settings})


def flatten(infos: tuple[TaskInfo, ...]) -> list[TaskInfo]:
    return [each for info in infos for each in (info, *flatten(info.subtasks))]


async def test_soft_cancel_of_the_root_hands_partials_up_leaves_first(clock: ManualClock) -> None:
    """Each level reads its cancel request only after its own sub-agents handed it their partial results."""
    order: list[str] = []
    leaf_working = Gate()
    leaf = Script(
        [call('checkpoint', completed=['source 1']), leaf_working.hold(call('checkpoint', completed=['source 2']))],
        on_cancel=wraps_up('leaf', order),
    )
    middle = Script([call('task', subagent_type='leaf', description='Dig')], on_cancel=wraps_up('middle', order))
    top = Script([call('task', subagent_type='middle', description='Survey')], on_cancel=wraps_up('top', order))
    config = nested('top', top, nested('middle', middle, nested('leaf', leaf)))

    async with SubAgentManager([config], clock=clock) as manager:
        task = await manager.start('top', 'Research the market')
        await leaf_working.reached.wait()
        (running,) = manager.active_tasks()
        assert [(info.subagent, info.parent_task_id) for info in flatten((running,))] == [
            ('top', None),
            ('middle', task.task_id),
            ('leaf', running.subtasks[0].task_id),
        ]
        assert {info.root_id for info in flatten((running,))} == {manager.owner_id}

        await manager.soft_cancel(task.task_id, grace_seconds=40)
        (cancelling,) = manager.active_tasks()
        assert [(info.subagent, info.cancel and info.cancel.grace_seconds) for info in flatten((cancelling,))] == [
            ('top', 40),
            ('middle', 20),  # each level deeper gets half the window of the one above (cascade_grace_factor)
            ('leaf', 10),
        ]
        leaf_working.release.set()
        (info,) = (await manager.wait([task.task_id])).tasks

    assert order == ['leaf', 'middle', 'top']
    assert info.status is TaskStatus.CANCELLED
    assert isinstance(info.outcome, Cancelled)
    assert info.outcome.reason == CancelReason(kind='user')
    assert info.outcome.partial.final_message == snapshot('top partial <middle partial <leaf partial>>')


async def test_cancelled_parent_run_leaves_no_descendant_running(clock: ManualClock) -> None:
    """Cancelling the parent run stops the whole tree, deepest first, and each level's cleanup hook sees it."""
    stopped: list[tuple[str, str]] = []

    async def note(info: TaskInfo) -> None:
        assert info.cancel is not None
        stopped.append((info.subagent, info.cancel.reason.kind))

    leaf_blocked = Gate()
    leaf = Script([leaf_blocked.block_forever()])
    middle = Script([call('task', subagent_type='leaf', description='Dig')])
    top = Script([call('task', subagent_type='middle', description='Survey')])
    config = nested(
        'top', top, nested('middle', middle, nested('leaf', leaf, cleanup=note), cleanup=note), cleanup=note
    )
    listed = Gate()
    parent = Script(
        [
            call('task', subagent_type='top', description='Research the market', mode='async'),
            listed.hold(call('list_active_tasks')),
            Gate().block_forever(),
        ]
    )
    agent = Agent(parent.model, capabilities=[SubAgentCapability(subagents=[config], clock=clock)])

    async with anyio.create_task_group() as group:
        group.start_soon(agent.run, 'Go')
        await leaf_blocked.reached.wait()
        listed.release.set()
        while len(parent.requests) < 3:
            await anyio.wait_all_tasks_blocked()
        group.cancel_scope.cancel()

    assert leaf_blocked.stopped.is_set()
    assert stopped == [('leaf', 'parent_cancelled'), ('middle', 'parent_cancelled'), ('top', 'parent_cancelled')]
    listing = tool_returns(parent.requests[-1])[-1]
    assert re.sub(r'-[0-9a-f]{8}\b', '-<id>', listing) == snapshot("""\
1 active task:
- top-<id> RUNNING 0.0 ms (top): 'Research the market'
  - middle-<id> RUNNING 0.0 ms (middle): 'Survey'
    - leaf-<id> RUNNING 0.0 ms (leaf): 'Dig'\
""")


async def test_hard_cancel_of_a_task_stops_its_subtree_first(backend: Backend, clock: ManualClock) -> None:
    """A hard cancel keeps its mode down the tree: the sub-agent's own tasks end hard, with no wrap-up turn."""
    leaf_ends: list[TaskInfo] = []

    async def keep(info: TaskInfo) -> None:
        leaf_ends.append(info)

    leaf_blocked = Gate()
    leaf = Script([leaf_blocked.block_forever()], on_cancel=text('never asked'))
    middle = Script([call('task', subagent_type='leaf', description='Dig', mode='async'), Gate().block_forever()])
    config = nested('middle', middle, nested('leaf', leaf, cleanup=keep))

    async with backend.manager([config], clock=clock) as manager:
        task = await manager.start('middle', 'Survey')
        await leaf_blocked.reached.wait()
        info = await manager.hard_cancel(task.task_id, reason=CancelReason(kind='user', detail='wrong topic'))

    assert leaf_blocked.stopped.is_set()
    assert not leaf.saw_cancel_request()
    assert info.outcome == Cancelled(
        mode='hard', reason=CancelReason(kind='user', detail='wrong topic'), partial=PartialResult()
    )
    (leaf_end,) = leaf_ends  # once, also on a worker, whose workflow is replayed at the end of the test
    assert (leaf_end.parent_task_id, leaf_end.status) == (task.task_id, TaskStatus.CANCELLED)
    assert leaf_end.outcome == Cancelled(
        mode='hard', reason=CancelReason(kind='parent_cancelled', detail='wrong topic'), partial=PartialResult()
    )


async def test_a_stuck_subtask_escalates_at_its_shorter_grace_and_its_parent_wraps_up(clock: ManualClock) -> None:
    """The nested owner's own timer stops a sub-agent that never reads the cascade at `grace * cascade_grace_factor`."""
    order: list[str] = []
    leaf_stuck = Gate()
    leaf = Script([leaf_stuck.block_forever()])
    middle = Script([call('task', subagent_type='leaf', description='Dig')], on_cancel=wraps_up('middle', order))
    config = nested('middle', middle, nested('leaf', leaf))

    async with SubAgentManager([config], clock=clock) as manager:
        task = await manager.start('middle', 'Survey')
        await leaf_stuck.reached.wait()
        await manager.soft_cancel(task.task_id, grace_seconds=40)
        clock.advance(19.9)
        await anyio.wait_all_tasks_blocked()
        assert not leaf_stuck.stopped.is_set()
        clock.advance(0.1)  # the leaf's window (40 x 0.5) has run out on its owner, the middle task's capability
        (info,) = (await manager.wait([task.task_id])).tasks

    assert leaf_stuck.stopped.is_set() and order == ['middle']
    assert isinstance(info.outcome, Cancelled) and not info.outcome.escalated
    assert (info.outcome.mode, info.ended_at) == ('soft', 20.0)
    assert re.sub(r'-[0-9a-f]{8}\b', '-<id>', str(info.outcome.partial.final_message)) == snapshot(
        'middle partial <Task cancelled: leaf-<id> (hard, its owner was cancelled; stopped when its 20s grace window ran out; it ended 20.0s after the request). It recorded no checkpoint and sent no final message.>'
    )
