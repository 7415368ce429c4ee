"""Concurrency slots: a slot freed by a task that ends always reaches a task that can run, never gets stuck."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse

from subagents_cancel import SubAgentConfig, SubAgentManager, SubAgentPolicy, TaskStatus
from subagents_cancel.wire import StartTask, WireMessage

from .helpers import Gate, Script, WatchedClock, new_transport, text

pytestmark = pytest.mark.anyio


class _OnFailureLogged(logging.Handler):
    """Calls `react` in the failing task itself, as the runner logs the run's failure (then frees its slot)."""

    def __init__(self, react: Callable[[], None]) -> None:
        super().__init__()
        self._react = react

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().endswith(' failed'):
            self._react()


async def test_a_slot_granted_to_a_task_as_it_is_cancelled_goes_to_the_next_task(clock: WatchedClock) -> None:
    """A PENDING task cancelled right after the slot was handed to it never starts; the next PENDING task gets it."""
    failing = Gate()

    async def provider_down(messages: list[ModelMessage]) -> ModelResponse:
        raise RuntimeError('the model provider failed')

    queued = Script([text('never')])
    configs = [
        SubAgentConfig(name='running', description='Fails', model=Script([failing.hold(provider_down)]).model),
        SubAgentConfig(name='queued', description='Cancelled while queued', model=queued.model),
        SubAgentConfig(name='next', description='Next in line', model=Script([text('done')]).model),
    ]
    started: list[str] = []

    def on_message(address: str, message: WireMessage) -> None:
        if isinstance(message, StartTask):
            started.append(message.task_id.split('-')[0])

    bus = new_transport()
    bus.subscribe(on_message)
    cancels: list[asyncio.Task[object]] = []
    async with (
        bus,
        SubAgentManager(configs, clock=clock, policy=SubAgentPolicy(max_running=1), transport=bus) as manager,
    ):
        running = await manager.start('running', 'x')
        cancelled = await manager.start('queued', 'y')
        after = await manager.start('next', 'z')
        # The failing run logs its failure and frees its slot with no await in between: the slot is handed to the
        # first task in the queue, and the hard cancel below lands before that task has woken up to take it.
        loop = asyncio.get_running_loop()
        handler = _OnFailureLogged(lambda: cancels.append(loop.create_task(manager.hard_cancel(cancelled.task_id))))
        logging.getLogger('subagents_cancel').addHandler(handler)
        try:
            await failing.reached.wait()
            failing.release.set()
            await manager.wait([running.task_id])
            (cancel,) = cancels
            await cancel
        finally:
            logging.getLogger('subagents_cancel').removeHandler(handler)
        result = await manager.wait([after.task_id])
    assert [info.status for info in (manager.get(running.task_id), manager.get(cancelled.task_id))] == [
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
    ]
    assert result.tasks[0].status is TaskStatus.COMPLETED
    assert started == ['running', 'next']  # the cancelled task was never sent to the host: it never began its run
    assert queued.requests == []
