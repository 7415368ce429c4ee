"""The sub-agents every library runs: the same pydantic-ai `Agent`, on the same scripted `FunctionModel`.

A library under test receives a ready `Agent` (all three accept one), so the only difference between
libraries is how they start, drive and stop it. Each script records what a real provider would see:
when each model request started, whether it carried a cancellation notice, and whether it was cut off.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import anyio
from pydantic_ai import Agent
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

SUBAGENT_NAME = 'worker'
SUBAGENT_DESCRIPTION = 'Works through a job in steps and reports what it did'
PARTIAL_MARKER = 'PARTIAL-RESULT'
"""Opens the wrap-up answer of a sub-agent that read a cancellation notice; the parent looks for it."""
STEP_MARKER = 'STEP-OUTPUT'
"""Opens every `work_step` result, i.e. the sub-agent's progress, should a library hand its history back."""

Respond = Callable[[list[ModelMessage]], Awaitable[ModelResponse]]


def cancel_notice_in_request(messages: Sequence[ModelMessage]) -> bool:
    """Whether the request being sent tells the sub-agent about a cancellation, in whatever words.

    Only the parts added since the model's last response count (the first prompt and the instructions
    never do), so a notice is something a library put into a live run.
    """
    if not any(not isinstance(message, ModelRequest) for message in messages):
        return False
    for message in reversed(messages):
        if not isinstance(message, ModelRequest):
            return False
        if any('cancel' in str(getattr(part, 'content', '')).lower() for part in message.parts):
            return True
    return False


def function_model(respond: Respond) -> FunctionModel:
    """A `FunctionModel` that answers the same way whether the library streams the request or not."""

    async def request(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return await respond(messages)

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        response = await respond(messages)
        for index, part in enumerate(response.parts):
            if isinstance(part, TextPart):
                yield part.content
            elif isinstance(part, ToolCallPart):
                yield {index: DeltaToolCall(name=part.tool_name, json_args=json.dumps(part.args_as_dict()))}

    return FunctionModel(request, stream_function=stream)


async def _instant_step() -> str:
    return f'{STEP_MARKER} done'


def build_agent(
    respond: Respond,
    work_step: Callable[[], Awaitable[str]] = _instant_step,
    capabilities: Sequence[AbstractCapability[None]] = (),
) -> Agent[None, str]:
    """The sub-agent: a named agent on `respond`, with one tool of its own, `work_step`, and `capabilities`."""
    agent = Agent(
        function_model(respond),
        name=SUBAGENT_NAME,
        description=SUBAGENT_DESCRIPTION,
        instructions='Work through the job one step at a time with `work_step`.',
        deps_type=type(None),
        capabilities=capabilities,
    )
    agent.tool_plain(name='work_step', description='Do the next step of the job.')(work_step)
    return agent


@dataclass
class Blocking:
    """Every model request hangs until it is cancelled: a sub-agent waiting on a slow provider.

    `blocked` counts requests in flight; `reached` is set when `expected` of them are.
    """

    expected: int = 1
    blocked: int = 0
    stopped: int = 0
    reached: anyio.Event = field(default_factory=anyio.Event)

    def reset(self, expected: int = 1) -> None:
        self.expected, self.blocked, self.stopped, self.reached = expected, 0, 0, anyio.Event()

    async def respond(self, messages: list[ModelMessage]) -> ModelResponse:
        self.blocked += 1
        if self.blocked >= self.expected:
            self.reached.set()
        try:
            await anyio.sleep_forever()
        finally:
            self.stopped += 1
        raise AssertionError('unreachable')

    @property
    def still_running(self) -> int:
        """Model requests that were never stopped."""
        return self.blocked - self.stopped


@dataclass
class Stepping:
    """A sub-agent that works in steps and obeys a cancellation notice as soon as it reads one.

    Each request takes `step_seconds` and calls `work_step`, which takes `tool_seconds`. The first
    request (or the first `work_step`) takes `long_seconds` instead when `long_step` says so. A request
    that carries a notice takes `wrapup_seconds` and answers with a partial result.
    """

    step_seconds: float
    wrapup_seconds: float
    tool_seconds: float = 0.0
    long_step: Literal['request', 'tool'] | None = None
    long_seconds: float = 0.0
    request_starts: list[float] = field(default_factory=list[float])
    notice_read_at: float | None = None
    working: anyio.Event = field(default_factory=anyio.Event)
    """Set when the long step (or, without one, the first request) starts."""
    steps_done: int = 0

    async def work_step(self) -> str:
        long = self.long_step == 'tool' and self.steps_done == 0
        if long:
            self.working.set()
        await anyio.sleep(self.long_seconds if long else self.tool_seconds)
        self.steps_done += 1
        return f'{STEP_MARKER} {self.steps_done}'

    async def respond(self, messages: list[ModelMessage]) -> ModelResponse:
        now = time.perf_counter()
        self.request_starts.append(now)
        if cancel_notice_in_request(messages):
            self.notice_read_at = self.notice_read_at or now
            await anyio.sleep(self.wrapup_seconds)
            done = self.steps_done
            return ModelResponse(parts=[TextPart(f'{PARTIAL_MARKER}: {done} steps done, the rest not started')])
        long = self.long_step == 'request' and len(self.request_starts) == 1
        if long or self.long_step is None:
            self.working.set()
        await anyio.sleep(self.long_seconds if long else self.step_seconds)
        return ModelResponse(parts=[ToolCallPart('work_step', {})])

    def requests_after(self, at: float) -> int:
        """Model requests that started at or after `at`."""
        return sum(start >= at for start in self.request_starts)


async def answer_at_once(messages: list[ModelMessage]) -> ModelResponse:
    """A trivial sub-agent: one request, one short answer."""
    return ModelResponse(parts=[TextPart('done')])
