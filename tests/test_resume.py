"""Resume: a cancelled or failed task continues as a new task, from its conversation, with new instructions."""

from __future__ import annotations

import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart

from subagents_cancel import (
    Cancelled,
    Completed,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    SubAgentPolicy,
    TaskStatus,
    UnknownTask,
)
from subagents_cancel.outcomes import NotResumable
from subagents_cancel.testing import ManualClock

from .helpers import (
    TASK_ID,
    Gate,
    Script,
    Step,
    after,
    call,
    calls,
    latest_task_id,
    replies_of,
    researcher,
    text,
    tool_returns,
    user_prompts,
)

pytestmark = pytest.mark.anyio

PARTIAL = 'Completed: sources\nIn progress: suppliers\nNot started: report'


def shape(messages: list[ModelMessage]) -> list[str]:
    """Each message as its kind and the kinds of its parts, e.g. `request: user-prompt, tool-return`."""
    return [f'{message.kind}: {", ".join(part.part_kind for part in message.parts)}' for message in messages]


def stopped_at(working: Gate) -> Script:
    """A researcher that checkpoints, is held at `working` in its second step, wraps up on a cancel, then answers."""
    return Script(
        [
            call('checkpoint', completed=['sources'], in_progress=['suppliers']),
            working.hold(call('checkpoint', completed=['suppliers'])),
            text('EU suppliers: A, B'),
        ],
        on_cancel=text(PARTIAL),
    )


async def test_a_soft_cancelled_task_resumes_from_its_conversation(clock: ManualClock) -> None:
    """The new task's first request is the old conversation, the stop closed out, then the new instructions."""
    working = Gate()
    sub = stopped_at(working)
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        old = await manager.start('researcher', 'Research suppliers')
        await working.reached.wait()
        await manager.soft_cancel(old.task_id)
        working.release.set()
        await manager.wait([old.task_id])
        sub.on_cancel = None  # the resumed request still shows the old (closed) exchange; it is not a new cancel
        new = await manager.resume(old.task_id, 'Go on, but only European suppliers')
        (done,) = (await manager.wait([new.task_id])).tasks
        old_after = manager.get(old.task_id)

    assert done.status is TaskStatus.COMPLETED and done.outcome == Completed('EU suppliers: A, B')
    assert (done.resumed_from, old_after.resumed_by) == (old.task_id, new.task_id)
    assert old_after.status is TaskStatus.CANCELLED and isinstance(old_after.outcome, Cancelled)
    assert done.inherited_checkpoints == 2 and done.checkpoints == old_after.checkpoints
    resumed = sub.requests[-1]
    assert shape(resumed) == snapshot(
        [
            'request: user-prompt',
            'response: tool-call',
            'request: tool-return',
            'response: tool-call',
            'request: tool-return, user-prompt',
            'response: text',
            'request: user-prompt',
        ]
    )
    assert user_prompts(resumed)[1:] == snapshot(
        [
            '[Your parent stopped this task here and asked for partial results. It has since resumed the task: the request to stop no longer applies; follow its latest message.]',
            """\
Go on, but only European suppliers

(Your parent resumes this task, which it had stopped: the request to stop no longer applies. Go on from where you stopped, following the instructions above; do not repeat finished work.)\
""",
        ]
    )


