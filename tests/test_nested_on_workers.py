"""A sub-agent with sub-agents of its own, on every backend: a cancel of its task reaches its sub-agents' tasks.

On a Temporal worker the sub-agent's own owner is opened inside the task's workflow; its sub-agents' agents are
durable too, and the test replays every workflow at its end.
"""

from __future__ import annotations

import pytest
from inline_snapshot import snapshot

from subagents_cancel import Cancelled, TaskStatus
from subagents_cancel.errors import ConfigError
from subagents_cancel.temporal import connect, task_worker
from subagents_cancel.testing import ManualClock

from .helpers import Gate, Script, call, text
from .temporal_support import Backend, DevServer
from .test_cascade import nested, wraps_up

pytestmark = pytest.mark.anyio


async def test_soft_cancel_reaches_the_sub_agents_task_and_both_hand_back_partials(
    backend: Backend, clock: ManualClock
) -> None:
    """The nested task wraps up first, and its partial result is in the one its parent hands back."""
    order: list[str] = []
    leaf_working = Gate()
    leaf = Script(
        [call('checkpoint', completed=['source 1']), leaf_working.hold(call('checkpoint', completed=['source 2']))],
        on_cancel=wraps_up('leaf', order),
    )
    middle = Script([call('task', subagent_type='leaf', description='Dig')], on_cancel=wraps_up('middle', order))
    config = nested('middle', middle, nested('leaf', leaf))

    async with backend.manager([config], clock=clock) as manager:
        task = await manager.start('middle', 'Survey')
        await leaf_working.reached.wait()
        await backend.until(lambda: manager.get(task.task_id).subtasks)
        (running,) = manager.active_tasks()
        assert [(sub.subagent, sub.parent_task_id) for sub in running.subtasks] == [('leaf', task.task_id)]
        await manager.soft_cancel(task.task_id, grace_seconds=40)
        leaf_working.release.set()
        (info,) = (await manager.wait([task.task_id])).tasks

    assert order == ['leaf', 'middle']
    assert info.status is TaskStatus.CANCELLED
    assert isinstance(info.outcome, Cancelled)
    assert info.outcome.partial.final_message == snapshot('middle partial <leaf partial>')


async def test_a_worker_refuses_two_different_sub_agents_of_one_name_in_the_tree(temporal_server: DevServer) -> None:
    """A worker hosts every level of nested sub-agents by name, so two different configs of one name are refused."""
    client = await connect(temporal_server.address)
    inner_leaf = nested('leaf', Script([text('inner')]))
    outer_leaf = nested('leaf', Script([text('outer')]))
    configs = [nested('middle', Script([text('middle')]), inner_leaf), outer_leaf]
    with pytest.raises(ConfigError, match=r"^Two different sub-agents are named 'leaf': .*a name of its own\.$"):
        async with task_worker(client, task_queue='tests-same-name', subagents=configs):
            pass
