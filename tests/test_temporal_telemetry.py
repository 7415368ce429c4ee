"""Telemetry when a worker takes a task over: the task's span is ended once, by that worker, with the id it had.

A Temporal-only scenario, run once (not per transport): the first worker stops while the task's model request is in
flight, and a second one replays the task's workflow and finishes it. Spans are read back with logfire's `capfire`.
"""

from __future__ import annotations

import uuid

import anyio
import anyio.abc
import pytest
from logfire.testing import CaptureLogfire

from subagents_cancel import Completed, SubAgentConfig, SubAgentManager, TaskInfo
from subagents_cancel.temporal import TemporalTransport, WorkerSettings, connect, task_worker

from .helpers import Gate, Script, text
from .temporal_support import DevServer, durable
from .test_telemetry_across_processes import TASK_SPAN, opened

pytestmark = pytest.mark.anyio


async def test_a_worker_that_takes_a_task_over_ends_its_span_once(
    temporal_server: DevServer, capfire: CaptureLogfire
) -> None:
    """The span the first worker opened is opened again by the replay on the second, and exported once, by it."""
    in_flight = Gate()
    script = Script([in_flight.hold(text('never sent')), text('done')])
    config = SubAgentConfig(name='worker', description='Works', agent=durable(script.model, 'worker'))
    client = await connect(temporal_server.address)
    queue = f'tests-{uuid.uuid4().hex[:8]}'
    settings = WorkerSettings(sticky_queue_seconds=1.0)  # the stopped worker holds the task's next step this long
    first_down = anyio.Event()

    async def serving(stop: anyio.Event, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        async with task_worker(client, task_queue=queue, subagents=[config], settings=settings):
            task_status.started()
            await stop.wait()
        first_down.set()

    stop_first, stop_second = anyio.Event(), anyio.Event()
    ended: list[TaskInfo] = []
    async with anyio.create_task_group() as workers:
        await workers.start(serving, stop_first)
        async with (
            # close_seconds: after a takeover the owner's last read of the outbox waits this long as it closes
            TemporalTransport(client, task_queue=queue, close_seconds=1.0) as transport,
            SubAgentManager([config], transport=transport) as manager,
        ):
            task = await manager.start('worker', 'Work')
            await in_flight.reached.wait()
            stop_first.set()  # its model request is stopped with it, and sent again on the second worker
            await first_down.wait()
            await workers.start(serving, stop_second)
            ended.extend((await manager.wait([task.task_id])).tasks)
        stop_second.set()

    assert ([info.outcome for info in ended], in_flight.stopped.is_set()) == ([Completed(output='done')], True)
    (task_span,) = [span for span in capfire.exporter.exported_spans_as_dict() if span['name'] == TASK_SPAN]
    assert task_span['attributes']['status'] == 'COMPLETED'
    assert opened(capfire, TASK_SPAN) == [task_span['context']['span_id']] * 2  # by the first worker, by the replay
