"""The conversation a stopped run left behind, turned into a history a provider accepts, for a resumed task.

A cancelled or failed run can end anywhere, and pydantic-ai's `all_messages()` keeps it as it was: a response cut
off mid-stream (or a preempted step's stand-in), both `state='interrupted'`; tool calls that never returned; the
soft cancel's `CANCEL_REQUEST` in a request, or as the result of `ask_parent`. OpenAI- and Anthropic-style APIs
refuse a history where a tool call has no result, a result has no call, or the results of a response do not come
first in the message after it. [`resumable_history`][subagents_cancel.history_surgery.resumable_history] repairs
that, and nothing else:

* An interrupted response keeps only its text. Its tool calls are dropped: they never ran, and their arguments may
  be cut off. A response left with no text is dropped.
* Every tool call left is answered in the request right after its response, results first and in the order of the
  calls: a call with no result gets a result saying it has none (`subagent_replies.stopped_before_result`), in a
  request of its own if no request follows. A result with no call before it is dropped.
* The cancel request that stopped the task, found by its request id, is closed out: its text becomes a note that the
  task was stopped there and has been resumed (`subagent_replies.stopped_here`), so the model does not read it as an
  order to stop again. A request left with no parts is dropped.

It is a pure function of the messages: it changes nothing it is given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeGuard

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

from subagents_cancel._text import subagent_replies
from subagents_cancel._text.instructions import CANCEL_REQUEST_MARKER

__all__ = ('resumable_history',)


def resumable_history(
    messages: Sequence[ModelMessage], *, cancel_request_id: str | None = None
) -> tuple[ModelMessage, ...]:
    """`messages` repaired so that a provider accepts them as the history of a new run (see the module docstring).

    Args:
        messages: The stopped run's conversation, as `all_messages()` returned it.
        cancel_request_id: The `message_id` of the soft cancel request that stopped the task, if one did.
    """
    tag = f'{CANCEL_REQUEST_MARKER} [{cancel_request_id}]' if cancel_request_id is not None else None
    kept = (_kept(message, tag) for message in messages)
    return tuple(_every_call_answered(message for message in kept if message is not None))


def _kept(message: ModelMessage, tag: str | None) -> ModelMessage | None:
    """What is left of one message: an interrupted response's text, a request with its cancel request closed out."""
    if isinstance(message, ModelResponse):
        if message.state != 'interrupted':
            return message
        texts = [part for part in message.parts if isinstance(part, TextPart) and part.content]
        return dataclasses.replace(message, parts=texts, state='complete') if texts else None
    parts = [_closed_out(part, tag) for part in message.parts]
    return dataclasses.replace(message, parts=parts, state='complete') if parts else None


def _closed_out(part: ModelRequestPart, tag: str | None) -> ModelRequestPart:
    """`part`, with the text of the cancel request tagged `tag` replaced by a note that the task was stopped there."""
    if tag is None or not isinstance(part, UserPromptPart | ToolReturnPart) or not isinstance(part.content, str):
        return part
    return dataclasses.replace(part, content=subagent_replies.stopped_here()) if tag in part.content else part


def _every_call_answered(messages: Iterable[ModelMessage]) -> Iterator[ModelMessage]:
    """Each response's tool calls answered first in the next request, in order; results of no open call dropped."""
    open_calls: list[ToolCallPart] = []
    for message in messages:
        if isinstance(message, ModelResponse):
            if open_calls:  # a response follows a response with calls: their results go in a request between them
                yield ModelRequest(parts=[_no_result(call) for call in open_calls])
            open_calls = [part for part in message.parts if isinstance(part, ToolCallPart)]
            yield message
            continue
        results = {part.tool_call_id: part for part in message.parts if _is_tool_result(part)}
        answers: list[ModelRequestPart] = [results.get(call.tool_call_id) or _no_result(call) for call in open_calls]
        parts = [*answers, *(part for part in message.parts if not _is_tool_result(part))]
        open_calls = []
        if parts:
            yield dataclasses.replace(message, parts=parts)
    if open_calls:
        yield ModelRequest(parts=[_no_result(call) for call in open_calls])


def _is_tool_result(part: ModelRequestPart) -> TypeGuard[ToolReturnPart]:
    """Whether `part` answers a tool call (a retry of one is a `ToolReturnPart` with `outcome='retried'`)."""
    return isinstance(part, ToolReturnPart)


def _no_result(call: ToolCallPart) -> ToolReturnPart:
    return ToolReturnPart(
        tool_name=call.tool_name,
        content=subagent_replies.stopped_before_result(call.tool_name),
        tool_call_id=call.tool_call_id,
        outcome='interrupted',
    )
