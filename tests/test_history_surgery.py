"""History surgery: what a stopped pydantic-ai run leaves behind becomes a history that providers accept.

The histories here come from real pydantic-ai runs on `FunctionModel`, stopped where a cancel or a failure can
stop them: in a tool batch, in a streamed text or tool call, in a model request, in a tool that raises. Each
repaired history is checked against the rules OpenAI- and Anthropic-style APIs enforce
(`provider_problems`), and pinned as a snapshot of its shape.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TypeGuard

import anyio
import pytest
from inline_snapshot import snapshot
from pydantic_ai import Agent, RunCancelled, capture_run_messages
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelRequestPart,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel
from pydantic_ai.run import AgentRun

from subagents_cancel.history_surgery import resumable_history

pytestmark = pytest.mark.anyio


def _is_result(part: ModelRequestPart) -> TypeGuard[ToolReturnPart]:
    """Whether `part` answers a tool call (a retry of one is a `ToolReturnPart` with `outcome='retried'`)."""
    return isinstance(part, ToolReturnPart)


def provider_problems(messages: Sequence[ModelMessage]) -> list[str]:
    """What OpenAI- or Anthropic-style APIs would refuse in `messages`; empty when they accept it.

    Every tool call is answered in the next message, whose results come first and answer exactly the calls of
    the response before it; no message is empty, none is interrupted, and the history ends in a request or a
    response without calls.
    """
    problems: list[str] = []
    open_calls: list[str] = []
    for index, message in enumerate(messages):
        if not message.parts:
            problems.append(f'{index}: empty {message.kind}')
        if message.state != 'complete':
            problems.append(f'{index}: {message.kind} is {message.state}')
        if isinstance(message, ModelResponse):
            if open_calls:
                problems.append(f'{index}: a response follows calls {open_calls} that were not answered')
            open_calls = [part.tool_call_id for part in message.parts if isinstance(part, ToolCallPart)]
            continue
        results = [part.tool_call_id for part in message.parts if _is_result(part)]
        if any(not _is_result(part) for part in message.parts[: len(results)]):
            problems.append(f'{index}: tool results do not come first')
        if results != open_calls:
            problems.append(f'{index}: results {results} do not answer the calls {open_calls}')
        open_calls = []
    if open_calls:
        problems.append(f'end: calls {open_calls} were not answered')
    return problems


def shape(messages: Sequence[ModelMessage]) -> list[str]:
    """Each message as its kind and its parts, with the text of our own notes."""

    def part_text(part: object) -> str:
        kind = getattr(part, 'part_kind', type(part).__name__)
        content = getattr(part, 'content', None)
        return f'{kind} {content!r}' if isinstance(content, str) else kind

    return [f'{message.kind}: {" | ".join(part_text(part) for part in message.parts)}' for message in messages]


async def stopped_run(agent: Agent[None, str], reached: anyio.Event, *, streamed: bool = False) -> list[ModelMessage]:
    """Run `agent` (streaming its model requests if `streamed`) until `reached`, cancel it, and return what it kept."""
    runs: list[AgentRun[None, str]] = []
    stopped: list[RunCancelled] = []

    async def drive() -> None:
        try:
            async with agent.iter('Research X') as run:
                runs.append(run)
                async for node in run:
                    if streamed and Agent.is_model_request_node(node):
                        async with node.stream(run.ctx) as events:
                            async for _ in events:
                                pass
        except RunCancelled as error:
            stopped.append(error)

    async with anyio.create_task_group() as group:
        group.start_soon(drive)
        await reached.wait()
        await anyio.wait_all_tasks_blocked()
        runs[0].cancel()
    (error,) = stopped
    return error.all_messages()


async def test_a_hard_cancel_in_a_tool_batch_answers_the_call_that_never_returned() -> None:
    """The finished call keeps its result; the one cut off gets ours; the interrupted request is complete again."""
    blocked = anyio.Event()
    agent = Agent(
        FunctionModel(
            lambda messages, info: ModelResponse(
                parts=[ToolCallPart('fast', {}, tool_call_id='a'), ToolCallPart('slow', {}, tool_call_id='b')]
            )
        )
    )

    @agent.tool_plain
    async def fast() -> str:
        return 'fast ok'

    @agent.tool_plain
    async def slow() -> str:
        blocked.set()
        await anyio.sleep_forever()
        raise AssertionError('unreachable')

    messages = await stopped_run(agent, blocked)
    repaired = resumable_history(messages)
    assert provider_problems(messages) != [] and provider_problems(repaired) == []
    assert shape(repaired) == snapshot(
        [
            "request: user-prompt 'Research X'",
            'response: tool-call | tool-call',
            "request: tool-return 'fast ok' | tool-return 'No result (slow): the task was stopped before this call returned, so whatever it did is unknown. Call it again if you still need it.'",
        ]
    )


async def test_a_hard_cancel_in_a_streamed_tool_call_drops_the_cut_call() -> None:
    """A response cut while its tool call streamed keeps its text; the half-written call, never run, is dropped."""
    streaming = anyio.Event()

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        yield 'Looking up suppliers. '
        yield {1: DeltaToolCall(name='search', json_args='{"query": "EU sup')}
        streaming.set()
        await anyio.sleep_forever()

    agent = Agent(FunctionModel(stream_function=stream))

    @agent.tool_plain
    async def search(query: str) -> str:
        return query

    messages = await stopped_run(agent, streaming, streamed=True)
    repaired = resumable_history(messages)
    assert provider_problems(messages) != [] and provider_problems(repaired) == []
    assert shape(repaired) == snapshot(["request: user-prompt 'Research X'", "response: text 'Looking up suppliers. '"])


async def test_a_hard_cancel_in_a_model_request_leaves_the_conversation_before_it() -> None:
    """Nothing of a request in flight is kept; the history, already valid, comes back as it was."""
    waiting = anyio.Event()

    async def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            return ModelResponse(parts=[ToolCallPart('note', {'text': 'sources'}, tool_call_id='n1')])
        waiting.set()
        await anyio.sleep_forever()
        raise AssertionError('unreachable')

    agent = Agent(FunctionModel(model))

    @agent.tool_plain
    async def note(text: str) -> str:
        return f'noted {text}'

    messages = await stopped_run(agent, waiting)
    repaired = resumable_history(messages)
    assert provider_problems(messages) == [] and list(repaired) == messages


async def test_a_failed_tool_call_gets_a_result_saying_it_has_none() -> None:
    """A run that failed in a tool leaves the call unanswered; it is answered with our note."""

    async def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart('Let me search.'), ToolCallPart('search', {}, tool_call_id='s1')])

    agent = Agent(FunctionModel(model))

    @agent.tool_plain
    async def search() -> str:
        raise ConnectionError('the search service is down')

    with capture_run_messages() as messages, pytest.raises(ConnectionError):
        await agent.run('Research X')
    repaired = resumable_history(messages)
    assert provider_problems(messages) != [] and provider_problems(repaired) == []
    assert shape(repaired) == snapshot(
        [
            "request: user-prompt 'Research X'",
            "response: text 'Let me search.' | tool-call",
            "request: tool-return 'No result (search): the task was stopped before this call returned, so whatever it did is unknown. Call it again if you still need it.'",
        ]
    )


def test_the_cancel_request_that_stopped_the_task_is_closed_out() -> None:
    """Its text, as a message or as `ask_parent`'s answer, becomes a note; another task's request stays as it was."""
    request = 'CANCEL_REQUEST [abc123]: your parent asked you to stop (on request). Reply now with partial results.'
    other = 'CANCEL_REQUEST [zzz999]: an older request.'
    messages: list[ModelMessage] = [
        ModelRequest(parts=[UserPromptPart('Research X')]),
        ModelResponse(parts=[ToolCallPart('ask_parent', {'question': 'EU?'}, tool_call_id='q1')]),
        ModelRequest(parts=[ToolReturnPart('ask_parent', request, tool_call_id='q1'), UserPromptPart(other)]),
        ModelResponse(parts=[TextPart('Completed: sources')]),
        ModelRequest(parts=[UserPromptPart(request)]),
    ]
    repaired = resumable_history(messages, cancel_request_id='abc123')
    assert provider_problems(repaired) == []
    assert shape(repaired) == snapshot(
        [
            "request: user-prompt 'Research X'",
            'response: tool-call',
            "request: tool-return '[Your parent stopped this task here and asked for partial results. It has since resumed the task: the request to stop no longer applies; follow its latest message.]' | user-prompt 'CANCEL_REQUEST [zzz999]: an older request.'",
            "response: text 'Completed: sources'",
            "request: user-prompt '[Your parent stopped this task here and asked for partial results. It has since resumed the task: the request to stop no longer applies; follow its latest message.]'",
        ]
    )
    assert repaired[2].parts[1] == UserPromptPart(other, timestamp=messages[2].parts[1].timestamp)  # pyright: ignore


def test_results_come_first_and_orphans_are_dropped() -> None:
    """Results are put in the order of the calls, ahead of other parts; a result for no call is dropped."""
    messages: list[ModelMessage] = [
        ModelRequest(parts=[UserPromptPart('Research X')]),
        ModelResponse(parts=[ToolCallPart('a', {}, tool_call_id='1'), ToolCallPart('b', {}, tool_call_id='2')]),
        ModelRequest(
            parts=[
                UserPromptPart('Also look at prices.'),
                ToolReturnPart('b', 'b done', tool_call_id='2'),
                ToolReturnPart('c', 'from nowhere', tool_call_id='9'),
                ToolReturnPart('a', 'try again', tool_call_id='1', outcome='retried'),
            ]
        ),
        ModelResponse(parts=[ToolCallPart('a', {}, tool_call_id='3')]),
        ModelResponse(parts=[TextPart('A second response in a row.')]),
    ]
    repaired = resumable_history(messages)
    assert provider_problems(messages) != [] and provider_problems(repaired) == []
    assert shape(repaired) == snapshot(
        [
            "request: user-prompt 'Research X'",
            'response: tool-call | tool-call',
            "request: tool-return 'try again' | tool-return 'b done' | user-prompt 'Also look at prices.'",
            'response: tool-call',
            "request: tool-return 'No result (a): the task was stopped before this call returned, so whatever it did is unknown. Call it again if you still need it.'",
            "response: text 'A second response in a row.'",
        ]
    )
