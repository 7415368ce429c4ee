"""The sub-agent's own tools inside the agent's tool wrappers and filters, however the agent carries them.

Found by a hostile review of issue 15's lean rounds, where `ask_parent` and `checkpoint` came to join the run's
toolset by a wrapper: a prefixing wrapper outside it, a tool filter built per run, an agent in a `WrapperAgent`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent, RunContext
from pydantic_ai.agent import AbstractAgent, WrapperAgent
from pydantic_ai.capabilities import AbstractCapability, PrepareTools
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets import AbstractToolset

from subagents_cancel import Completed, SubAgentConfig, SubAgentManager, TaskInfo

from .helpers import Script, call, text, tool_returns

pytestmark = pytest.mark.anyio


async def _one_task(agent: AbstractAgent[None, object]) -> TaskInfo:
    """Run `agent` as the sub-agent of one foreground task of a manager of its own; its task's end."""
    async with SubAgentManager([SubAgentConfig(name='worker', description='Works', agent=agent)]) as manager:
        return await manager.run('worker', 'Do the job.')


@dataclass
class _PrefixesTools(AbstractCapability[object]):
    """Prefixes every tool of the run, wrapping its toolset in pydantic-ai's `PrefixedToolset`."""

    def get_wrapper_toolset(self, toolset: AbstractToolset[object]) -> AbstractToolset[object] | None:
        return toolset.prefixed('my')


async def test_a_subagent_whose_capability_prefixes_its_tools_can_checkpoint() -> None:
    """A capability that wraps the run's toolset in a `PrefixedToolset` still lets the sub-agent call `checkpoint`."""
    script = Script([call('my_checkpoint', completed=['read the brief']), text('done')])
    agent = Agent(script.model, capabilities=[_PrefixesTools()])
    info = await _one_task(agent)
    assert (info.outcome, [each.completed for each in info.checkpoints], tool_returns(script.requests[-1])) == snapshot(
        (Completed(output='done'), [('read the brief',)], ['Checkpoint 1 recorded.'])
    )


class _OfferedTools:
    """A sub-agent model that notes the names of the tools each request offers it, and answers at once."""

    def __init__(self) -> None:
        self.offered: list[list[str]] = []

    @property
    def model(self) -> FunctionModel:
        def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            self.offered.append(sorted(tool.name for tool in info.function_tools))
            return ModelResponse(parts=[TextPart('done')])

        return FunctionModel(respond)


async def _no_questions(ctx: RunContext[None], tools: list[ToolDefinition]) -> list[ToolDefinition]:
    return [tool for tool in tools if tool.name != 'ask_parent']


def _prepared_per_run(model: FunctionModel) -> AbstractAgent[None, object]:
    """An agent whose `PrepareTools` is a capability function: pydantic-ai builds it for each run."""
    return Agent(model, deps_type=type(None), capabilities=[lambda ctx: PrepareTools(_no_questions)])


def _wrapped(model: FunctionModel) -> AbstractAgent[None, object]:
    """An agent with a fixed `PrepareTools`, handed over inside a `WrapperAgent` (as pydantic-ai's durable agents are)."""
    return WrapperAgent(Agent(model, deps_type=type(None), capabilities=[PrepareTools(_no_questions)]))


@pytest.mark.parametrize(
    'build',
    [
        pytest.param(
            _prepared_per_run,
            id='capability function',
        ),
        pytest.param(
            _wrapped,
            id='WrapperAgent',
        ),
    ],
)
async def test_a_prepare_tools_capability_sees_the_task_tools_however_the_agent_carries_it(
    build: Callable[[FunctionModel], AbstractAgent[None, object]],
) -> None:
    """An agent's `PrepareTools` can hide `ask_parent` whether it is built per run or the agent comes wrapped."""
    model = _OfferedTools()
    info = await _one_task(build(model.model))
    assert (info.outcome, model.offered) == snapshot((Completed(output='done'), [['checkpoint']]))
