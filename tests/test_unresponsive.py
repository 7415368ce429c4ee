"""Work that a cancel cannot interrupt: sync tools in threads are reported, not awaited; subprocesses are killed."""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent
from pydantic_ai.capabilities import UseThreadExecutor

from subagents_cancel import (
    Cancelled,
    Completed,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    SubAgentPolicy,
    TaskStatus,
    current_task,
)
from subagents_cancel.messages import ThreadsFinished
from subagents_cancel.processes import run_process
from subagents_cancel.task_context import TaskCancelRequested
from subagents_cancel.testing import ManualClock
from subagents_cancel.transport import Transport
from subagents_cancel.wire import WireMessage

from .helpers import TASK_ID, Gate, Script, after, call, new_transport, replies_of, text, tool_returns

pytestmark = pytest.mark.anyio


class _SyncCrunch:
    """A sync tool that blocks its worker thread until `finish` is set; a cancel cannot interrupt it."""

    def __init__(self, *, cooperative: bool = False) -> None:
        self.entered = threading.Event()
        self.finish = threading.Event()
        self.side_effects: list[str] = []
        self.raised: list[str] = []
        self._cooperative = cooperative

    def crunch(self, dataset: str) -> str:
        """Crunch a dataset."""
        task = current_task()
        assert task is not None
        self.entered.set()
        self.finish.wait()
        if self._cooperative:
            try:
                task.raise_if_stopped()
            except TaskCancelRequested as stop:
                self.raised.append(str(stop))
                raise
        self.side_effects.append(f'wrote {dataset} results')
        return 'crunched'

    def config(self, script: Script) -> SubAgentConfig:
        agent = Agent(script.model, tools=[self.crunch])
        return SubAgentConfig(name='cruncher', description='Crunches data', agent=agent)


def threads_finished_seen(bus: Transport) -> anyio.Event:
    seen = anyio.Event()

    def listen(address: str, message: WireMessage) -> None:
        if isinstance(message, ThreadsFinished):
            seen.set()

    bus.subscribe(listen)
    return seen


async def test_sync_tool_thread_is_reported_until_it_returns(clock: ManualClock) -> None:
    """The run stops at once; the thread it leaves behind is listed as unresponsive until it returns."""
    tool = _SyncCrunch()
    bus = new_transport()
    returned = threads_finished_seen(bus)
    listed = anyio.Event()
    parent = Script(
        [
            call('task', subagent_type='cruncher', description='Crunch Q3', mode='async'),
            after(listed, call('hard_cancel_task', task_id=TASK_ID)),
            call('list_active_tasks'),
            call('check_task', task_id=TASK_ID),
            text('Stopped.'),
        ]
    )
    sub = Script([call('crunch', dataset='q3')])
    async with bus, SubAgentManager([tool.config(sub)], clock=clock, transport=bus) as manager:
        agent = Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)])
        async with anyio.create_task_group() as group:
            group.start_soon(agent.run, 'Crunch')
            await anyio.to_thread.run_sync(tool.entered.wait)
            listed.set()
        (stopped,) = manager.unresponsive_tasks()
        tool.finish.set()
        await returned.wait()
        await anyio.wait_all_tasks_blocked()  # the owner has read the report too
        after_return = manager.get(stopped.task_id)

    assert (stopped.status, stopped.lingering_threads, stopped.unresponsive) == (TaskStatus.CANCELLED, 1, True)
    assert (after_return.lingering_threads, after_return.unresponsive) == (0, False)
    assert manager.unresponsive_tasks() == ()
    assert tool.side_effects == ['wrote q3 results']  # a thread cannot be stopped: document it, report it
    assert replies_of(parent.requests[-1])[1:] == snapshot(
        [
            """\
Task cancelled: cruncher-0001 stopped 0.0 ms after the hard cancel. It recorded no checkpoint and sent no final message.
A sync tool of it is still working in 1 thread(s), which cannot be stopped; its results are discarded.\
""",
            """\
No active tasks.
Ended, but a sync tool of theirs is still working in a thread that cannot be stopped:
- cruncher-0001 CANCELLED (cruncher)\
""",
            """\
Task cancelled: cruncher-0001 (hard, on request; it ended 0.0 ms after the request). It recorded no checkpoint and sent no final message.
A sync tool of it is still working in 1 thread(s), which cannot be stopped; its results are discarded.\
""",
        ]
    )


