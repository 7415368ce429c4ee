"""The sub-agents the worker runs, and the app names: scripted models, offline, that act as an LLM would.

Both sides load this module: the worker (`--subagents examples.temporal.subagents:SUBAGENTS`) runs the tasks, and
the app, their owner, needs the same configs to start them and to read what they hand back.

* `researcher` works in phases and checkpoints after each; its second phase is a slow step (a model taking its
  time), which a soft cancel cuts short (`preempt_on_soft_cancel`): it then reads the CANCEL_REQUEST and hands back
  what it has. It has no agent of its own: the worker builds one from its model, with Temporal durability.
* `crawler` has an agent of its own, with a `fetch_page` tool that takes a long time; an agent that runs on a
  worker carries `TemporalDurability`, with the library's `activity_config()` (its activities heartbeat, and a
  cancel waits until they have really stopped).
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio
from pydantic_ai import Agent
from pydantic_ai.durable_exec.temporal import TemporalDurability
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from subagents_cancel import SubAgentConfig
from subagents_cancel.temporal import activity_config

SLOW_STEP_SECONDS = 120.0
"""How long the scripted slow steps take: far longer than the app waits before it cancels them."""

PHASES = ('market size', 'competitors', 'pricing')


def _cancel_requested(messages: Sequence[ModelMessage]) -> bool:
    last = messages[-1]
    return isinstance(last, ModelRequest) and any(
        isinstance(part, UserPromptPart) and 'CANCEL_REQUEST' in str(part.content) for part in last.parts
    )


def _answered(messages: Sequence[ModelMessage]) -> int:
    return sum(isinstance(message, ModelResponse) for message in messages)


async def researcher_llm(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Checkpoints its first phase, then takes its time over the second; on a CANCEL_REQUEST, wraps up."""
    if _cancel_requested(messages):
        return ModelResponse(
            parts=[TextPart('Completed: market size\nIn progress: competitors (3 found)\nNot started: pricing')]
        )
    if _answered(messages) == 0:
        checkpoint = {
            'completed': list(PHASES[:1]),
            'in_progress': list(PHASES[1:2]),
            'not_started': list(PHASES[2:]),
            'findings': ['the EU e-bike market is worth EUR 18bn'],
        }
        return ModelResponse(parts=[ToolCallPart('checkpoint', checkpoint)])
    await anyio.sleep(SLOW_STEP_SECONDS)
    return ModelResponse(parts=[TextPart('Market size EUR 18bn; three leaders; prices EUR 2,400 on average.')])


async def crawler_llm(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Checkpoints, then fetches a page (a slow tool), then reports."""
    match _answered(messages):
        case 0:
            checkpoint = {'completed': ['sitemap'], 'in_progress': ['product pages'], 'findings': ['412 product pages']}
            return ModelResponse(parts=[ToolCallPart('checkpoint', checkpoint)])
        case 1:
            return ModelResponse(parts=[ToolCallPart('fetch_page', {'url': 'https://example.com/products'})])
        case _:
            return ModelResponse(parts=[TextPart('Crawled 412 product pages.')])


crawler_agent = Agent(
    FunctionModel(crawler_llm),
    name='crawler',
    capabilities=[TemporalDurability(activity_config=activity_config())],
)


@crawler_agent.tool_plain
async def fetch_page(url: str) -> str:
    """Fetch a web page."""
    await anyio.sleep(SLOW_STEP_SECONDS)  # a very slow site
    return f'the page at {url}'


SUBAGENTS = [
    SubAgentConfig(
        name='researcher',
        description='Researches a market in phases',
        model=FunctionModel(researcher_llm),
        preempt_on_soft_cancel=True,
    ),
    SubAgentConfig(name='crawler', description='Crawls a website', agent=crawler_agent),
]
"""What the worker hosts and the app starts: the same list on both sides."""
