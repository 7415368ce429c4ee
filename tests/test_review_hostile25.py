"""Defects a hostile review of 0d4616f found: each test asserts the promised behaviour.

* Text that UTF-8 cannot carry (a lone surrogate: half of an emoji, as a provider's SDK or a web API decoded with
  `json.loads` can hand over) in a sub-agent's output, checkpoint or tool result could not be encoded for a JSON
  transport: the run's report was never sent, the parent's sync `task` waited for ever, and closing the owner raised.
* `wait_tasks` with one id repeated gave one full report per repeat (2,000 repeats: megabytes of reply).
* `start('r', None)` was accepted: in process the task ran with no prompt, on the loopback transport its start could
  not be decoded and the task stayed RUNNING with nothing running it.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
from pathlib import Path

import anyio
import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage, RunUsage

from subagents_cancel import (
    Completed,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    TaskId,
    TaskInfo,
    TaskStatus,
    current_task,
)
from subagents_cancel.errors import UnknownSubAgent
from subagents_cancel.message_parts import Checkpoint
from subagents_cancel.messages import CheckpointRecorded, RunFinished, RunOutput, ThreadsFinished
from subagents_cancel.output_codec import EncodedOutput
from subagents_cancel.task_context import TaskCancelRequested
from subagents_cancel.transport import InProcessTransport
from subagents_cancel.wire import HooksFinished, WireMessage, decode_wire, encode_wire

from .helpers import Script, call, new_transport, replies_of, text

pytestmark = pytest.mark.anyio

HALF_AN_EMOJI = '\ud83d'
"""A lone surrogate: a `str` may hold it, UTF-8 (and so JSON on the wire) cannot."""
REPLACEMENT = '\ufffd'
_USAGE = RequestUsage(input_tokens=1, output_tokens=1)
"""`FunctionModel` estimates tokens by encoding the text, which a lone surrogate fails: the scripts give usage."""


def _output_of(info: object) -> object:
    assert isinstance(info, Completed), info
    return info.output


def test_every_message_travels_though_its_text_holds_a_lone_surrogate() -> None:
    """`encode_wire` promises every message can travel: a lone surrogate arrives as U+FFFD, the rest as it was."""
    finished = RunFinished(
        task_id=TaskId('r-1'),
        sent_at=0.0,
        ending=RunOutput(output=f'half an emoji: {HALF_AN_EMOJI} and a whole one: 🚲'),
        usage=RunUsage(),
        messages=(ModelRequest(parts=[ToolReturnPart('fetch', f'great bike {HALF_AN_EMOJI}', tool_call_id='c1')]),),
    )
    checkpoint = CheckpointRecorded(
        task_id=TaskId('r-1'), sent_at=0.0, checkpoint=Checkpoint(findings=(f'price {HALF_AN_EMOJI}',), at=1.0)
    )

    arrived = decode_wire(encode_wire(finished))
    assert isinstance(arrived, RunFinished)
    assert isinstance(arrived.ending, RunOutput)
    assert arrived.ending.output == EncodedOutput('builtins.str', f'half an emoji: {REPLACEMENT} and a whole one: 🚲')
    (request,) = arrived.messages
    assert isinstance(request, ModelRequest)
    (returned,) = request.parts
    assert isinstance(returned, ToolReturnPart)
    assert returned.content == f'great bike {REPLACEMENT}'
    arrived_checkpoint = decode_wire(encode_wire(checkpoint))
    assert isinstance(arrived_checkpoint, CheckpointRecorded)
    assert arrived_checkpoint.checkpoint.findings == (f'price {REPLACEMENT}',)


@pytest.mark.timeout(60)
async def test_a_lone_surrogate_in_a_subagents_output_reaches_the_parent(transport_kind: str) -> None:
    """The parent's sync `task` returns the answer (U+FFFD in place of the half emoji where it crossed JSON)."""
    sub = Script([text(f'Found it {HALF_AN_EMOJI}')], usage=_USAGE)
    config = SubAgentConfig(name='r', description='R', model=sub.model)
    parent = Script([call('task', description='go', subagent_type='r'), text('parent done')], usage=_USAGE)
    async with SubAgentManager([config]) as manager:
        result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')
        (task,) = manager.tasks()
    (reply,) = replies_of(result.all_messages())
    shown = REPLACEMENT if transport_kind == 'loopback' else HALF_AN_EMOJI
    assert f'Found it {shown}' in reply
    assert task.status is TaskStatus.COMPLETED
    assert _output_of(task.outcome) == f'Found it {shown}'
    assert not manager.orphans()


