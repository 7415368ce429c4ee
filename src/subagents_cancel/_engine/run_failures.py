"""How a failed sub-agent run is described to its parent: in our own words, never the provider's error text."""

from __future__ import annotations

from pydantic_ai import UsageLimitExceeded
from pydantic_ai.exceptions import UnexpectedModelBehavior

from subagents_cancel.messages import RunError

__all__ = ('describe_failure', 'stray_cancellation')


def stray_cancellation() -> RunError:
    """The failure of a run whose own code raised `CancelledError` although nothing cancelled the task."""
    return RunError(
        'CancelledError',
        'a tool or hook of the sub-agent raised CancelledError although nothing cancelled the task '
        '(for example, it awaited something that was cancelled elsewhere); details are in the logs',
    )


def describe_failure(error: Exception) -> RunError:
    """Our own sentence for a failed run; provider error text may carry secrets, so it is not repeated."""
    if isinstance(error, UsageLimitExceeded | UnexpectedModelBehavior):
        return RunError(type(error).__name__, error.message)  # pydantic-ai's own wording, no provider text
    return RunError(_original_class(error), 'the sub-agent run raised this error; details are in the logs')


_CARRIERS = 'temporalio.exceptions'
"""Where the errors that carry a failure from another process are (a Temporal activity's failure)."""


def _original_class(error: BaseException) -> str:
    """The name of the class that failed, also when the failure was carried over from another process.

    A Temporal activity that raised reaches its workflow as an `ActivityError` caused by an `ApplicationError` whose
    `type` names the original class: the parent reads the same class name as in process.
    """
    while type(error).__module__ == _CARRIERS:
        named = getattr(error, 'type', None)
        if isinstance(named, str) and named:
            return named
        if error.__cause__ is None:
            break
        error = error.__cause__
    return type(error).__name__
