"""The ASGI app: a page, a JSON API to start and stop research requests, and a server-sent event stream per request.

Routes:

* `GET /`: the page.
* `POST /requests` with `{"question": ...}`: start a request; returns its view (`request_id`, `state`, `tasks`).
* `GET /requests/{request_id}`: the request's view now.
* `GET /requests/{request_id}/events`: server-sent events, one `data:` line of the request's view each time it
  changes (status, checkpoints, a cancel request and whether the sub-agent read it, outcomes); the stream ends
  after the view of the ended request.
* `POST /requests/{request_id}/stop` and `/kill`: soft-cancel every task, or stop the whole request now.
* `POST /requests/{request_id}/tasks/{task_id}/stop` and `/kill`: the same for one task; both return the task's
  view once it has ended, with its partial result (a task that ignores a kill: 504, with the error and its view).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal, cast

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from subagents_cancel import CancelTimeout, UnknownTask

from .research import Desk, Research
from .views import task_view

__all__ = ('create_app',)

REFRESH_SECONDS = 0.2
"""How often an event stream looks for changes (an event is sent only when the view changed)."""
_PAGE = Path(__file__).with_name('page.html')


def create_app(desk: Desk) -> Starlette:
    """The app around `desk`; its lifespan opens the desk, which owns every research request, and closes it."""
    endpoints = _Endpoints(desk)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[None]:
        async with endpoints.desk:
            yield

    return Starlette(
        routes=[
            Route('/', endpoints.page),
            Route('/requests', endpoints.start, methods=['POST']),
            Route('/requests/{request_id}', endpoints.show),
            Route('/requests/{request_id}/events', endpoints.events),
            Route('/requests/{request_id}/stop', endpoints.stop, methods=['POST']),
            Route('/requests/{request_id}/kill', endpoints.kill, methods=['POST']),
            Route('/requests/{request_id}/tasks/{task_id}/stop', endpoints.stop_task, methods=['POST']),
            Route('/requests/{request_id}/tasks/{task_id}/kill', endpoints.kill_task, methods=['POST']),
        ],
        lifespan=lifespan,
    )


class _Endpoints:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    async def page(self, request: Request) -> Response:
        return HTMLResponse(_PAGE.read_text())

    async def start(self, request: Request) -> Response:
        try:
            body: object = await request.json()
        except ValueError:  # not JSON (or not UTF-8): answered as a body without a question
            body = None
        question = cast('dict[str, object]', body).get('question') if isinstance(body, dict) else None
        if not isinstance(question, str) or not question.strip():
            return JSONResponse({'error': 'Send {"question": "..."} with a question.'}, status_code=400)
        research = await self.desk.open(question.strip())
        return JSONResponse(research.view(), status_code=201)

    def _found(self, request: Request) -> Research | Response:
        research = self.desk.get(request.path_params['request_id'])
        return research or JSONResponse({'error': 'No such request.'}, status_code=404)

    async def show(self, request: Request) -> Response:
        research = self._found(request)
        return research if isinstance(research, Response) else JSONResponse(research.view())

    async def events(self, request: Request) -> Response:
        research = self._found(request)
        if isinstance(research, Response):
            return research
        return StreamingResponse(_event_stream(research), media_type='text/event-stream')

    async def stop(self, request: Request) -> Response:
        research = self._found(request)
        if isinstance(research, Response):
            return research
        research.stop()
        return JSONResponse(research.view())

    async def kill(self, request: Request) -> Response:
        research = self._found(request)
        if isinstance(research, Response):
            return research
        await research.kill()
        return JSONResponse(research.view())

    async def stop_task(self, request: Request) -> Response:
        return await self._on_task(request, 'stop')

    async def kill_task(self, request: Request) -> Response:
        return await self._on_task(request, 'kill')

    async def _on_task(self, request: Request, how: Literal['stop', 'kill']) -> Response:
        research = self._found(request)
        if isinstance(research, Response):
            return research
        task_id: str = request.path_params['task_id']
        try:
            info = await (research.stop_task(task_id) if how == 'stop' else research.kill_task(task_id))
        except UnknownTask:
            return JSONResponse({'error': f'No task {task_id!r} in this request.'}, status_code=404)
        except CancelTimeout as error:  # it ignored the kill within the policy's bound: say so, with the task as it is
            view = task_view(research.manager.get(task_id))
            return JSONResponse({'error': str(error), 'task': view}, status_code=504)
        return JSONResponse(task_view(info))


async def _event_stream(research: Research) -> AsyncIterator[str]:
    """The request's view each time it changes, until the view of the ended request has been sent."""
    sent = None
    while True:
        ended = research.ended.is_set()
        view = json.dumps(research.view())
        if view != sent:
            yield f'data: {view}\n\n'
            sent = view
        if ended:
            return
        with anyio.move_on_after(REFRESH_SECONDS):
            await research.ended.wait()
