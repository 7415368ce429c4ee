"""Real model traffic: sub-agents on pydantic-ai's OpenAI model, against a local streaming HTTP server.

The server (`tests/openai_server.py`) speaks OpenAI's chat-completions protocol over real sockets on
127.0.0.1, streams one token every few milliseconds, and records every request body, every token and
every disconnect. Nothing here reaches the network. Latency figures are measured in
`benchmarks/real_server_disconnect.py`; these tests show what happens, in order.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from inline_snapshot import snapshot
from openai import AsyncOpenAI
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import AgentStreamEvent, PartDeltaEvent, TextPartDelta
from pydantic_ai.models import override_allow_model_requests
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from subagents_cancel import Cancelled, Completed, SubAgentConfig, SubAgentManager, TaskStatus

from .openai_server import CallTool, Completion, FakeOpenAI, Reply, Say, serving

pytestmark = pytest.mark.anyio

_HANG_GUARD_SECONDS = 10  # a bound against a hang, not a timing claim
_LONG_ANSWER = ' '.join(f'token{index}' for index in range(500))  # ~5 s at 10 ms a token: never finishes here
_WRAP_UP = 'Completed: sources. In progress: analysis. Not started: report.'


@pytest.fixture(autouse=True)
def _allow_requests_to_the_local_server() -> Iterator[None]:
    with override_allow_model_requests(True):
        yield


@pytest.fixture
async def openai_client() -> AsyncIterator[AsyncOpenAI]:
    """The sub-agents' client, with its own connections, closed after the test (pydantic-ai's shared one stays open)."""
    client = AsyncOpenAI(base_url='http://127.0.0.1:1/v1', api_key='test-key')  # `researcher` points it at the server
    yield client
    await client.close()


class _ShowTokens(AbstractCapability[object]):
    """An application that shows the sub-agent's tokens as they arrive; this makes every request streamed."""

    def __init__(self) -> None:
        self.words_shown = 0
        self.some_words_shown = anyio.Event()

    async def wrap_run_event_stream(
        self, ctx: RunContext[object], *, stream: AsyncIterable[AgentStreamEvent]
    ) -> AsyncIterable[AgentStreamEvent]:
        async for event in stream:
            if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
                self.words_shown += 1
                if self.words_shown == 3:
                    self.some_words_shown.set()
            yield event


def researcher(
    server: FakeOpenAI, client: AsyncOpenAI, *, streaming: bool = True, shown: _ShowTokens | None = None
) -> SubAgentConfig:
    client.base_url = server.base_url
    model = OpenAIChatModel('fake-model', provider=OpenAIProvider(openai_client=client))
    agent = Agent(model, capabilities=[shown or _ShowTokens()] if streaming else [])
    return SubAgentConfig(name='researcher', description='Researches', agent=agent)


def research_then_answer_at_length(completion: Completion) -> Reply:
    if 'CANCEL_REQUEST' in completion.text:
        return Say(_WRAP_UP)
    if 'tool' not in completion.roles:
        return CallTool('checkpoint', {'completed': ['sources'], 'in_progress': ['analysis']})
    return Say(_LONG_ANSWER)


async def test_hard_cancel_closes_the_stream_and_the_server_stops_generating(openai_client: AsyncOpenAI) -> None:
    """The server sees the client go away, sends no token after that, and gets no request after the task ended."""
    shown = _ShowTokens()
    async with serving(FakeOpenAI(research_then_answer_at_length)) as server:
        async with SubAgentManager([researcher(server, openai_client, shown=shown)]) as manager:
            task = await manager.start('researcher', 'Research X')
            with anyio.fail_after(_HANG_GUARD_SECONDS):
                stream = await server.request(2)
                await shown.some_words_shown.wait()
                info = await manager.hard_cancel(task.task_id)
                await stream.disconnected.wait()
            metrics = manager.metrics()
        assert len(server.completions) == 2  # the manager is closed: no run is left to send another

    assert info.status is TaskStatus.CANCELLED
    assert isinstance(info.outcome, Cancelled) and info.outcome.mode == 'hard'
    assert info.outcome.partial.completed == ('sources',)
    assert stream.body['stream'] is True and not stream.finished
    assert stream.disconnected_at is not None
    assert all(sent <= stream.disconnected_at for sent in stream.tokens_sent)
    assert 0 < len(stream.tokens_sent) < len(_LONG_ANSWER.split())
    # OpenAI reports usage only in a stream's last chunk, which a cut stream never gets: the tokens the task
    # received before the cut are estimated from the streamed text (one per word here), and marked as such.
    first = server.completions[0]
    assert info.usage is not None
    estimated = info.usage.details['estimated_output_tokens']
    assert shown.words_shown <= estimated <= len(stream.tokens_sent)
    assert info.usage.output_tokens == len(first.tokens_sent) + estimated
    assert metrics.of('researcher').tokens_after_request == estimated  # all of it streamed after the request


