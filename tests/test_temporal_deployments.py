"""A worker deployed with other sub-agents than its owner: the owner hears why, instead of waiting for ever."""

from __future__ import annotations

import pytest
from inline_snapshot import snapshot

from subagents_cancel import Failed, SubAgentConfig, SubAgentManager, TaskStatus
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
