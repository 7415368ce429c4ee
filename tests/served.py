"""Serve an ASGI app with uvicorn on 127.0.0.1 and a free port, in the test's own event loop."""

from __future__ import annotations

import socket
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Literal

import anyio
import uvicorn


@asynccontextmanager
async def served(app: Callable[..., Awaitable[None]], *, lifespan: Literal['on', 'off']) -> AsyncGenerator[int]:
    """Serve `app` for the length of the block; yields the port. With `lifespan='on'` its lifespan runs too."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(('127.0.0.1', 0))
    sock.listen()  # connections wait in the backlog until the server accepts them: no start-up race
    config = uvicorn.Config(app, log_level='warning', lifespan=lifespan, timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve, [sock])
        try:
            yield sock.getsockname()[1]
        finally:
            server.should_exit = True
    sock.close()