@pytest.mark.timeout(60)
async def test_a_lone_surrogate_in_a_checkpoint_is_recorded_and_the_task_completes(transport_kind: str) -> None:
    """The sub-agent's `checkpoint` replies as ever, and the task goes on to complete."""
    sub = Script([call('checkpoint', findings=[f'price {HALF_AN_EMOJI}']), text('done')], usage=_USAGE)
    config = SubAgentConfig(name='r', description='R', model=sub.model)
    async with SubAgentManager([config]) as manager:
        info = await manager.run('r', 'Find the price')
    assert info.status is TaskStatus.COMPLETED
    assert _output_of(info.outcome) == 'done'
    shown = REPLACEMENT if transport_kind == 'loopback' else HALF_AN_EMOJI
    assert [checkpoint.findings for checkpoint in info.checkpoints] == [(f'price {shown}',)]


@pytest.mark.timeout(60)
async def test_a_lone_surrogate_in_a_subagents_tool_result_does_not_stop_its_report() -> None:
    """No model misbehaves: a tool's text from a JSON API holds a truncated emoji, and rides in the run's history."""

    def fetch_page() -> str:
        """Fetch the reviews."""
        return json.loads('"Review: great bike \\ud83d"')

    sub = Script([call('fetch_page'), text('The reviews are positive.')], usage=_USAGE)
    config = SubAgentConfig(name='r', description='R', agent=Agent(sub.model, tools=[fetch_page]))
    async with SubAgentManager([config]) as manager:
        info = await manager.run('r', 'Read the reviews')
        assert info.status is TaskStatus.COMPLETED
        assert _output_of(info.outcome) == 'The reviews are positive.'
    assert not manager.orphans()


async def test_wait_tasks_with_one_id_repeated_reports_it_once() -> None:
    """2,000 copies of one id get the reply the id once gets; the Python API returns the task once too."""
    sub = Script([text('finding ' * 1500)])
    config = SubAgentConfig(name='r', description='R', model=sub.model)
    parent = Script(
        [
            call('task', description='go', subagent_type='r', mode='async'),
            call('wait_tasks', task_ids=['<task id>']),
            call('wait_tasks', task_ids=['<task id>'] * 2000),
            text('ok'),
        ]
    )
    async with SubAgentManager([config]) as manager:
        result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')
        (task,) = manager.tasks()
        waited = await manager.wait([task.task_id, task.task_id, task.task_id])
    _, once, repeated = replies_of(result.all_messages())
    assert repeated == once
    assert [info.task_id for info in waited.tasks] == [task.task_id]


@pytest.mark.parametrize('description', [None, 42, b'bytes', ['go']])
async def test_start_refuses_a_description_that_is_not_text(description: object) -> None:
    """A description that is not a `str` is a `TypeError` before any task starts, as a task id that is not one is."""
    config = SubAgentConfig(name='r', description='R', model=Script([text('done')]).model)
    async with SubAgentManager([config]) as manager:
        for start in (manager.start, manager.run):
            with pytest.raises(TypeError, match='description must be a str'):
                await start('r', description)  # pyright: ignore[reportArgumentType]
        assert manager.tasks() == ()


async def test_start_refuses_an_empty_description() -> None:
    """An empty description is a `ValueError`, as the `task` tool refuses one: the sub-agent would get no prompt."""
    config = SubAgentConfig(name='r', description='R', model=Script([text('done')]).model)
    async with SubAgentManager([config]) as manager:
        with pytest.raises(ValueError, match='description must not be empty'):
            await manager.start('r', '')
        assert manager.tasks() == ()


