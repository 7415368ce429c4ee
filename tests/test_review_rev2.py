"""Defects a hostile review of 3a749bb, c307740 and 832b897 found: each test asserts the promised behaviour.

832b897 made `TaskCapability.for_agent` refuse (UserError) an agent that lists `TaskCapability` ahead of "a capability
that handles model responses", deciding by the capability's class alone: that refused capabilities that handle no
response (`Hooks` with a request hook only, a prefixed toolset) and accepted a capability function that does. The
order is now the application's (the docs say what each order does), and a second `TaskCapability` alone is refused.
c307740 left every `LoopbackTransport` delivering in one module-wide context, which two threads' loops cannot be in
at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import Hooks, Toolset
from pydantic_ai.messages import ModelResponse
from pydantic_ai.models import ModelRequestContext
from pydantic_ai.toolsets import FunctionToolset

from subagents_cancel import (
    Completed,
    LoopbackTransport,
    SubAgentConfig,
    SubAgentManager,
    TaskCapability,
    TaskId,
    TaskStatus,
)
from subagents_cancel.messages import Question
from subagents_cancel.outcomes import HardCancelOutcome
from subagents_cancel.testing import ManualClock
from subagents_cancel.wire import WireMessage

from .helpers import Gate, Script, call, text

pytestmark = pytest.mark.anyio


async def _request_seen(ctx: RunContext[object], request_context: ModelRequestContext) -> ModelRequestContext:
    return request_context  # looks at the request only: it handles no response


async def test_a_hooks_capability_with_only_a_request_hook_may_follow_the_task_capability(
    clock: ManualClock,
) -> None:
    """`Hooks(before_model_request=...)` handles no response: listed after `TaskCapability`, the task runs."""
    sub = Script([call('checkpoint', completed=['read the brief']), text('The market is $4B.')])
    worker = Agent(sub.model, capabilities=[TaskCapability(), Hooks[object](before_model_request=_request_seen)])
    async with SubAgentManager([SubAgentConfig(name='worker', description='W', agent=worker)], clock=clock) as mgr:
        info = await mgr.run('worker', 'Research X')
    assert (info.status, info.outcome) == snapshot((TaskStatus.COMPLETED, Completed(output='The market is $4B.')))


async def test_a_prefixed_toolset_may_follow_the_task_capability(clock: ManualClock) -> None:
    """A toolset capability with prefixed tool names handles no response: listed after `TaskCapability`, it runs."""
    tools = FunctionToolset[object]()

    @tools.tool_plain
    def lookup(topic: str) -> str:
        return f'{topic}: $4B'

    sub = Script([call('db_lookup', topic='market'), text('The market is $4B.')])
    worker = Agent(sub.model, capabilities=[TaskCapability(), Toolset(tools).prefix_tools('db')])
    async with SubAgentManager([SubAgentConfig(name='worker', description='W', agent=worker)], clock=clock) as mgr:
        info = await mgr.run('worker', 'Research X')
    assert (info.status, info.outcome) == snapshot((TaskStatus.COMPLETED, Completed(output='The market is $4B.')))


@pytest.mark.parametrize('built_per_run', [False, True], ids=['Hooks', 'capability function'])
@pytest.mark.parametrize(
    ('task_capability_last', 'expected'),
    [
        pytest.param(True, ('lost', 'Completed', False), id='listed last: the answer wins'),
        pytest.param(False, ('stopped', 'Cancelled', True), id='listed ahead: the task had not heard of it'),
    ],
)
async def test_a_hard_cancel_while_a_capability_holds_the_arrived_final_answer_does_what_the_docs_say(
    clock: ManualClock, built_per_run: bool, task_capability_last: bool, expected: tuple[str, str, bool]
) -> None:
    """An application's `after_model_request` holds the arrived final answer while a hard cancel comes.

    As docs/guides/tools.md says: listed last, `TaskCapability` has heard of the answer before the hold, and the
    answer wins the cancel (the hold is not cut short). Listed ahead, the task hears of the answer only once the hook
    lets it go, and the cancel stops the task first, as during the model request. The agent is accepted in either
    order, a capability function too (built per run: nothing can tell from outside that it holds responses).
    """
    post_processing = Gate()
    sub = Script([text('the full report')])

    async def post_process(
        ctx: RunContext[object], *, request_context: ModelRequestContext, response: ModelResponse
    ) -> ModelResponse:
        await post_processing.wait()  # slowly: the response has arrived meanwhile
        return response

    def post_per_run(ctx: RunContext[None]) -> Hooks[None]:
        return Hooks[None](after_model_request=post_process)

    holder = post_per_run if built_per_run else Hooks[None](after_model_request=post_process)
    capabilities = [holder, TaskCapability()] if task_capability_last else [TaskCapability(), holder]
    worker = Agent(sub.model, deps_type=type(None), capabilities=capabilities)
    async with SubAgentManager([SubAgentConfig(name='worker', description='W', agent=worker)], clock=clock) as mgr:
        task_id = (await mgr.start('worker', 'Go.')).task_id
        await post_processing.reached.wait()

        async def let_it_finish() -> None:
            await anyio.wait_all_tasks_blocked()  # the hard cancel has reached the task
            post_processing.release.set()

        outcomes: list[HardCancelOutcome] = []
        async with anyio.create_task_group() as group:
            group.start_soon(let_it_finish)
            outcomes.append(await mgr.hard_cancel_outcome(task_id))
        assert mgr.active_tasks() == ()
    ((result, outcome),) = [(each.result, each.info.outcome) for each in outcomes]
    assert (result, type(outcome).__name__, post_processing.stopped.is_set()) == expected


def test_two_loopback_transports_in_two_threads_deliver_while_the_other_delivers() -> None:
    """Two loops in two threads, each with its own `LoopbackTransport`: one delivers while the other is delivering."""
    first_delivering = threading.Event()
    second_over = threading.Event()
    found: dict[str, object] = {}

    async def first() -> None:
        def observer(address: str, message: WireMessage) -> None:
            first_delivering.set()
            second_over.wait(timeout=30)  # bounds a hang only: the second thread sets it once its loop is done

        async with LoopbackTransport() as transport:
            transport.subscribe(observer)
            mailbox = await transport.open('owner')
            assert mailbox is not None
            await transport.send('owner', _question())
            async for _ in mailbox:
                break

    async def second() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def failed(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
            found['error'] = repr(context.get('exception'))
            done.set()

        def observer(address: str, message: WireMessage) -> None:
            found['delivered'] = type(message).__name__
            done.set()

        loop.set_exception_handler(failed)
        async with LoopbackTransport() as transport:
            transport.subscribe(observer)
            assert await transport.open('owner') is not None
            await transport.send('owner', _question())
            await done.wait()

    def in_thread(main: Callable[[], Coroutine[Any, Any, None]], then: threading.Event | None) -> threading.Thread:
        def target() -> None:
            try:
                asyncio.run(main())
            finally:
                if then is not None:
                    then.set()

        thread = threading.Thread(target=target)
        thread.start()
        return thread

    one = in_thread(first, None)
    assert first_delivering.wait(timeout=30)
    two = in_thread(second, second_over)
    two.join()
    one.join()
    assert found == {'delivered': 'Question'}


def _question() -> Question:
    return Question(task_id=TaskId('researcher-3f9a07c2'), sent_at=0.0, text='question')