async def test_soft_cancel_mid_stream_reaches_the_model_in_the_next_request_body(openai_client: AsyncOpenAI) -> None:
    """The stream in flight finishes; the next request carries CANCEL_REQUEST; the wrap-up is the partial result."""

    def replies(completion: Completion) -> Reply:
        if 'CANCEL_REQUEST' in completion.text:
            return Say(_WRAP_UP)
        if 'tool' not in completion.roles:
            return CallTool('checkpoint', {'completed': ['sources'], 'in_progress': ['analysis']})
        return CallTool('checkpoint', {'completed': ['sources', 'analysis'], 'findings': ['X grows ' * 8]})

    async with serving(FakeOpenAI(replies, token_seconds=0.005)) as server:
        async with SubAgentManager([researcher(server, openai_client)]) as manager:
            task = await manager.start('researcher', 'Research X')
            with anyio.fail_after(_HANG_GUARD_SECONDS):
                await (await server.request(2)).first_token.wait()
                await manager.soft_cancel(task.task_id)
                (info,) = (await manager.wait([task.task_id])).tasks
        requests_at_end = len(server.completions)

    first, streamed, wrap_up = server.completions
    assert requests_at_end == 3
    assert 'CANCEL_REQUEST' not in first.text + streamed.text and 'CANCEL_REQUEST' in wrap_up.text
    assert streamed.finished and streamed.disconnected_at is None  # a soft cancel does not cut the stream
    assert isinstance(info.outcome, Cancelled) and info.outcome.mode == 'soft' and not info.outcome.escalated
    assert info.outcome.partial.final_message == _WRAP_UP and info.outcome.partial.read_request
    assert info.cancel is not None and info.cancel.acknowledged_at is not None
    sent = [len(completion.tokens_sent) for completion in server.completions]
    assert info.usage is not None and info.usage.output_tokens == sum(sent)  # the tokens after the cancel count too


@pytest.mark.parametrize('streaming', [True, False], ids=['streamed', 'not streamed'])
async def test_soft_cancel_with_preemption_cuts_the_request_and_sends_the_wrap_up_at_once(
    openai_client: AsyncOpenAI, streaming: bool
) -> None:
    """The request in flight is closed (the server sees the disconnect); the wrap-up request follows at once."""
    async with serving(FakeOpenAI(research_then_answer_at_length)) as server:
        config = researcher(server, openai_client, streaming=streaming).model_copy(
            update={'preempt_on_soft_cancel': True}
        )
        async with SubAgentManager([config]) as manager:
            task = await manager.start('researcher', 'Research X')
            with anyio.fail_after(_HANG_GUARD_SECONDS):
                cut = await server.request(2)
                await cut.first_token.wait()
                await manager.soft_cancel(task.task_id)
                await cut.disconnected.wait()
                (info,) = (await manager.wait([task.task_id])).tasks
        assert len(server.completions) == 3

    wrap_up = server.completions[2]
    assert not cut.finished and 'CANCEL_REQUEST' not in cut.text
    assert 'CANCEL_REQUEST' in wrap_up.text and 'Interrupted before this response was finished' in wrap_up.text
    assert isinstance(info.outcome, Cancelled) and info.outcome.mode == 'soft' and not info.outcome.escalated
    assert info.outcome.partial.final_message == _WRAP_UP and info.outcome.partial.completed == ('sources',)


