"""Cleanup after a cancel, and no partial writes: hooks run shielded and bounded; scratch directories never leak."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import pytest
from pydantic_ai import Tool

from subagents_cancel import (
    Cancelled,
    CancelReason,
    PartialResult,
    SubAgentConfig,
    SubAgentManager,
    SubAgentPolicy,
    TaskInfo,
    TaskStatus,
    current_task,
)
from subagents_cancel.clock import sleep_until
from subagents_cancel.testing import ManualClock

from .helpers import Gate, Script, call, text
from .temporal_support import Backend, durable

pytestmark = pytest.mark.anyio


def writer(script: Script, written: list[Path] | None = None, **settings: object) -> SubAgentConfig:
    """A sub-agent with a `write` tool that stages its files in the task's scratch directory (noted in `written`)."""

    def write(name: str, content: str) -> str:
        """Write a file of the report."""
        task = current_task()
        assert task is not None
        path = task.scratch_dir / name
        path.write_text(content)
        if written is not None:
            written.append(path)
        return f'wrote {name}'

    agent = durable(script.model, 'writer', tools=[Tool(write)])
    return SubAgentConfig.model_validate({'name': 'writer', 'description': 'Writes files', 'agent': agent, **settings})


async def test_cleanup_hook_gets_the_cancelled_task(backend: Backend, clock: ManualClock) -> None:
    seen: list[TaskInfo] = []

    async def cleanup(info: TaskInfo) -> None:
        seen.append(info)

    working = Gate()
    script = Script([call('checkpoint', completed=['intro']), working.block_forever()])
    async with backend.manager([writer(script, cleanup=cleanup)], clock=clock) as manager:
        task = await manager.start('writer', 'Write the report')
        await working.reached.wait()
        await manager.hard_cancel(task.task_id, reason=CancelReason(kind='budget', detail='token budget'))

    (info,) = seen
    assert info.status is TaskStatus.CANCELLED
    assert isinstance(info.outcome, Cancelled)
    assert (info.outcome.mode, info.outcome.reason) == ('hard', CancelReason(kind='budget', detail='token budget'))
    assert info.outcome.partial.completed == ('intro',)
    assert manager.get(task.task_id).cleanup_error is None


async def test_cleanup_hook_that_raises_is_recorded_and_teardown_goes_on(backend: Backend, clock: ManualClock) -> None:
    async def cleanup(info: TaskInfo) -> None:
        raise OSError('disk gone')

    working = Gate()
    async with backend.manager([writer(Script([working.block_forever()]), cleanup=cleanup)], clock=clock) as manager:
        task = await manager.start('writer', 'Write the report')
        await working.reached.wait()
        info = await manager.hard_cancel(task.task_id)

    assert info.outcome == Cancelled(mode='hard', reason=CancelReason(), partial=PartialResult())
    assert manager.get(task.task_id).cleanup_error == 'its hook raised OSError'
    assert manager.orphans() == ()


async def test_cleanup_hook_that_hangs_is_stopped_at_its_bound(clock: ManualClock) -> None:
    hook_started = anyio.Event()
    hook_stopped = anyio.Event()

    async def cleanup(info: TaskInfo) -> None:
        hook_started.set()
        try:
            await anyio.sleep_forever()
        finally:
            hook_stopped.set()

    working = Gate()
    policy = SubAgentPolicy(hook_seconds=2)
    config = writer(Script([working.block_forever()]), cleanup=cleanup)
    async with SubAgentManager([config], clock=clock, policy=policy) as manager:
        task = await manager.start('writer', 'Write the report')
        await working.reached.wait()
        await manager.hard_cancel(task.task_id)
        await hook_started.wait()
        await anyio.wait_all_tasks_blocked()
        clock.advance(2)
        await hook_stopped.wait()

    assert manager.get(task.task_id).cleanup_error == 'its hook ran longer than 2s and was stopped'
    assert manager.orphans() == ()