async def test_the_parent_model_resumes_a_cancelled_task_with_the_tools(clock: ManualClock) -> None:
    """resume_task starts the continuation; check_task on each names the other; inherited checkpoints are shown."""
    working = Gate()
    sub = stopped_at(working)
    old_id: list[str] = []

    def cancel_when_working(messages: list[ModelMessage]) -> ModelResponse:
        old_id.append(latest_task_id(messages))
        return call('soft_cancel_task', task_id=TASK_ID)(messages)

    def release_and_wait(messages: list[ModelMessage]) -> ModelResponse:
        working.release.set()  # the cancel was requested: the step in flight ends, and the next request carries it
        return call('wait_tasks', task_ids=[TASK_ID])(messages)

    async def resume_once_stopped(messages: list[ModelMessage]) -> ModelResponse:
        sub.on_cancel = None
        return call('resume_task', task_id=old_id[0], instructions='Go on, but only European suppliers')(messages)

    parent = Script(
        [
            call('task', description='Research suppliers', subagent_type='researcher', mode='async'),
            after(working.reached, cancel_when_working),
            release_and_wait,
            resume_once_stopped,
            call('wait_tasks', task_ids=[TASK_ID]),
            lambda messages: call('check_task', task_id=old_id[0])(messages),
            text('done'),
        ]
    )
    capability = SubAgentCapability(subagents=[researcher(sub)], clock=clock)
    result = await Agent(parent.model, capabilities=[capability]).run('go')
    resumed_id = latest_task_id(result.all_messages())
    assert SubAgentCapability.started_tasks(result.all_messages()) == (old_id[0], resumed_id)
    assert replies_of(result.all_messages())[3:] == snapshot(
        [
            'Task started with ID: researcher-0002 (researcher); it resumes researcher-0001 from where that task stopped, with its conversation and 2 checkpoints, and runs in the background. Follow it with check_task or wait_tasks.',
            """\
The task has ended.

researcher-0002: COMPLETED in 0.0 ms. Output:
EU suppliers: A, B
It continues researcher-0001 from where that task stopped (2 of its checkpoints are inherited).\
""",
            """\
Task cancelled: researcher-0001 (soft, on request; it read the request after 0.0 ms; it ended 0.0 ms after the request). Partial results:
Completed: suppliers
In progress: nothing
Not started: nothing
Findings: nothing
(from 2 checkpoints)
Its final message:
Completed: sources
In progress: suppliers
Not started: report
It was resumed as researcher-0002; check_task('researcher-0002') follows it.\
""",
        ]
    )


async def test_every_refusal_is_a_one_line_reply(clock: ManualClock) -> None:
    """A completed, a running, an unknown and an already resumed task, and empty instructions, are refused."""
    stuck = Gate()
    sub = Script([text('first findings'), stuck.block_forever(), text('resumed findings')])

    def with_id(index: int, tool: str, **args: object) -> Step:
        def respond(messages: list[ModelMessage]) -> ModelResponse:
            return call(tool, task_id=SubAgentCapability.started_tasks(messages)[index], **args)(messages)

        return respond

    parent = Script(
        [
            call('task', description='Research X', subagent_type='researcher'),
            with_id(0, 'resume_task', instructions='More, please'),
            call('task', description='Research Y', subagent_type='researcher', mode='async'),
            after(stuck.reached, with_id(1, 'resume_task', instructions='Go on')),
            with_id(1, 'hard_cancel_task'),
            with_id(1, 'resume_task', instructions=''),
            with_id(1, 'resume_task', instructions='Go on, in Europe only'),
            call('wait_tasks', task_ids=[TASK_ID]),
            with_id(1, 'resume_task', instructions='Again'),
            call('resume_task', task_id='researcher-00000000', instructions='Go on'),
            text('done'),
        ]
    )
    capability = SubAgentCapability(subagents=[researcher(sub)], clock=clock)
    result = await Agent(parent.model, capabilities=[capability]).run('go')
    replies = replies_of(result.all_messages())
    assert [replies[1], replies[3], *replies[5:7], *replies[8:]] == snapshot(
        [
            'researcher-0001 COMPLETED, so it is not resumed: its answer stands. Start a new task with `task` for more work.',
            'researcher-0002 is still RUNNING, so it is not resumed: only a cancelled or failed task can be. Cancel it or wait for it first.',
            'Invalid arguments for resume_task: instructions: String should have at least 1 character. Call it again with arguments that fit its schema.',
            'Task started with ID: researcher-0003 (researcher); it resumes researcher-0002 from where that task stopped, with its conversation and no checkpoints, and runs in the background. Follow it with check_task or wait_tasks.',
            'researcher-0002 was resumed already, as researcher-0003: follow that task with check_task, or resume it if it was stopped too.',
            "No task 'researcher-00000000' in this run; call list_active_tasks() to see your tasks.",
        ]
    )


async def test_a_forgotten_task_and_another_runs_task_read_as_unknown(clock: ManualClock) -> None:
    """A task forgotten to save memory, or started by another run, is not found; the reply says why it may be."""
    sub = Script([text('A'), text('B')])
    capability = SubAgentCapability(subagents=[researcher(sub)], policy=SubAgentPolicy(keep_finished=1), clock=clock)
    ids: list[str] = []

    def remember(messages: list[ModelMessage]) -> ModelResponse:
        ids.extend(SubAgentCapability.started_tasks(messages))
        return call('task', description='Job 2', subagent_type='researcher')(messages)

    first = Script(
        [
            call('task', description='Job 1', subagent_type='researcher'),
            remember,
            lambda messages: call('resume_task', task_id=ids[0], instructions='Go on')(messages),
            text('done'),
        ]
    )
    first_result = await Agent(first.model, capabilities=[capability]).run('go')
    second = Script([lambda messages: call('resume_task', task_id=ids[0], instructions='Go on')(messages), text('ok')])
    second_result = await Agent(second.model, capabilities=[capability]).run('go')
    assert replies_of(first_result.all_messages())[2] == snapshot(
        "No task 'researcher-0001' in this run; call list_active_tasks() to see your tasks. The oldest finished tasks are forgotten to save memory; it may have been one of them."
    )
    assert [reply.replace(ids[0], '<the first run’s id>') for reply in tool_returns(second_result.all_messages())] == (
        snapshot(["No task '<the first run’s id>' in this run; call list_active_tasks() to see your tasks."])
    )