async def test_sync_tool_of_an_agent_with_its_own_executor_still_runs_on_the_task_threads(clock: ManualClock) -> None:
    """A sub-agent agent with its own `UseThreadExecutor` still runs sync tools on the task's threads: a stopped call is reported."""
    tool = _SyncCrunch()
    own_executor = ThreadPoolExecutor(1)
    agent = Agent(
        Script([call('crunch', dataset='q3')]).model,
        tools=[tool.crunch],
        capabilities=[UseThreadExecutor(own_executor)],
    )
    config = SubAgentConfig(name='cruncher', description='Crunches data', agent=agent)
    bus = new_transport()
    returned = threads_finished_seen(bus)
    async with bus, SubAgentManager([config], clock=clock, transport=bus) as manager:
        task = await manager.start('cruncher', 'Crunch Q3')
        await anyio.to_thread.run_sync(tool.entered.wait)
        stopped = await manager.hard_cancel(task.task_id)
        tool.finish.set()
        await returned.wait()
    own_executor.shutdown()

    assert (stopped.status, stopped.lingering_threads) == (TaskStatus.CANCELLED, 1)
    assert tool.side_effects == ['wrote q3 results']


async def test_thread_left_at_teardown_is_an_orphan_and_reported_when_it_returns(clock: ManualClock) -> None:
    tool = _SyncCrunch()
    bus = new_transport()
    returned = threads_finished_seen(bus)
    sub = Script([call('crunch', dataset='q3')])
    async with bus:  # the transport outlives the manager: the thread's report still travels on it
        async with SubAgentManager([tool.config(sub)], clock=clock, transport=bus) as manager:
            task = await manager.start('cruncher', 'Crunch Q3')
            await anyio.to_thread.run_sync(tool.entered.wait)

        (orphan,) = manager.orphans()
        assert (orphan.task_id, orphan.status, orphan.lingering_threads) == (task.task_id, TaskStatus.CANCELLED, 1)
        tool.finish.set()
        await returned.wait()
        assert manager.get(task.task_id).lingering_threads == 0
        assert not manager.orphans()[0].unresponsive


async def test_cooperative_sync_tool_notices_the_cancel_and_writes_nothing(clock: ManualClock) -> None:
    tool = _SyncCrunch(cooperative=True)
    bus = new_transport()
    returned = threads_finished_seen(bus)
    sub = Script([call('crunch', dataset='q3')])
    async with bus, SubAgentManager([tool.config(sub)], clock=clock, transport=bus) as manager:
        task = await manager.start('cruncher', 'Crunch Q3')
        await anyio.to_thread.run_sync(tool.entered.wait)
        await manager.hard_cancel(task.task_id)
        tool.finish.set()
        await returned.wait()
        await anyio.wait_all_tasks_blocked()  # the owner has read the report too

    assert tool.side_effects == []
    assert tool.raised == [f'Task {task.task_id!r} was asked to stop.']


