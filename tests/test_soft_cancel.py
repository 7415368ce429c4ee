"""Soft cancel: the sub-agent is told, may wrap up within its grace window, and hands back partial results."""

from __future__ import annotations

import inspect

import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent

from subagents_cancel import (
    Cancelled,
    CancelReason,
    PartialResult,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    SubAgentPolicy,
    TaskStatus,
)
from subagents_cancel.testing import ManualClock

from .helpers import (
    TASK_ID,
    Gate,
    Script,
    Step,
    after,
    call,
    cancel_requested,
    replies_of,
    researcher,
    text,
    user_prompts,
)

PARTIAL_ANSWER = 'Completed: phase 1\nIn progress: phase 2\nNot started: phase 3'

pytestmark = pytest.mark.anyio


def checkpoint_phase_1() -> Step:
    return call('checkpoint', completed=['phase 1'], in_progress=['phase 2'], not_started=['phase 3'], findings=['A'])


async def test_running_subagent_reads_the_request_and_wraps_up(clock: ManualClock) -> None:
    """The CANCEL_REQUEST reaches the model at its next request; its answer becomes the partial result."""
    in_phase_2 = Gate()
    sub = Script([checkpoint_phase_1(), in_phase_2.hold(checkpoint_phase_1())], on_cancel=text(PARTIAL_ANSWER))
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        task = await manager.start('researcher', 'Research X')
        await in_phase_2.reached.wait()
        clock.advance(1.0)
        await manager.soft_cancel(task.task_id)
        clock.advance(0.5)
        in_phase_2.release.set()  # the step in flight ends; the next request carries the cancel request
        (info,) = (await manager.wait([task.task_id])).tasks

    assert info.status is TaskStatus.CANCELLED
    assert info.outcome == Cancelled(
        mode='soft',
        reason=CancelReason(kind='user'),
        partial=PartialResult(
            completed=('phase 1',),
            in_progress=('phase 2',),
            not_started=('phase 3',),
            findings=('A',),
            final_message=PARTIAL_ANSWER,
            checkpoints=2,
            read_request=True,
        ),
    )
    assert info.cancel is not None
    assert (info.cancel.requested_at, info.cancel.acknowledged_at) == (1.0, 1.5)
    assert [cancel_requested(messages) for messages in sub.requests] == [False, False, True]
    assert user_prompts(sub.requests[-1])[-1].replace(info.cancel.request_id, '<id>') == snapshot(
        'CANCEL_REQUEST [<id>]: your parent asked you to stop (the work is no longer needed). '
        'Do not start new work or call tools. Reply now with your partial results (Completed, In progress, '
        'Not started, Findings). You have 30 seconds.'
    )


async def test_pending_task_is_cancelled_at_once_and_never_starts(clock: ManualClock) -> None:
    """With the only slot taken, the next task waits as PENDING; a soft cancel ends it before its model runs."""
    busy = Gate()
    first = Script([busy.block_forever()])
    second = Script([text('second done')])
    configs = [researcher(first), SubAgentConfig(name='writer', description='Writes', model=second.model)]
    parent = Script(
        [
            call('task', description='Research X', subagent_type='researcher', mode='async'),
            call('task', description='Write Y', subagent_type='writer', mode='async'),
            call('check_task', task_id=TASK_ID),
            call('soft_cancel_task', task_id=TASK_ID),
            call('check_task', task_id=TASK_ID),
            text('done'),
        ]
    )
    capability = SubAgentCapability(subagents=configs, policy=SubAgentPolicy(max_running=1), clock=clock)

    result = await Agent(parent.model, capabilities=[capability]).run('go')

    assert replies_of(result.all_messages()) == snapshot(
        [
            'Task started with ID: researcher-0001 (researcher); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.',
            'Task started with ID: writer-0002 (writer); it waits for a free slot. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.',
            """\
writer-0002: PENDING (waiting for a free slot) for 0.0 ms.
No checkpoints yet.\
""",
            'Task cancelled: writer-0002 before it started; nothing ran.',
            'Task cancelled: writer-0002 (soft, on request; it ended 0.0 ms after the request). It recorded no checkpoint and sent no final message.',
        ]
    )
    assert second.requests == []