async def test_a_non_streamed_request_is_closed_by_a_hard_cancel_too(openai_client: AsyncOpenAI) -> None:
    """Without streaming, the request in flight is cut the same way: the server sees the disconnect."""
    async with serving(FakeOpenAI(research_then_answer_at_length)) as server:
        async with SubAgentManager([researcher(server, openai_client, streaming=False)]) as manager:
            task = await manager.start('researcher', 'Research X')
            with anyio.fail_after(_HANG_GUARD_SECONDS):
                request = await server.request(2)
                await request.first_token.wait()
                await manager.hard_cancel(task.task_id)
                await request.disconnected.wait()
        assert len(server.completions) == 2
    assert request.body.get('stream') in (None, False) and not request.finished


def openai_problems(messages: list[dict[str, Any]]) -> list[str]:
    """What OpenAI's chat-completions API refuses in a request's `messages`; empty when it accepts them.

    Every assistant tool call is answered by a `tool` message right after it (before any other message), no `tool`
    message answers a call that is not open, no assistant message is empty, and every call's arguments are JSON.
    """
    problems: list[str] = []
    open_calls: list[str] = []
    for index, message in enumerate(messages):
        if message['role'] == 'tool':
            if message.get('tool_call_id') in open_calls:
                open_calls.remove(message['tool_call_id'])
            else:
                problems.append(f'{index}: a tool message answers no open call')
            continue
        if open_calls:
            problems.append(f'{index}: a {message["role"]} message comes before calls {open_calls} are answered')
        calls: list[dict[str, Any]] = message.get('tool_calls') or []
        open_calls = [call['id'] for call in calls]
        if message['role'] == 'assistant' and not message.get('content') and not calls:
            problems.append(f'{index}: an empty assistant message')
        for call in calls:
            try:
                json.loads(call['function']['arguments'])
            except ValueError:
                problems.append(f'{index}: the arguments of {call["id"]} are not JSON')
    if open_calls:
        problems.append(f'end: calls {open_calls} are not answered')
    return problems


async def test_a_task_stopped_mid_stream_and_in_a_tool_resumes_with_a_history_the_api_accepts(
    openai_client: AsyncOpenAI,
) -> None:
    """Cut mid-stream, then hard-cancelled in a tool and resumed: the resumed request body follows OpenAI's rules."""
    searching = anyio.Event()
    shown = _ShowTokens()

    def replies(completion: Completion) -> Reply:
        if 'Go on with what you have' in completion.text:
            return Say('EU suppliers: A, B')
        if 'tool' not in completion.roles:
            return CallTool('search', {'query': 'European suppliers'})
        return Say(_LONG_ANSWER)

    async with serving(FakeOpenAI(replies)) as server:
        config = researcher(server, openai_client, shown=shown)
        assert isinstance(config.agent, Agent)

        @config.agent.tool_plain
        async def search(query: str) -> str:
            if not searching.is_set():
                searching.set()
                await anyio.sleep_forever()
            return f'results for {query}'

        async with SubAgentManager([config]) as manager:
            with anyio.fail_after(_HANG_GUARD_SECONDS):
                old = await manager.start('researcher', 'Research suppliers')
                await searching.wait()
                await manager.hard_cancel(old.task_id)  # in the tool call: it has no result
                middle = await manager.resume(old.task_id, 'Search no more; write what you know')
                await shown.some_words_shown.wait()
                await manager.hard_cancel(middle.task_id)  # mid-stream: the response is cut
                new = await manager.resume(middle.task_id, 'Go on with what you have')
                (done,) = (await manager.wait([new.task_id])).tasks

    assert done.outcome == Completed('EU suppliers: A, B')
    body = server.completions[-1].body['messages']
    assert openai_problems(body) == []
    assert [message['role'] for message in body] == snapshot(
        ['system', 'user', 'assistant', 'tool', 'user', 'assistant', 'user']
    )
    tool_message = next(message for message in body if message['role'] == 'tool')
    assert tool_message['content'] == snapshot(
        'No result (search): the task was stopped before this call returned, so whatever it did is unknown. Call it again if you still need it.'
    )
