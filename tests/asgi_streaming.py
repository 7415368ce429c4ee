"""An httpx transport that calls an ASGI app in-process and streams each response body as the app sends it.

httpx's own `ASGITransport` returns a response only once the app has sent all of its body, so a stream of
server-sent events could not be read while it is open. This one returns as soon as the headers are sent and
hands the body over chunk by chunk. The app runs in the transport's task group: the client's `async with`
owns it, and a response closed early tells the app that the client went away (`http.disconnect`).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, MutableMapping
from types import TracebackType
from typing import Any, Self

import anyio
import httpx2
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream
from starlette.types import ASGIApp


class StreamingASGITransport(httpx2.AsyncBaseTransport):
    """Send requests to `app` in-process; response bodies stream (use inside `async with httpx2.AsyncClient`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._group: TaskGroup | None = None

    async def __aenter__(self) -> Self:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None = None,
        error: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        assert self._group is not None
        self._group.cancel_scope.cancel()  # a response nobody read to the end: its app call ends with the client
        await self._group.__aexit__(kind, error, traceback)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        assert self._group is not None, 'open the client with `async with`'
        assert isinstance(request.stream, httpx2.AsyncByteStream)
        body = b''.join([chunk async for chunk in request.stream])
        chunks_in, chunks_out = anyio.create_memory_object_stream[bytes](math.inf)
        head: dict[str, Any] = {}
        headers_sent = anyio.Event()
        gone = anyio.Event()
        request_read = False

        async def receive() -> dict[str, Any]:
            nonlocal request_read
            if not request_read:
                request_read = True
                return {'type': 'http.request', 'body': body, 'more_body': False}
            await gone.wait()
            return {'type': 'http.disconnect'}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message['type'] == 'http.response.start':
                head.update(status=message['status'], headers=message.get('headers', []))
                headers_sent.set()
            elif message['type'] == 'http.response.body':
                if message.get('body') and not gone.is_set():  # nobody reads a body the client closed
                    chunks_in.send_nowait(message['body'])
                if not message.get('more_body', False):
                    chunks_in.close()

        async def call_app() -> None:
            with chunks_in:
                try:
                    await self.app(_scope(request), receive, send)
                finally:
                    headers_sent.set()

        self._group.start_soon(call_app)
        await headers_sent.wait()
        assert head, 'the app ended without sending a response'
        return httpx2.Response(head['status'], headers=head['headers'], stream=_Body(chunks_out, gone))


class _Body(httpx2.AsyncByteStream):
    def __init__(self, chunks: MemoryObjectReceiveStream[bytes], gone: anyio.Event) -> None:
        self._chunks = chunks
        self._gone = gone

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            yield chunk

    async def aclose(self) -> None:
        self._gone.set()
        self._chunks.close()


def _scope(request: httpx2.Request) -> dict[str, Any]:
    return {
        'type': 'http',
        'asgi': {'version': '3.0'},
        'http_version': '1.1',
        'method': request.method,
        'headers': [(key.lower(), value) for key, value in request.headers.raw],
        'scheme': request.url.scheme,
        'path': request.url.path,
        'raw_path': request.url.raw_path.split(b'?')[0],
        'query_string': request.url.query,
        'server': (request.url.host, request.url.port),
        'client': ('127.0.0.1', 123),
        'root_path': '',
    }