def searcher(script: Script, gate: Gate) -> SubAgentConfig:
    """A sub-agent whose `search` tool waits at `gate` the first time it is called."""
    agent = Agent(script.model, name='researcher')

    @agent.tool_plain
    async def search(query: str) -> str:
        if not gate.reached.is_set():
            await gate.wait(forever=True)
        return f'results for {query}'

    return SubAgentConfig(name='researcher', description='Researches a topic', agent=agent)


async def test_a_task_hard_cancelled_in_a_tool_call_resumes_with_that_call_answered(clock: ManualClock) -> None:
    """The call the hard cancel cut off is answered with a note that it has no result; the model can call it again."""
    searching = Gate()
    sub = Script([call('search', query='EU suppliers'), text('EU suppliers: A, B')])
    async with SubAgentManager([searcher(sub, searching)], clock=clock) as manager:
        old = await manager.start('researcher', 'Research suppliers')
        await searching.reached.wait()
        await manager.hard_cancel(old.task_id)
        new = await manager.resume(old.task_id, 'Go on')
        (done,) = (await manager.wait([new.task_id])).tasks

    assert searching.stopped.is_set() and done.outcome == Completed('EU suppliers: A, B')
    assert shape(sub.requests[-1]) == snapshot(
        ['request: user-prompt', 'response: tool-call', 'request: tool-return, user-prompt']
    )
    assert tool_returns(sub.requests[-1]) == snapshot(
        [
            'No result (search): the task was stopped before this call returned, so whatever it did is unknown. Call it again if you still need it.'
        ]
    )


async def test_a_failed_task_resumes(clock: ManualClock) -> None:
    """A task whose run raised ends FAILED; resumed, it starts from the conversation up to the failure."""
    sub = Script([call('checkpoint', completed=['sources']), call('lookup'), text('found it another way')])
    agent = Agent(sub.model, name='researcher')

    @agent.tool_plain
    async def lookup() -> str:
        raise ConnectionError('the lookup service is down')

    config = SubAgentConfig(name='researcher', description='Researches a topic', agent=agent)
    async with SubAgentManager([config], clock=clock) as manager:
        old = await manager.start('researcher', 'Research suppliers')
        (failed,) = (await manager.wait([old.task_id])).tasks
        new = await manager.resume(old.task_id, 'The lookup service is down; use what you have')
        (done,) = (await manager.wait([new.task_id])).tasks

    assert failed.status is TaskStatus.FAILED and done.status is TaskStatus.COMPLETED
    assert done.inherited_checkpoints == 1
    assert shape(sub.requests[-1]) == snapshot(
        [
            'request: user-prompt',
            'response: tool-call',
            'request: tool-return',
            'response: tool-call',
            'request: tool-return, user-prompt',
        ]
    )


async def test_a_resumed_task_can_be_cancelled_and_resumed_again(clock: ManualClock) -> None:
    """Each resumption continues the last one: the chain is linked both ways and the checkpoints add up."""
    first, second = Gate(), Gate()
    sub = Script(
        [
            call('checkpoint', completed=['sources']),
            first.block_forever(),
            call('checkpoint', completed=['EU suppliers']),
            second.block_forever(),
            text('EU and UK suppliers: A, B, C'),
        ]
    )
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        a = await manager.start('researcher', 'Research suppliers')
        await first.reached.wait()
        await manager.hard_cancel(a.task_id)
        b = await manager.resume(a.task_id, 'Only European suppliers')
        await second.reached.wait()
        await manager.hard_cancel(b.task_id)
        c = await manager.resume(b.task_id, 'Add the UK')
        (done,) = (await manager.wait([c.task_id])).tasks
        a, b = manager.get(a.task_id), manager.get(b.task_id)

    assert (a.resumed_from, a.resumed_by) == (None, b.task_id)
    assert (b.resumed_from, b.resumed_by) == (a.task_id, c.task_id)
    assert (done.resumed_from, done.resumed_by) == (b.task_id, None)
    assert [checkpoint.completed for checkpoint in done.checkpoints] == [('sources',), ('EU suppliers',)]
    assert (b.inherited_checkpoints, done.inherited_checkpoints) == (1, 2)
    assert done.outcome == Completed('EU and UK suppliers: A, B, C')
    assert user_prompts(sub.requests[-1]) == snapshot(
        [
            'Research suppliers',
            """\
Only European suppliers

(Your parent resumes this task, which it had stopped: the request to stop no longer applies. Go on from where you stopped, following the instructions above; do not repeat finished work.)\
""",
            """\
Add the UK

(Your parent resumes this task, which it had stopped: the request to stop no longer applies. Go on from where you stopped, following the instructions above; do not repeat finished work.)\
""",
        ]
    )


