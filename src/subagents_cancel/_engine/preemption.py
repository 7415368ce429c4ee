"""The capability that lets a soft cancel interrupt the step in flight (`preempt_on_soft_cancel`).

It runs each model request and tool call of the run in a cancel scope. `interrupt_steps()` cancels the scopes of the
steps still in flight, after the runner has queued the cancel request: an interrupted model request is answered with
a stand-in response that says so (pydantic-ai hands a capability no partial text), an interrupted tool call is
closed out with a note as its result, and the run goes on at once to the request that carries the cancel request.
A model request whose step had begun when the cancel came, but which had not asked the model yet, is not sent: it
gets the same stand-in, since the request it would send does not carry the cancel request.
A response that has arrived is never interrupted, nor are `checkpoint` (it returns at once) and `ask_parent` (an
open question is answered with the cancel request itself). A hard cancel is not caught by these scopes.

It is added to a run only when preemption is on, so that runs without it pay nothing for its hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import anyio
from pydantic_ai import RunContext
from pydantic_ai.capabilities import (
    AbstractCapability,
    ValidatedToolArgs,
    WrapModelRequestHandler,
    WrapToolExecuteHandler,
)
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models import ModelRequestContext
from pydantic_ai.tools import ToolDefinition

from subagents_cancel._text import subagent_replies

__all__ = ('StepPreemption',)

_NOT_INTERRUPTED = frozenset({'checkpoint', 'ask_parent'})


@dataclass
class StepPreemption(AbstractCapability[object]):
    """Per-run capability: the model request and tool calls in flight, which a soft cancel may interrupt."""

    _safe_at_runtime: ClassVar[bool] = True
    """pydantic-ai's durable runs accept it per run: it adds no toolset and no durable operation."""

    held: Callable[[], bool] = lambda: False
    """Whether the runner holds a cancel request that it has not queued into the run: a model request that begins
    meanwhile does not carry it, and was not in flight for `interrupt_steps` (its step had begun, the model not been
    asked yet), so it is cut short as it starts."""

    _in_flight: set[anyio.CancelScope] = field(default_factory=set[anyio.CancelScope], init=False)
    _model_request: anyio.CancelScope | None = field(default=None, init=False)

    def interrupt_steps(self) -> None:
        """Cut short the model request and the tool calls in flight; call it once the cancel request is queued."""
        for scope in self._in_flight:
            scope.cancel()

    @contextmanager
    def _step(self) -> Generator[anyio.CancelScope]:
        with anyio.CancelScope() as scope:
            self._in_flight.add(scope)
            try:
                yield scope
            finally:
                self._in_flight.discard(scope)

    async def wrap_model_request(
        self, ctx: RunContext[object], *, request_context: ModelRequestContext, handler: WrapModelRequestHandler
    ) -> ModelResponse:
        """A request cut short (or not sent: a cancel request is held for the next one) is an interrupted stand-in."""
        if not self.held():
            with self._step() as self._model_request:
                return await handler(request_context)
        return ModelResponse(parts=[TextPart(subagent_replies.step_interrupted())], state='interrupted')

    async def after_model_request(
        self, ctx: RunContext[object], *, request_context: ModelRequestContext, response: ModelResponse
    ) -> ModelResponse:
        """The response has arrived: from here on, a soft cancel no longer interrupts this request."""
        if self._model_request is not None:
            self._in_flight.discard(self._model_request)
        return response

    async def wrap_tool_execute(
        self,
        ctx: RunContext[object],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: ValidatedToolArgs,
        handler: WrapToolExecuteHandler,
    ) -> Any:
        """A tool call cut short gets a note as its result."""
        if call.tool_name in _NOT_INTERRUPTED:
            return await handler(args)
        with self._step():
            return await handler(args)
        return subagent_replies.tool_interrupted(call.tool_name)
