"""The processes of `temporal_cancel.py`: worker processes it starts and kills, the notes their models print.

A worker is `python -m subagents_cancel worker` serving `benchkit.temporal_agents:SUBAGENTS`, started from
`benchmarks/` so that the module is found. Its standard output is read line by line: `worker: serving ...` says it
polls its task queue, and every model note goes to [`Notes`][benchkit.temporal_fleet.Notes], where the benchmark
waits for it. Standard error is the benchmark's.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import Process, TaskGroup
from anyio.streams.buffered import BufferedByteReceiveStream

from .temporal_agents import parse_line

__all__ = ('Fleet', 'Notes', 'WorkerProcess', 'cpu_seconds')

BENCHMARKS = Path(__file__).resolve().parent.parent
SUBAGENTS = 'benchkit.temporal_agents:SUBAGENTS'
_SERVING = 'worker: serving'
_READY_SECONDS = 60.0
_LINE_BYTES = 65536
_TICKS_PER_SECOND = os.sysconf('SC_CLK_TCK')


@dataclass
class Notes:
    """What the models noted, `(kind, token) -> when` (`time.monotonic()`), the first note of each pair."""

    at: dict[tuple[str, str], float] = field(default_factory=dict[tuple[str, str], float])
    _waiting: dict[tuple[str, str], anyio.Event] = field(default_factory=dict[tuple[str, str], anyio.Event])

    def note(self, kind: str, token: str, at: float) -> None:
        """Keep a note (only the first of a kind for a token), and wake whoever waits for it."""
        key = (kind, token)
        if key in self.at:
            return
        self.at[key] = at
        if (event := self._waiting.pop(key, None)) is not None:
            event.set()

    async def wait(self, kind: str, token: str) -> float:
        """When the model of `token` noted `kind`, once it has."""
        key = (kind, token)
        if key not in self.at:
            await self._waiting.setdefault(key, anyio.Event()).wait()
        return self.at[key]


@dataclass
class WorkerProcess:
    """One worker process and when it was started and was ready (monotonic seconds)."""

    process: Process
    started_at: float
    ready_at: float = 0.0

    async def kill(self) -> None:
        """SIGKILL it, as a crash would end it, and reap it."""
        self.process.kill()
        await self.process.wait()

    async def stop(self) -> None:
        """SIGTERM it: the worker shuts down cleanly."""
        if self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


async def _read_lines(worker: WorkerProcess, notes: Notes, ready: anyio.Event) -> None:
    assert worker.process.stdout is not None
    stream = BufferedByteReceiveStream(worker.process.stdout)
    while True:
        try:
            line = (await stream.receive_until(b'\n', _LINE_BYTES)).decode()
        except (anyio.EndOfStream, anyio.IncompleteRead):
            ready.set()  # it exited: whoever waits for it to be ready learns so at once
            return
        if (found := parse_line(line)) is not None:
            notes.note(*found)
        elif line.startswith(_SERVING):
            worker.ready_at = time.monotonic()
            ready.set()


@dataclass
class Fleet:
    """The worker processes of one task queue on one server; their readers run in `group` until they exit."""

    group: TaskGroup
    address: str
    task_queue: str
    notes: Notes
    server_pid: int
    workers: list[WorkerProcess] = field(default_factory=list[WorkerProcess])

    async def start_one(self) -> WorkerProcess:
        """Start a worker process and return once it polls the task queue."""
        command = [sys.executable, '-m', 'subagents_cancel', 'worker', '--address', self.address]
        command += ['--task-queue', self.task_queue, '--subagents', SUBAGENTS]
        started_at = time.monotonic()
        process = await anyio.open_process(command, cwd=BENCHMARKS, stderr=None)
        worker = WorkerProcess(process, started_at)
        self.workers.append(worker)
        ready = anyio.Event()
        self.group.start_soon(_read_lines, worker, self.notes, ready)
        with anyio.fail_after(_READY_SECONDS):
            await ready.wait()
        if process.returncode is not None or not worker.ready_at:
            raise RuntimeError(f'The worker process did not start (exit status {process.returncode}).')
        return worker

    async def kill_all(self) -> None:
        """SIGKILL every worker."""
        for worker in self.workers:
            await worker.kill()
        self.workers.clear()

    async def stop_all(self) -> None:
        """Stop every worker cleanly."""
        for worker in self.workers:
            await worker.stop()
        self.workers.clear()

    def other_cpu(self) -> float:
        """The CPU seconds the workers and the server have used so far."""
        return cpu_seconds([self.server_pid, *(worker.process.pid for worker in self.workers)])


def cpu_seconds(pids: list[int]) -> float:
    """The CPU time (user + system) the processes `pids` have used so far, from `/proc` (in clock ticks)."""
    total = 0
    for pid in pids:
        with open(f'/proc/{pid}/stat') as stat:
            fields = stat.read().rsplit(')', 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: the 14th and 15th fields of the whole line
    return total / _TICKS_PER_SECOND
