"""Helpers to script parent and sub-agent models exactly as an LLM would call the tools.

Models are pydantic-ai `FunctionModel`s. A script is a list of steps, one per model request; a step
is a response, or a function of the conversation so far (sync or async, so it can wait on an event).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Self, cast

import anyio
from pydantic_ai import RunContext
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel
from pydantic_ai.run import AgentRunResult
from pydantic_ai.usage import RequestUsage

from subagents_cancel import SubAgentConfig
from subagents_cancel import manager as manager_module
from subagents_cancel.testing import ManualClock
from subagents_cancel.transport import Mailbox, Observer, Transport
from subagents_cancel.wire import WireMessage

Step = ModelResponse | Callable[[list[ModelMessage]], ModelResponse | Awaitable[ModelResponse]]

TASK_ID = '<task id>'
"""Stands for the most recent task id a tool reply announced; `call()` substitutes it."""

_TASK_ID_PATTERN = re.compile(r'Task started with ID: (\S+) ')


def text(content: str) -> ModelResponse:
    """A response with a final text answer."""
    return ModelResponse(parts=[TextPart(content)])


def call(tool: str, /, **args: object) -> Callable[[list[ModelMessage]], ModelResponse]:
    """A response that calls `tool` with `args` (`TASK_ID` becomes the latest announced task id)."""

    def respond(messages: list[ModelMessage]) -> ModelResponse:
        def fill(value: object) -> object:
            if isinstance(value, list):
                return [fill(item) for item in cast(list[object], value)]
            return latest_task_id(messages) if value == TASK_ID else value

        return ModelResponse(parts=[ToolCallPart(tool, {name: fill(value) for name, value in args.items()})])

    return respond


def calls(*tool_calls: tuple[str, dict[str, object]]) -> ModelResponse:
    """A response with several tool calls at once."""
    return ModelResponse(parts=[ToolCallPart(name, args) for name, args in tool_calls])


def after(event: anyio.Event, step: Step) -> Step:
    """The step, once `event` is set: the model's request is in flight until then."""

    async def respond(messages: list[ModelMessage]) -> ModelResponse:
        await event.wait()
        return await resolve(step, messages)

    return respond


async def resolve(step: Step, messages: list[ModelMessage]) -> ModelResponse:
    if isinstance(step, ModelResponse):
        return step
    response = step(messages)
    return await response if inspect.isawaitable(response) else response


def latest_task_id(messages: Sequence[ModelMessage]) -> str:
    for content in reversed(tool_returns(messages)):
        if match := _TASK_ID_PATTERN.search(content):
            return match.group(1)
    raise AssertionError('no task was started yet')


def tool_returns(messages: Sequence[ModelMessage]) -> list[str]:
    """Every tool result in `messages`, in order."""
    return [
        str(part.content)
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]


def user_prompts(messages: Sequence[ModelMessage]) -> list[str]:
    return [
        str(part.content)
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, UserPromptPart)
    ]


