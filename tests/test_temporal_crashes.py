"""Worker crashes: tasks on Temporal workers in processes of their own, SIGKILLed while a model request is in flight.

The owner is this process (a manager on a `TemporalTransport`); the sub-agent runs in worker processes
(`tests/worker_processes.py`) whose model is OpenAI's chat model pointed at a fake server in this process
(`tests/openai_server.py`), which records every model request a worker makes and holds one open when told to.

The policy these tests pin: a worker that dies mid-task loses nothing that finished. Temporal replays the task's
workflow on the next worker, so the model requests that had returned are not sent again; the one in flight when
the worker died is sent again (it is an activity, retried once its heartbeat is missed). Cancels sent while no
worker runs are kept by Temporal and applied when a worker returns; no model request is made after the owner has
recorded the task CANCELLED. How long a recovery takes is logged (`--log-cli-level=INFO`), never asserted.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
import pytest
from inline_snapshot import snapshot
from pydantic_ai.models import override_allow_model_requests
from temporalio.client import Client

from subagents_cancel import (
    Cancelled,
    CancelReason,
    Completed,
    PartialResult,
    SubAgentManager,
    SubAgentPolicy,
    TaskInfo,
    TaskStatus,
)
from subagents_cancel.__main__ import main
from subagents_cancel.messages import CancelMode, StatusChanged
from subagents_cancel.outcomes import HardCancelOutcome, SoftCancelOutcome
from subagents_cancel.temporal import TemporalTransport, connect
from subagents_cancel.wire import WireMessage

from .crash_subagents import FAKE_OPENAI_URL, SUBAGENTS
from .openai_server import CallTool, Completion, FakeOpenAI, Hold, Reply, Say, serving
from .temporal_support import DevServer
from .worker_processes import WorkerProcess, worker_process

# Each test starts two worker processes: about 2 s each, far more on a busy machine. A bound against a hang.
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

_log = logging.getLogger(__name__)

_HANG_GUARD_SECONDS = 15  # a bound against a hang, not a timing claim
_SUBAGENTS = 'tests.crash_subagents:SUBAGENTS'
_STICKY_QUEUE_SECONDS = 0.5
"""How soon the workflow tasks of a killed worker go to the other workers (Temporal's default is 10 s)."""
_WORKFLOW_TASK_SECONDS = 2.0
"""How soon a workflow step that a killed worker had taken goes to another worker (Temporal's default is 10 s)."""
_WRAP_UP = 'Completed: sources. In progress: analysis. Not started: report.'


@pytest.fixture(autouse=True)
def _allow_requests_to_the_local_server() -> Iterator[None]:
    with override_allow_model_requests(True):
        yield


class Crash:
    """One crash scenario: the fake model server, an owner on a fresh task queue, and its workers' processes."""

    def __init__(self, server: DevServer, model: FakeOpenAI, client: Client) -> None:
        self.server = server
        self.model = model
        self.client = client
        self.task_queue = f'crash-{uuid.uuid4().hex[:8]}'
        self.requests_when_cancelled: int | None = None
        """How many model requests the fake server had received when the owner recorded the task CANCELLED."""

    def worker(self) -> AbstractAsyncContextManager[WorkerProcess]:
        """A worker process on the owner's task queue, its model requests going to the fake server."""
        return worker_process(
            self.server.address,
            self.task_queue,
            _SUBAGENTS,
            env={FAKE_OPENAI_URL: self.model.base_url},
            options=('--sticky-queue-seconds', str(_STICKY_QUEUE_SECONDS)),
        )

    @asynccontextmanager
    async def owner(self, policy: SubAgentPolicy) -> AsyncGenerator[SubAgentManager]:
        async with (
            TemporalTransport(
                self.client, task_queue=self.task_queue, workflow_task_seconds=_WORKFLOW_TASK_SECONDS
            ) as transport,
            SubAgentManager(SUBAGENTS, policy=policy, transport=transport) as manager,
        ):
            unsubscribe = transport.subscribe(self._note_cancelled)
            try:
                yield manager
            finally:
                unsubscribe()

    def _note_cancelled(self, address: str, message: WireMessage) -> None:
        if isinstance(message, StatusChanged) and message.new.status is TaskStatus.CANCELLED:
            self.requests_when_cancelled = len(self.model.completions)

    async def start_and_kill(self, manager: SubAgentManager) -> tuple[str, Completion]:
        """Start a task on a worker, and SIGKILL the worker while the task's second model request is in flight."""
        async with self.worker() as first:
            task = await manager.start('researcher', 'Research X')
            with anyio.fail_after(_HANG_GUARD_SECONDS):
                in_flight = await self.model.request(2)
                first.kill()
                await in_flight.disconnected.wait()
        return task.task_id, in_flight

    async def cancel_with_no_worker(
        self, manager: SubAgentManager, mode: CancelMode
    ) -> tuple[SoftCancelOutcome | HardCancelOutcome, Completion, TaskInfo]:
        """Kill a task's worker mid-request, cancel the task while no worker runs, then let another worker recover it.

        Returns what the cancel call answered, the model request that was in flight, and the task as it ended.
        """
        task_id, in_flight = await self.start_and_kill(manager)
        cancel = manager.soft_cancel_outcome if mode == 'soft' else manager.hard_cancel_outcome
        requested_at = time.perf_counter()
        with anyio.fail_after(_HANG_GUARD_SECONDS):
            request = await cancel(task_id)
        _log.info('%s cancel with no worker: answered in %.2fs', mode, time.perf_counter() - requested_at)
        return request, in_flight, await self.recover(manager, task_id, f'{mode} cancel with no worker')

    async def recover(self, manager: SubAgentManager, task_id: str, scenario: str) -> TaskInfo:
        """Start another worker; return the task once it has ended and its workflow has closed, logging how soon."""
        async with self.worker() as second:
            with anyio.fail_after(_HANG_GUARD_SECONDS):
                await manager.wait([task_id])
                seconds = time.perf_counter() - (second.served_at or 0.0)
                await self.client.get_workflow_handle(task_id).result()  # closed: none of its activities runs now
        _log.info('%s: the task ended %.2fs after the next worker served', scenario, seconds)
        return manager.get(task_id)


def research(completion: Completion) -> Reply:
    """Checkpoint first, then hold the next request in flight; wrap up when the request says CANCEL_REQUEST."""
    if 'CANCEL_REQUEST' in completion.text:
        return Say(_WRAP_UP)
    if 'tool' not in completion.roles:
        return CallTool('checkpoint', {'completed': ['sources'], 'in_progress': ['analysis']})
    return Hold()


def research_then(retried: Reply) -> Callable[[Completion], Reply]:
    """As `research`, but the request held in flight is answered with `retried` when a worker sends it again."""
    holds = 0

    def replies(completion: Completion) -> Reply:
        nonlocal holds
        reply = research(completion)
        if isinstance(reply, Hold):
            holds += 1
            return reply if holds == 1 else retried
        return reply

    return replies


def summary(completion: Completion) -> str:
    last = completion.body['messages'][-1]
    return f'{len(completion.body["messages"])} messages, last {last["role"]}'


async def test_worker_killed_mid_request_another_continues_without_rerunning_finished_requests(
    temporal_server: DevServer,
) -> None:
    """The request in flight is sent again by the next worker; the one that had returned is not; the task completes."""
    async with serving(FakeOpenAI(research_then(Say('The answer.')))) as model:
        crash = Crash(temporal_server, model, await connect(temporal_server.address))
        async with crash.owner(SubAgentPolicy()) as manager:
            task_id, in_flight = await crash.start_and_kill(manager)
            info = await crash.recover(manager, task_id, 'worker killed')
    assert [summary(completion) for completion in model.completions] == snapshot(
        ['2 messages, last user', '4 messages, last tool', '4 messages, last tool']
    )
    assert model.completions[2].body == in_flight.body  # the request in flight, sent again; the first one was not
    assert (info.status, info.outcome) == snapshot((TaskStatus.COMPLETED, Completed(output='The answer.')))
    assert info.usage is not None and info.usage.requests == 2  # the owner counts the request sent twice once


async def test_soft_cancel_sent_while_no_worker_runs_is_applied_when_one_returns(temporal_server: DevServer) -> None:
    """With every worker down the request answers at once; the next worker hands it to the model, which wraps up."""
    more_progress = CallTool('checkpoint', {'completed': ['sources', 'analysis'], 'in_progress': ['report']})
    async with serving(FakeOpenAI(research_then(more_progress))) as model:
        crash = Crash(temporal_server, model, await connect(temporal_server.address))
        async with crash.owner(SubAgentPolicy()) as manager:
            request, in_flight, info = await crash.cancel_with_no_worker(manager, 'soft')
    assert (request.result, request.info.status, request.info.cancel is not None) == snapshot(
        ('unconfirmed', TaskStatus.RUNNING, True)
    )
    assert [summary(completion) for completion in model.completions] == snapshot(
        ['2 messages, last user', '4 messages, last tool', '4 messages, last tool', '7 messages, last user']
    )
    assert model.completions[2].body == in_flight.body  # sent again by the next worker, before it read the request
    assert info.status is TaskStatus.CANCELLED
    assert info.outcome == snapshot(
        Cancelled(
            mode='soft',
            reason=CancelReason(),
            partial=PartialResult(
                completed=('sources', 'analysis'),
                in_progress=('report',),
                final_message='Completed: sources. In progress: analysis. Not started: report.',
                checkpoints=2,
                read_request=True,
            ),
        )
    )
    assert info.cancel is not None and info.cancel.acknowledged_at is not None
    assert crash.requests_when_cancelled == len(model.completions)  # none after the owner recorded CANCELLED


async def test_hard_cancel_sent_while_no_worker_runs_is_applied_when_one_returns(temporal_server: DevServer) -> None:
    """With every worker down the request times out unresponsive; the next worker stops the run: CANCELLED, hard."""
    policy = SubAgentPolicy(hard_cancel_wait_seconds=2.0)
    async with serving(FakeOpenAI(research)) as model:
        crash = Crash(temporal_server, model, await connect(temporal_server.address))
        async with crash.owner(policy) as manager:
            request, in_flight, info = await crash.cancel_with_no_worker(manager, 'hard')
    assert (request.result, request.info.status, request.info.unresponsive) == snapshot(
        ('timed_out', TaskStatus.RUNNING, True)
    )
    assert [summary(completion) for completion in model.completions[:2]] == snapshot(
        ['2 messages, last user', '4 messages, last tool']
    )
    # The next worker may send the request in flight again before it reads the cancel (Temporal retries it once its
    # heartbeat is missed); then the cancel cuts it off.
    assert all(again.body == in_flight.body and again.disconnected.is_set() for again in model.completions[2:])
    assert info.status is TaskStatus.CANCELLED
    assert info.outcome == snapshot(
        Cancelled(
            mode='hard',
            reason=CancelReason(),
            partial=PartialResult(completed=('sources',), in_progress=('analysis',), checkpoints=1),
        )
    )
    assert crash.requests_when_cancelled == len(model.completions)  # none after the owner recorded CANCELLED


def test_worker_command_refuses_a_sticky_queue_bound_that_is_not_a_duration(capsys: pytest.CaptureFixture[str]) -> None:
    """`--sticky-queue-seconds 0` is a usage error (exit 2) that names the bound, before any connection."""
    with pytest.raises(SystemExit) as exited:
        main(['worker', '--task-queue', 'q', '--subagents', _SUBAGENTS, '--sticky-queue-seconds', '0'])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == snapshot(
        "subagents-cancel worker: error: argument --sticky-queue-seconds: expected a number of seconds greater than 0, got '0'"
    )
