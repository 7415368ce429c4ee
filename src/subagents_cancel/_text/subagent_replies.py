"""The replies a sub-agent reads from its own tools, and what stands in its history for a step cut short."""

from __future__ import annotations

__all__ = (
    'answered_by_parent',
    'checkpoint_recorded',
    'one_question_at_a_time',
    'refused_after_cancel',
    'step_interrupted',
    'stopped_before_result',
    'stopped_here',
    'tool_interrupted',
)


def checkpoint_recorded(count: int, *, cancel_requested: bool) -> str:
    """Reply to the sub-agent's `checkpoint`."""
    if cancel_requested:
        return f'Checkpoint {count} recorded. You were asked to stop: reply now with your partial results.'
    return f'Checkpoint {count} recorded.'


def answered_by_parent(answer: str) -> str:
    """Reply to the sub-agent's `ask_parent` once the parent answered."""
    return f'Your parent answered: {answer}'


def one_question_at_a_time() -> str:
    """Reply to a second `ask_parent` while one is open."""
    return 'You already have an open question; wait for its answer before asking another.'


def step_interrupted() -> str:
    """What stands in the history for a sub-agent's model response cut short by a soft cancel."""
    return '[Interrupted before this response was finished: your parent asked you to stop (CANCEL_REQUEST).]'


def tool_interrupted(tool_name: str) -> str:
    """The result of a sub-agent tool call cut short by a soft cancel."""
    return (
        f'Interrupted ({tool_name}): your parent asked you to stop (CANCEL_REQUEST) before this call finished, so '
        f'it has no result. Do not call it again; reply now with your partial results.'
    )


def refused_after_cancel(tool_name: str) -> str:
    """The result of a sub-agent tool call refused because the sub-agent was asked to stop."""
    return (
        f'Not run ({tool_name}): your parent asked you to stop (CANCEL_REQUEST). Do not call tools; '
        f'reply now with your partial results.'
    )


def stopped_here() -> str:
    """What stands in a resumed task's history for the cancel request that stopped the task it continues."""
    return (
        '[Your parent stopped this task here and asked for partial results. It has since resumed the task: '
        'the request to stop no longer applies; follow its latest message.]'
    )


def stopped_before_result(tool_name: str) -> str:
    """The result, in a resumed task's history, of a tool call that the stop left without one."""
    return (
        f'No result ({tool_name}): the task was stopped before this call returned, so whatever it did is unknown. '
        f'Call it again if you still need it.'
    )
