"""Why a task was cancelled, in words: one table per audience, so each kind of reason is worded in one place.

Three readers learn why a task was cancelled, and each gets its own words:

* the parent's model, in tool replies (`check_task`, `wait_tasks`, the cancel and region tools):
  [`FOR_PARENT_MODEL`][subagents_cancel._text.reasons.FOR_PARENT_MODEL];
* the sub-agent's model, in the cancel request it reads and in the prompt of a fallback that takes over:
  [`FOR_SUBAGENT_MODEL`][subagents_cancel._text.reasons.FOR_SUBAGENT_MODEL], addressed to it;
* people, in exception messages: [`FOR_PEOPLE`][subagents_cancel._text.reasons.FOR_PEOPLE], short labels like those
  that spans and metrics record (they record the kind itself).

Every table has an entry for every [`CancelReasonKind`][subagents_cancel.messages.CancelReasonKind]; a test
checks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from subagents_cancel.messages import CancelReason, CancelReasonKind

__all__ = ('FOR_PARENT_MODEL', 'FOR_PEOPLE', 'FOR_SUBAGENT_MODEL', 'in_words')

FOR_PARENT_MODEL: Mapping[CancelReasonKind, str] = MappingProxyType(
    {
        'user': 'on request',
        'parent_cancelled': 'its owner was cancelled',
        'parent_ended': 'its owner ended',
        'deadline': 'deadline',
        'region': 'its region was cancelled',
        'sibling': 'a sibling made it unnecessary',
        'budget': 'budget exhausted',
    }
)
"""Why a task was cancelled, as the parent's model reads it in a tool reply."""

FOR_SUBAGENT_MODEL: Mapping[CancelReasonKind, str] = MappingProxyType(
    {
        'user': 'the work is no longer needed',
        'parent_cancelled': 'the task that owns yours was cancelled',
        'parent_ended': 'the run that started you has ended',
        'deadline': 'your time budget ran out',
        'region': 'the group of tasks you belong to was cancelled',
        'sibling': 'another task already did the work',
        'budget': 'the budget for this work ran out',
    }
)
"""Why the sub-agent is asked to stop, addressed to its model (and to a fallback's, about the task it replaces)."""

FOR_PEOPLE: Mapping[CancelReasonKind, str] = MappingProxyType(
    {
        'user': 'user',
        'parent_cancelled': 'parent cancelled',
        'parent_ended': 'parent ended',
        'deadline': 'deadline',
        'region': 'region',
        'sibling': 'sibling',
        'budget': 'budget',
    }
)
"""Why a task was cancelled, as a short label in exception messages read by people."""


def in_words(reason: CancelReason, words: Mapping[CancelReasonKind, str]) -> str:
    """The words one audience reads for `reason`, followed by the reason's detail when it has one."""
    text = words[reason.kind]
    return f'{text}: {reason.detail}' if reason.detail else text