@pytest.mark.parametrize(('instructions', 'error'), [(None, TypeError), (7, TypeError), ('', ValueError)])
async def test_resume_refuses_instructions_that_are_not_text(instructions: object, error: type[Exception]) -> None:
    """`resume`'s instructions are the new task's prompt: checked as `start` checks a description."""
    config = SubAgentConfig(name='r', description='R', model=Script([call('checkpoint', completed=['a'])]).model)
    async with SubAgentManager([config]) as manager:
        old = await manager.run('r', 'Go')
        assert old.status is TaskStatus.FAILED  # its script ran out: a task that may be resumed
        with pytest.raises(error, match='instructions must'):
            await manager.resume(old.task_id, instructions)  # pyright: ignore[reportArgumentType]
        assert [info.task_id for info in manager.tasks()] == [old.task_id]


@pytest.mark.parametrize('answer', [None, 5, ['yes']])
async def test_answer_refuses_an_answer_that_is_not_text(answer: object) -> None:
    """An answer that is not a `str` is a `TypeError`, and the question stays open for a real answer.

    It was accepted: in process the sub-agent read `None`; on the loopback transport the `Answer` could not be decoded
    and was dropped, the owner showed the task RUNNING, and its `ask_parent` waited for ever.
    """
    sub = Script([call('ask_parent', question='Which source?'), text('done')])
    config = SubAgentConfig(name='r', description='R', model=sub.model)
    async with SubAgentManager([config]) as manager:
        asking = await manager.run('r', 'Go')
        assert asking.status is TaskStatus.WAITING_FOR_ANSWER
        with pytest.raises(TypeError, match='answer must be a str'):
            await manager.answer(asking.task_id, answer)  # pyright: ignore[reportArgumentType]
        assert manager.get(asking.task_id).question == 'Which source?'
        await manager.answer(asking.task_id, '')  # an empty answer is an answer, as the tool takes one
        (done,) = (await manager.wait([asking.task_id])).tasks
    assert done.status is TaskStatus.COMPLETED


async def test_start_names_a_sub_agent_or_region_that_is_not_text() -> None:
    """A sub-agent name or region of the wrong type gets the error a wrong name gets, not one from deep inside."""
    config = SubAgentConfig(name='r', description='R', model=Script([text('done')]).model)
    async with SubAgentManager([config]) as manager:
        with pytest.raises(UnknownSubAgent, match=r"No sub-agent named \['r'\]"):
            await manager.start(['r'], 'Go')  # pyright: ignore[reportArgumentType]
        with pytest.raises(TypeError, match='region must be a str'):
            await manager.start('r', 'Go', region=5)  # pyright: ignore[reportArgumentType]
        assert manager.tasks() == ()


# --- A second review: teardown ----------------------------------------------------------------------------------------


def _writer(working: anyio.Event, stopping: anyio.Event, scratch_dirs: list[Path]) -> Agent[None, str]:
    """A sub-agent that writes a draft to its scratch directory, then works until it is stopped."""

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            return ModelResponse(parts=[ToolCallPart('write_draft', {})])
        working.set()
        try:
            await anyio.sleep_forever()
        finally:
            stopping.set()
        raise AssertionError('unreachable')

    writer = Agent(FunctionModel(respond))

    @writer.tool_plain
    async def write_draft() -> str:
        """Write a draft to the scratch directory."""
        task = current_task()
        assert task is not None
        (task.scratch_dir / 'draft.md').write_text('half a report')
        scratch_dirs.append(task.scratch_dir)
        return 'saved'

    return writer


async def test_a_second_aclose_waits_for_the_first_and_the_cleanup_hook_still_runs() -> None:
    """`aclose` is idempotent: a second call while the first closes waits for it, and takes nothing away from it.

    The second call had found the owner closing and closed its task host at once, before the first had settled the
    task: the host gave up on it, its cleanup hook never ran, and its scratch directory was left on disk.
    """
    working, stopping = anyio.Event(), anyio.Event()
    scratch_dirs: list[Path] = []
    cleaned: list[str] = []

    async def cleanup(info: TaskInfo) -> None:
        cleaned.append(info.task_id)

    writer = _writer(working, stopping, scratch_dirs)
    config = SubAgentConfig(name='writer', description='Writes', agent=writer, cleanup=cleanup)
    manager = SubAgentManager([config])
    async with manager:
        task = await manager.start('writer', 'Write a report')
        await working.wait()
        async with anyio.create_task_group() as group:
            group.start_soon(manager.aclose)
            await stopping.wait()  # the first close is stopping the task
            await manager.aclose()
    info = manager.get(task.task_id)
    assert info.status is TaskStatus.CANCELLED
    assert (cleaned, info.cleanup_error) == ([task.task_id], None)
    assert [directory.exists() for directory in scratch_dirs] == [False]
    assert manager.metrics().owner.orphaned == 0


