"""The scripted models of the web example: a lead that starts three searchers, and searchers that work in phases.

They answer the way a model following the library's instructions would: the lead calls `task` for each searcher
and then `wait_tasks`; a searcher checkpoints after each phase and, when a request carries a `CANCEL_REQUEST`,
replies at once with what it has. Before each phase a searcher awaits its `Pace`: the demo sleeps there so
that a person has time to click, and a test waits on an event that it releases (or never does).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
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

from subagents_cancel import SubAgentConfig

__all__ = ('SEARCHERS', 'Pace', 'Searcher', 'human_pace', 'lead_model', 'searcher_configs')

Pace = Callable[[str, int], Awaitable[None]]
"""Awaited before each phase of a searcher's work, with the searcher's name and the phase's index (from 0)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Searcher:
    """One scripted sub-agent: what it is asked, its phases, and what each phase finds."""

    name: str
    description: str
    ask: str
    """The `description` the lead gives its task (the task's prompt)."""
    phases: tuple[str, ...]
    findings: tuple[str, ...]
    """One finding per phase."""


SEARCHERS = (
    Searcher(
        name='market',
        description='Sizes a market from public data',
        ask='Size the market for e-bike subscriptions in Berlin',
        phases=('census data', 'commuter survey', 'price points', 'market size'),
        findings=(
            '410,000 Berliners commute 5-15 km',
            '18% of them would try a subscription',
            'EUR 49-79 a month is the accepted range',
            'about EUR 60M a year',
        ),
    ),
    Searcher(
        name='competitors',
        description='Compares the competitors in a market',
        ask='Compare the e-bike subscription services already in Berlin',
        phases=('list of services', 'prices', 'fleet sizes', 'gaps'),
        findings=(
            '4 services, 2 of them national',
            'EUR 59-89 a month',
            'about 9,000 bikes in all',
            'nobody offers cargo bikes',
        ),
    ),
    Searcher(
        name='regulation',
        description='Reads the rules that apply to a business',
        ask='Find the rules for renting e-bikes on Berlin streets',
        phases=('city parking rules', 'insurance', 'battery disposal', 'summary'),
        findings=(
            'no permit needed without street stations',
            'liability cover is the renter\u2019s',
            'the seller takes batteries back',
            'low regulatory risk',
        ),
    ),
)


async def human_pace(searcher: str, phase: int) -> None:
    """The demo's pace: each searcher takes its own time per phase (1.5 to 2.5 s), long enough to click Stop."""
    names = [each.name for each in SEARCHERS]
    await anyio.sleep(1.5 + 0.5 * (names.index(searcher) if searcher in names else 1))


def searcher_configs(pace: Pace | None) -> tuple[SubAgentConfig, ...]:
    """The sub-agents: on scripted models that await `pace`, or with no model (the real one) when it is `None`."""
    return tuple(
        SubAgentConfig(
            name=searcher.name,
            description=searcher.description,
            instructions='Work in phases and call checkpoint after each one.',
            model=None if pace is None else _searcher_model(searcher, pace),
        )
        for searcher in SEARCHERS
    )


def _last_request_says(messages: Sequence[ModelMessage], marker: str) -> bool:
    last = messages[-1]
    return isinstance(last, ModelRequest) and any(
        isinstance(part, UserPromptPart | ToolReturnPart) and marker in str(part.content) for part in last.parts
    )


def _phases_done(messages: Sequence[ModelMessage]) -> int:
    return sum(
        isinstance(part, ToolCallPart) and part.tool_name == 'checkpoint'
        for message in messages
        if isinstance(message, ModelResponse)
        for part in message.parts
    )


def _searcher_model(searcher: Searcher, pace: Pace) -> FunctionModel:
    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        done = _phases_done(messages)
        if _last_request_says(messages, 'CANCEL_REQUEST'):
            return ModelResponse(
                parts=[
                    TextPart(
                        f'Completed: {", ".join(searcher.phases[:done]) or "nothing"}\n'
                        f'In progress: {searcher.phases[done] if done < len(searcher.phases) else "nothing"}\n'
                        f'Not started: {", ".join(searcher.phases[done + 1 :]) or "nothing"}\n'
                        f'Findings: {"; ".join(searcher.findings[:done]) or "none yet"}'
                    )
                ]
            )
        if done == len(searcher.phases):
            return ModelResponse(parts=[TextPart('; '.join(searcher.findings))])
        await pace(searcher.name, done)
        checkpoint = {
            'completed': list(searcher.phases[: done + 1]),
            'in_progress': list(searcher.phases[done + 1 : done + 2]),
            'not_started': list(searcher.phases[done + 2 :]),
            'findings': [searcher.findings[done]],
        }
        return ModelResponse(parts=[ToolCallPart('checkpoint', checkpoint)])

    return FunctionModel(respond)


def lead_model() -> FunctionModel:
    """The parent: it starts every searcher in the background, waits for them all, and sums up."""

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        replies = [
            str(part.content)
            for message in messages
            if isinstance(message, ModelRequest)
            for part in message.parts
            if isinstance(part, ToolReturnPart)
        ]
        if not replies:
            calls = [
                ToolCallPart('task', {'description': searcher.ask, 'subagent_type': searcher.name, 'mode': 'async'})
                for searcher in SEARCHERS
            ]
            return ModelResponse(parts=calls)
        if len(replies) == len(SEARCHERS):
            return ModelResponse(parts=[ToolCallPart('wait_tasks', {'wait_for': 'all'})])
        stopped = replies[-1].count('Task cancelled:')
        return ModelResponse(
            parts=[
                TextPart(
                    f'All {len(SEARCHERS)} searchers have handed back ({stopped} stopped early, with their partial '
                    'results): the numbers are in their reports.'
                )
            ]
        )

    return FunctionModel(respond)
