"""Temporal workers in processes of their own (`python -m subagents_cancel worker`), to start, stop and kill.

The crash tests (and benchmarks) use them as a deployment would: the worker is another process, on the task queue
of the test's owner, and the test can SIGKILL it mid-task. A worker counts as started once it prints that it
serves its queue; its output is kept (the last lines) for the failure message of a worker that did not start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import ByteReceiveStream, Process

ROOT = Path(__file__).resolve().parent.parent
"""The repository: a worker runs here, so `--subagents tests.<module>:NAME` imports the test package's module."""
_SERVING = 'worker: serving'
"""What the worker command prints once its worker polls the task queue."""
_START_SECONDS = 15.0
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

    The block may kill or stop it; at the end of the block a worker still running is killed, and reaped.

    Raises:
        RuntimeError: the worker exited before it was serving (its last lines of output say why).
        TimeoutError: it was not serving within `_START_SECONDS` (a hang).
    """
    command = [sys.executable, '-m', 'subagents_cancel', 'worker', '--address', address, '--task-queue', task_queue]
    command += ['--subagents', subagents, *options]
    started = time.perf_counter()
    environment = {**os.environ, **(env or {})}
    process = await anyio.open_process(command, stdin=subprocess.DEVNULL, cwd=ROOT, env=environment)
    worker = WorkerProcess(task_queue, process)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_read_lines, worker, process.stdout)
            group.start_soon(_read_lines, worker, process.stderr)
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


async def _read_lines(worker: WorkerProcess, stream: ByteReceiveStream | None) -> None:
    """Keep the last lines of `stream` in `worker.output` (reading to the end, so its pipe never fills up)."""
    assert stream is not None
    pending = b''
    async for chunk in stream:
        *lines, pending = (pending + chunk).split(b'\n')
        for line in lines:
            decoded = line.decode(errors='replace')
            worker.output.append(decoded)
            if decoded.startswith(_SERVING):
                worker.serving.set()


async def _until_serving(worker: WorkerProcess) -> None:
    async def exited(scope: anyio.CancelScope) -> None:
        await worker.process.wait()
        scope.cancel()

    with anyio.fail_after(_START_SECONDS):
        async with anyio.create_task_group() as group:
            group.start_soon(exited, group.cancel_scope)
            await worker.serving.wait()
            group.cancel_scope.cancel()
    if not worker.serving.is_set():
        raise RuntimeError(f'The worker did not start: {chr(10).join(worker.output)}')
