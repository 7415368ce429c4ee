"""A user's own sub-agent that carries the task capability from its construction (`TaskCapability`).

Driven as a model drives them: the parent's `task` tool, the sub-agent's `checkpoint` and `ask_parent`, and the
same agent run directly, outside any task.
"""

from __future__ import annotations

import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import PrepareTools
from pydantic_ai.durable_exec.temporal import TemporalDurability
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.tools import ToolDefinition

from subagents_cancel import (
    Cancelled,
    CancelReason,
    Completed,
    PartialResult,
    SubAgentCapability,
    SubAgentConfig,
    SubAgentManager,
    TaskCapability,
    TaskStatus,
)
from subagents_cancel.temporal import activity_config
from subagents_cancel.testing import ManualClock

from .helpers import Gate, Script, call, cancel_requested, replies_of, text, tool_returns
from .temporal_support import Backend

pytestmark = pytest.mark.anyio


class _Offered:
    """A model that notes the tools and instructions each request offers it, and answers at once."""

    def __init__(self) -> None:
        self.tools: list[list[str]] = []
        self.instructions: list[str | None] = []

    @property
    def model(self) -> FunctionModel:
        def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            self.tools.append(sorted(tool.name for tool in info.function_tools))
            self.instructions.append(info.instructions)
            return ModelResponse(parts=[TextPart('done')])

        return FunctionModel(respond)


async def _no_questions(ctx: RunContext[None], tools: list[ToolDefinition]) -> list[ToolDefinition]:
    return [tool for tool in tools if tool.name != 'ask_parent']


async def test_a_subagent_built_with_the_capability_checkpoints_through_the_task_tool(clock: ManualClock) -> None:
    """An agent carrying `TaskCapability` runs a sync `task`: its checkpoint is recorded, its output is the reply."""
    sub = Script([call('checkpoint', completed=['read the brief'], findings=['X']), text('The market is $4B.')])
    worker = Agent(sub.model, instructions='Be brief.', capabilities=[TaskCapability()])
    config = SubAgentConfig(name='worker', description='Works', agent=worker, instructions='Cite sources.')
    parent = Script([call('task', description='Research X', subagent_type='worker'), text('ok')])
    async with SubAgentManager([config], clock=clock) as manager:
        result = await Agent(parent.model, capabilities=[SubAgentCapability(manager=manager)]).run('go')
    assert (replies_of(result.all_messages()), tool_returns(sub.requests[-1])) == snapshot(
        (
            [
                """\
worker-0001: COMPLETED in 0.0 ms. Output:
The market is $4B.\
"""
            ],
            ['Checkpoint 1 recorded.'],
        )
    )
    assert sub.instructions[0] is not None
    assert sub.instructions[0].split('\n\n')[:2] == snapshot(['Be brief.', 'Cite sources.'])
    assert 'CANCEL_REQUEST' in sub.instructions[0]


async def test_a_subagent_built_with_the_capability_wraps_up_on_a_soft_cancel(clock: ManualClock) -> None:
    """A soft cancel reaches an agent carrying `TaskCapability`: it reads the request and hands back partial results."""
    gate = Gate()
    sub = Script(
        [call('checkpoint', completed=['step 1']), gate.hold(call('checkpoint', completed=['step 1', 'step 2']))],
        on_cancel=text('Stopped: step 1 done.'),
    )
    worker = Agent(sub.model, capabilities=[TaskCapability()])
    async with SubAgentManager([SubAgentConfig(name='worker', description='Works', agent=worker)], clock=clock) as mgr:
        task_id = (await mgr.start('worker', 'Do the job.')).task_id
        await gate.reached.wait()
        await mgr.soft_cancel(task_id)
        gate.release.set()
        (info,) = (await mgr.wait([task_id])).tasks
    assert (info.status, info.outcome, [cancel_requested(messages) for messages in sub.requests]) == snapshot(
        (
            TaskStatus.CANCELLED,
            Cancelled(
                mode='soft',
                reason=CancelReason(),
                partial=PartialResult(
                    completed=('step 1', 'step 2'),
                    final_message='Stopped: step 1 done.',
                    checkpoints=2,
                    read_request=True,
                ),
            ),
            [False, False, True],
        )
    )


async def test_an_agent_carrying_the_capability_run_outside_a_task_is_a_plain_agent() -> None:
    """Run directly, an agent carrying `TaskCapability` is offered no task tools and no cancel instructions."""
    plain, prepared = _Offered(), _Offered()
    await Agent(plain.model, instructions='Be brief.', capabilities=[TaskCapability()]).run('hi')
    await Agent(prepared.model, deps_type=type(None), capabilities=[TaskCapability(), PrepareTools(_no_questions)]).run(
        'hi'
    )
    assert (plain.tools, plain.instructions, prepared.tools, prepared.instructions) == snapshot(
        ([[]], ['Be brief.'], [[]], [None])
    )


