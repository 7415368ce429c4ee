"""The ids of the tasks a parent run started, read from its messages without parsing the replies' text."""

from __future__ import annotations

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessagesTypeAdapter

from subagents_cancel import SubAgentCapability, SubAgentManager

from .helpers import Script, calls, researcher, text

pytestmark = pytest.mark.anyio


async def test_the_ids_of_the_tasks_a_run_started_come_from_its_messages_in_order() -> None:
    """Async and sync `task` calls give their ids, in call order; a refused call and other tools give none."""
    sub = Script(steps=[text('one'), text('two'), text('three')])
    parent = Script(
        steps=[
            calls(
                ('task', {'description': 'A', 'subagent_type': 'researcher', 'mode': 'async'}),
                ('task', {'description': 'B', 'subagent_type': 'historian', 'mode': 'async'}),
            ),
            calls(('task', {'description': 'C', 'subagent_type': 'researcher'})),
            calls(('task', {'description': 'D', 'subagent_type': 'researcher', 'mode': 'async'})),
            calls(('wait_tasks', {})),
            text('done'),
        ]
    )
    async with SubAgentManager([researcher(sub)]) as manager:
        result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')
        started = SubAgentCapability.started_tasks(result.all_messages())
        assert started == tuple(info.task_id for info in manager.tasks())
        assert [manager.get(task_id).description for task_id in started] == ['A', 'C', 'D']


async def test_the_ids_survive_storing_the_messages_as_json() -> None:
    """Messages saved with pydantic-ai's type adapter and loaded again still give the ids."""
    parent = Script(
        steps=[calls(('task', {'description': 'A', 'subagent_type': 'researcher', 'mode': 'async'})), text('ok')]
    )
    capability = SubAgentCapability(subagents=[researcher(Script(steps=[text('one')]))])
    result = await Agent(parent.model, capabilities=[capability]).run('go')
    stored = ModelMessagesTypeAdapter.validate_json(ModelMessagesTypeAdapter.dump_json(result.all_messages()))
    (task_id,) = SubAgentCapability.started_tasks(stored)
    assert SubAgentCapability.started_tasks(result.all_messages()) == (task_id,)
    assert task_id.startswith('researcher-')