@dataclass
class Script:
    """A scripted model: one step per request; records every conversation it was sent."""

    steps: list[Step]
    on_cancel: Step | None = None
    """Answer with this as soon as a request carries a CANCEL_REQUEST (the sub-agent obeys)."""
    requests: list[list[ModelMessage]] = field(default_factory=list[list[ModelMessage]])
    instructions: list[str | None] = field(default_factory=list[str | None])
    usage: RequestUsage | None = None
    """What each (non-streamed) response costs, instead of pydantic-ai's estimate."""

    @property
    def model(self) -> FunctionModel:
        return FunctionModel(self._respond, stream_function=self._stream)

    async def _respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests.append(list(messages))
        self.instructions.append(info.instructions)
        if self.on_cancel is not None and cancel_requested(messages):
            response = await resolve(self.on_cancel, messages)
        else:
            assert self.steps, 'the script has no step left for this request'
            response = await resolve(self.steps.pop(0), messages)
        return response if self.usage is None else dataclasses.replace(response, usage=self.usage)

    async def _stream(
        self, messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        response = await self._respond(messages, info)
        for index, part in enumerate(response.parts):
            if isinstance(part, TextPart):
                yield part.content
            elif isinstance(part, ToolCallPart):
                yield {index: DeltaToolCall(name=part.tool_name, json_args=json.dumps(part.args_as_dict()))}

    def saw_cancel_request(self) -> bool:
        return any(cancel_requested(messages) for messages in self.requests)


def researcher(script: Script, **settings: object) -> SubAgentConfig:
    """A sub-agent named `researcher` on `script`'s model, with any other `SubAgentConfig` fields given."""
    return SubAgentConfig.model_validate(
        {'name': 'researcher', 'description': 'Researches a topic', 'model': script.model, **settings}
    )


def cancel_requested(messages: Sequence[ModelMessage]) -> bool:
    """Whether the request being sent carries a CANCEL_REQUEST (as a user message or a tool result)."""
    for message in reversed(messages):
        if not isinstance(message, ModelRequest):
            return False
        for part in message.parts:
            if isinstance(part, UserPromptPart | ToolReturnPart) and 'CANCEL_REQUEST' in str(part.content):
                return True
    return False


@dataclass
class Gate:
    """A point in a script: `reached` is set when the model gets there, and it waits for `release`.

    `stopped` is set when the step was cancelled while it waited, which is how a test sees that a
    hard cancel really closed the request in flight.
    """

    reached: anyio.Event = field(default_factory=anyio.Event)
    release: anyio.Event = field(default_factory=anyio.Event)
    stopped: anyio.Event = field(default_factory=anyio.Event)

    def hold(self, step: Step) -> Step:
        async def respond(messages: list[ModelMessage]) -> ModelResponse:
            await self.wait()
            return await resolve(step, messages)

        return respond

    def block_forever(self) -> Step:
        """A request that never returns by itself: only a cancel ends it."""

        async def respond(messages: list[ModelMessage]) -> ModelResponse:
            await self.wait(forever=True)
            raise AssertionError('unreachable')

        return respond

    async def wait(self, *, forever: bool = False) -> None:
        """Mark the gate reached, then wait for `release` (or for ever), noting a cancellation."""
        self.reached.set()
        try:
            if forever:
                await anyio.sleep_forever()
            await self.release.wait()
        except anyio.get_cancelled_exc_class():
            self.stopped.set()
            raise


_ANNOUNCED_ID = re.compile(
    r'(?:^|Task started with ID: |Task cancelled: |Its fallback )([A-Za-z][A-Za-z0-9_-]*-[0-9a-f]{4,8})\b', re.M
)


def stable_ids(texts: Sequence[str]) -> list[str]:
    """`texts` with each task id the replies announced replaced by `<name>-0001`, `<name>-0002`, … in order.

    Only ids a reply introduces (`Task started with ID: …`, or a report opening with the id) are
    renamed, so made-up ids a test sends and example ids in the text stay as they are.
    """
    names: dict[str, str] = {}
    for found in _ANNOUNCED_ID.finditer('\n'.join(texts)):
        task_id = found.group(1)
        if task_id not in names:
            names[task_id] = f'{task_id.rsplit("-", 1)[0]}-{len(names) + 1:04x}'
    if not names:
        return list(texts)
    pattern = re.compile('|'.join(re.escape(task_id) for task_id in names))
    return [pattern.sub(lambda match: names[match.group(0)], text) for text in texts]


def replies_of(messages: Sequence[ModelMessage]) -> list[str]:
    """The tool results of a run, with stable task ids, for snapshots."""
    return stable_ids(tool_returns(messages))


class WatchedClock(ManualClock):
    """A manual clock that also tells a test when code starts a bounded wait on it.

    `anyio.wait_all_tasks_blocked()` cannot say "the tool is now waiting": a pydantic-ai run has moments
    where every task is parked before the tool even starts. Every bounded wait in the library opens a
    `deadline_scope` on its clock, so seeing that scope opened is the exact point to move time.
    """

    def __init__(self, start: float = 0.0) -> None:
        super().__init__(start)
        self._open: list[float] = []
        self._watchers: list[tuple[float, anyio.Event]] = []

    @contextmanager
    def deadline_scope(self, deadline: float) -> Generator[anyio.CancelScope]:
        for at, opened in self._watchers:
            if deadline >= at:
                opened.set()
        self._open.append(deadline)
        try:
            with super().deadline_scope(deadline) as scope:
                yield scope
        finally:
            self._open.remove(deadline)

    async def wait_for_deadline(self, at_least: float) -> None:
        """Return once some code waits on this clock with a deadline at or after `at_least` (or already does)."""
        if any(deadline >= at_least for deadline in self._open):
            return
        opened = anyio.Event()
        self._watchers.append((at_least, opened))
        await opened.wait()


@dataclass
class LingersAfterTheEnd(AbstractCapability[object]):
    """Holds a run open after it has produced its output: the window where a cancel races completion."""

    reached: anyio.Event = field(default_factory=anyio.Event)
    release: anyio.Event = field(default_factory=anyio.Event)

    async def after_run(self, ctx: RunContext[object], *, result: AgentRunResult[Any]) -> AgentRunResult[Any]:
        self.reached.set()
        await self.release.wait()
        return result


def new_transport() -> Transport:
    """A new transport of the kind this test runs on (conftest's `transport_kind`): in-process or loopback."""
    return manager_module._default_transport()  # pyright: ignore[reportPrivateUsage]


class WrappedTransport:
    """A transport that hands everything to one of this test's kind; a test's subclass changes one thing."""

    def __init__(self) -> None:
        self.inner = new_transport()

    async def __aenter__(self) -> Self:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.inner.__aexit__(*exc_info)

    async def open(self, address: str) -> Mailbox | None:
        return await self.inner.open(address)

    async def send(self, address: str, message: WireMessage) -> bool:
        return self.send_nowait(address, message)

    def send_nowait(self, address: str, message: WireMessage) -> bool:
        return self.inner.send_nowait(address, message)

    async def release(self, address: str) -> None:
        await self.inner.release(address)

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        return self.inner.subscribe(observer)
