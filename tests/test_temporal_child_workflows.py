"""An owner that is itself a Temporal workflow: its tasks are child workflows, which end when it closes.

The application's workflow is defined here and runs on a worker of its own task queue; its tasks run on a
`task_worker` of another. The workflow waits for the test's signal `go` (sent once the sub-agent is at work), so
nothing in it depends on when the worker's model gets anywhere. Every workflow of a test is replayed at the end.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import pytest
from inline_snapshot import snapshot
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from subagents_cancel import SubAgentConfig, SubAgentManager
from subagents_cancel.ids import random_ids_from
from subagents_cancel.temporal import ChildWorkflowTransport, TaskOwnerWorkflow, WorkflowClock, connect, task_worker

from .helpers import Gate, Script, cancel_requested, text, user_prompts
from .temporal_support import DevServer, durable, replays_the_same

pytestmark = pytest.mark.anyio

_BOUND_SECONDS = 25.0
"""A bound for a hang of the worker, not a timing claim."""
GRACE_SECONDS = 0.5
OWNED = [
    SubAgentConfig(
        name='researcher', description='Researches a topic', grace_seconds=GRACE_SECONDS, preempt_on_soft_cancel=True
    )
]
"""What the application's workflow knows of its sub-agents: their names (the task worker has their agents)."""
ARCHIVIST = SubAgentConfig(name='archivist', description='Finds documents')
"""The sub-agent whose task id is taken (no other test's task has its name)."""


@workflow.defn(name='tests.research', sandboxed=False)
class Research(TaskOwnerWorkflow):
    """Starts one task, waits for `go`, then soft-cancels it and returns its outcome (or only waits)."""

    def __init__(self) -> None:
        self._go = False

    @workflow.run
    async def run(self, task_queue: str, soft_cancel: bool) -> str:
        async with (
            self.tasks_on(task_queue) as transport,
            SubAgentManager(OWNED, default_model='test', transport=transport, clock=WorkflowClock()) as manager,
        ):
            task = await manager.start('researcher', 'Research the market')
            await workflow.wait_condition(lambda: self._go and soft_cancel)  # else until it is terminated
            await manager.soft_cancel(task.task_id)
            waited = await manager.wait([task.task_id])
        return repr(waited.tasks[0].outcome)

    @workflow.signal
    def go(self) -> None:
        self._go = True


@workflow.defn(name='tests.taken-id', sandboxed=False)
class TakenId(TaskOwnerWorkflow):
    """Runs one task in the foreground whose id is `archivist-00000000` (its ids are all zeros) and returns its end."""

    @workflow.run
    async def run(self, task_queue: str) -> str:
        async with self.tasks_on(task_queue) as transport:
            with random_ids_from(lambda size: '00' * size):
                async with SubAgentManager(
                    [ARCHIVIST], default_model='test', transport=transport, clock=WorkflowClock()
                ) as manager:
                    info = await manager.run('archivist', 'Find the 2019 report')
        return repr((info.status, info.outcome))


_APP_WORKFLOWS = [Research, TakenId]


def _app_worker(client: Client, task_queue: str) -> Worker:
    """The application's worker, which keeps no workflow cached.

    Each step replays the workflow (its replays are tested too), and a terminated workflow is not left in the cache
    for the garbage collector to close outside any event loop.
    """
    return Worker(
        client,
        task_queue=task_queue,
        workflows=_APP_WORKFLOWS,
        workflow_runner=UnsandboxedWorkflowRunner(),
        max_cached_workflows=0,
    )


async def _app_replays_the_same(client: Client, workflow_id: str) -> None:
    """Replay the application's workflow from its history, as a worker taking it over would."""
    replayer = Replayer(
        workflows=_APP_WORKFLOWS, workflow_runner=UnsandboxedWorkflowRunner(), data_converter=client.data_converter
    )
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f'{workflow_id} did not replay the same: {result.replay_failure}'


async def _children(handle: WorkflowHandle[Research, str]) -> list[str]:
    """The ids of the child workflows the workflow of `handle` started: its tasks'."""
    history = await handle.fetch_history()
    return [
        event.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for event in history.events
        if event.HasField('start_child_workflow_execution_initiated_event_attributes')
    ]


@dataclass
class _Running:
    """The application's workflow, started on its worker, and the task queue of its tasks' worker."""

    client: Client
    handle: WorkflowHandle[Research, str]
    task_queue: str


@asynccontextmanager
async def _research(
    server: DevServer, sub: Script, *, soft_cancel: bool, **settings: object
) -> AsyncGenerator[_Running]:
    """Workers for the application's workflow and for its tasks (the sub-agent on `sub`), and the workflow started."""
    researcher = SubAgentConfig.model_validate(
        {
            'name': 'researcher',
            'description': 'Researches a topic',
            'agent': durable(sub.model, 'researcher'),
            **settings,
        }
    )
    client = await connect(server.address)
    queue, app_queue = f'tests-child-{uuid.uuid4().hex[:8]}', f'tests-app-{uuid.uuid4().hex[:8]}'
    async with task_worker(client, task_queue=queue, subagents=[researcher]), _app_worker(client, app_queue):
        handle = await client.start_workflow(
            Research.run, args=(queue, soft_cancel), id=app_queue, task_queue=app_queue
        )
        yield _Running(client, handle, queue)


