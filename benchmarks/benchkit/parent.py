"""The parent agent's side: a scripted model that calls a library's tools as an LLM would, and a tool timer.

A scenario is straight-line code against a [`Conversation`][]: it hands the parent's model one response
at a time (tool calls, or a final answer) and reads the tool replies the next request carries. The
parent `Agent` is built by the library's adapter, so the library sees ordinary tool calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
from pydantic_ai import RunContext
from pydantic_ai.capabilities import AbstractCapability, ValidatedToolArgs, WrapToolExecuteHandler
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import FunctionModel
from pydantic_ai.tools import ToolDefinition

from .subagent import function_model

T = TypeVar('T')


@dataclass(frozen=True, slots=True)
class ToolTiming:
    """One tool call of the parent: when the library's tool began and when it returned its reply."""

    tool_name: str
    started: float
    replied: float
    probe: object
    """What the scenario's probe returned the moment the tool replied (e.g. whether the task was done)."""
    cpu_seconds: float = 0.0
    """The process's CPU time from the tool beginning to its reply."""


@dataclass
class ToolTimer(AbstractCapability[Any]):
    """Times every tool the parent calls, from the moment the library's code starts to its reply."""

    timings: list[ToolTiming] = field(default_factory=list[ToolTiming])
    probe: Callable[[], object] = lambda: None
    """Called as each tool replies, before anything else can run."""
    starting: Callable[[str], None] = lambda tool_name: None
    """Called as each tool starts, with its name, before the library's code runs."""

    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: ValidatedToolArgs,
        handler: WrapToolExecuteHandler,
    ) -> Any:
        self.starting(call.tool_name)
        started, cpu_started = time.perf_counter(), time.process_time()
        result = await handler(args)
        replied, cpu_replied = time.perf_counter(), time.process_time()
        self.timings.append(ToolTiming(call.tool_name, started, replied, self.probe(), cpu_replied - cpu_started))
        return result

    def last(self, tool_name: str) -> ToolTiming:
        return next(timing for timing in reversed(self.timings) if timing.tool_name == tool_name)


def new_texts(messages: Sequence[ModelMessage]) -> list[str]:
    """The tool replies and messages the parent's model receives in this request (since its last response)."""
    texts: list[str] = []
    for message in reversed(messages):
        if not isinstance(message, ModelRequest):
            break
        texts[:0] = [str(part.content) for part in message.parts if isinstance(part, ToolReturnPart | UserPromptPart)]
    return texts


class Conversation:
    """The parent's model, driven by a scenario: each `call` is one model response, answered by the next request."""

    def __init__(self) -> None:
        self._requests: asyncio.Queue[list[ModelMessage]] = asyncio.Queue()
        self._responses: asyncio.Queue[ModelResponse] = asyncio.Queue()
        self.finished_at: float | None = None
        """When the scenario handed the model its final answer."""
        self.late: list[str] = []
        """What requests after the final answer carried (a library may deliver task reports then)."""

    @property
    def model(self) -> FunctionModel:
        return function_model(self._respond)

    async def _respond(self, messages: list[ModelMessage]) -> ModelResponse:
        if self.finished_at is not None:
            self.late += new_texts(messages)
            return ModelResponse(parts=[TextPart('All done.')])
        await self._requests.put(messages)
        return await self._responses.get()

    async def opened(self) -> list[str]:
        """Wait for a run's first model request (the previous run, if any, has ended)."""
        self.finished_at = None
        return new_texts(await self._requests.get())

    async def call(self, *calls: ToolCallPart) -> list[str]:
        """Answer with these tool calls (run in parallel by pydantic-ai); return what the next request carries."""
        await self._responses.put(ModelResponse(parts=list(calls)))
        return new_texts(await self._requests.get())

    def finish(self, text: str = 'All done.') -> None:
        """Answer with a final text, and every later request of this run the same way: the parent run ends."""
        self.finished_at = time.perf_counter()
        self._responses.put_nowait(ModelResponse(parts=[TextPart(text)]))


async def converse(run_parent: Callable[[], Awaitable[object]], script: Callable[[], Awaitable[T]]) -> T:
    """Run the parent agent and the scenario's script of its model side by side; return what the script returns."""
    outcome: list[T] = []

    async def play() -> None:
        outcome.append(await script())

    async with anyio.create_task_group() as group:
        group.start_soon(play)
        await run_parent()
    return outcome[0]