async def test_waiting_subagent_gets_the_request_as_its_answer(clock: ManualClock) -> None:
    """A task blocked in ask_parent receives the cancel request as the answer to its question, then wraps up."""
    sub = Script([call('ask_parent', question='Which region?')], on_cancel=text(PARTIAL_ANSWER))
    parent = Script(
        [
            call('task', description='Research X', subagent_type='researcher', mode='async'),
            call('wait_tasks', task_ids=[TASK_ID]),
            call('soft_cancel_task', task_id=TASK_ID, reason='the user changed plans'),
            call('wait_tasks', task_ids=[TASK_ID]),
            text('done'),
        ]
    )
    agent = Agent(parent.model, capabilities=[SubAgentCapability(subagents=[researcher(sub)], clock=clock)])

    result = await agent.run('go')

    assert replies_of(result.all_messages()) == snapshot(
        [
            'Task started with ID: researcher-0001 (researcher); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.',
            """\
Waiting for your answer: researcher-0001.

researcher-0001: WAITING_FOR_ANSWER for 0.0 ms.
It asks: Which region?
Reply with answer_subagent(task_id='researcher-0001', answer=...); it goes on in the background, and wait_tasks waits for its result.
No checkpoints yet.\
""",
            'Cancellation requested for researcher-0001: its open question was answered with the cancel request, and it hands back partial results within 30s or is stopped. check_task or wait_tasks will show them.',
            """\
The task has ended.

Task cancelled: researcher-0001 (soft, on request: the user changed plans; it read the request after 0.0 ms; it ended 0.0 ms after the request). Partial results:
Its final message:
Completed: phase 1
In progress: phase 2
Not started: phase 3\
""",
        ]
    )
    assert cancel_requested(sub.requests[-1])


async def test_ignored_request_is_escalated_when_the_grace_window_expires(clock: ManualClock) -> None:
    """A sub-agent that never reads the request is hard-cancelled after its grace; checkpoints are the partial."""
    stuck = Gate()
    sub = Script([checkpoint_phase_1(), stuck.block_forever()])
    async with SubAgentManager([researcher(sub, grace_seconds=5.0)], clock=clock) as manager:
        task = await manager.start('researcher', 'Research X')
        await stuck.reached.wait()
        await manager.soft_cancel(task.task_id)
        clock.advance(4.9)
        assert manager.get(task.task_id).status is TaskStatus.RUNNING
        clock.advance(0.1)
        (info,) = (await manager.wait([task.task_id])).tasks

    assert info.outcome == Cancelled(
        mode='hard',
        reason=CancelReason(kind='user'),
        escalated=True,
        partial=PartialResult(
            completed=('phase 1',), in_progress=('phase 2',), not_started=('phase 3',), findings=('A',), checkpoints=1
        ),
    )
    assert info.cancel is not None and info.cancel.escalated_at == 5.0
    assert len(sub.requests) == 2  # no request after the escalation


async def test_grace_given_to_the_call_overrides_the_defaults(clock: ManualClock) -> None:
    """`soft_cancel(grace_seconds=...)` beats the sub-agent's grace, which beats the policy's."""
    stuck = Gate()
    sub = Script([stuck.block_forever()])
    async with SubAgentManager([researcher(sub, grace_seconds=5.0)], clock=clock) as manager:
        task = await manager.start('researcher', 'Research X')
        await stuck.reached.wait()
        info = await manager.soft_cancel(task.task_id, grace_seconds=1.0)
        assert info.cancel is not None and info.cancel.grace_seconds == 1.0
        clock.advance(1.0)
        (info,) = (await manager.wait([task.task_id])).tasks
    assert isinstance(info.outcome, Cancelled) and info.outcome.escalated


