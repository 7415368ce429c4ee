"""The tools a sub-agent's model is offered: its agent's own, `ask_parent` and `checkpoint`, as its capabilities allow."""

from __future__ import annotations

import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import PrepareTools
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.tools import ToolDefinition

from subagents_cancel import SubAgentConfig, SubAgentManager

pytestmark = pytest.mark.anyio


def lookup(topic: str) -> str:
    """Look `topic` up."""
    return topic


async def _offered(agent: Agent[None, str], seen: list[list[str]]) -> list[str]:
    async with SubAgentManager([SubAgentConfig(name='worker', description='Works', agent=agent)]) as manager:
        await manager.run('worker', 'Do the job.')
    (names,) = seen
    return names


def _model(seen: list[list[str]]) -> FunctionModel:
    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append(sorted(tool.name for tool in info.function_tools))
        return ModelResponse(parts=[TextPart('done')])

    return FunctionModel(respond)


async def test_a_subagent_is_offered_its_own_tools_and_the_task_tools() -> None:
    """Beside its agent's tools, the model gets `ask_parent` and `checkpoint`."""
    seen: list[list[str]] = []
    assert await _offered(Agent(_model(seen), tools=[lookup]), seen) == snapshot(['ask_parent', 'checkpoint', 'lookup'])


async def test_a_prepare_tools_capability_of_the_agent_sees_the_task_tools() -> None:
    """An agent's `PrepareTools` can hide `ask_parent`: the task tools go through it like the agent's own."""
    seen: list[list[str]] = []

    async def no_questions(ctx: RunContext[None], tools: list[ToolDefinition]) -> list[ToolDefinition]:
        return [tool for tool in tools if tool.name != 'ask_parent']

    agent = Agent(_model(seen), deps_type=type(None), tools=[lookup], capabilities=[PrepareTools(no_questions)])
    assert await _offered(agent, seen) == snapshot(['checkpoint', 'lookup'])