async def test_cancelled_task_leaves_no_files_behind(clock: ManualClock) -> None:
    """Files staged by a task that is cancelled are deleted with its scratch directory, after its cleanup hook."""
    written: list[Path] = []
    present_at_cleanup: list[bool] = []

    async def cleanup(info: TaskInfo) -> None:
        present_at_cleanup.append(all(path.exists() for path in written))

    working = Gate()
    script = Script([call('write', name='part1.md', content='# Market'), working.block_forever()])
    async with SubAgentManager([writer(script, written, cleanup=cleanup)], clock=clock) as manager:
        task = await manager.start('writer', 'Write the report')
        await working.reached.wait()
        (staged,) = written
        assert staged.read_text() == '# Market'
        await manager.hard_cancel(task.task_id)

    assert present_at_cleanup == [True]
    assert not staged.parent.exists()


async def test_completed_task_promotes_its_files(clock: ManualClock, tmp_path: Path) -> None:
    published = tmp_path / 'published'

    async def promote(info: TaskInfo, scratch: Path) -> None:
        assert info.status is TaskStatus.COMPLETED
        shutil.copytree(scratch, published)

    written: list[Path] = []
    script = Script([call('write', name='report.md', content='# Q3'), text('Report written.')])
    async with SubAgentManager([writer(script, written, promote=promote)], clock=clock) as manager:
        info = await manager.run('writer', 'Write the report')

    assert info.status is TaskStatus.COMPLETED
    assert (published / 'report.md').read_text() == '# Q3'
    assert not written[0].parent.exists()  # promoted, then the scratch directory goes
    assert manager.get(info.task_id).cleanup_error is None


async def test_waiting_for_a_task_returns_after_its_hook(clock: ManualClock) -> None:
    """`wait` reports a task once its hook has run, so what the hook recorded or deleted is settled by then."""
    hook_running = anyio.Event()
    hook_may_end = anyio.Event()

    async def cleanup(info: TaskInfo) -> None:
        hook_running.set()
        await hook_may_end.wait()
        raise OSError('disk gone')

    working = Gate()
    waited: list[TaskInfo] = []
    async with SubAgentManager([writer(Script([working.block_forever()]), cleanup=cleanup)], clock=clock) as manager:
        task = await manager.start('writer', 'Write the report')
        await working.reached.wait()
        await manager.hard_cancel(task.task_id)  # returns once the run has stopped
        await hook_running.wait()
        async with anyio.create_task_group() as group:

            async def wait_for_it() -> None:
                waited.extend((await manager.wait([task.task_id])).tasks)

            group.start_soon(wait_for_it)
            await anyio.wait_all_tasks_blocked()
            assert waited == []
            hook_may_end.set()

    (info,) = waited
    assert info.cleanup_error == 'its hook raised OSError'


async def test_teardown_waits_for_a_slow_hook_within_its_own_bound(clock: ManualClock) -> None:
    """The owner's teardown gives runs `teardown_seconds` to stop, then their hooks `hook_seconds` to finish."""
    hook_running = anyio.Event()
    hook_done: list[float] = []

    async def cleanup(info: TaskInfo) -> None:
        hook_running.set()
        await sleep_until(clock, clock.now() + 3)
        hook_done.append(clock.now())

    async def advance_once_the_hook_waits() -> None:
        await hook_running.wait()
        await anyio.wait_all_tasks_blocked()
        clock.advance(3)

    working = Gate()
    policy = SubAgentPolicy(teardown_seconds=1, final_answer_wait_seconds=0.5, hook_seconds=10)
    config = writer(Script([working.block_forever()]), cleanup=cleanup)
    manager = SubAgentManager([config], clock=clock, policy=policy)
    async with anyio.create_task_group() as group:
        group.start_soon(advance_once_the_hook_waits)
        async with manager:
            await manager.start('writer', 'Write the report')
            await working.reached.wait()

    assert hook_done == [3.0]
    assert manager.orphans() == ()