async def test_an_owner_cancelled_again_while_it_closes_still_closes_its_task_host() -> None:
    """Nothing of an owner outlives it when its caller is cancelled a second time while the owner tears down.

    The second cancel was re-raised as the supervisor's close ended, before the task host was closed: on a transport
    the application gave, the host's mailbox task ran on, and the threads of its sync-tool pool were never ended.
    """

    def crunch() -> str:
        """Crunch some numbers."""
        return 'crunched'

    working, stopping, let_it_stop = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            return ModelResponse(parts=[ToolCallPart('crunch', {})])
        if 'quick' in str(messages[0].parts):
            return ModelResponse(parts=[TextPart('done')])
        working.set()
        try:
            await anyio.sleep_forever()
        finally:
            stopping.set()
            with anyio.CancelScope(shield=True):
                await let_it_stop.wait()  # it takes a moment to stop
        raise AssertionError('unreachable')

    config = SubAgentConfig(name='worker', description='Works', agent=Agent(FunctionModel(respond), tools=[crunch]))
    threads_before = set(threading.enumerate())

    async def application(transport: InProcessTransport) -> None:
        async with SubAgentManager([config], transport=transport) as manager:
            await manager.run('worker', 'quick job')  # its sync tool started a thread of the host's pool
            await manager.start('worker', 'long job')
            await anyio.sleep_forever()

    async with InProcessTransport() as transport:
        running = asyncio.create_task(application(transport))
        await working.wait()
        running.cancel()  # the owner's block ends: it closes, and stops the long job
        await stopping.wait()
        running.cancel()  # and again, while it closes
        let_it_stop.set()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert [task.get_name() for task in asyncio.all_tasks() if 'task host' in task.get_name()] == []
    pool = [thread for thread in set(threading.enumerate()) - threads_before if '-tool-' in thread.name]
    for thread in pool:
        await anyio.to_thread.run_sync(thread.join, 10.0)  # a closed pool's threads end once idle: a bound only
    assert [thread.name for thread in pool if thread.is_alive()] == []


async def test_a_sync_tool_that_outlives_its_task_leaves_no_scratch_directory() -> None:
    """A scratch directory is deleted "whatever way it ended", also when a sync tool's thread outlives its task.

    The host settles a task as its run stops; a sync tool still working in its thread then asked for
    `scratch_dir`, which made a new directory that nothing deleted. Once a task is settled, asking raises
    `TaskCancelRequested`, and no directory is made.
    """
    entered, release = threading.Event(), threading.Event()
    asked: list[BaseException | Path] = []

    def download() -> str:
        """Download the page."""
        entered.set()
        release.wait()  # a slow download; the task is stopped meanwhile
        task = current_task()
        assert task is not None
        try:
            asked.append(task.scratch_dir)
        except TaskCancelRequested as error:
            asked.append(error)
        return 'saved'

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[ToolCallPart('download', {})])

    config = SubAgentConfig(name='downloader', description='D', agent=Agent(FunctionModel(respond), tools=[download]))
    made_before = _scratch_directories('downloader')
    heard: dict[type[WireMessage], anyio.Event] = {HooksFinished: anyio.Event(), ThreadsFinished: anyio.Event()}
    async with new_transport() as transport:
        transport.subscribe(lambda address, message: heard[type(message)].set() if type(message) in heard else None)
        async with SubAgentManager([config], transport=transport) as manager:
            task = await manager.start('downloader', 'Download the page')
            await anyio.to_thread.run_sync(entered.wait)
            stopped = await manager.hard_cancel(task.task_id)
            assert (stopped.status, stopped.lingering_threads) == (TaskStatus.CANCELLED, 1)
            await heard[HooksFinished].wait()  # the host has settled the task
            release.set()
            await heard[ThreadsFinished].wait()
    assert [type(each) for each in asked] == [TaskCancelRequested]
    assert _scratch_directories('downloader') == made_before


def _scratch_directories(subagent: str) -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob(f'subagents-{subagent}-*'))