async def test_new_tool_calls_after_the_request_are_refused(clock: ManualClock) -> None:
    """Tools other than checkpoint get a refusal note instead of running; checkpoint still records."""
    in_flight = Gate()
    sub = Script(
        [
            in_flight.hold(call('publish', text='draft')),
            call('checkpoint', completed=['draft'], findings=['B']),
            text(PARTIAL_ANSWER),
        ]
    )
    agent = Agent(sub.model)
    published: list[str] = []

    @agent.tool_plain
    async def publish(text: str) -> str:
        """Publish a text."""
        published.append(text)
        return 'published'

    config = SubAgentConfig(name='writer', description='Writes', agent=agent)
    async with SubAgentManager([config], clock=clock) as manager:
        task = await manager.start('writer', 'Write Y')
        await in_flight.reached.wait()
        await manager.soft_cancel(task.task_id)
        in_flight.release.set()
        (info,) = (await manager.wait([task.task_id])).tasks

    assert published == []
    assert replies_of(sub.requests[-1]) == snapshot(
        [
            'Not run (publish): your parent asked you to stop (CANCEL_REQUEST). Do not call tools; reply now with your partial results.',
            'Checkpoint 1 recorded. You were asked to stop: reply now with your partial results.',
        ]
    )
    assert isinstance(info.outcome, Cancelled) and info.outcome.partial.findings == ('B',)


async def test_refusal_can_be_turned_off(clock: ManualClock) -> None:
    """With `refuse_tools_after_cancel=False`, a call made after the request still runs."""
    in_flight = Gate()
    sub = Script([in_flight.hold(call('publish', text='draft')), text(PARTIAL_ANSWER)])
    agent = Agent(sub.model)
    published: list[str] = []

    @agent.tool_plain
    async def publish(text: str) -> str:
        """Publish a text."""
        published.append(text)
        return 'published'

    config = SubAgentConfig(name='writer', description='Writes', agent=agent)
    policy = SubAgentPolicy(refuse_tools_after_cancel=False)
    async with SubAgentManager([config], clock=clock, policy=policy) as manager:
        task = await manager.start('writer', 'Write Y')
        await in_flight.reached.wait()
        await manager.soft_cancel(task.task_id)
        in_flight.release.set()
        await manager.wait([task.task_id])

    assert published == ['draft']


async def test_second_soft_cancel_is_not_an_error(clock: ManualClock) -> None:
    """Asking again is idempotent: the reply says it is already being cancelled."""
    stuck = Gate()
    sub = Script([stuck.block_forever()])
    parent = Script(
        [
            call('task', description='Research X', subagent_type='researcher', mode='async'),
            after(stuck.reached, call('soft_cancel_task', task_id=TASK_ID)),
            call('soft_cancel_task', task_id=TASK_ID),
            call('hard_cancel_task', task_id=TASK_ID),
            call('soft_cancel_task', task_id=TASK_ID),
            text('done'),
        ]
    )
    agent = Agent(parent.model, capabilities=[SubAgentCapability(subagents=[researcher(sub)], clock=clock)])

    result = await agent.run('go')

    assert replies_of(result.all_messages()) == snapshot(
        [
            'Task started with ID: researcher-0001 (researcher); it runs in the background. Follow it with check_task or wait_tasks; stop it with soft_cancel_task or hard_cancel_task.',
            'Cancellation requested for researcher-0001: it has been told, and it hands back partial results within 30s or is stopped. check_task or wait_tasks will show them.',
            'researcher-0001 is already being cancelled (soft); check_task or wait_tasks will show its partial results.',
            'Task cancelled: researcher-0001 stopped 0.0 ms after the hard cancel. It recorded no checkpoint and sent no final message.',
            'researcher-0001 is already cancelled; check_task shows its partial results.',
        ]
    )


async def test_request_sent_before_the_run_starts_is_read_at_the_first_request(clock: ManualClock) -> None:
    """A cancel that arrives before the sub-agent's first model request is in that very request."""
    sub = Script([text('full answer')], on_cancel=text('nothing done yet'))
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        task = await manager.start('researcher', 'Research X')
        await manager.soft_cancel(task.task_id)
        (info,) = (await manager.wait([task.task_id])).tasks
    assert len(sub.requests) == 1 and cancel_requested(sub.requests[0])
    assert isinstance(info.outcome, Cancelled) and info.outcome.partial.final_message == 'nothing done yet'