async def test_a_preempted_step_resumes_with_its_stand_in_kept(clock: ManualClock) -> None:
    """A model request cut short by a soft cancel's preemption left a stand-in response; it stays, as plain text."""
    thinking = Gate()
    sub = Script([call('checkpoint', completed=['sources']), thinking.block_forever()], on_cancel=text(PARTIAL))
    async with SubAgentManager([researcher(sub, preempt_on_soft_cancel=True)], clock=clock) as manager:
        old = await manager.start('researcher', 'Research suppliers')
        await thinking.reached.wait()
        await manager.soft_cancel(old.task_id)
        await manager.wait([old.task_id])
        sub.on_cancel = None
        sub.steps.append(text('EU suppliers: A, B'))
        new = await manager.resume(old.task_id, 'Go on, but only European suppliers')
        (done,) = (await manager.wait([new.task_id])).tasks

    assert thinking.stopped.is_set() and done.outcome == Completed('EU suppliers: A, B')
    assert shape(sub.requests[-1]) == snapshot(
        [
            'request: user-prompt',
            'response: tool-call',
            'request: tool-return',
            'response: text',
            'request: user-prompt',
            'response: text',
            'request: user-prompt',
        ]
    )
    stand_in = sub.requests[-1][3]
    assert isinstance(stand_in, ModelResponse) and stand_in.state == 'complete'
    assert [part.content for part in stand_in.parts if isinstance(part, TextPart)] == snapshot(
        ['[Interrupted before this response was finished: your parent asked you to stop (CANCEL_REQUEST).]']
    )


async def test_the_python_api_raises_not_resumable_with_the_reason(clock: ManualClock) -> None:
    """A completed task, and a task resumed already, raise `NotResumable` naming the task and what to do."""
    sub = Script([text('done')])
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        finished = await manager.run('researcher', 'Research X')
        with pytest.raises(
            NotResumable,
            match=r"^Task 'researcher-[0-9a-f]{8}' completed; its answer stands: start a new task for more work\.$",
        ) as raised:
            await manager.resume(finished.task_id, 'More')
        assert (raised.value.reason, raised.value.status) == ('completed', TaskStatus.COMPLETED)
        with pytest.raises(UnknownTask):
            await manager.resume('researcher-00000000', 'More')


async def test_a_task_cancelled_before_it_started_resumes_with_its_original_request(clock: ManualClock) -> None:
    """With no conversation to continue, the new task's prompt carries the instructions and the original request."""
    busy = Gate()
    sub = Script([busy.block_forever(), text('EU suppliers: A, B')])
    async with SubAgentManager([researcher(sub)], policy=SubAgentPolicy(max_running=1), clock=clock) as manager:
        running = await manager.start('researcher', 'Keep the slot busy')
        queued = await manager.start('researcher', 'Research suppliers')
        await busy.reached.wait()
        await manager.soft_cancel(queued.task_id)  # PENDING: it never starts
        await manager.hard_cancel(running.task_id)
        resumed = await manager.resume(queued.task_id, 'Only European ones')
        (done,) = (await manager.wait([resumed.task_id])).tasks

    assert done.outcome == Completed('EU suppliers: A, B')
    assert user_prompts(sub.requests[-1]) == snapshot(
        [
            """\
Only European ones

(Your parent resumes a task it had stopped before it began. Its original request: Research suppliers)\
"""
        ]
    )