async def test_subprocess_and_its_children_die_with_the_task(clock: ManualClock, tmp_path: Path) -> None:
    """A hard cancel kills the command started with `run_process` and the process it spawned in the background.

    The background process holds the write end of a FIFO the test reads: the read ends (EOF) once it has died.
    """
    ready, held = tmp_path / 'ready', tmp_path / 'held'
    os.mkfifo(ready)
    os.mkfifo(held)

    async def build() -> str:
        """Run the build."""
        result = await run_process(['sh', '-c', f'sleep 300 > {held} & echo started > {ready}; wait'])
        return result.stdout.decode()

    blocked = Gate()
    sub = Script([call('build'), blocked.block_forever()])
    config = SubAgentConfig(name='builder', description='Builds', agent=Agent(sub.model, tools=[build]))
    async with SubAgentManager([config], clock=clock) as manager:
        task = await manager.start('builder', 'Build it')
        assert await anyio.to_thread.run_sync(ready.read_text) == 'started\n'
        with await anyio.to_thread.run_sync(held.open, 'rb') as background_output:
            info = await manager.hard_cancel(task.task_id)
            assert await anyio.to_thread.run_sync(background_output.read) == b''  # every writer is gone

    assert info.status is TaskStatus.CANCELLED


async def test_run_process_returns_output_and_checks_the_status() -> None:
    result = await run_process(['sh', '-c', 'echo out; echo err >&2'])
    assert (result.returncode, result.stdout, result.stderr) == (0, b'out\n', b'err\n')
    failed = await run_process(['sh', '-c', 'exit 3'], check=False)
    assert failed.returncode == 3
    with pytest.raises(Exception, match='exit status 3'):
        await run_process(['sh', '-c', 'exit 3'])


async def test_soft_cancel_lets_a_cooperative_tool_return_what_it_has(clock: ManualClock) -> None:
    """Under a soft cancel a sync tool sees `cancel_requested`, is not stopped, and its early result is read."""
    entered = threading.Event()
    cancel_sent = threading.Event()
    seen: list[tuple[bool, bool]] = []

    def crunch(dataset: str) -> str:
        """Crunch a dataset."""
        task = current_task()
        assert task is not None
        entered.set()
        cancel_sent.wait()
        task.raise_if_stopped()  # a soft cancel does not stop the run: no exception
        seen.append((task.cancel_requested, task.stopped))
        return 'crunched 40% of q3' if task.cancel_requested else 'crunched q3'

    sub = Script(
        [call('crunch', dataset='q3')], on_cancel=lambda messages: text(f'Partial: {tool_returns(messages)[-1]}')
    )
    config = SubAgentConfig(name='cruncher', description='Crunches', agent=Agent(sub.model, tools=[crunch]))
    async with SubAgentManager([config], clock=clock) as manager:
        task = await manager.start('cruncher', 'Crunch Q3')
        await anyio.to_thread.run_sync(entered.wait)
        await manager.soft_cancel(task.task_id)
        cancel_sent.set()
        (info,) = (await manager.wait([task.task_id])).tasks

    assert seen == [(True, False)]
    assert isinstance(info.outcome, Cancelled)
    assert info.outcome.partial.final_message == 'Partial: crunched 40% of q3'


class _StuckAndQuick:
    """Two sync tools: `stuck` blocks its thread until `release` is set, `quick` returns at once."""

    def __init__(self) -> None:
        self.stuck_calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.quick_calls = 0

    def stuck(self) -> str:
        """Work that never ends by itself."""
        self.stuck_calls += 1
        self.entered.set()
        self.release.wait()
        return 'stuck no more'

    def quick(self) -> str:
        """Quick work."""
        self.quick_calls += 1
        return 'quick'

    def config(self, script: Script) -> SubAgentConfig:
        return SubAgentConfig(
            name='worker', description='Works', agent=Agent(script.model, tools=[self.stuck, self.quick])
        )


async def stop_while_stuck(manager: SubAgentManager, tools: _StuckAndQuick) -> str:
    """Start a task whose sync tool gets stuck, and hard-cancel it once the tool runs; its id."""
    tools.entered.clear()
    task = await manager.start('worker', 'Get stuck')
    await anyio.to_thread.run_sync(tools.entered.wait)
    await manager.hard_cancel(task.task_id)
    return task.task_id