async def test_one_agent_carrying_the_capability_gets_each_configs_instructions(clock: ManualClock) -> None:
    """Two configs sharing one agent that carries `TaskCapability`: each task's run gets its own config's instructions."""
    offered = _Offered()
    worker = Agent(offered.model, capabilities=[TaskCapability()])
    configs = [
        SubAgentConfig(name='terse', description='Short', agent=worker, instructions='Answer in one line.'),
        SubAgentConfig(name='wordy', description='Long', agent=worker, instructions='Answer at length.'),
    ]
    async with SubAgentManager(configs, clock=clock) as manager:
        await manager.run('terse', 'Go.')
        await manager.run('wordy', 'Go.')
    assert [text.split('\n\n')[0] for text in offered.instructions if text is not None] == snapshot(
        ['Answer in one line.', 'Answer at length.']
    )
    assert offered.tools == snapshot([['ask_parent', 'checkpoint'], ['ask_parent', 'checkpoint']])


async def test_a_tool_filter_beside_the_capability_sees_and_hides_the_task_tools(clock: ManualClock) -> None:
    """A `PrepareTools` the agent is built with beside `TaskCapability` sees the task's tools, and may hide one."""
    offered = _Offered()
    worker = Agent(offered.model, deps_type=type(None), capabilities=[TaskCapability(), PrepareTools(_no_questions)])
    async with SubAgentManager([SubAgentConfig(name='worker', description='W', agent=worker)], clock=clock) as mgr:
        await mgr.run('worker', 'Go.')
    assert offered.tools == snapshot([['checkpoint']])


async def test_an_agent_carrying_the_capability_run_inside_a_subagents_tool_is_not_that_task(
    clock: ManualClock,
) -> None:
    """An agent carrying `TaskCapability` that a sub-agent's own tool runs is not the task: no task tools, no notes."""
    helper_offered = _Offered()
    helper = Agent(helper_offered.model, capabilities=[TaskCapability()])

    async def consult(question: str) -> str:
        """Ask the helper."""
        return (await helper.run(question)).output

    sub = Script([call('consult', question='What first?'), text('finished')])
    worker = Agent(sub.model, tools=[consult], capabilities=[TaskCapability()])
    async with SubAgentManager([SubAgentConfig(name='worker', description='W', agent=worker)], clock=clock) as mgr:
        info = await mgr.run('worker', 'Go.')
    assert (info.outcome, helper_offered.tools, helper_offered.instructions) == snapshot(
        (Completed(output='finished'), [[]], [None])
    )


async def test_a_question_from_a_subagent_built_with_the_capability_is_answered(clock: ManualClock) -> None:
    """An agent carrying `TaskCapability` asks its parent with `ask_parent`; the answer reaches it and it finishes."""
    sub = Script([call('ask_parent', question='Which market?'), text('Europe: $4B.')])
    worker = Agent(sub.model, capabilities=[TaskCapability()])
    async with SubAgentManager([SubAgentConfig(name='worker', description='W', agent=worker)], clock=clock) as mgr:
        asked = await mgr.run('worker', 'Research X')
        await mgr.answer(asked.task_id, 'Europe.')
        (info,) = (await mgr.wait([asked.task_id])).tasks
    assert (asked.question, info.outcome, tool_returns(sub.requests[-1])) == snapshot(
        ('Which market?', Completed(output='Europe: $4B.'), ['Your parent answered: Europe.'])
    )


async def test_a_durable_subagent_built_with_the_capability_checkpoints_on_every_backend(
    backend: Backend, clock: ManualClock
) -> None:
    """An agent built with `TemporalDurability` and `TaskCapability` checkpoints and completes, on a worker too."""
    sub = Script([call('checkpoint', completed=['read the brief']), text('The market is $4B.')])
    worker = Agent(
        sub.model,
        name='worker',
        capabilities=[TemporalDurability(activity_config=activity_config()), TaskCapability()],
    )
    async with backend.manager([SubAgentConfig(name='worker', description='W', agent=worker)], clock=clock) as mgr:
        info = await mgr.run('worker', 'Research X')
    assert (info.outcome, [each.completed for each in info.checkpoints], tool_returns(sub.requests[-1])) == snapshot(
        (Completed(output='The market is $4B.'), [('read the brief',)], ['Checkpoint 1 recorded.'])
    )
