"""The main job: the seed workflow, played by scripted models offline, or by a real model you name.

A parent starts market research in the background, checks on it, changes its mind and soft-cancels
it; the researcher reads the request, stops, and hands back what it has. Every tool call, reply and
bus message is printed as it happens.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import AbstractCapability, ValidatedToolArgs
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.tools import ToolDefinition

from .bus import InProcessBus
from .capability import SubAgentCapability
from .config import SubAgentConfig
from .manager import SubAgentManager
from .messages import BusMessage, CancelAcknowledged, CancelRequest, StatusChanged

__all__ = ('run_demo',)

Printer = Callable[[str], None]

_STEP_SECONDS = 0.5
"""How long each scripted model request takes, so the run unfolds at a watchable pace."""
_CHECK_AFTER_SECONDS = 0.7
"""When the scripted parent looks at the research: one phase done, the next under way."""

_PHASES = ('market size', 'competitors', 'pricing')
_FINDINGS = {
    'market size': 'EU e-bike market ~ EUR 18bn, growing 9%/year',
    'competitors': 'three brands hold 40% of sales',
    'pricing': 'median price EUR 2,400',
}
_PARENT_PROMPT = (
    'Start comprehensive market research on e-bikes in Europe in the background (mode "async"), check on it once, '
    'then cancel it softly because the user changed plans, wait for it, and report its partial results.'
)


@dataclass
class _Narrator(AbstractCapability[object]):
    """Prints each tool call of the agent it is attached to, and the tool's reply."""

    who: str
    out: Printer

    async def before_tool_execute(
        self, ctx: RunContext[object], *, call: ToolCallPart, tool_def: ToolDefinition, args: ValidatedToolArgs
    ) -> ValidatedToolArgs:
        shown = ', '.join(f'{name}={value!r}' for name, value in args.items())
        self.out(f'{self.who:>10} -> {call.tool_name}({shown})')
        return args

    async def after_tool_execute(
        self,
        ctx: RunContext[object],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: ValidatedToolArgs,
        result: Any,
    ) -> Any:
        for line in str(result).splitlines():
            if line:
                self.out(f'{"":>10}    <- {line}')
        return result


def _bus_printer(out: Printer) -> Callable[[str, BusMessage], None]:
    def show(address: str, message: BusMessage) -> None:
        match message:
            case CancelRequest(mode=mode, grace_seconds=grace):
                out(f'{"bus":>10} :: CANCEL_REQUEST ({mode}, {grace:g}s grace) -> {message.task_id}')
            case CancelAcknowledged():
                out(f'{"bus":>10} :: {message.task_id} read the CANCEL_REQUEST')
            case StatusChanged(old=old, new=new) if old.status is not new.status:
                out(f'{"bus":>10} :: {message.task_id}: {old.status.name} -> {new.status.name}')
            case _:
                pass

    return show


def _returns(messages: Sequence[ModelMessage]) -> list[str]:
    return [
        str(part.content)
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]


def _reply(*parts: TextPart | ToolCallPart) -> ModelResponse:
    return ModelResponse(parts=list(parts))


async def _scripted_researcher(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Works through the phases, checkpointing each; on a CANCEL_REQUEST, answers with what it has."""
    await anyio.sleep(_STEP_SECONDS)
    last = messages[-1]
    if isinstance(last, ModelRequest) and 'CANCEL_REQUEST' in json.dumps([str(p) for p in last.parts]):
        done = [phase for phase in _PHASES if any(_FINDINGS[phase] in text for text in _checkpointed(messages))]
        rest = [phase for phase in _PHASES if phase not in done]
        return _reply(
            TextPart(
                f'Completed: {", ".join(done) or "nothing"}\nIn progress: {rest[0] if rest else "nothing"}\n'
                f'Not started: {", ".join(rest[1:]) or "nothing"}\n'
                f'Findings: {"; ".join(_FINDINGS[phase] for phase in done) or "none yet"}'
            )
        )
    done = len(_checkpointed(messages))
    if done == len(_PHASES):
        return _reply(TextPart('; '.join(_FINDINGS.values())))
    phase = _PHASES[done]
    return _reply(
        ToolCallPart(
            'checkpoint',
            {
                'completed': list(_PHASES[: done + 1]),
                'in_progress': list(_PHASES[done + 1 : done + 2]),
                'not_started': list(_PHASES[done + 2 :]),
                'findings': [_FINDINGS[phase]],
            },
        )
    )


def _checkpointed(messages: Sequence[ModelMessage]) -> list[str]:
    return [
        json.dumps(part.args_as_dict())
        for message in messages
        if isinstance(message, ModelResponse)
        for part in message.parts
        if isinstance(part, ToolCallPart) and part.tool_name == 'checkpoint'
    ]


async def _scripted_parent(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Starts the research, checks it once it has made progress, soft-cancels it, waits, and reports."""
    replies = _returns(messages)
    if not replies:
        return _reply(
            ToolCallPart(
                'task',
                {'description': 'Comprehensive market research', 'subagent_type': 'researcher', 'mode': 'async'},
            )
        )
    found = re.search(r'Task started with ID: (\S+) ', replies[0])
    assert found is not None
    task_id = found.group(1)
    steps = ['check_task', 'soft_cancel_task', 'wait_tasks']
    if len(replies) <= len(steps):
        tool = steps[len(replies) - 1]
        if tool == 'check_task':
            await anyio.sleep(_CHECK_AFTER_SECONDS)
        args: dict[str, object] = {'task_ids': [task_id]} if tool == 'wait_tasks' else {'task_id': task_id}
        if tool == 'soft_cancel_task':
            args['reason'] = 'the user changed plans'
        return _reply(ToolCallPart(tool, args))
    return _reply(TextPart('The research was stopped early; its partial findings are above.'))


async def run_demo(model: str | Model | None = None, out: Printer = print) -> int:
    """Play the seed workflow; return 0 when no task is left running afterwards, else 1.

    Args:
        model: A real model for the parent and the researcher (`'openai:gpt-5-mini'`, …); scripted
            offline models when `None`.
        out: Where each line goes.
    """
    bus = InProcessBus()
    bus.subscribe(_bus_printer(out))
    research_model = model or FunctionModel(_scripted_researcher)
    researcher_agent = Agent(
        research_model,
        name='researcher',
        instructions='Research in three phases (market size, competitors, pricing); checkpoint after each.',
        capabilities=[_Narrator('researcher', out)],
    )
    researcher = SubAgentConfig(
        name='researcher', description='Researches a market in phases and reports findings', agent=researcher_agent
    )
    async with SubAgentManager([researcher], bus=bus) as manager:
        parent = Agent(
            model or FunctionModel(_scripted_parent),
            name='parent',
            capabilities=[SubAgentCapability(manager=manager), _Narrator('parent', out)],
        )
        out(f'{"user":>10} >> {_PARENT_PROMPT}')
        result = await parent.run(_PARENT_PROMPT)
        out(f'{"parent":>10} << {result.output}')
    left = [info for info in manager.tasks() if not info.is_terminal]
    out(f'{"done":>10} :: tasks still running: {len(left)}')
    return 1 if left else 0
