"""A worker deployed with other sub-agents than its owner: the owner hears why, instead of waiting for ever."""

from __future__ import annotations

import pytest
from inline_snapshot import snapshot
from temporalio.client import Client

from subagents_cancel import Completed, Failed, SubAgentConfig, SubAgentManager, TaskInfo, TaskStatus
from subagents_cancel.ids import random_ids_from
from subagents_cancel.temporal import TemporalTransport, connect, task_worker
from subagents_cancel.testing import ManualClock

from .helpers import Script, researcher, text
from .temporal_support import DevServer

pytestmark = pytest.mark.anyio


async def test_a_task_for_a_sub_agent_its_worker_does_not_have_fails_with_its_reason(
    temporal_server: DevServer, clock: ManualClock
) -> None:
    """An owner and a worker deployed with different sub-agents: the task fails, named, instead of waiting for ever."""
    known, unknown = Script([text('done')]), Script([text('never')])
    client = await connect(temporal_server.address)
    on_worker = [researcher(known)]
    on_owner = [*on_worker, SubAgentConfig(name='writer', description='Writes', model=unknown.model)]
    async with (
        task_worker(client, task_queue='mismatched', subagents=on_worker),
        TemporalTransport(client, task_queue='mismatched') as transport,
        SubAgentManager(on_owner, clock=clock, transport=transport) as manager,
    ):
        info = await manager.run('writer', 'Write it')
    assert (info.status, info.outcome) == snapshot(
        (
            TaskStatus.FAILED,
            Failed(
                error_type='UnknownSubAgent',
                message="the workers of task queue 'mismatched' have no sub-agent 'writer': deploy them with the same sub-agents as the owner",
            ),
        )
    )
    assert unknown.requests == []


async def test_a_task_id_another_workflow_holds_fails_the_task_and_reads_nothing_of_it(
    temporal_server: DevServer, clock: ManualClock
) -> None:
    """Two owners drew the same task id (or a workflow of that id is still retained): the new task fails, named.

    Nothing of the other workflow reaches the owner, and nothing the owner sends goes to it.
    """
    sub = Script([text('mine')])
    client = await connect(temporal_server.address)
    with random_ids_from(lambda size: '00' * size):  # this test's task ids: researcher-00000000, every time
        first, second = await _the_same_task_id_twice(client, sub, clock)
    assert first.task_id == second.task_id
    assert first.outcome == Completed('mine')
    assert (second.status, second.outcome) == snapshot(
        (
            TaskStatus.FAILED,
            Failed(
                error_type='TaskIdTaken',
                message="the Temporal server already has a workflow with the id 'researcher-00000000'; start the task again",
            ),
        )
    )
    assert len(sub.requests) == 1


async def _the_same_task_id_twice(client: Client, sub: Script, clock: ManualClock) -> tuple[TaskInfo, TaskInfo]:
    """One task run by each of two owners, one after the other, on one worker."""
    async with task_worker(client, task_queue='taken', subagents=[researcher(sub)]):
        async with (
            TemporalTransport(client, task_queue='taken') as transport,
            SubAgentManager([researcher(sub)], clock=clock, transport=transport) as first_owner,
        ):
            first = await first_owner.run('researcher', 'First')
        async with (
            TemporalTransport(client, task_queue='taken') as transport,
            SubAgentManager([researcher(sub)], clock=clock, transport=transport) as second_owner,
        ):
            second = await second_owner.run('researcher', 'Second')
    return first, second