async def test_region_time_budget_and_fallback_are_not_inherited_unless_given_again(clock: ManualClock) -> None:
    """The old task's region and deadline stay behind; given to `resume`, they apply to the new task."""
    stuck = Gate()
    sub = Script([stuck.block_forever(), stuck.block_forever(), stuck.block_forever()])
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        old = await manager.start('researcher', 'Research X', region='research', timeout_seconds=60)
        await stuck.reached.wait()
        await manager.hard_cancel(old.task_id)
        plain = await manager.resume(old.task_id, 'Go on')
        await manager.hard_cancel(plain.task_id)
        placed = await manager.resume(plain.task_id, 'Go on', region='retry', timeout_seconds=30)

    assert (old.region, old.deadline_at) == ('research', 60.0)
    assert (plain.region, plain.deadline_at) == (None, None)
    assert (placed.region, placed.deadline_at) == ('retry', 30.0)


async def test_the_reply_to_resuming_a_task_that_never_began_does_not_promise_its_conversation(
    clock: ManualClock,
) -> None:
    """A task cancelled while it waited for a slot has no conversation: the reply says it starts from its request."""
    busy = Gate()
    sub = Script([busy.block_forever()])

    def second_task(tool: str, **args: object) -> Step:
        def respond(messages: list[ModelMessage]) -> ModelResponse:
            return call(tool, task_id=SubAgentCapability.started_tasks(messages)[1], **args)(messages)

        return respond

    parent = Script(
        [
            call('task', description='Keep the slot busy', subagent_type='researcher', mode='async'),
            after(
                busy.reached, call('task', description='Research suppliers', subagent_type='researcher', mode='async')
            ),
            second_task('soft_cancel_task'),
            second_task('resume_task', instructions='Only European ones'),
            text('done'),
        ]
    )
    capability = SubAgentCapability(subagents=[researcher(sub)], policy=SubAgentPolicy(max_running=1), clock=clock)
    result = await Agent(parent.model, capabilities=[capability]).run('go')
    assert replies_of(result.all_messages())[3] == snapshot(
        "Task started with ID: researcher-0003 (researcher); it resumes researcher-0002, which was stopped before it began, from that task's request and your instructions, and waits for a free slot. Follow it with check_task or wait_tasks."
    )


async def test_two_resumes_of_one_task_in_one_response_start_one_task(clock: ManualClock) -> None:
    """Parallel resume_task calls on the same task: the first starts the resumption, the second names it."""
    sub = Script([call('lookup'), text('found it another way')])
    agent = Agent(sub.model, name='researcher')

    @agent.tool_plain
    async def lookup() -> str:
        raise ConnectionError('the lookup service is down')

    config = SubAgentConfig(name='researcher', description='Researches a topic', agent=agent)

    def resume_twice(messages: list[ModelMessage]) -> ModelResponse:
        (task_id,) = SubAgentCapability.started_tasks(messages)
        args: dict[str, object] = {'task_id': task_id, 'instructions': 'Use what you have'}
        return calls(('resume_task', args), ('resume_task', args))

    parent = Script([call('task', description='Research X', subagent_type='researcher'), resume_twice, text('done')])
    capability = SubAgentCapability(subagents=[config], clock=clock)
    result = await Agent(parent.model, capabilities=[capability]).run('go')
    assert sorted(replies_of(result.all_messages())[1:]) == snapshot(
        [
            'Task started with ID: researcher-0002 (researcher); it resumes researcher-0001 from where that task stopped, with its conversation and no checkpoints, and runs in the background. Follow it with check_task or wait_tasks.',
            'researcher-0001 was resumed already, as researcher-0002: follow that task with check_task, or resume it if it was stopped too.',
        ]
    )
    assert len(SubAgentCapability.started_tasks(result.all_messages())) == 2


async def test_the_fallback_of_a_cancelled_resumed_task_is_told_the_original_request(clock: ManualClock) -> None:
    """A resumed task given a fallback and then cancelled: the fallback's prompt names the task's original request."""
    first, second = Gate(), Gate()
    sub = Script([first.block_forever(), second.block_forever()])
    summarizer = Script([text('Quick summary')])
    fallback = SubAgentConfig(name='summarizer', description='Sums up', model=summarizer.model)
    async with SubAgentManager([researcher(sub), fallback], clock=clock) as manager:
        old = await manager.start('researcher', 'Find suppliers of lithium cells')
        await first.reached.wait()
        await manager.hard_cancel(old.task_id)
        new = await manager.resume(old.task_id, 'Go on, but only European suppliers', fallback='summarizer')
        await second.reached.wait()
        await manager.hard_cancel(new.task_id)
        await manager.wait([new.task_id])
    (prompt,) = user_prompts(summarizer.requests[-1])
    assert 'Find suppliers of lithium cells' in prompt
