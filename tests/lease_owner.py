"""An owner process for the lease tests: it starts one task on a Temporal task queue, prints its id, and waits.

Run as `python -m tests.lease_owner ADDRESS TASK_QUEUE LEASE_SECONDS`. It holds the task's lease until it is killed;
the test kills it with SIGKILL, so nothing of it ends the task: only the lapsed lease does.
"""

from __future__ import annotations

import sys

import anyio
from pydantic_ai.models.test import TestModel

from subagents_cancel import SubAgentConfig, SubAgentManager
from subagents_cancel.temporal import TemporalTransport, connect

RESEARCHER = SubAgentConfig(
    name='researcher',
    description='Researches a topic',
    model=TestModel(),  # never runs here: the task runs on the worker, with the worker's agent
    preempt_on_soft_cancel=True,  # a cancel request cuts the model request in flight, so the model reads it at once
)


async def main(address: str, task_queue: str, lease_seconds: float) -> None:
    client = await connect(address)
    async with (
        TemporalTransport(client, task_queue=task_queue, lease_seconds=lease_seconds) as transport,
        SubAgentManager([RESEARCHER], transport=transport) as manager,
    ):
        task = await manager.start('researcher', 'Research the market')
        print(task.task_id, flush=True)  # noqa: T201 - the test reads it
        await anyio.sleep_forever()


if __name__ == '__main__':
    address, task_queue, lease = sys.argv[1:]
    anyio.run(main, address, task_queue, float(lease), backend='asyncio')
