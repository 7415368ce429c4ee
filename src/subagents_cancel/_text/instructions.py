"""The text models read: guides for the parent and the sub-agents, and the `CANCEL_REQUEST` message."""

from __future__ import annotations

from collections.abc import Iterable

from subagents_cancel.config import SubAgentConfig
from subagents_cancel.messages import CancelReason, CancelRequest
from subagents_cancel.results import PartialResult

from . import reports
from .reasons import FOR_SUBAGENT_MODEL, in_words

__all__ = (
    'CANCEL_REQUEST_MARKER',
    'DEFAULT_CANCEL_INSTRUCTIONS',
    'cancel_request_text',
    'fallback_prompt',
    'parent_instructions',
    'resume_prompt',
)

CANCEL_REQUEST_MARKER = 'CANCEL_REQUEST'
"""The word that opens every cancel request a sub-agent receives."""

DEFAULT_CANCEL_INSTRUCTIONS = f"""\
## Progress and cancellation
Work in steps. After each step, call `checkpoint` with what is completed, in progress and not started, and \
what you found in that step. If you are stopped, your checkpoints are what your parent receives.
Your parent may ask you to stop. A message that starts with {CANCEL_REQUEST_MARKER} means: stop now. Do not \
start new work and do not call tools. Reply at once, as your final answer, with your partial results in this form:
Completed: <what is done>
In progress: <what was under way>
Not started: <what you did not begin>
Findings: <what you found so far>"""
"""Appended to every sub-agent's instructions unless its config gives `cancel_instructions`."""


def cancel_request_text(request: CancelRequest, *, subtasks_stopped: bool = False) -> str:
    """The message a soft cancel puts into the sub-agent's conversation."""
    text = (
        f'{CANCEL_REQUEST_MARKER} [{request.message_id}]: your parent asked you to stop ({_reason(request.reason)}). '
        f'Do not start new work or call tools. Reply now with your partial results '
        f'(Completed, In progress, Not started, Findings). You have {request.grace_seconds:g} seconds.'
    )
    if subtasks_stopped:
        text += (
            ' Your own sub-agent tasks were asked to stop first; wait_tasks or check_task shows their partial '
            'results, to include in yours.'
        )
    return text


def _reason(reason: CancelReason) -> str:
    return in_words(reason, FOR_SUBAGENT_MODEL)


def fallback_prompt(description: str, reason: CancelReason, partial: PartialResult) -> str:
    """The prompt of a task that takes over from a cancelled one: the original request, and what was done."""
    done = 'It had produced nothing.' if partial.is_empty else f'What it had done:\n{reports.partial_text(partial)}'
    return (
        f'{description}\n\n(You are taking over from a task that was cancelled ({_reason(reason)}). {done}\n'
        f'Build on what it did; do not repeat finished work.)'
    )


def resume_prompt(instructions: str, *, description: str, has_history: bool) -> str:
    """The prompt of a task that resumes a stopped one: the parent's new instructions, and how they continue it.

    With the stopped run's conversation as its history, the prompt is its next message; without one (the task was
    stopped before it started), it carries the original request too.
    """
    if has_history:
        return (
            f'{instructions}\n\n(Your parent resumes this task, which it had stopped: the request to stop no longer '
            f'applies. Go on from where you stopped, following the instructions above; do not repeat finished work.)'
        )
    return (
        f'{instructions}\n\n(Your parent resumes a task it had stopped before it began. Its original request: '
        f'{description})'
    )


def parent_instructions(subagents: Iterable[SubAgentConfig]) -> str:
    """The parent's guide: which sub-agents exist and how to start, wait for, answer and stop them."""
    listing = '\n'.join(f'- {config.name}: {config.description}' for config in subagents)
    return f"""\
## Sub-agents
You can delegate work with the `task` tool to these sub-agents:
{listing}
`task(mode="sync")` waits and returns the result; `task(mode="async")` returns a task id at once and the task \
runs in the background. Follow background tasks with `check_task`, `wait_tasks` (waits without polling) and \
`list_active_tasks`. When a task asks a question, reply with `answer_subagent`.
To stop a task: `soft_cancel_task` tells it to wrap up and hand back partial results (it is stopped if it \
takes too long); `hard_cancel_task` stops it at once, keeping only the checkpoints it recorded. \
`resume_task` continues a cancelled or failed task with new instructions, from where it stopped.
`task` also takes `region` (a group of tasks: `soft_cancel_region` / `hard_cancel_region` stop them all at once, \
`wait_region` delivers all their results or says why not), `timeout_seconds` (a time budget) and `fallback` \
(a sub-agent that takes over with the partial result if the task is cancelled)."""
