"""Finishing cleanup work even while the caller is being cancelled, whichever way the cancel arrives."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import anyio

__all__ = ('finish_shielded',)


async def finish_shielded(cleanup: Coroutine[Any, Any, object]) -> None:
    """Run `cleanup` to its end, then re-raise a cancellation of the caller that arrived meanwhile.

    An anyio shield covers cancel scopes only. Some pydantic-ai versions (before 2.68) run a capability's
    `wrap_run` in a task of its own and cancel that task directly when the run is cancelled, which goes
    through any shield; the cleanup here runs in a task of its own, so only its own bounds can end it.
    """
    task = asyncio.get_running_loop().create_task(cleanup, name='subagents_cancel cleanup')
    interrupted: asyncio.CancelledError | None = None
    with anyio.CancelScope(shield=True):
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError as error:
                interrupted = error
    task.result()
    if interrupted is not None:
        raise interrupted
