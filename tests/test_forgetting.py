"""A long-lived owner forgets its oldest finished tasks, so its memory stays bounded; running tasks are kept."""

from __future__ import annotations

import gc
import re
import threading
import weakref
from dataclasses import dataclass

import anyio
import anyio.to_thread
import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
from pydantic_ai.models.test import TestModel

from subagents_cancel import (
    CancelReason,
    Completed,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    SubAgentPolicy,
    TaskStatus,
    UnknownTask,
)
from subagents_cancel._engine.registry import TaskRecord
from subagents_cancel.messages import ThreadsFinished
from subagents_cancel.metrics import RECENT_CANCELLED_RUNS
from subagents_cancel.regions import RegionClosed
from subagents_cancel.testing import ManualClock

from .helpers import Gate, Script, call, new_transport, replies_of, text, tool_returns

pytestmark = pytest.mark.anyio


def worker(script: Script) -> SubAgentConfig:
    return SubAgentConfig(name='worker', description='Does a job', model=script.model)


async def run_to_end(manager: SubAgentManager, prompt: str) -> str:
    task = await manager.start('worker', prompt)
    await manager.wait([task.task_id])
    return task.task_id


async def test_the_oldest_finished_tasks_are_forgotten_beyond_the_limit(clock: ManualClock) -> None:
    """With room for two finished tasks, the third and fourth push out the first two; a running task stays."""
    running = Gate()
    sub = Script([running.block_forever(), text('1'), text('2'), text('3'), text('4')])
    policy = SubAgentPolicy(keep_finished=2)
    async with SubAgentManager([worker(sub)], policy=policy, clock=clock) as manager:
        long_task = await manager.start('worker', 'A long job')
        await running.reached.wait()
        finished = [await run_to_end(manager, f'Job {number}') for number in range(1, 5)]

        known = [info.task_id for info in manager.tasks()]
        assert known == [long_task.task_id, *finished[2:]]
        with pytest.raises(UnknownTask) as raised:
            manager.get(finished[0])
        assert raised.value.finished_forgotten
        assert manager.get(long_task.task_id).status is TaskStatus.RUNNING
        assert manager.metrics().of('worker').completed == 4  # the figures still count every task
        await manager.hard_cancel(long_task.task_id)


async def test_finished_tasks_are_forgotten_after_their_time_to_live(clock: ManualClock) -> None:
    """A finished task is kept for `finished_ttl_seconds` after it ended, then forgotten when a task starts."""
    sub = Script([text('1'), text('2')])
    policy = SubAgentPolicy(finished_ttl_seconds=60)
    async with SubAgentManager([worker(sub)], policy=policy, clock=clock) as manager:
        first = await run_to_end(manager, 'Job 1')
        clock.advance(59)
        second = await run_to_end(manager, 'Job 2')
        assert [info.task_id for info in manager.tasks()] == [first, second]
        clock.advance(2)
        await manager.start('worker', 'Job 3')  # the first ended 61 s ago, the second 2 s ago
        assert [info.task_id for info in manager.tasks()][:1] == [second]


def _check_first_task(messages: list[ModelMessage]) -> ModelResponse:
    first_id = re.findall(r'^(worker-\w+): COMPLETED', '\n'.join(tool_returns(messages)), re.MULTILINE)[0]
    return ModelResponse(parts=[ToolCallPart('check_task', {'task_id': first_id})])


async def test_the_parent_is_told_that_a_forgotten_id_may_have_been_a_finished_task(clock: ManualClock) -> None:
    """The reply names the likely cause instead of reading as a mistyped id."""
    sub = Script([text('first report'), text('second report')])
    parent = Script(
        [
            call('task', description='Job 1', subagent_type='worker'),
            call('task', description='Job 2', subagent_type='worker'),
            _check_first_task,
            text('done'),
        ]
    )
    capability = SubAgentCapability(subagents=[worker(sub)], policy=SubAgentPolicy(keep_finished=1), clock=clock)

    result = await Agent(parent.model, capabilities=[capability]).run('go')

    assert replies_of(result.all_messages())[2] == snapshot(
        "No task 'worker-0001' in this run; call list_active_tasks() to see your tasks. The oldest finished tasks are forgotten to save memory; it may have been one of them."
    )


async def test_the_cancel_figures_keep_a_window_of_recent_runs_and_count_them_all(clock: ManualClock) -> None:
    """Past `RECENT_CANCELLED_RUNS` cancels, the runs kept one by one stay that many; the counts go on."""
    total = RECENT_CANCELLED_RUNS + 5
    running = Gate()
    sub = Script([running.block_forever()])
    policy = SubAgentPolicy(keep_finished=10, max_running=1)
    async with SubAgentManager([worker(sub)], policy=policy, clock=clock) as manager:
        for _ in range(total):  # one runs, the others wait for its slot: cancelling them costs no run
            await manager.start('worker', 'A long job')
        await running.reached.wait()
        manager.cancel_all('hard', reason=CancelReason())
        await manager.wait()
        figures = manager.metrics().of('worker')

    assert (figures.cancelled, len(figures.cancelled_runs)) == (total, RECENT_CANCELLED_RUNS)
    assert (figures.finished, figures.stop_times('hard').count) == (total, RECENT_CANCELLED_RUNS)