async def test_threads_stuck_in_stopped_tasks_do_not_starve_later_tasks(clock: ManualClock) -> None:
    """With one sync tool thread, three tasks stopped while stuck in it leave room: a later task's sync tool runs."""
    tools = _StuckAndQuick()
    sub = Script([call('stuck'), call('stuck'), call('stuck'), call('quick'), text('done')])
    policy = SubAgentPolicy(sync_tool_threads=1)
    try:
        async with SubAgentManager([tools.config(sub)], clock=clock, policy=policy) as manager:
            stopped = [await stop_while_stuck(manager, tools) for _ in range(3)]
            later = await manager.start('worker', 'Quick work')
            (info,) = (await manager.wait([later.task_id])).tasks
            lingering = {task.task_id: task.lingering_threads for task in manager.unresponsive_tasks()}
    finally:
        tools.release.set()

    assert (info.status, info.outcome) == (TaskStatus.COMPLETED, Completed('done'))
    assert (tools.stuck_calls, tools.quick_calls) == (3, 1)
    assert lingering == dict.fromkeys(stopped, 1)


async def test_past_the_bound_lingering_threads_hold_their_place_and_a_warning_says_so(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """With room for one lingering thread, a second stuck task fills the pool: later calls wait, and it is logged."""
    tools = _StuckAndQuick()
    sub = Script([call('stuck'), call('stuck'), call('quick'), text('done')])
    policy = SubAgentPolicy(sync_tool_threads=1, max_lingering_threads=1)
    try:
        async with SubAgentManager([tools.config(sub)], clock=clock, policy=policy) as manager:
            for _ in range(2):
                await stop_while_stuck(manager, tools)
            later = await manager.start('worker', 'Quick work')
            await anyio.wait_all_tasks_blocked()
            waiting = (manager.get(later.task_id).status, tools.quick_calls)
            lingering = sum(task.lingering_threads for task in manager.unresponsive_tasks())
            tools.release.set()
            (info,) = (await manager.wait([later.task_id])).tasks
    finally:
        tools.release.set()

    assert (waiting, lingering) == ((TaskStatus.RUNNING, 0), 2)
    assert info.status is TaskStatus.COMPLETED
    assert [record.getMessage() for record in caplog.records] == snapshot(
        [
            '2 sync tool calls of stopped tasks are still running, more than max_lingering_threads (1): new sync tool calls wait for a thread'
        ]
    )


_EXITS_WITH_A_STUCK_TOOL = '''
import threading
import anyio
from pydantic_ai import Agent
from pydantic_ai.capabilities import UseThreadExecutor
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import FunctionModel
from subagents_cancel import SubAgentConfig, SubAgentManager

entered, never = threading.Event(), threading.Event()

def stuck() -> str:
    """Blocks for ever."""
    entered.set()
    never.wait()
    return 'never'

def model(messages, info):
    return ModelResponse(parts=[ToolCallPart('stuck', {})])

async def main() -> None:
    config = SubAgentConfig(name='worker', description='Works', agent=Agent(FunctionModel(model), tools=[stuck]))
    async with SubAgentManager([config]) as manager:
        task = await manager.start('worker', 'Get stuck')
        await anyio.to_thread.run_sync(entered.wait)
        info = await manager.hard_cancel(task.task_id)
    print(info.status.name, info.lingering_threads)

anyio.run(main)
'''


async def test_a_stuck_sync_tool_does_not_keep_the_process_from_exiting(tmp_path: Path) -> None:
    """A process whose stopped task left a sync tool blocked for ever still exits once its work is done."""
    script = tmp_path / 'stuck.py'
    script.write_text(_EXITS_WITH_A_STUCK_TOOL)
    with anyio.fail_after(15):  # the process would hang at exit, joining the stuck thread
        result = await anyio.run_process([sys.executable, str(script)], check=False)
    assert (result.returncode, result.stdout.decode(), result.stderr.decode()) == (0, 'CANCELLED 1\n', '')
