"""Subprocesses for sub-agent tools that die with their task: a cancel kills the process and everything it started."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import ByteReceiveStream, Process

from ._engine.shield import finish_shielded, run_to_end

__all__ = ('ProcessResult', 'run_process')


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """How a command ended, and what it wrote."""

    returncode: int
    stdout: bytes
    stderr: bytes


async def run_process(
    command: Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> ProcessResult:
    """Run `command` to its end, from an async tool of a sub-agent; if the tool is cancelled, kill it first.

    The command gets a process group of its own (POSIX), so a cancel (a hard cancel of the task, a grace
    window running out, the owner going away) kills it together with every process it started, and waits
    until it is gone before the cancellation goes on. Its stdin is empty.

    Raises:
        subprocess.CalledProcessError: `check` is true and the command exited with a non-zero status.
    """
    # Created in full even if a cancel lands meanwhile: asyncio answers such a cancel by waiting for the process to
    # exit, for as long as anything it started holds its pipes. Created, it can be killed.
    process, interrupted = await run_to_end(
        anyio.open_process(command, stdin=subprocess.DEVNULL, cwd=cwd, env=env, start_new_session=True)
    )
    if interrupted is not None:
        await finish_shielded(_kill(process))
        raise interrupted
    assert process.stdout is not None and process.stderr is not None
    stdout, stderr = _Collected(process.stdout), _Collected(process.stderr)
    returncode: int | None = None
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(stdout.read)
            group.start_soon(stderr.read)
            returncode = await process.wait()
    except BaseException:
        await finish_shielded(_kill(process))
        raise
    await process.aclose()
    assert returncode is not None
    if check and returncode != 0:
        raise subprocess.CalledProcessError(returncode, list(command), stdout.data, stderr.data)
    return ProcessResult(returncode, stdout.data, stderr.data)


class _Collected:
    def __init__(self, stream: ByteReceiveStream) -> None:
        self._stream = stream
        self._chunks: list[bytes] = []

    @property
    def data(self) -> bytes:
        return b''.join(self._chunks)

    async def read(self) -> None:
        async for chunk in self._stream:
            self._chunks.append(chunk)


async def _kill(process: Process) -> None:
    """Kill the process's group (the process, and what it started that is still in the group), and reap it."""
    if hasattr(os, 'killpg'):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:  # the group is already gone
            pass
    else:  # pragma: no cover - Windows has no process groups
        process.kill()
    await process.aclose()
