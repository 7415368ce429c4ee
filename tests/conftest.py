"""Fixtures shared by every test: the anyio backend, a manual clock, and the check that nothing is left running."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator

import logfire
import pytest
from pydantic_ai import models

from subagents_cancel import ManualClock

models.ALLOW_MODEL_REQUESTS = False  # a test that reaches a real provider fails instead of spending tokens
logfire.configure(send_to_logfire=False, console=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.add_marker(pytest.mark.anyio)


@pytest.fixture
def anyio_backend() -> str:
    return 'asyncio'  # pydantic-ai's first-party cancellation cancels asyncio tasks


@pytest.fixture(autouse=True)
async def no_stray_tasks() -> AsyncIterator[None]:
    """Fail any test that leaves an asyncio task running: nothing may outlive its owner."""
    before = asyncio.all_tasks()
    yield
    stray = [
        task
        for task in asyncio.all_tasks() - before
        if not task.done() and task is not asyncio.current_task() and not _is_test_runner(task)
    ]
    assert not stray, f'tasks left running: {[task.get_name() for task in stray]}'


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def _is_test_runner(task: asyncio.Task[object]) -> bool:
    """Anyio's pytest plugin runs each fixture step in a task of its own; those are not ours."""
    return getattr(task.get_coro(), '__qualname__', '').startswith('TestRunner.')
