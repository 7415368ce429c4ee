"""What a sub-agent run cost: the usage of its model responses, with an estimate for streams cut off unreported.

The runner reports it with the run's ending, and separately the part that arrived after the first cancel request
([`UsageAfterCancel`][subagents_cancel._engine.run_usage.UsageAfterCancel]).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic_ai import RunUsage
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ThinkingPart, ToolCallPart

__all__ = ('UsageAfterCancel', 'model_responses', 'plus_unreported', 'unreported_stream_usage', 'usage_of')


def model_responses(messages: Iterable[ModelMessage]) -> list[ModelResponse]:
    """The model responses among `messages`, in order."""
    return [message for message in messages if isinstance(message, ModelResponse)]


def usage_of(responses: Iterable[ModelResponse]) -> RunUsage:
    """What these responses cost: one request each, and their tokens."""
    usage = RunUsage()
    for response in responses:
        usage.requests += 1
        usage.incr(response.usage)
    return usage


def unreported_stream_usage(responses: Iterable[ModelResponse]) -> RunUsage:
    """An estimate of the output tokens of cut-off streams whose provider reported none.

    OpenAI-compatible streams report usage only in their last chunk, which a stream closed by a hard cancel
    never gets; what the model had streamed until then was still generated (and billed). It is estimated
    as one token per word or punctuation mark of the streamed parts, and also recorded in
    `details['estimated_output_tokens']` so that it can be told apart from reported figures.
    """
    estimate = sum(
        _estimated_tokens(response)
        for response in responses
        if response.state in ('interrupted', 'incomplete') and not response.usage.output_tokens
    )
    return RunUsage(output_tokens=estimate, details={'estimated_output_tokens': estimate}) if estimate else RunUsage()


def plus_unreported(usage: RunUsage, responses: Iterable[ModelResponse]) -> RunUsage:
    """`usage` with the `unreported_stream_usage` of `responses` added; `usage` itself when there is none."""
    estimate = unreported_stream_usage(responses)
    return usage + estimate if estimate.output_tokens else usage


class UsageAfterCancel:
    """The usage of the model responses that arrived after the first cancel request of a run."""

    __slots__ = ('_responses_before',)

    def __init__(self) -> None:
        self._responses_before: int | None = None

    def cancel_arrived(self, messages: Iterable[ModelMessage]) -> None:
        """A cancel request reached the runner; `messages` are the run's messages so far (none before it began)."""
        if self._responses_before is None:
            self._responses_before = len(model_responses(messages))

    def usage(self, messages: Iterable[ModelMessage]) -> RunUsage | None:
        """What the responses among the run's `messages` after the first request cost; `None` if none came."""
        if self._responses_before is None:
            return None
        after = model_responses(messages)[self._responses_before :]
        return plus_unreported(usage_of(after), after)


_WORD_OR_MARK = re.compile(r'\w+|[^\w\s]')


def _estimated_tokens(response: ModelResponse) -> int:
    count = 0
    for part in response.parts:
        if isinstance(part, TextPart | ThinkingPart):
            count += len(_WORD_OR_MARK.findall(part.content))
        elif isinstance(part, ToolCallPart):
            count += len(_WORD_OR_MARK.findall(part.args_as_json_str()))
    return count
