"""Temporal workers in processes of their own (`python -m subagents_cancel worker`), to start, stop and kill.

The crash tests (and benchmarks) use them as a deployment would: the worker is another process, on the task queue
of the test's owner, and the test can SIGKILL it mid-task. A worker counts as started once it prints that it
serves its queue; its output is kept (the last lines) for the failure message of a worker that did not start.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import ByteReceiveStream, Process, TaskGroup

ROOT = Path(__file__).resolve().parent.parent
"""The repository: a worker runs here, so `--subagents tests.<module>:NAME` imports the test package's module."""
_SERVING = 'worker: serving'
"""What the worker command prints once its worker polls the task queue."""
_START_SECONDS = 30.0
"""A bound against a hang of a worker that never starts, not a timing claim."""


@dataclass
class WorkerProcess:
    """A worker command running in a child process."""

    task_queue: str
    process: Process
    output: deque[str] = field(default_factory=lambda: deque(maxlen=50))
    serving: anyio.Event = field(default_factory=anyio.Event)
    ready_seconds: float | None = None
    """How long it took from the command's start to its worker serving the queue."""
    served_at: float | None = None
    """When it started serving (`time.perf_counter()`)."""

    signalled: bool = False
    """It was sent SIGKILL or SIGTERM already (signalling it again could reap it behind asyncio's back)."""

    def kill(self) -> None:
        """SIGKILL it: no shutdown, nothing sent to the Temporal server, its connections just close."""
        self._signal(signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM it (the command's shutdown) and wait until it has exited."""
        self._signal(signal.SIGTERM)
        await self.process.wait()

    def _signal(self, number: signal.Signals) -> None:
        if not self.signalled and self.process.returncode is None:
            self.signalled = True
            self.process.send_signal(number)

    async def _read(self, stream: ByteReceiveStream) -> None:
        pending = b''
        async for chunk in stream:
            *lines, pending = (pending + chunk).split(b'\n')
            for line in lines:
                decoded = line.decode(errors='replace')
                self.output.append(decoded)
                if decoded.startswith(_SERVING):
                    self.serving.set()


@asynccontextmanager
async def worker_process(
    address: str,
    task_queue: str,
    subagents: str,
    *,
    env: Mapping[str, str] | None = None,
    options: Sequence[str] = (),
) -> AsyncGenerator[WorkerProcess]:
    """A worker process for `task_queue` hosting `subagents` (`module:NAME`), serving once this is entered.

    `env` is added to this process's environment for it, `options` to its command line.

    The block may kill it; at the end of the block a worker still running is killed and reaped.

    Raises:
        RuntimeError: the worker exited, or did not serve within a bound, before it was serving.
    """
    command = [sys.executable, '-m', 'subagents_cancel', 'worker', '--address', address, '--task-queue', task_queue]
    command += ['--subagents', subagents, *options]
    started = time.perf_counter()
    process = await anyio.open_process(command, cwd=ROOT, env={**os.environ, **(env or {})})
    worker = WorkerProcess(task_queue, process)
    try:
        async with anyio.create_task_group() as group:
            _read_output(group, worker)
            await _until_serving(worker)
            worker.served_at = time.perf_counter()
            worker.ready_seconds = worker.served_at - started
            yield worker
            worker.kill()
    finally:
        worker.kill()
        with anyio.CancelScope(shield=True):
            await process.wait()
            await process.aclose()


def _read_output(group: TaskGroup, worker: WorkerProcess) -> None:
    assert worker.process.stdout is not None and worker.process.stderr is not None
    group.start_soon(worker._read, worker.process.stdout)  # pyright: ignore[reportPrivateUsage]
    group.start_soon(worker._read, worker.process.stderr)  # pyright: ignore[reportPrivateUsage]


async def _until_serving(worker: WorkerProcess) -> None:
    async def exited() -> None:
        await worker.process.wait()

    with anyio.fail_after(_START_SECONDS):
        async with anyio.create_task_group() as group:

            async def serving() -> None:
                await worker.serving.wait()
                group.cancel_scope.cancel()

            group.start_soon(serving)
            await exited()
            group.cancel_scope.cancel()
    if not worker.serving.is_set():
        raise RuntimeError(f'The worker did not start: {chr(10).join(worker.output)}')