async def test_a_workflow_soft_cancels_its_child_task_and_gets_its_partial_result(temporal_server: DevServer) -> None:
    """A workflow's task, soft-cancelled by it, wraps up and hands its partial result back, as in process."""
    working = Gate()
    sub = Script([working.block_forever()], on_cancel=text('Completed: the outline. Not started: the rest.'))
    async with _research(temporal_server, sub, soft_cancel=True, preempt_on_soft_cancel=True) as app:
        with anyio.fail_after(_BOUND_SECONDS):
            await working.reached.wait()
            await app.handle.signal(Research.go)
            outcome = await app.handle.result()
            children = await _children(app.handle)
            for child in children:
                await app.client.get_workflow_handle(child).result()
        await _app_replays_the_same(app.client, app.handle.id)
        await replays_the_same(app.client, app.task_queue, children)

    assert working.stopped.is_set()
    assert [cancel_requested(messages) for messages in sub.requests] == [False, True]
    assert outcome == snapshot(
        "Cancelled(mode='soft', reason=CancelReason(kind='user', detail=None), partial=PartialResult(completed=(), in_progress=(), not_started=(), findings=(), final_message='Completed: the outline. Not started: the rest.', checkpoints=0, read_request=True), escalated=False, error=None)"
    )


async def test_a_child_task_is_told_then_stopped_when_its_workflow_is_terminated(temporal_server: DevServer) -> None:
    """Its owner's workflow terminated, the task reads a CANCEL_REQUEST, then is stopped after its grace."""
    working, wrapping_up = Gate(), Gate()
    sub = Script([working.block_forever()], on_cancel=wrapping_up.block_forever())
    async with _research(temporal_server, sub, soft_cancel=False, grace_seconds=GRACE_SECONDS) as app:
        with anyio.fail_after(_BOUND_SECONDS):
            await working.reached.wait()
            await app.handle.terminate('the application stopped it')
            await wrapping_up.reached.wait()
            (task_id,) = await _children(app.handle)
            with pytest.raises(WorkflowFailureError) as ended:
                await app.client.get_workflow_handle(task_id).result()
        await replays_the_same(app.client, app.task_queue, [task_id])

    assert working.stopped.is_set() and wrapping_up.stopped.is_set()
    assert [cancel_requested(messages) for messages in sub.requests] == [False, True]
    (told,) = user_prompts(sub.requests[-1])[-1:]
    assert re.sub(r'CANCEL_REQUEST \[[0-9a-f]{12}\]', 'CANCEL_REQUEST [<id>]', told) == snapshot(
        'CANCEL_REQUEST [<id>]: your parent asked you to stop (the run that started you has ended: the workflow that owns it has closed). Do not start new work or call tools. Reply now with your partial results (Completed, In progress, Not started, Findings). You have 0.5 seconds.'
    )
    assert type(ended.value.cause).__name__ == snapshot('CancelledError')


async def test_a_child_task_whose_id_another_workflow_holds_fails_named_and_its_owner_closes(
    temporal_server: DevServer,
) -> None:
    """The task's child workflow cannot start (its id is taken): the task fails as `TaskIdTaken`, nothing waits.

    Task ids are random: two owners can draw the same one, and a closed workflow holds its id for a while.
    """
    sub = Script([text('never')])
    archivist = ARCHIVIST.model_copy(update={'agent': durable(sub.model, 'archivist')})
    client = await connect(temporal_server.address)
    queue, app_queue = f'tests-child-{uuid.uuid4().hex[:8]}', f'tests-app-{uuid.uuid4().hex[:8]}'
    holder = await client.start_workflow(  # on a queue no worker serves: it holds the id until it is terminated
        Research.run, args=(queue, False), id='archivist-00000000', task_queue=f'{queue}-nobody'
    )
    try:
        async with task_worker(client, task_queue=queue, subagents=[archivist]), _app_worker(client, app_queue):
            handle = await client.start_workflow(TakenId.run, args=(queue,), id=app_queue, task_queue=app_queue)
            with anyio.fail_after(_BOUND_SECONDS):
                ended = await handle.result()
            await _app_replays_the_same(client, handle.id)
    finally:
        await holder.terminate('the test is over')

    assert ended == snapshot(
        "(<TaskStatus.FAILED: 'FAILED'>, Failed(error_type='TaskIdTaken', message=\"the Temporal server already has a workflow with the id 'archivist-00000000'; start the task again\"))"
    )
    assert sub.requests == []


@pytest.mark.parametrize('seconds', [float('nan'), float('inf'), -1.0, 0.0])
def test_a_close_bound_that_is_not_a_duration_is_refused(seconds: float) -> None:
    """A careless caller's NaN, infinity or non-positive close bound is refused at once, naming the argument."""
    with pytest.raises(ValueError, match=r'^close_seconds must be a finite number of seconds, greater than 0'):
        ChildWorkflowTransport(task_queue='research', close_seconds=seconds)