async def test_a_region_is_forgotten_with_its_last_task(clock: ManualClock) -> None:
    """One region per request: only the regions of the tasks still kept are known, however many came before."""
    sub = Script([text(f'{number}') for number in range(5)])
    async with SubAgentManager([worker(sub)], policy=SubAgentPolicy(keep_finished=2), clock=clock) as manager:
        for number in range(5):
            task = await manager.start('worker', 'A job', region=f'request-{number}')
            await manager.wait([task.task_id])
        assert manager.regions() == ('request-3', 'request-4')


async def test_a_cancelled_region_stays_closed_while_its_tasks_are_kept(clock: ManualClock) -> None:
    """Its cancel is kept with its tasks (starting in it is refused), and forgotten with the last of them."""
    blocked = Gate()
    sub = Script([blocked.block_forever(), text('1'), text('2'), text('3')])
    async with SubAgentManager([worker(sub)], policy=SubAgentPolicy(keep_finished=2), clock=clock) as manager:
        await manager.start('worker', 'A job', region='research/patents')
        await blocked.reached.wait()
        await manager.hard_cancel_region('research')
        await run_to_end(manager, 'Job 1')
        with pytest.raises(RegionClosed):
            await manager.start('worker', 'Too late', region='research/patents')
        kept = manager.regions()
        await run_to_end(manager, 'Job 2')  # the cancelled task is the oldest of three finished: forgotten
        assert (kept, manager.regions()) == (('research/patents', 'research'), ())
        await manager.wait([(await manager.start('worker', 'A new start', region='research')).task_id])


async def test_regions_cancelled_empty_are_kept_closed_up_to_the_limit(clock: ManualClock) -> None:
    """A region cancelled before any task joined it stays closed until `keep_finished` more such are cancelled."""
    async with SubAgentManager([worker(Script([]))], policy=SubAgentPolicy(keep_finished=2), clock=clock) as manager:
        for number in range(4):
            await manager.soft_cancel_region(f'empty-{number}')
        assert manager.regions() == ('empty-2', 'empty-3')
        with pytest.raises(RegionClosed):
            await manager.start('worker', 'A job', region='empty-3')


async def test_regions_cancelled_empty_are_reopened_after_the_time_to_live(clock: ManualClock) -> None:
    """An owner forgetting by age reopens a region cancelled while empty `finished_ttl_seconds` after its cancel."""
    sub = Script([text('done')])
    policy = SubAgentPolicy(keep_finished=None, finished_ttl_seconds=60)
    async with SubAgentManager([worker(sub)], policy=policy, clock=clock) as manager:
        await manager.soft_cancel_region('early')
        clock.advance(30)
        await manager.soft_cancel_region('later')
        clock.advance(30)
        kept_at_60 = manager.regions()
        task = await manager.start('worker', 'A job', region='early')  # cancelled 60 s ago: open again
        await manager.wait([task.task_id])
        with pytest.raises(RegionClosed):
            await manager.start('worker', 'Too early', region='later')  # cancelled 30 s ago: still closed
        clock.advance(31)
        await manager.soft_cancel_region('another')
        assert (kept_at_60, manager.regions()) == (('early', 'later'), ('early', 'another'))


def _live_records(manager: SubAgentManager) -> int:
    """How many task records of `manager`'s tasks are alive after a full collection."""
    gc.collect()
    return sum(isinstance(obj, TaskRecord) and obj.root_id == manager.owner_id for obj in gc.get_objects())


async def test_a_task_that_was_unresponsive_is_forgotten_like_any_other(clock: ManualClock) -> None:
    """A task whose sync tool outlived its stop, once its thread has returned, leaves nothing behind when forgotten."""
    entered, release = threading.Event(), threading.Event()

    def crunch() -> str:
        """Crunch."""
        entered.set()
        release.wait()
        return 'crunched'

    sub = Script([call('crunch'), text('1'), text('2')])
    config = SubAgentConfig(name='worker', description='Works', agent=Agent(sub.model, tools=[crunch]))
    bus, returned = new_transport(), anyio.Event()
    bus.subscribe(lambda address, message: returned.set() if isinstance(message, ThreadsFinished) else None)
    policy = SubAgentPolicy(keep_finished=1)
    async with bus, SubAgentManager([config], policy=policy, clock=clock, transport=bus) as manager:
        task = await manager.start('worker', 'Get stuck')
        await anyio.to_thread.run_sync(entered.wait)
        await manager.hard_cancel(task.task_id)
        release.set()
        await returned.wait()
        for number in range(2):
            await run_to_end(manager, f'Job {number}')
        assert _live_records(manager) == 1


@dataclass
class _Report:
    """A sub-agent's typed output: a weak reference to it tells whether its task's record is still kept."""

    text: str


async def test_a_forgotten_task_with_a_time_budget_is_not_kept_by_its_deadline() -> None:
    """Once a finished task with `task_timeout_seconds` is forgotten (`keep_finished`), nothing keeps its output alive."""
    agent = Agent(TestModel(call_tools=[]), output_type=_Report)
    policy = SubAgentPolicy(keep_finished=1, task_timeout_seconds=3600.0)
    async with SubAgentManager(
        [SubAgentConfig(name='worker', description='Works', agent=agent)], policy=policy
    ) as manager:
        info = await manager.run('worker', 'Report.')
        assert isinstance(info.outcome, Completed)
        output = weakref.ref(info.outcome.output)
        del info
        await manager.run('worker', 'Report again.')  # the first task is past keeping now
        gc.collect()
        assert output() is None
