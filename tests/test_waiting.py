"""Waiting is always bounded and never spins: a model's timeout is capped, and a wait returns on every question."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent, Tool
from pydantic_ai.messages import ModelMessage, ModelResponse

from subagents_cancel import CancelTimeout, SubAgentCapability, SubAgentConfig, SubAgentManager, TaskStatus
from subagents_cancel.messages import Question
from subagents_cancel.outcomes import WaitResult
from subagents_cancel.shutdown import ShutdownReport, shutdown
from subagents_cancel.wire import WireMessage

from .helpers import Gate, Script, Step, WatchedClock, after, call, calls, new_transport, replies_of, resolve, text

pytestmark = pytest.mark.anyio


def noting(reached: anyio.Event, step: Step) -> Step:
    """The step, after setting `reached`: the parent's run has come back from its previous tool call."""

    async def respond(messages: list[ModelMessage]) -> ModelResponse:
        reached.set()
        return await resolve(step, messages)

    return respond


@pytest.mark.parametrize(
    ('tool', 'asked'),
    [('wait_tasks', 3600), ('wait_tasks', 1e308), ('wait_tasks', 'inf'), ('wait_tasks', float('inf'))]
    + [('wait_region', 3600), ('wait_region', 'inf')],
)
async def test_a_models_long_timeout_is_capped_by_the_policy(clock: WatchedClock, tool: str, asked: object) -> None:
    """`timeout_seconds` beyond `wait_timeout_seconds` (even infinite) is capped there, and the reply says so."""
    working = Gate()
    sub = Script([working.hold(text('late result'))])
    config = SubAgentConfig(name='researcher', description='Researches', model=sub.model)
    replied = anyio.Event()
    wait_args: dict[str, object] = {'timeout_seconds': asked} | ({'region': 'r'} if tool == 'wait_region' else {})
    parent = Script(
        [
            call('task', description='Research X', subagent_type='researcher', mode='async', region='r'),
            call(tool, **wait_args),
            noting(replied, text('done')),
        ]
    )
    agent = Agent(parent.model, capabilities=[SubAgentCapability(subagents=[config], clock=clock)])
    results: list[list[str]] = []

    async def run_parent() -> None:
        results.append(replies_of((await agent.run('go')).all_messages()))

    async with anyio.create_task_group() as group:
        group.start_soon(run_parent)
        await clock.wait_for_deadline(300)
        clock.advance(300)  # the policy's wait_timeout_seconds
        await anyio.wait_all_tasks_blocked()
        if not replied.is_set():
            working.release.set()  # the wait was not capped: let the task end, so the test fails on the reply
    assert results[0][1] == snapshot("""\
Stopped waiting after 300.0s, the longest one wait may take (your timeout_seconds was capped); still running: researcher-0001.

researcher-0001: RUNNING for 300.0s (region r).
No checkpoints yet.\
""")


async def test_wait_region_returns_on_the_question_of_a_task_that_joined_while_it_waited(
    clock: WatchedClock,
) -> None:
    """A task that joins the region during `wait_region` and asks a question ends the wait; the parent can answer."""
    asked = anyio.Event()
    bus = new_transport()
    bus.subscribe(lambda address, message: _set_on_question(asked, message))
    first = Script([after(asked, text('first result'))])  # ends only once the newcomer has asked
    newcomer = Script([call('ask_parent', question='Which market?'), text('second result')])
    configs = [
        SubAgentConfig(name='first', description='First', model=first.model),
        SubAgentConfig(name='newcomer', description='Joins late', model=newcomer.model),
    ]
    replied = anyio.Event()
    parent = Script([call('wait_region', region='r'), noting(replied, text('done'))])
    async with bus, SubAgentManager(configs, clock=clock, transport=bus) as manager:
        await manager.start('first', 'x', region='r')
        agent = Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)])
        results: list[list[str]] = []

        async def run_parent() -> None:
            results.append(replies_of((await agent.run('go')).all_messages()))

        async with anyio.create_task_group() as group:
            group.start_soon(run_parent)
            await clock.wait_for_deadline(300)  # wait_region is waiting for the region's one task
            joined = await manager.start('newcomer', 'y', region='r')
            await manager.wait([joined.task_id])  # it has asked
            await anyio.wait_all_tasks_blocked()
            if not replied.is_set():
                await manager.answer(joined.task_id, 'EU')  # the parent is stuck: unblock it so the test can fail
    assert results[0] == snapshot(
        [
            """\
Waiting for your answer: newcomer-0002.

first-0001: COMPLETED in 0.0 ms. Output:
first result

newcomer-0002: WAITING_FOR_ANSWER for 0.0 ms (region r).
It asks: Which market?
Reply with answer_subagent(task_id='newcomer-0002', answer=...); it goes on in the background, and wait_tasks waits for its result.
No checkpoints yet.\
"""
        ]
    )


