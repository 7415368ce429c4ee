"""The scripted models of the demo: sub-agents and parents that act like LLMs would, at a watchable pace.

Each script reads the conversation so far and answers the way a model following the instructions would:
sub-agents work in phases and checkpoint after each, read a CANCEL_REQUEST and wrap up with what they
have; parents call the tools. Every request takes time, like a real one; nothing here is sent anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

__all__ = ('ParentStep', 'parent_model', 'phased_worker', 'research_lead', 'started_ids')

_STARTED = re.compile(r'Task started with ID: (\S+) ')
_HANDED_BACK = re.compile(r'^(?:Task \w+: \S+|\S+-[0-9a-f]+: [A-Z]+)', re.MULTILINE)
"""The headline of each task in a `wait_tasks` reply (`Task cancelled: id …`, `id: COMPLETED …`)."""


def _reply(*parts: TextPart | ToolCallPart) -> ModelResponse:
    return ModelResponse(parts=list(parts))


def _tool_returns(messages: Sequence[ModelMessage]) -> list[str]:
    return [
        str(part.content)
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]


def started_ids(messages: Sequence[ModelMessage]) -> list[str]:
    """The ids of the tasks the `task` tool announced so far, in order."""
    return [found.group(1) for text in _tool_returns(messages) for found in _STARTED.finditer(text)]


def _cancel_requested(messages: Sequence[ModelMessage]) -> bool:
    """Whether the request being answered carries a CANCEL_REQUEST (a user message or an `ask_parent` answer)."""
    last = messages[-1]
    return isinstance(last, ModelRequest) and any(
        isinstance(part, UserPromptPart | ToolReturnPart) and 'CANCEL_REQUEST' in str(part.content)
        for part in last.parts
    )


def _prompt(messages: Sequence[ModelMessage]) -> str:
    """The task's prompt: the first user message."""
    return next(
        (
            str(part.content)
            for message in messages
            if isinstance(message, ModelRequest)
            for part in message.parts
            if isinstance(part, UserPromptPart)
        ),
        '',
    )


def _checkpointed(messages: Sequence[ModelMessage]) -> int:
    return sum(
        1
        for message in messages
        if isinstance(message, ModelResponse)
        for part in message.parts
        if isinstance(part, ToolCallPart) and part.tool_name == 'checkpoint'
    )


def _wrap_up(phases: Sequence[str], done: int, findings: Sequence[str]) -> ModelResponse:
    return _reply(
        TextPart(
            f'Completed: {", ".join(phases[:done]) or "nothing"}\n'
            f'In progress: {phases[done] if done < len(phases) else "nothing"}\n'
            f'Not started: {", ".join(phases[done + 1 :]) or "nothing"}\n'
            f'Findings: {"; ".join(findings[:done]) or "none yet"}'
        )
    )


def phased_worker(
    phases: Sequence[str],
    findings: Sequence[str] | Callable[[str], Sequence[str]],
    *,
    step_seconds: float,
    stuck_in_phase: int | None = None,
) -> FunctionModel:
    """A sub-agent that works through `phases`, one model request each, and checkpoints after each.

    `findings` has one finding per phase, or makes them from the task's prompt. On a CANCEL_REQUEST it answers
    with its partial results. With `stuck_in_phase`, the request for that phase never returns: the sub-agent
    cannot read a soft cancel, and only a hard cancel stops it.
    """

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        found = findings(_prompt(messages)) if callable(findings) else findings
        done = _checkpointed(messages)
        if stuck_in_phase is not None and done >= stuck_in_phase:
            await anyio.sleep_forever()
        await anyio.sleep(step_seconds)
        if _cancel_requested(messages):
            return _wrap_up(phases, done, found)
        if done == len(phases):
            return _reply(TextPart('; '.join(found)))
        return _reply(
            ToolCallPart(
                'checkpoint',
                {
                    'completed': list(phases[: done + 1]),
                    'in_progress': list(phases[done + 1 : done + 2]),
                    'not_started': list(phases[done + 2 :]),
                    'findings': [found[done]],
                },
            )
        )

    return FunctionModel(respond)


def research_lead(topics: Sequence[str], *, step_seconds: float) -> FunctionModel:
    """A sub-agent with sub-agents of its own: it starts one searcher per topic, waits for them, and reports."""

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        await anyio.sleep(step_seconds)
        if _cancel_requested(messages):
            handed_back = sum(len(_HANDED_BACK.findall(text)) for text in _tool_returns(messages)[len(topics) :])
            return _reply(
                TextPart(
                    'Completed: nothing final\nIn progress: literature survey\nNot started: synthesis\n'
                    f'Findings: what my searchers handed back before they stopped '
                    f'({handed_back} of {len(topics)} searchers).'
                )
            )
        ids = started_ids(messages)
        if not ids:
            return _reply(
                *(
                    ToolCallPart(
                        'task', {'description': f'Search {topic}', 'subagent_type': 'searcher', 'mode': 'async'}
                    )
                    for topic in topics
                )
            )
        if len(_tool_returns(messages)) == len(topics):
            return _reply(ToolCallPart('wait_tasks', {'task_ids': ids}))
        return _reply(TextPart('Survey complete: see the searchers\u2019 findings.'))

    return FunctionModel(respond)


@dataclass(frozen=True, slots=True)
class ParentStep:
    """One request of a scripted parent: wait `delay_seconds` (the model thinking), then call a tool or answer."""

    respond: Callable[[list[str]], ModelResponse]
    """Builds the response from the ids of the tasks started so far."""
    delay_seconds: float = 0.3


def parent_model(steps: Sequence[ParentStep]) -> FunctionModel:
    """A parent that plays `steps` in order, one per model request."""

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        step = steps[sum(isinstance(message, ModelResponse) for message in messages)]
        await anyio.sleep(step.delay_seconds)
        return step.respond(started_ids(messages))

    return FunctionModel(respond)
