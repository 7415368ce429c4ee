"""Finishing work even while the caller is being cancelled, whichever way the cancel arrives."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import anyio

__all__ = ('finish_shielded', 'run_to_end', 'wait_to_end')

_T = TypeVar('_T')


async def run_to_end(work: Coroutine[Any, Any, _T]) -> tuple[_T, asyncio.CancelledError | None]:
    """Run `work` to its end; return its result, and the cancellation of the caller that arrived meanwhile, if any.

    An anyio shield covers cancel scopes only. Some pydantic-ai versions (before 2.68) run a capability's
    `wrap_run`, and tools, in tasks of their own and cancel those tasks directly, which goes through any
    shield; `work` runs in a task of its own here, so only its own bounds can end it.
    """
    return await wait_to_end(asyncio.get_running_loop().create_task(work, name='subagents_cancel shielded work'))


async def wait_to_end(task: asyncio.Task[_T]) -> tuple[_T, asyncio.CancelledError | None]:
    """Wait for `task` to end, shielded; return its result, and the cancellation of the caller that came meanwhile.

    Several callers may wait for one task: each gets its result once it has ended, cancelled or not.
    """
    interrupted: asyncio.CancelledError | None = None
    with anyio.CancelScope(shield=True):
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError as error:
                interrupted = error
    return task.result(), interrupted


async def finish_shielded(cleanup: Coroutine[Any, Any, object]) -> None:
    """Run `cleanup` to its end, then re-raise a cancellation of the caller that arrived meanwhile."""
    _, interrupted = await run_to_end(cleanup)
    if interrupted is not None:
        raise interrupted