def _set_on_question(asked: anyio.Event, message: WireMessage) -> None:
    if isinstance(message, Question):
        asked.set()


@dataclass
class _SwallowsCancellation:
    """A slow tool that catches the first cancellation and carries on until let go: a badly behaved tool."""

    entered: anyio.Event = field(default_factory=anyio.Event)
    swallowed: anyio.Event = field(default_factory=anyio.Event)
    let_go: anyio.Event = field(default_factory=anyio.Event)

    async def work(self) -> str:
        """Work slowly."""
        self.entered.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            self.swallowed.set()
        await self.let_go.wait()
        return 'slow work done'


async def test_a_hard_cancel_swallowed_during_a_question_leaves_no_question_open(clock: WatchedClock) -> None:
    """A task whose hard cancel a parallel tool swallowed is not waiting for an answer: waits block, replies agree."""
    slow = _SwallowsCancellation()
    sub = Script([calls(('ask_parent', {'question': 'Which market?'}), ('slow_tool', {})), text('finished anyway')])
    sub_agent = Agent(sub.model, tools=[Tool(slow.work, name='slow_tool')])
    config = SubAgentConfig(name='researcher', description='Researches', agent=sub_agent)
    async with SubAgentManager([config], clock=clock) as manager:
        try:
            asking = await manager.run('researcher', 'Research X')
            assert asking.status is TaskStatus.WAITING_FOR_ANSWER
            await slow.entered.wait()

            async def give_up_waiting() -> None:
                await slow.swallowed.wait()
                await clock.wait_for_deadline(5)  # the hard cancel waits for the run to stop, bounded
                clock.advance(5)

            async with anyio.create_task_group() as group:
                group.start_soon(give_up_waiting)
                with pytest.raises(CancelTimeout):
                    await manager.hard_cancel(asking.task_id)
            stuck = manager.get(asking.task_id)
            assert (stuck.status, stuck.question, stuck.unresponsive) == (TaskStatus.RUNNING, None, True)

            waits: list[WaitResult] = []

            async def wait() -> None:
                waits.append(await manager.wait([asking.task_id], timeout_seconds=10))

            async with anyio.create_task_group() as group:
                group.start_soon(wait)
                await anyio.wait_all_tasks_blocked()
                clock.advance(10)
            assert waits[0].timed_out  # it waited its bound: it did not return at once on a question no one can answer

            parent = Script(
                [
                    calls(
                        ('wait_tasks', {'task_ids': [asking.task_id], 'timeout_seconds': 1}),
                        ('answer_subagent', {'task_id': asking.task_id, 'answer': 'EU'}),
                    ),
                    text('done'),
                ]
            )
            agent = Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)])
            replies: list[list[str]] = []

            async def run_parent() -> None:
                replies.append(replies_of((await agent.run('go')).all_messages()))

            async with anyio.create_task_group() as group:
                group.start_soon(run_parent)
                await clock.wait_for_deadline(clock.now() + 1)
                clock.advance(1)
            assert replies[0] == snapshot(
                [
                    """\
Stopped waiting; still running: researcher-0001.

researcher-0001: RUNNING for 16.0s.
A hard cancel was requested 16.0s ago (on request); it is being stopped.
It did not stop after a hard cancel and is marked unresponsive; it may still be running.
No checkpoints yet.\
""",
                    'researcher-0001 is not waiting for an answer: it is being cancelled (hard), so it takes no answer (the cancel answers any question it had); nothing was sent.',
                ]
            )

            report_holder: list[ShutdownReport] = []

            async def shut_down() -> None:
                report_holder.append(await shutdown([manager], grace_seconds=2))

            async with anyio.create_task_group() as group:
                group.start_soon(shut_down)
                await clock.wait_for_deadline(clock.now() + 2)  # the shutdown waits on the clock: it does not spin
                clock.advance(2)
                await clock.wait_for_deadline(clock.now() + 5)
                clock.advance(5)
            assert [info.task_id for info in report_holder[0].unresponsive] == [asking.task_id]
        finally:
            slow.let_go.set()  # also when an assertion failed: the owner's exit would wait for the stuck tool
        (ended,) = (await manager.wait([asking.task_id])).tasks
    assert ended.status is TaskStatus.CANCELLED and not ended.unresponsive