async def test_request_during_the_final_answer_does_not_cost_another_request(clock: ManualClock) -> None:
    """If the model is writing its final answer when the request lands, the cancel wins and the answer stands.

    The request came first, so the task is CANCELLED; the runner holds it until a step that cannot end the run,
    so the final answer is not redirected into one more request (on every pydantic-ai version), and it is the
    partial result, marked unread.
    """
    answering = Gate()
    sub = Script([answering.hold(text('FULL answer'))], on_cancel=text('wrap-up'))
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        task = await manager.start('researcher', 'Research X')
        await answering.reached.wait()
        await manager.soft_cancel(task.task_id)
        answering.release.set()
        (info,) = (await manager.wait([task.task_id])).tasks

    assert len(sub.requests) == 1
    assert info.outcome == Cancelled(
        mode='soft', reason=CancelReason(kind='user'), partial=PartialResult(final_message='FULL answer')
    )


async def test_every_subagent_is_told_how_to_react(clock: ManualClock) -> None:
    """The default cancellation instructions are added to each sub-agent; a config can replace them."""
    default = Script([text('ok')])
    custom = Script([text('ok')])
    configs = [
        researcher(default),
        SubAgentConfig(name='writer', description='Writes', model=custom.model, cancel_instructions='Stop on cue.'),
    ]
    async with SubAgentManager(configs, clock=clock) as manager:
        await manager.run('researcher', 'Research X')
        await manager.run('writer', 'Write Y')
    assert default.instructions[0] is not None and 'CANCEL_REQUEST' in default.instructions[0]
    assert 'call `checkpoint`' in default.instructions[0]
    assert custom.instructions == ['Stop on cue.']


@pytest.mark.parametrize('status', ['COMPLETED', 'FAILED'])
async def test_a_cancel_of_a_finished_task_changes_nothing(clock: ManualClock, status: str) -> None:
    """A cancel of a finished task returns it as it ended, with no cancel recorded; its result is untouched."""
    sub = Script([text('the answer')] if status == 'COMPLETED' else [call('no_such_tool')] * 2)
    async with SubAgentManager([researcher(sub)], clock=clock) as manager:
        info = await manager.run('researcher', 'Research X')
        assert info.status.name == status
        assert await manager.soft_cancel(info.task_id) == info
        assert await manager.hard_cancel(info.task_id) == info
        assert manager.get(info.task_id) == info and info.cancel is None


@pytest.mark.parametrize('method', ['get', 'soft_cancel', 'hard_cancel', 'answer', 'wait'])
async def test_a_task_id_that_is_not_a_string_is_a_type_error(clock: ManualClock, method: str) -> None:
    """`soft_cancel(123)` and the like name the mistake instead of looking for a task 123."""
    async with SubAgentManager([researcher(Script([]))], clock=clock) as manager:
        calls = {
            'get': lambda: manager.get(123),  # pyright: ignore[reportArgumentType]
            'soft_cancel': lambda: manager.soft_cancel(123),  # pyright: ignore[reportArgumentType]
            'hard_cancel': lambda: manager.hard_cancel(123),  # pyright: ignore[reportArgumentType]
            'answer': lambda: manager.answer(123, 'yes'),  # pyright: ignore[reportArgumentType]
            'wait': lambda: manager.wait([123]),  # pyright: ignore[reportArgumentType]
        }
        with pytest.raises(TypeError, match=r'^task_id must be a str \(the `task_id` of a TaskInfo\), not int: 123\.$'):
            result = calls[method]()
            if inspect.isawaitable(result):
                await result
        with pytest.raises(TypeError, match=r"^task_ids must be a list of task ids, not one str: pass \['x-0001'\]\.$"):
            await manager.wait('x-0001')
