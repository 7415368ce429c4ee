"""A small OpenAI-compatible chat-completions server for tests: it streams slowly and records everything.

It is a plain ASGI app served by uvicorn on 127.0.0.1 and a free port, in the test's own event loop, so a
test can wait on its events. Each request's body is recorded, and so is every token it sent, and whether
and when the client went away. A script decides the reply to each request: text, streamed one token at a
time with `token_seconds` between tokens, or tool calls.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

from .served import served

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Say:
    """Reply with this text, one whitespace-separated token at a time."""

    text: str


@dataclass(frozen=True, slots=True)
class CallTool:
    """Reply with one tool call."""

    name: str
    args: dict[str, object]


@dataclass(frozen=True, slots=True)
class Hold:
    """Answer nothing: the request stays in flight until the client goes away."""


Reply = Say | CallTool | Hold


@dataclass
class Completion:
    """One chat-completions request the server received, and what happened to it."""

    body: dict[str, Any]
    tokens_sent: list[float] = field(default_factory=list[float])
    """When each token went out (`time.perf_counter()`)."""
    first_token: anyio.Event = field(default_factory=anyio.Event)
    disconnected: anyio.Event = field(default_factory=anyio.Event)
    disconnected_at: float | None = None
    finished: bool = False
    """The whole reply went out."""

    @property
    def text(self) -> str:
        """The conversation the request carried, without the system and developer instructions, as one string."""
        return json.dumps(
            [message for message in self.body['messages'] if message['role'] in ('user', 'assistant', 'tool')]
        )

    @property
    def roles(self) -> list[str]:
        return [message['role'] for message in self.body['messages']]


@dataclass
class FakeOpenAI:
    """The ASGI app; `replies` decides what to answer to the conversation in each request."""

    replies: Callable[[Completion], Reply]
    token_seconds: float = 0.01
    completions: list[Completion] = field(default_factory=list[Completion])
    port: int = 0
    _arrived: anyio.Event = field(default_factory=anyio.Event)

    async def request(self, number: int) -> Completion:
        """The `number`-th request (from 1), once it has arrived."""
        while len(self.completions) < number:
            await self._arrived.wait()
        return self.completions[number - 1]

    @property
    def base_url(self) -> str:
        return f'http://127.0.0.1:{self.port}/v1'

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        assert scope['type'] == 'http' and scope['path'] == '/v1/chat/completions', scope
        body = b''
        while True:
            message = await receive()
            body += message.get('body', b'')
            if not message.get('more_body'):
                break
        completion = Completion(json.loads(body))
        self.completions.append(completion)
        self._arrived.set()
        self._arrived = anyio.Event()
        reply = self.replies(completion)
        async with anyio.create_task_group() as group:

            async def watch_for_disconnect() -> None:
                while (await receive())['type'] != 'http.disconnect':
                    pass
                if completion.finished:  # the reply went out whole; the server closes the exchange
                    return
                completion.disconnected_at = time.perf_counter()
                completion.disconnected.set()
                group.cancel_scope.cancel()  # stop generating

            group.start_soon(watch_for_disconnect)
            if completion.body.get('stream'):
                await self._stream(completion, reply, send)
            else:
                await self._respond(completion, reply, send)
            completion.finished = True
            group.cancel_scope.cancel()

    async def _respond(self, completion: Completion, reply: Reply, send: Send) -> None:
        message: dict[str, object] = {'role': 'assistant', 'content': None}
        match reply:
            case Say(text=text):
                for _ in text.split():
                    await self._token(completion)
                message['content'] = text
            case CallTool():
                message['tool_calls'] = [_tool_call(reply)]
            case Hold():
                await _hold()
        payload = {
            'id': 'chatcmpl-test',
            'object': 'chat.completion',
            'created': 0,
            'model': completion.body['model'],
            'choices': [{'index': 0, 'message': message, 'finish_reason': _finish_reason(reply)}],
            'usage': _usage(completion),
        }
        await send({'type': 'http.response.start', 'status': 200, 'headers': [(b'content-type', b'application/json')]})
        await send({'type': 'http.response.body', 'body': json.dumps(payload).encode()})

    async def _stream(self, completion: Completion, reply: Reply, send: Send) -> None:
        headers = [(b'content-type', b'text/event-stream'), (b'cache-control', b'no-cache')]
        await send({'type': 'http.response.start', 'status': 200, 'headers': headers})

        async def chunk(delta: dict[str, object], finish_reason: str | None = None) -> None:
            data = {
                'id': 'chatcmpl-test',
                'object': 'chat.completion.chunk',
                'created': 0,
                'model': completion.body['model'],
                'choices': [{'index': 0, 'delta': delta, 'finish_reason': finish_reason}],
            }
            await send(
                {'type': 'http.response.body', 'body': f'data: {json.dumps(data)}\n\n'.encode(), 'more_body': True}
            )

        match reply:
            case Say(text=text):
                for index, token in enumerate(text.split()):
                    await self._token(completion)
                    await chunk({'role': 'assistant', 'content': token if index == 0 else f' {token}'})
            case CallTool():
                call = _tool_call(reply)
                arguments = json.dumps(reply.args)
                pieces = [arguments[start : start + 8] for start in range(0, len(arguments), 8)]
                for index, piece in enumerate(pieces):  # the arguments arrive a few characters at a time
                    await self._token(completion)
                    function = {'name': reply.name, 'arguments': piece} if index == 0 else {'arguments': piece}
                    delta = {'index': 0, 'id': call['id'], 'type': 'function', 'function': function}
                    await chunk(
                        {
                            'role': 'assistant',
                            'tool_calls': [delta if index == 0 else {'index': 0, 'function': function}],
                        }
                    )
            case Hold():
                await _hold()
        await chunk({}, _finish_reason(reply))
        usage = {
            'id': 'chatcmpl-test',
            'object': 'chat.completion.chunk',
            'created': 0,
            'model': completion.body['model'],
        }
        usage |= {'choices': [], 'usage': _usage(completion)}
        await send({'type': 'http.response.body', 'body': f'data: {json.dumps(usage)}\n\n'.encode(), 'more_body': True})
        await send({'type': 'http.response.body', 'body': b'data: [DONE]\n\n'})

    async def _token(self, completion: Completion) -> None:
        """Generate one token: it takes `token_seconds` (a slow model)."""
        await anyio.sleep(self.token_seconds)
        completion.tokens_sent.append(time.perf_counter())
        completion.first_token.set()


async def _hold() -> None:
    """Send nothing more, until the client goes away (and the server's watcher cancels this)."""
    await anyio.sleep_forever()


def _tool_call(reply: CallTool) -> dict[str, object]:
    function = {'name': reply.name, 'arguments': json.dumps(reply.args)}
    return {'id': f'call_{reply.name}', 'type': 'function', 'function': function}


def _finish_reason(reply: Reply) -> str:
    return 'stop' if isinstance(reply, Say) else 'tool_calls'


def _usage(completion: Completion) -> dict[str, int]:
    prompt = len(completion.text.split())
    return {'prompt_tokens': prompt, 'completion_tokens': len(completion.tokens_sent), 'total_tokens': prompt}


@asynccontextmanager
async def serving(app: FakeOpenAI) -> AsyncGenerator[FakeOpenAI]:
    """Serve `app` on 127.0.0.1 and a free port for the length of the block, in this event loop."""
    async with served(app, lifespan='off') as port:
        app.port = port
        yield app
